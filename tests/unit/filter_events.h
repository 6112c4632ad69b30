// The project's HealthBot notification samples, tests/data/healthbot.jsonl, as event texts.
// A missing or empty file fails the calling test with a message (never an empty vector that a
// test would then index).
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <simdjson.h>

namespace hbf::test {

inline std::vector<std::string> healthbot_examples() {
    const std::string path = std::string(HBF_TEST_DATA_DIR) + "/healthbot.jsonl";
    std::ifstream f(path);
    if (!f) FAIL("test sample " << path << " cannot be read: it belongs to the repository (tests/data/)");
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);)
        if (!l.empty()) out.push_back(l);
    if (out.empty()) FAIL("test sample " << path << " holds no notification");
    return out;
}

// A string member of an event's top level, "" when absent: samples differ in spacing and order.
inline std::string member(const std::string& event, const char* name) {
    simdjson::dom::parser p;
    std::string_view v;
    if (p.parse(event)[name].get(v) != simdjson::SUCCESS) return "";
    return std::string(v);
}

}  // namespace hbf::test
