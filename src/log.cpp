#include "log.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <spdlog/pattern_formatter.h>
#include <sys/stat.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "batch.h"

namespace hbf {

namespace {
spdlog::sink_ptr& sink() {
    static spdlog::sink_ptr s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    return s;
}
std::atomic<spdlog::level::level_enum> g_level{spdlog::level::info};

// %v escaped as a JSON string body, for log_format = "json".
class JsonMsgFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
            switch (c) {
                case '"': dest.append(std::string_view("\\\"")); break;
                case '\\': dest.append(std::string_view("\\\\")); break;
                case '\n': dest.append(std::string_view("\\n")); break;
                case '\t': dest.append(std::string_view("\\t")); break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) dest.append(std::string_view("?"));
                    else dest.push_back(c);
            }
        }
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMsgFlag>(); }
};

// "<N>", the syslog priority journald reads off the start of a line (SyslogLevelPrefix=yes).
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        static constexpr char kPrio[] = {'7', '7', '6', '4', '3', '2', '6'};  // trace .. critical, off
        const char p[3] = {'<', kPrio[std::min<size_t>(size_t(msg.level), 6)], '>'};
        dest.append(p, p + 3);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SyslogPriorityFlag>(); }
};

// True when JOURNAL_STREAM names the file that stderr is (run by systemd, logging to the journal).
bool stderr_is_journal() {
    // systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stderr goes to the journal; a child
    // that redirected stderr inherits the variable, so the file must be the same one.
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st{};
    if (::fstat(2, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}
}  // namespace

bool valid_log_level(const std::string& level) {
    return level == "trace" || level == "debug" || level == "info" || level == "warn" || level == "error";
}

// Text written to the journal has no timestamp (the journal adds one) and a "<N>" priority prefix.
void setup_logging(const std::string& level, const std::string& format) {
    g_level.store(spdlog::level::from_str(level));
    auto fmtr = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    if (format == "json") {
        fmtr->add_flag<JsonMsgFlag>('*').set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","stage":"%n","msg":"%*"})");
    } else if (stderr_is_journal()) {
        // The journal stamps each line itself and takes the priority from the prefix.
        fmtr->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%-5l [%n] %v");
    } else {
        fmtr->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v");
    }
    sink()->set_formatter(std::move(fmtr));  // under the sink's mutex: safe beside threads logging
    // The default logger is made once, on the first call (before any thread runs), and kept:
    // spdlog::info() and the like reach it through a raw pointer without a lock, so replacing it on
    // a reload (POST /reload runs this on the API thread) raced with every thread logging and
    // could free the logger under them (ThreadSanitizer found it). A reload changes its level only.
    static const std::shared_ptr<spdlog::logger> def = [] {
        auto l = std::make_shared<spdlog::logger>("hbforward", sink());
        spdlog::set_default_logger(l);
        return l;
    }();
    const auto lvl = g_level.load();
    def->set_level(lvl);
    spdlog::apply_all([lvl](const std::shared_ptr<spdlog::logger>& l) { l->set_level(lvl); });
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& name) {
    auto l = std::make_shared<spdlog::logger>(name, sink());
    l->set_level(g_level.load());
    return l;
}

bool RateLimit::allow(uint64_t& suppressed) {
    int64_t now = mono_ns();
    int64_t next = next_ns_.load(std::memory_order_relaxed);
    if (now >= next && next_ns_.compare_exchange_strong(next, now + interval_ns_)) {
        suppressed = suppressed_.exchange(0);
        return true;
    }
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

}  // namespace hbf
