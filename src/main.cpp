// hbforward's command line: run, validate, stages, and the commands stages contribute.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <pthread.h>
#include <cstdio>
#include <fmt/format.h>
#include <iostream>
#include <unistd.h>

#include <mutex>
#include <sys/stat.h>

#include "api/api_server.h"
#include "buffer/disk_queue.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "manpage.h"
#include "notify.h"
#include "ordered.h"
#include "registry.h"
#include "runtime.h"
#include "version.h"

namespace hbf {

namespace {

int cmd_validate(const std::string& path) {
    auto cfg = load_config(path);
    build_stages(*cfg);  // option semantics too, so every error is reported at once
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

// The README's stage reference: one block per stage type, between markers that
// scripts/update-reference.py replaces and tests/e2e/test_reference.py compares.
std::string markdown_table(const std::string& marker, const std::vector<OptionSpec>& opts, bool with_inputs, bool with_workers = false) {
    auto cell = [](std::string s) {
        std::string out;
        for (char ch : s) {
            if (ch == '|') out += "\\|";
            else out += ch;
        }
        return out;
    };
    std::string out = fmt::format("<!-- options: {} -->\n| option | type | default | |\n|---|---|---|---|\n", marker);
    for (const auto& o : opts) {
        std::string def;
        if (o.required) def = "required";
        else if (!o.default_text.empty()) def = "`" + o.default_text + "`";
        else if (o.type == OptType::string) def = "`\"\"`";
        else def = "none";
        out += fmt::format("| `{}` | {} | {} | {} |\n", o.name, to_string(o.type), cell(def), cell(o.doc));
    }
    if (with_inputs) out += "| `inputs` | list of strings | required | Stages to read from. |\n";
    if (with_workers) out += fmt::format("| `workers` | integer | `1` | {} |\n", kWorkersDoc);
    return out + "<!-- end options -->\n";
}

int cmd_stages_markdown() {
    for (StageKind k : {StageKind::input, StageKind::filter, StageKind::output})
        for (const auto& [type, info] : Registry::get().all(k))
            std::printf("%s\n", markdown_table(fmt::format("{} {}", to_string(k), type), info.options, k != StageKind::input, info.stateless).c_str());
    std::printf("%s", markdown_table("service", service_schema().specs(), false).c_str());
    return 0;
}

int cmd_stages(const std::string& only) {
    if (!only.empty() && only != "service") {
        bool known = false;
        std::vector<std::string> all;
        for (StageKind k : {StageKind::input, StageKind::filter, StageKind::output})
            for (const auto& t : Registry::get().types(k)) {
                known = known || t == only;
                all.push_back(fmt::format("{} {}", to_string(k), t));
            }
        if (!known) {
            std::vector<std::string> types;
            for (const auto& a : all) types.push_back(a.substr(a.find(' ') + 1));
            types.push_back("service");
            std::string sug = did_you_mean(only, types);
            std::string list;
            for (const auto& a : all) list += "\n    " + a;
            std::fprintf(stderr, "hbforward stages: no stage type '%s'%s; known types:%s\n    service\n", only.c_str(),
                         sug.empty() ? "" : fmt::format(" (did you mean '{}'?)", sug).c_str(), list.c_str());
            return 1;
        }
    }
    for (StageKind k : {StageKind::input, StageKind::filter, StageKind::output}) {
        for (const auto& [type, info] : Registry::get().all(k)) {
            if (!only.empty() && only != type) continue;
            print_schema(fmt::format("{} {}: {}", to_string(k), type, info.doc), info.options);
            if (k != StageKind::input) std::printf("    %-20s %-16s %-22s %s\n", "inputs", "list of strings", "required", "Stages to read from.");
            if (info.stateless) std::printf("    %-20s %-16s %-22s %s\n", "workers", "integer", "default 1", kWorkersDoc);
            std::printf("\n");
        }
    }
    if (only.empty() || only == "service") print_schema("[service]: process-wide settings", service_schema().specs());
    return 0;
}

// Loads, validates and applies the config file to a running pipeline. An invalid config keeps
// the old pipeline running; every error is logged.
ReloadResult reload_from(Runtime& rt, const std::string& path, const std::string& log_level_override) {
    auto cfg = load_config(path);
    auto stages = cfg->ok() ? build_stages(*cfg) : std::vector<BuiltStage>{};
    if (!cfg->ok()) {
        std::string rep = cfg->report();
        spdlog::error("reload of {} refused; the running pipeline is unchanged. Errors:\n{}", path, rep);
        MetricsRegistry::global().counter("hbf_config_reloads_total", "Config reloads by result.", {{"result", "invalid"}}).add();
        return {false, rep};
    }
    const ServiceConfig& old = rt.config().service;
    const ServiceConfig& now = cfg->service;
    if (old.queue_events != now.queue_events || old.queue_bytes != now.queue_bytes || old.api_address != now.api_address ||
        old.data_dir != now.data_dir || old.batch_events != now.batch_events)
        spdlog::warn("reload: changes to [service] queue, batch, api_address and data_dir settings apply to new stages or after a restart");
    std::string level = log_level_override.empty() ? now.log_level : log_level_override;
    try {
        std::string summary = rt.reload(std::move(cfg), std::move(stages));
        setup_logging(level, rt.config().service.log_format);
        spdlog::info("reloaded {}: {}", path, summary);
        MetricsRegistry::global().counter("hbf_config_reloads_total", "Config reloads by result.", {{"result", "applied"}}).add();
        return {true, summary};
    } catch (const std::exception& e) {
        spdlog::error("reload of {} failed, the running pipeline is unchanged: {}", path, e.what());
        MetricsRegistry::global().counter("hbf_config_reloads_total", "Config reloads by result.", {{"result", "failed"}}).add();
        return {false, e.what()};
    }
}

int64_t mtime_of(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec + int64_t(st.st_size) * 7 + int64_t(st.st_ino);
}

// Loads and builds the config for `run`, and sets up logging from it. False (reported) when it
// is invalid.
bool load_for_run(const std::string& path, const std::string& log_level, std::unique_ptr<PipelineConfig>& cfg,
                  std::vector<BuiltStage>& stages) {
    cfg = load_config(path);
    stages = cfg->ok() ? build_stages(*cfg) : std::vector<BuiltStage>{};
    setup_logging(!log_level.empty() ? log_level : cfg->service.log_level, cfg->service.log_format);
    if (!cfg->ok()) {
        std::fputs(cfg->report().c_str(), stderr);
        spdlog::error("{}: the config is invalid, not starting", path);
        return false;
    }
    for (const auto& d : cfg->diags) spdlog::warn("{}:{}:{}: {}", d.where.file, d.where.line, d.where.column, d.message);
    buffer::warn_unused_buffers(*cfg);
    return true;
}

// A stage thread wakes the main thread with it when a stage finishes (Runtime::on_stage_finished),
// so a run whose inputs end (a file, stdin, a generator's count) exits as soon as it drained
// instead of at the supervisor's next 50 ms tick. Sent from outside, it does nothing.
constexpr int kWakeSignal = SIGUSR2;

// Signals are taken synchronously by the main thread; every other thread inherits the mask.
sigset_t block_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, kWakeSignal);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return set;
}

// The API server on `address`, started; null when the address is empty. Throws when it cannot start.
std::unique_ptr<ApiServer> start_api(const std::string& address, Runtime& rt, std::function<ReloadResult()> reload) {
    if (address.empty()) return nullptr;
    auto api = std::make_unique<ApiServer>(address, [&rt] { return &rt; }, std::move(reload));
    api->start();
    spdlog::info("API on http://{} (/health, /metrics, /pipeline, POST /reload)", address);
    return api;
}

// The main thread while the pipeline runs: takes signals, watches the config file, and bounds
// the drain after a stop by the shutdown timeout.
class Supervisor {
public:
    using Clock = std::chrono::steady_clock;

