// hbforward's command line: run, validate, stages, and the commands stages contribute.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fmt/format.h>
#include <iostream>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "log.h"
#include "registry.h"
#include "runtime.h"
#include "version.h"

namespace hbf {

namespace {

int cmd_validate(const std::string& path) {
    auto cfg = load_config(path);
    if (cfg->ok()) build_stages(*cfg);
    std::string rep = cfg->report();
    if (!rep.empty()) std::fputs(rep.c_str(), stderr);
    if (!cfg->ok()) {
        size_t n = std::count_if(cfg->diags.begin(), cfg->diags.end(), [](auto& d) { return !d.warning; });
        std::fprintf(stderr, "%s: %zu error%s\n", path.c_str(), n, n == 1 ? "" : "s");
        return 1;
    }
    std::printf("%s: ok, %zu stages\n", path.c_str(), cfg->stages.size());
    return 0;
}

void print_schema(const std::string& title, const std::vector<OptionSpec>& opts) {
    std::printf("%s\n", title.c_str());
    for (const auto& o : opts) {
        std::string def = o.required ? "required" : (o.default_text.empty() ? "" : "default " + o.default_text);
        std::printf("    %-20s %-16s %-22s %s\n", o.name.c_str(), to_string(o.type), def.c_str(), o.doc.c_str());
    }
}

int cmd_stages(const std::string& only) {
    for (StageKind k : {StageKind::input, StageKind::filter, StageKind::output}) {
        for (const auto& [type, info] : Registry::get().all(k)) {
            if (!only.empty() && only != type) continue;
            print_schema(fmt::format("{} {}: {}", to_string(k), type, info.doc), info.options);
            if (k != StageKind::input) std::printf("    %-20s %-16s %-22s %s\n", "inputs", "list of strings", "required", "Stages to read from.");
            std::printf("\n");
        }
    }
    if (only.empty() || only == "service") print_schema("[service]: process-wide settings", service_schema());
    return 0;
}

int cmd_run(const std::string& path, const std::string& log_level) {
    auto cfg = load_config(path);
    auto stages = cfg->ok() ? build_stages(*cfg) : std::vector<BuiltStage>{};
    setup_logging(!log_level.empty() ? log_level : cfg->service.log_level, cfg->service.log_format);
    if (!cfg->ok()) {
        std::fputs(cfg->report().c_str(), stderr);
        spdlog::error("{}: the config is invalid, not starting", path);
        return 1;
    }
    for (const auto& d : cfg->diags) spdlog::warn("{}:{}:{}: {}", d.where.file, d.where.line, d.where.column, d.message);
    auto shutdown_timeout = cfg->service.shutdown_timeout;

    // Signals are taken synchronously by this thread; every other thread inherits the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    Runtime rt(std::move(cfg), std::move(stages));
    try {
        rt.start();
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    spdlog::info("hbforward {} running {} ({} stages)", HBF_VERSION, path, rt.nodes().size());

    auto deadline = std::chrono::steady_clock::time_point::max();
    for (;;) {
        timespec ts{0, 50'000'000};
        int sig = sigtimedwait(&set, nullptr, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            if (rt.stopping()) {
                spdlog::warn("second signal: exiting at once");
                std::fflush(stderr);
                _exit(130);
            }
            spdlog::info("signal {}: stopping inputs and draining (timeout {} ms)", sig,
                         std::chrono::duration_cast<std::chrono::milliseconds>(shutdown_timeout).count());
            rt.request_stop();
            deadline = std::chrono::steady_clock::now() + shutdown_timeout;
        } else if (sig == SIGHUP) {
            spdlog::info("SIGHUP: hot reload is not available in this build; ignoring");
        }
        if (rt.finished()) break;
        if (std::chrono::steady_clock::now() >= deadline) {
            if (!rt.wait_until(deadline)) {
                spdlog::error("shutdown timeout passed; exiting with events undelivered");
                std::fflush(stderr);
                _exit(1);
            }
        }
    }
    rt.wait_until(std::chrono::steady_clock::now() + shutdown_timeout);
    spdlog::info("all stages finished; exiting");
    return 0;
}

}  // namespace
}  // namespace hbf

int main(int argc, char** argv) {
    using namespace hbf;
    CLI::App app{"hbforward: a fast, dependable forwarder for Juniper HealthBot notifications"};
    app.set_version_flag("--version", std::string("hbforward ") + HBF_VERSION);
    app.require_subcommand(1);

    std::string config = "conf/hbforward.toml", log_level;
    auto* run = app.add_subcommand("run", "Run a pipeline.");
    run->add_option("-c,--config", config, "Config file (TOML).")->capture_default_str();
    run->add_option("--log-level", log_level, "Override [service] log_level: trace, debug, info, warn, error.")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

    std::string vconfig;
    auto* validate = app.add_subcommand("validate", "Check a config and exit 0, or 1 with every error as FILE:LINE:COL: message.");
    validate->add_option("-c,--config", vconfig, "Config file (TOML).")->required();

    std::string only;
    auto* stages = app.add_subcommand("stages", "List every stage type with its options, defaults and docs.");
    stages->add_option("type", only, "Show only this type (or 'service').");

    std::vector<std::pair<CLI::App*, std::function<int()>>> extra;
    for (auto& c : commands()) {
        auto* sub = app.add_subcommand(c.name, c.help);
        extra.emplace_back(sub, c.setup(*sub));
    }

    CLI11_PARSE(app, argc, argv);
    if (run->parsed()) return cmd_run(config, log_level);
    if (validate->parsed()) return cmd_validate(vconfig);
    if (stages->parsed()) {
        setup_logging("warn", "text");
        return cmd_stages(only);
    }
    for (auto& [sub, fn] : extra)
        if (sub->parsed()) return fn();
    return 0;
}
