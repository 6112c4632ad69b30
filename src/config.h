// Loading a pipeline config: TOML -> validated stage declarations and their wiring.
//
// Every problem is collected, not just the first, each with FILE:LINE:COL. load_config never
// throws; a config is usable when it has no errors (warnings are allowed).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "buffer/buffer_config.h"
#include "options.h"
#include "registry.h"

namespace hbf {

// [service]: its defaults are these initializers, its docs in service_schema() (config.cpp).
struct ServiceConfig {
    std::string log_level = "info";
    std::string log_format = "text";
    Duration shutdown_timeout = std::chrono::seconds(10);
    int64_t queue_events = 16384;
    Size queue_bytes = Size(8 << 20);
    int64_t batch_events = 1024;
    Duration linger = std::chrono::milliseconds(2);
    std::string api_address;
    std::string data_dir = ".hbforward";
};
const OptionSchema<ServiceConfig>& service_schema();

struct StageDecl {
    std::string name;
    StageKind kind;
    std::string type;
    const StageInfo* info = nullptr;
    const toml::table* tbl = nullptr;
    Location loc;
    struct InputRef {
        std::string stage;  // the upstream stage's name
        std::string port;   // "" for the stage itself, else a named port ("r.major" -> "major")
        Location where;
    };
    std::vector<InputRef> inputs;
    std::vector<std::string> ports;  // named ports this stage offers
    std::string fingerprint;         // the table as text, less `inputs`: equal = unchanged stage
    std::unique_ptr<StageConfig> cfg;
    buffer::BufferConfig buffer;     // outputs: `buffer = { ... }`; memory unless it says disk
    int workers = 1;                 // filters: `workers = N` runs it and the filters inline below it on N threads
    static constexpr int kMaxWorkers = 16;
    bool options_ok = false;  // its table passed the schema check (build_stages builds no stage without it)
};

struct PipelineConfig {
    std::string file;
    toml::table root;
    ServiceConfig service;
    std::vector<StageDecl> stages;
    std::vector<Diagnostic> diags;

    bool ok() const;
    const StageDecl* find(const std::string& name) const;
    // "FILE:LINE:COL: message" lines, sorted by position.
    std::string report() const;
};

std::unique_ptr<PipelineConfig> load_config(const std::string& path);
std::unique_ptr<PipelineConfig> load_config_text(std::string_view text, const std::string& path);

// The stages built from a config; factories run here, so option semantics (a bad regex, a
// template that does not parse, a TLS key that does not match) are checked by `validate` too,
// every problem of every stage. A stage with any problem is not built (its BuiltStage is
// empty): run only with a config that is ok().
struct BuiltStage {
    const StageDecl* decl = nullptr;
    std::unique_ptr<Input> input;
    std::unique_ptr<Filter> filter;
    std::unique_ptr<Output> output;
};
std::vector<BuiltStage> build_stages(PipelineConfig& cfg);

}  // namespace hbf
