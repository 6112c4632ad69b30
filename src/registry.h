// The stage registry: type name -> factory, option schema and one-line doc.
//
// A stage registers itself from its own folder with HBF_REGISTER_{INPUT,FILTER,OUTPUT}; the
// core looks types up here and never names a concrete stage.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "option_schema.h"
#include "resource.h"
#include "options.h"
#include "stage.h"

namespace hbf {

enum class StageKind { input, filter, output };
const char* to_string(StageKind k);

struct StageInfo {
    StageKind kind;
    std::string type;
    std::string doc;
    std::vector<OptionSpec> options;
    std::function<std::unique_ptr<Input>(const StageConfig&)> make_input;
    std::function<std::unique_ptr<Filter>(const StageConfig&)> make_filter;
    std::function<std::unique_ptr<Output>(const StageConfig&)> make_output;
    // Named output ports besides the stage itself ("r.major"); the route filter has them.
    std::function<std::vector<std::string>(const StageConfig&)> ports;
    // What the stage holds while it runs (resource.h), from its options struct's resources();
    // empty for a stage whose options declare none.
    std::function<std::vector<Resource>(const StageConfig&, const StagePlace&)> resources;
    // A filter that keeps nothing from one batch to the next (json, enrich): the runtime may run
    // an instance of it per worker on successive batches at once (`workers`, src/ordered.h).
    bool stateless = false;
};

class Registry {
public:
    static Registry& get();
    void add(StageInfo info);
    const StageInfo* find(StageKind kind, const std::string& type) const;
    std::vector<std::string> types(StageKind kind) const;
    const std::map<std::string, StageInfo>& all(StageKind kind) const;

private:
    std::map<std::string, StageInfo> by_kind_[3];
};

struct Registrar {
    explicit Registrar(StageInfo info) { Registry::get().add(std::move(info)); }
};

}  // namespace hbf

#define HBF_CONCAT_(a, b) a##b
#define HBF_CONCAT(a, b) HBF_CONCAT_(a, b)

// SCHEMA is the stage's OptionSchema<Options>: CLASS is built from the parsed Options, and the
// StageConfig if it takes one (to record problems found beyond the schema's rules).
#define HBF_REGISTER_INPUT(TYPE, CLASS, SCHEMA, DOC)                                                        \
    static ::hbf::Registrar HBF_CONCAT(hbf_registrar_, __LINE__)(::hbf::StageInfo{                           \
        ::hbf::StageKind::input, TYPE, DOC, ::hbf::specs_of(SCHEMA),                                         \
        [](const ::hbf::StageConfig& c) { return ::hbf::make_stage<::hbf::Input, CLASS>(SCHEMA, c); },       \
        nullptr, nullptr, nullptr, ::hbf::declared_resources(SCHEMA)})

#define HBF_REGISTER_FILTER(TYPE, CLASS, SCHEMA, DOC)                                                        \
    static ::hbf::Registrar HBF_CONCAT(hbf_registrar_, __LINE__)(::hbf::StageInfo{                            \
        ::hbf::StageKind::filter, TYPE, DOC, ::hbf::specs_of(SCHEMA), nullptr,                                \
        [](const ::hbf::StageConfig& c) { return ::hbf::make_stage<::hbf::Filter, CLASS>(SCHEMA, c); },       \
        nullptr, nullptr, ::hbf::declared_resources(SCHEMA)})

// A filter that keeps no state between batches (see StageInfo::stateless).
#define HBF_REGISTER_STATELESS_FILTER(TYPE, CLASS, SCHEMA, DOC)                                              \
    static ::hbf::Registrar HBF_CONCAT(hbf_registrar_, __LINE__)(::hbf::StageInfo{                            \
        ::hbf::StageKind::filter, TYPE, DOC, ::hbf::specs_of(SCHEMA), nullptr,                                \
        [](const ::hbf::StageConfig& c) { return ::hbf::make_stage<::hbf::Filter, CLASS>(SCHEMA, c); },       \
        nullptr, nullptr, ::hbf::declared_resources(SCHEMA), true})

// A filter with named ports: PORTS is a callable (const StageConfig&) -> std::vector<std::string>.
#define HBF_REGISTER_FILTER_PORTS(TYPE, CLASS, SCHEMA, DOC, PORTS)                                           \
    static ::hbf::Registrar HBF_CONCAT(hbf_registrar_, __LINE__)(::hbf::StageInfo{                            \
        ::hbf::StageKind::filter, TYPE, DOC, ::hbf::specs_of(SCHEMA), nullptr,                                \
        [](const ::hbf::StageConfig& c) { return ::hbf::make_stage<::hbf::Filter, CLASS>(SCHEMA, c); },       \
        nullptr, PORTS, ::hbf::declared_resources(SCHEMA)})

#define HBF_REGISTER_OUTPUT(TYPE, CLASS, SCHEMA, DOC)                                                        \
    static ::hbf::Registrar HBF_CONCAT(hbf_registrar_, __LINE__)(::hbf::StageInfo{                            \
        ::hbf::StageKind::output, TYPE, DOC, ::hbf::specs_of(SCHEMA), nullptr, nullptr,                        \
        [](const ::hbf::StageConfig& c) { return ::hbf::make_stage<::hbf::Output, CLASS>(SCHEMA, c); },       \
        nullptr, ::hbf::declared_resources(SCHEMA)})
