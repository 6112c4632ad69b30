// filter "lookup": adds columns from a table (CSV or JSON) keyed by one of the event's fields.
//
// The event's key is read with the shared FieldReader; the row's members are precomputed JSON
// text, spliced in before the event's closing brace. A member the event already has under one of
// the added names is replaced. A watcher thread checks the file's mtime, size and inode every
// reload_interval, parses a changed file off the hot path and swaps the table in whole; a broken
// new file keeps the old table and says why in the log. process() takes the table once per batch.
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sys/stat.h>
#include <thread>

#include "../common/config_util.h"
#include "../common/splice.h"
#include "json_util.h"
#include "registry.h"
#include "table.h"

namespace hbf::stages {
namespace {

using filters::FieldReader;
using filters::FieldValue;
using lookup::Table;

struct FileSig {
    int64_t mtime_ns = 0, size = -1;
    uint64_t ino = 0;
    bool operator==(const FileSig&) const = default;
};

FileSig sig_of(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return {};
    return {int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, int64_t(st.st_size), uint64_t(st.st_ino)};
}

struct LookupOptions {
    std::string file, key, table_key;
    StringList columns;
    std::string prefix;
    std::string on_missing = "skip";
    JsonFields default_members;
    Duration reload_interval = std::chrono::seconds(1);
};

using O = LookupOptions;
const OptionSchema<O> kLookupSchema{
    {"file", &O::file, "The table: CSV with a header row, or a JSON object of objects ({\"key\": {\"column\": value}}).", required{}},
    {"key", &O::key, "Path of the event field whose value is looked up, e.g. \"device-id\".", required{}},
    {"table_key", &O::table_key, "CSV column holding the key (default: the column named like `key`, else the first)."},
    {"columns", &O::columns, "Columns to add (default: all but the key).", shown{""}},
    {"prefix", &O::prefix, "Prepended to each added member's name."},
    {"on_missing", &O::on_missing,
     "An event whose key is not in the table: skip (pass it unchanged), default (add `default`) or drop (counted in "
     "hbf_events_dropped_total{reason=\"not_in_lookup\"}).",
     one_of{"skip", "default", "drop"}},
    {"default", &O::default_members,
     "Members added when the key is missing and on_missing = \"default\", e.g. { site = \"unknown\" }.", shown{""}},
    {"reload_interval", &O::reload_interval, "How often the file is checked for changes (mtime, size, inode); 0 = never."},
};

class Lookup final : public Filter {
public:
    Lookup(const LookupOptions& o, const StageConfig& c) : path_(o.file) {
        spec_.columns = o.columns;
        spec_.prefix = o.prefix;
        spec_.key_column = o.table_key;
        reload_ns_ = o.reload_interval.count();
        if (o.on_missing == "default") {
            if (!c.has("default")) c.problem("on_missing", "on_missing = \"default\" needs a 'default' table, such as { site = \"unknown\" }");
            for (auto& [k, v] : o.default_members) {
                if (!default_.empty()) default_.push_back(',');
                append_json_string(default_, spec_.prefix + k);
                default_.push_back(':');
                default_ += v;
                append_json_string(default_quoted_.emplace_back(), spec_.prefix + k);
            }
        } else if (o.on_missing == "drop") {
            drop_ = true;
        }
        bool key_ok = true;
        try {
            key_slot_ = reader_.add(filters::path_option(c, "key", o.key));
        } catch (const ConfigError& e) {
            c.problem_at(e.where, e.what());
            key_ok = false;
        }
        if (key_ok && spec_.key_column.empty()) {
            // A CSV column named like the event's key field holds the key; else the first column does.
            std::string last = reader_.path(key_slot_).segments.back().name;
            if (sniff_header_has(last)) spec_.key_column = last;
        }
        sig_ = sig_of(path_);
        try {
            table_ = lookup::load_table(path_, spec_);
        } catch (const std::exception& e) {
            c.problem("file", "cannot load lookup table " + path_ + ": " + e.what());
        }
    }

    ~Lookup() override { stop(); }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        dropped_ = &ctx.metrics().dropped("not_in_lookup");
        missing_ = &MetricsRegistry::global().counter("hbf_lookup_missing_total", "Events whose key is not in the lookup table.", {{"stage", ctx.name()}});
        reloads_ = &MetricsRegistry::global().counter("hbf_lookup_reloads_total", "Lookup table reloads, by result.", {{"stage", ctx.name()}, {"result", "ok"}});
        reload_errors_ = &MetricsRegistry::global().counter("hbf_lookup_reloads_total", "Lookup table reloads, by result.", {{"stage", ctx.name()}, {"result", "error"}});
        ctx.log().info("lookup table {}: {} rows", path_, table_->rows.size());
        if (reload_ns_ > 0) watcher_ = std::thread([this] { watch(); });
    }

    void stop() override {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        if (watcher_.joinable()) watcher_.join();
    }