    Supervisor(Runtime& rt, const std::string& path, const sigset_t& signals, std::chrono::nanoseconds shutdown_timeout, bool watch,
               std::function<ReloadResult()> reload)
        : rt_(rt), path_(path), signals_(signals), shutdown_timeout_(shutdown_timeout), watch_(watch), reload_(std::move(reload)),
          seen_mtime_(watch ? mtime_of(path) : 0) {}

    // Returns when every stage has finished.
    void run() {
        for (;;) {
            timespec ts{0, 50'000'000};
            on_signal(sigtimedwait(&signals_, nullptr, &ts));
            if (watch_ && !rt_.stopping()) watch_config();
            notify::watchdog_tick();
            rt_.reap();
            if (rt_.finished()) break;
            bound_drain();
        }
    }

private:
    void on_signal(int sig) {
        if (sig == SIGINT || sig == SIGTERM) {
            if (rt_.stopping()) {
                spdlog::warn("second signal: exiting at once");
                std::fflush(stderr);
                _exit(130);
            }
            spdlog::info("signal {}: stopping inputs and draining (timeout {} ms)", sig,
                         std::chrono::duration_cast<std::chrono::milliseconds>(shutdown_timeout_).count());
            notify::stopping();
            rt_.request_stop();
            drain_from_now();
        } else if (sig == SIGHUP && !rt_.stopping()) {
            spdlog::info("SIGHUP: reloading {}", path_);
            reload_();
        }
    }

    // `run --watch`: a reload when the file changed, looked at every 500 ms.
    void watch_config() {
        if (Clock::now() < next_watch_) return;
        next_watch_ = Clock::now() + std::chrono::milliseconds(500);
        int64_t m = mtime_of(path_);
        if (m != seen_mtime_ && m != 0) {
            seen_mtime_ = m;
            spdlog::info("{} changed: reloading", path_);
            reload_();
        }
    }

