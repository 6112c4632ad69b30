#include "buffer/buffer_config.h"

#include <fmt/format.h>

namespace hbf::buffer {

const std::vector<OptionSpec>& buffer_schema() {
    static const std::vector<OptionSpec> s = {
        {"type", OptType::string, "memory", "\"memory\": the bounded in-memory queue; \"disk\": a disk buffer under <data_dir>/buffer/<output name>/ that survives restarts and crashes."},
        {"max_size", OptType::size, "", "Disk only, required: most bytes the buffer's files may take, such as \"4GiB\"."},
        {"when_full", OptType::string, "block", "Disk only: \"block\" pushes back on the inputs (the webhook answers 503); \"drop_newest\" drops new events, counted, and the inputs carry on."},
        {"sync", OptType::string, "batch", "Disk only: fdatasync before each written batch is acknowledged (\"batch\"), at most every interval (\"100ms\"), or never (\"none\")."},
    };
    return s;
}

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
    size_t before = diags.size();
    check_table(*t, buffer_schema(), where, file, loc, {}, diags);
    if (diags.size() != before) return bc;
    StageConfig sc(where, "buffer", t, &buffer_schema(), file, loc);
    try {
        std::string type = sc.str("type");
        if (type != "memory" && type != "disk") sc.fail("type", fmt::format("{}.type must be \"memory\" or \"disk\", not \"{}\"", where, type));
        bc.disk = type == "disk";
        if (!bc.disk) {
            for (const char* k : {"max_size", "when_full", "sync"})
                if (sc.has(k)) sc.fail(k, fmt::format("{}.{} applies only to type = \"disk\"", where, k));
            return bc;
        }
        if (!sc.has("max_size")) sc.fail("type", fmt::format("{} with type = \"disk\" needs max_size, such as \"4GiB\"", where));
        bc.max_size = sc.size("max_size");
        if (bc.max_size < (1u << 20)) sc.fail("max_size", fmt::format("{}.max_size must be at least 1MiB", where));
        std::string wf = sc.str("when_full");
        if (wf == "block") bc.when_full = WhenFull::block;
        else if (wf == "drop_newest") bc.when_full = WhenFull::drop_newest;
        else sc.fail("when_full", fmt::format("{}.when_full must be \"block\" or \"drop_newest\", not \"{}\"", where, wf));
        std::string sy = sc.str("sync");
        if (!parse_sync(sy, bc.sync, bc.sync_interval))
            sc.fail("sync", fmt::format("{}.sync must be \"batch\", \"none\" or a duration such as \"100ms\", not \"{}\"", where, sy));
    } catch (const ConfigError& e) {
        diags.push_back({e.where, e.what()});
    }
    for (const auto& p : sc.problems()) diags.push_back(p);  // an unset ${VAR}
    return bc;
}

}  // namespace hbf::buffer
