// The benchmarks' input: the project's HealthBot notification samples, tests/data/healthbot.jsonl.
// A missing or empty file stops the benchmark with a message rather than measuring nothing.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace hbf::bench {

inline std::vector<std::string> healthbot_samples() {
    const std::string path = std::string(HBF_TEST_DATA_DIR) + "/healthbot.jsonl";
    std::ifstream f(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);)
        if (!l.empty()) out.push_back(l);
    if (out.empty()) {
        std::fprintf(stderr, "benchmark input %s is missing or empty: it belongs to the repository (tests/data/)\n", path.c_str());
        std::exit(2);
    }
    return out;
}

}  // namespace hbf::bench