    // The drain may take shutdown_timeout from now; the runtime ends the outputs' flushes before that.
    void drain_from_now() {
        deadline_ = Clock::now() + shutdown_timeout_;
        rt_.drain_by(deadline_);
    }

    void bound_drain() {
        // Every input ended by itself (stdin at EOF, a generator's count): the drain is bounded by
        // the shutdown timeout as after a signal, or an output that keeps retrying would hold the
        // process for ever.
        if (deadline_ == Clock::time_point::max() && rt_.inputs_finished()) drain_from_now();
        if (Clock::now() >= deadline_) {
            if (!rt_.wait_until(deadline_)) {
                spdlog::error("shutdown timeout passed; exiting with events undelivered");
                std::fflush(stderr);
                _exit(1);
            }
        }
    }

    Runtime& rt_;
    const std::string& path_;
    sigset_t signals_;
    std::chrono::nanoseconds shutdown_timeout_;
    bool watch_;
    std::function<ReloadResult()> reload_;
    int64_t seen_mtime_;
    Clock::time_point next_watch_ = Clock::now();
    Clock::time_point deadline_ = Clock::time_point::max();
};

// A stage that ended in a failure (events it could not deliver at shutdown) makes the exit code 1.
int exit_code(Runtime& rt) {
    int rc = 0;
    for (const auto& st : rt.snapshot().stages) {
        if (st.failure.empty()) continue;
        spdlog::error("stage '{}' ended failing: {}", st.name, st.failure);
        rc = 1;
    }
    spdlog::info("all stages finished; exiting{}", rc ? " with code 1" : "");
    return rc;
}

int cmd_run(const std::string& path, const std::string& log_level, bool watch) {
    std::unique_ptr<PipelineConfig> cfg;
    std::vector<BuiltStage> stages;
    if (!load_for_run(path, log_level, cfg, stages)) return 1;
    const auto shutdown_timeout = cfg->service.shutdown_timeout;
    const std::string api_address = cfg->service.api_address;
    const sigset_t signals = block_signals();

    Runtime rt(std::move(cfg), std::move(stages));
    rt.on_stage_finished([main = pthread_self()] { pthread_kill(main, kWakeSignal); });
    std::mutex reload_m;
    auto reload = [&] {
        std::lock_guard lk(reload_m);
        notify::reloading();
        ReloadResult r = reload_from(rt, path, log_level);
        notify::ready(fmt::format("running {}, config generation {}", path, rt.generation()));
        return r;
    };
    std::unique_ptr<ApiServer> api;
    try {
        api = start_api(api_address, rt, reload);
    } catch (const std::exception& e) {
        spdlog::error("API server failed to start: {}", e.what());
        return 1;
    }
    try {
        rt.start();
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    spdlog::info("hbforward {} running {} ({} stages)", HBF_VERSION, path, rt.snapshot().stages.size());
    notify::ready(fmt::format("running {}, config generation {}", path, rt.generation()));
    Supervisor(rt, path, signals, shutdown_timeout, watch, reload).run();
    notify::stopping();
    rt.wait_until(std::chrono::steady_clock::now() + shutdown_timeout);
    if (api) api->stop();
    return exit_code(rt);
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
    bool watch = false;
    run->add_flag("--watch-config", watch, "Reload the config when the file changes (as SIGHUP and POST /reload do).");
    run->add_option("--log-level", log_level, "Override [service] log_level: trace, debug, info, warn, error.")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

    std::string vconfig;
    auto* validate = app.add_subcommand("validate", "Check a config and exit 0, or 1 with every error as FILE:LINE:COL: message.");
    validate->add_option("-c,--config", vconfig, "Config file (TOML).")->required();

    std::string only;
    auto* stages = app.add_subcommand("stages", "List every stage type with its options, defaults and docs.");
    stages->add_option("type", only, "Show only this type (or 'service').");
    bool markdown = false;
    stages->add_flag("--markdown", markdown, "Print the README's option tables, generated from the stages' schemas.");

    std::vector<std::pair<CLI::App*, std::function<int()>>> extra;
    for (auto& c : commands()) {
        auto* sub = app.add_subcommand(c.name, c.help);
        extra.emplace_back(sub, c.setup(*sub));
    }

    auto* manpage = app.add_subcommand("manpage", "Print hbforward(1) in man(7) format (the build installs it).")->group("");

    CLI11_PARSE(app, argc, argv);
    if (manpage->parsed()) {
        std::fputs(render_manpage(app).c_str(), stdout);
        return 0;
    }
    if (run->parsed()) return cmd_run(config, log_level, watch);
    if (validate->parsed()) return cmd_validate(vconfig);
    if (stages->parsed()) {
        setup_logging("warn", "text");
        return markdown ? cmd_stages_markdown() : cmd_stages(only);
    }
    for (auto& [sub, fn] : extra)
        if (sub->parsed()) return fn();
    return 0;
}