    void process(BatchPtr in, Emitter& out) override {
        std::shared_ptr<const Table> t;
        {
            std::lock_guard lk(m_);
            t = table_;
        }
        BatchPtr o = Batch::make();
        o->reserve_more(in->bytes() + in->size() * 96);
        o->take_acks_from(*in);
        size_t dropped = 0;
        for (size_t i = 0; i < in->size(); ++i) {
            std::string_view ev = in->event(i);
            reader_.read(parser_, ev.data(), ev.size(), in->capacity_after(i));
            const FieldValue& k = reader_.value(key_slot_);
            const std::string* row = nullptr;
            if (k.kind == FieldValue::Kind::string) row = t->find(k.str);
            else if (k.kind == FieldValue::Kind::number || k.kind == FieldValue::Kind::boolean) row = t->find(k.raw);
            const std::vector<std::string>* names = &t->quoted_names;
            if (!row) {
                missing_->add();
                if (drop_) {
                    ++dropped;
                    continue;
                }
                if (default_.empty()) {
                    o->append(ev);
                    continue;
                }
                row = &default_;
                names = &default_quoted_;
            }
            splice(in->event(i), in->capacity_after(i), *row, *names, *o);
        }
        if (dropped) {
            dropped_->add(dropped);
            if (o->empty()) {
                o->mark(AckStatus::dropped, "key not in the lookup table");
                return;
            }
        }
        out.emit(std::move(o));
    }

private:
    bool sniff_header_has(const std::string& name) {
        FILE* f = std::fopen(path_.c_str(), "rb");
        if (!f) return false;
        char line[4096] = {};
        bool ok = std::fgets(line, sizeof line, f) != nullptr;
        std::fclose(f);
        if (!ok || line[0] == '{') return false;
        std::string_view l(line);
        size_t p = 0;
        while (p <= l.size()) {
            size_t q = l.find_first_of(",\r\n", p);
            if (q == std::string_view::npos) q = l.size();
            std::string_view cell = l.substr(p, q - p);
            if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"') cell = cell.substr(1, cell.size() - 2);
            if (cell == name) return true;
            if (q >= l.size() || l[q] != ',') break;
            p = q + 1;
        }
        return false;
    }

    void splice(std::string_view ev, size_t cap, const std::string& row, const std::vector<std::string>& names, Batch& o) {
        size_t close = filters::object_close(ev);
        if (close == std::string_view::npos || row.empty()) {
            o.append(ev);
            return;
        }
        bool clash = false;
        for (const auto& q : names)  // glibc's memmem: far cheaper than string_view::find on '"'-dense text
            if (::memmem(ev.data(), ev.size(), q.data(), q.size())) clash = true;
        filters::MemberSplice s(o);
        auto replaced = [&](std::string_view name) {
            scratch_.clear();
            append_json_string(scratch_, name);
            return std::find(names.begin(), names.end(), scratch_) != names.end();
        };
        if (!clash || !filters::copy_object_without(parser_, ev, cap, s.buf(), replaced)) s.head(ev.substr(0, close));
        s.members(row);
        s.finish(ev.substr(close));
    }

    void watch() {
        std::unique_lock lk(m_);
        FileSig failed;
        while (!cv_.wait_for(lk, std::chrono::nanoseconds(reload_ns_), [this] { return stop_; })) {
            lk.unlock();
            FileSig now = sig_of(path_);
            if (now.size >= 0 && !(now == sig_) && !(now == failed)) {
                try {
                    auto t = lookup::load_table(path_, spec_);
                    lk.lock();
                    table_ = std::move(t);
                    sig_ = now;
                    lk.unlock();
                    reloads_->add();
                    ctx_->log().info("lookup table {} reloaded: {} rows", path_, table_rows());
                } catch (const std::exception& e) {
                    failed = now;
                    reload_errors_->add();
                    ctx_->log().error("lookup table {} changed but cannot be loaded, keeping the previous table: {}", path_, e.what());
                }
            }
            lk.lock();
        }
    }

    size_t table_rows() {
        std::lock_guard lk(m_);
        return table_->rows.size();
    }

    std::string path_;
    lookup::TableSpec spec_;
    FieldReader reader_;
    size_t key_slot_ = 0;
    std::string default_;
    std::vector<std::string> default_quoted_;
    int64_t reload_ns_ = 0;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::shared_ptr<const Table> table_;
    FileSig sig_;
    std::thread watcher_;
    simdjson::ondemand::parser parser_;
    std::string scratch_;
    StageContext* ctx_ = nullptr;
    bool drop_ = false;
    Counter* dropped_ = nullptr;
    Counter *missing_ = nullptr, *reloads_ = nullptr, *reload_errors_ = nullptr;
};

HBF_REGISTER_FILTER("lookup", Lookup, kLookupSchema, "Adds columns from a CSV or JSON table keyed by a field; reloads the file when it changes.");

}  // namespace
}  // namespace hbf::stages
