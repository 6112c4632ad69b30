#include "registry.h"

#include "commands.h"

namespace hbf {

const char* to_string(StageKind k) {
    switch (k) {
        case StageKind::input: return "input";
        case StageKind::filter: return "filter";
        case StageKind::output: return "output";
    }
    return "?";
}

// Here, not in main.cpp, so that stages contributing commands also link into the unit tests.
std::vector<Command>& commands() {
    static std::vector<Command> c;
    return c;
}

Registry& Registry::get() {
    static Registry r;
    return r;
}

void Registry::add(StageInfo info) {
    auto& m = by_kind_[static_cast<int>(info.kind)];
    std::string type = info.type;
    m[type] = std::move(info);
}

const StageInfo* Registry::find(StageKind kind, const std::string& type) const {
    const auto& m = by_kind_[static_cast<int>(kind)];
    auto it = m.find(type);
    return it == m.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::types(StageKind kind) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : by_kind_[static_cast<int>(kind)]) out.push_back(k);
    return out;
}

const std::map<std::string, StageInfo>& Registry::all(StageKind kind) const { return by_kind_[static_cast<int>(kind)]; }

}  // namespace hbf
