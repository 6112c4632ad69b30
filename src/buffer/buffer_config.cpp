#include "buffer/buffer_config.h"

#include <fmt/format.h>

#include "option_schema.h"

namespace hbf::buffer {

namespace {

struct BufferOptions {
    std::string type = "memory";
    Size max_size;
    std::string when_full = "block";
    std::string sync = "batch";
};

const OptionSchema<BufferOptions>& buffer_schema() {
    using B = BufferOptions;
    static const OptionSchema<B> s{
        {"type", &B::type,
         "\"memory\": the bounded in-memory queue; \"disk\": a disk buffer under <data_dir>/buffer/<output name>/ that survives "
         "restarts and crashes.",
         one_of{"memory", "disk"}},
        {"max_size", &B::max_size, "Disk only, required: most bytes the buffer's files may take, such as \"4GiB\".", shown{""}},
        {"when_full", &B::when_full,
         "Disk only: \"block\" pushes back on the inputs (the webhook answers 503); \"drop_newest\" drops new events, counted, and "
         "the inputs carry on.",
         one_of{"block", "drop_newest"}},
        {"sync", &B::sync,
         "Disk only: fdatasync before each written batch is acknowledged (\"batch\"), at most every interval (\"100ms\"), or "
         "never (\"none\")."},
    };
    return s;
}

}  // namespace

BufferConfig load_buffer_config(const toml::table& stage, const std::string& what, const std::string& file,
                                std::vector<Diagnostic>& diags) {
    BufferConfig bc;
    const toml::node* n = stage.get("buffer");
    if (!n) return bc;
    const std::string where = what + ".buffer";
    const toml::table* t = n->as_table();
    if (!t) {
        diags.push_back({location_of(*n, file), fmt::format("{} must be a table, such as {{ type = \"disk\", max_size = \"1GiB\" }}", where)});
        return bc;
    }
    const Location loc = location_of(*t, file);
    check_table(*t, buffer_schema().specs(), where, file, loc, {}, diags);
    StageConfig sc(where, "buffer", t, file, loc);
    BufferOptions o = buffer_schema().parse(sc);  // a wrong type or value is a problem of sc
    bc.disk = o.type == "disk";
    if (!bc.disk) {
        for (const char* k : {"max_size", "when_full", "sync"})
            if (sc.has(k)) sc.problem(k, fmt::format("{}.{} applies only to type = \"disk\"", where, k));
    } else {
        if (!sc.has("max_size")) sc.problem("type", fmt::format("{} with type = \"disk\" needs max_size, such as \"4GiB\"", where));
        else if (o.max_size < (1u << 20)) sc.problem("max_size", fmt::format("{}.max_size must be at least 1MiB", where));
        bc.max_size = o.max_size;
        bc.when_full = o.when_full == "drop_newest" ? WhenFull::drop_newest : WhenFull::block;
        if (!parse_sync(o.sync, bc.sync, bc.sync_interval))
            sc.problem("sync", fmt::format("{}.sync must be \"batch\", \"none\" or a duration such as \"100ms\", not \"{}\"", where, o.sync));
    }
    // check_table already reported a wrong type at the same place; report each position once.
    for (const auto& p : sc.problems()) {
        bool seen = false;
        for (const auto& d : diags) seen = seen || (d.where.line == p.where.line && d.where.column == p.where.column);
        if (!seen) diags.push_back(p);
    }
    return bc;
}

}  // namespace hbf::buffer
