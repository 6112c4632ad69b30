#include "manpage.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "config.h"
#include "ordered.h"
#include "registry.h"
#include "version.h"

namespace hbf {

namespace {

// Text safe for a roff line: backslashes escaped, hyphens literal, no leading control character.
std::string roff(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else if (c == '\n') out += "\n.br\n";
        else out += c;
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
    return out;
}

void options_of(std::string& out, const std::vector<OptionSpec>& opts, bool with_inputs, bool with_workers = false) {
    for (const auto& o : opts) {
        std::string def = o.required ? "required" : (o.default_text.empty() ? "" : "default " + o.default_text);
        out += fmt::format(".TP\n.B {}\n({}{}{}) {}\n", roff(o.name), to_string(o.type), def.empty() ? "" : ", ", roff(def), roff(o.doc));
    }
    if (with_inputs) out += ".TP\n.B inputs\n(list of strings, required) Stages to read from.\n";
    if (with_workers) out += fmt::format(".TP\n.B workers\n(integer, default 1) {}\n", roff(kWorkersDoc));
}

void command(std::string& out, const CLI::App& sub) {
    std::string usage = "hbforward " + sub.get_name();
    std::string opts;
    for (const CLI::Option* o : sub.get_options()) {
        if (o->get_name() == "--help") continue;
        if (o->get_positional()) {
            usage += " " + std::string(o->get_required() ? "" : "[") + o->get_name() + (o->get_required() ? "" : "]");
            continue;
        }
        std::string names = o->get_name(false, true);
        std::string type = o->get_type_name();
        if (type.empty() || o->get_items_expected_max() == 0) type.clear();
        else type = " " + type;
        std::string desc = o->get_description();
        if (!o->get_default_str().empty()) desc += " (default " + o->get_default_str() + ")";
        opts += fmt::format(".TP\n.B {}{}\n{}\n", roff(names), roff(type), roff(desc));
    }
    out += fmt::format(".SS {}\n{}\n", roff(usage), roff(sub.get_description()));
    if (!opts.empty()) out += ".RS\n" + opts + ".RE\n";
}

}  // namespace

std::string render_manpage(const CLI::App& app) {
    std::string out = fmt::format(".TH HBFORWARD 1 \"\" \"hbforward {}\" \"User Commands\"\n", HBF_VERSION);
    out += ".SH NAME\nhbforward \\- a fast, dependable forwarder for Juniper HealthBot notifications\n";
    out += ".SH SYNOPSIS\n.B hbforward\n.I COMMAND\n[\\fIOPTIONS\\fR]\n";
    out += ".SH DESCRIPTION\n" + roff(app.get_description()) +
           ".\nA pipeline of stages (inputs, filters, outputs) is declared in a TOML file and connected by bounded "
           "queues that carry batches of events. This page is generated from the program's own help and stage schemas.\n";
    out += ".SH COMMANDS\n";
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) command(out, *sub);
    out += ".SH CONFIGURATION\nStages are declared as [inputs.NAME], [filters.NAME] and [outputs.NAME] tables with a "
           "\\fBtype\\fR and wired by name with \\fBinputs = [...]\\fR. Sizes read 4096, \"64MiB\"; durations \"500ms\", \"1m30s\", "
           "\"5s\". ${VAR} and ${VAR:\\-default} in string values are replaced from the environment, ${file:/path} by the "
           "file's contents (a secret, such as systemd's LoadCredential= hands over). [[tests]] hold the tests that "
           "\\fBhbforward test\\fR runs.\n";
    out += ".SS [service]\nProcess\\-wide settings.\n";
    options_of(out, service_schema().specs(), false);
    for (StageKind k : {StageKind::input, StageKind::filter, StageKind::output}) {
        for (const auto& [type, info] : Registry::get().all(k)) {
            out += fmt::format(".SS {} {}\n{}\n", to_string(k), roff(type), roff(info.doc));
            options_of(out, info.options, k != StageKind::input, info.stateless);
        }
    }
    out += ".SH SIGNALS\n.TP\n.B SIGHUP\nReload the config file; an invalid one keeps the running pipeline.\n"
           ".TP\n.B SIGTERM, SIGINT\nStop the inputs, drain every queue, flush the outputs, exit; a second signal exits at once.\n";
    out += ".SH ENVIRONMENT\n.TP\n.B NOTIFY_SOCKET\nSet by systemd (Type=notify): READY, RELOADING, STOPPING and the watchdog are "
           "reported to it.\n.TP\n.B JOURNAL_STREAM\nSet by systemd: log lines written to the journal carry no timestamp and a "
           "syslog priority.\n";
    out += ".SH FILES\n.TP\n.I /etc/hbforward/hbforward.toml\nThe packaged configuration.\n.TP\n.I /var/lib/hbforward\n"
           "State (data_dir): checkpoints.\n.TP\n.I /var/log/hbforward\nFiles written by the packaged configuration.\n";
    out += ".SH SEE ALSO\n.BR systemctl (1),\n.BR journalctl (1),\n.BR logrotate (8)\n";
    return out;
}

}  // namespace hbf
