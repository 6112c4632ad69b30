// Event texts shared by the filter tests: the HealthBot samples of shared/healthbot/examples.jsonl.
#pragma once

#include <fstream>
#include <string>
#include <vector>

namespace hbf::test {

inline std::vector<std::string> healthbot_examples() {
    std::ifstream f(std::string(HBF_SHARED_DIR) + "/healthbot/examples.jsonl");
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);)
        if (!l.empty()) out.push_back(l);
    return out;
}

}  // namespace hbf::test
