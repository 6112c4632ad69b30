#include "plan.h"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

#include "config.h"
#include "host_port.h"

namespace hbf {

std::string to_string(const Resource& r) {
    switch (r.kind) {
    case Resource::Kind::listen: return (r.protocol == Resource::Protocol::udp ? "UDP address " : "address ") + r.value;
    case Resource::Kind::file: return "file " + r.value;
    case Resource::Kind::directory: return "directory " + r.value;
    }
    return r.value;
}

namespace {
bool wildcard(std::string_view host) { return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]"; }

template <typename T>
bool contains(const std::vector<T>& v, const T& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}
}  // namespace

bool clashes(const Resource& a, const Resource& b) {
    if (a.kind != b.kind || a.protocol != b.protocol) return false;
    if (a == b) return true;
    if (a.kind != Resource::Kind::listen) return false;
    HostPort ha, hb;
    if (parse_host_port(a.value, ha) != HostPortError::none || parse_host_port(b.value, hb) != HostPortError::none) return false;
    if (ha.port != hb.port) return false;
    return wildcard(ha.host) || wildcard(hb.host);
}

std::vector<Resource> resources_of(const StageDecl& d, const ServiceConfig& service) {
    std::vector<Resource> out;
    if (d.info && d.cfg && d.info->resources) out = d.info->resources(*d.cfg, StagePlace{d.name, service.data_dir});
    std::erase_if(out, [](const Resource& r) { return r.value.empty(); });  // an option left empty names nothing
    if (d.kind == StageKind::output && d.buffer.disk)
        out.push_back({Resource::Kind::directory, (std::filesystem::path(service.data_dir) / "buffer" / d.name).string()});
    return out;
}

PlanStage plan_stage(const StageDecl& d, const ServiceConfig& service) {
    PlanStage s;
    s.name = d.name;
    s.kind = d.kind;
    s.type = d.type;
    s.fingerprint = d.fingerprint;
    for (const auto& r : d.inputs) s.inputs.push_back(r.port.empty() ? r.stage : r.stage + "." + r.port);
    s.ports = d.ports;
    s.resources = resources_of(d, service);
    return s;
}

std::vector<PlanStage> plan_stages(const PipelineConfig& cfg) {
    std::vector<PlanStage> out;
    for (const auto& d : cfg.stages) out.push_back(plan_stage(d, cfg.service));
    return out;
}

bool PipelinePlan::is_kept(const std::string& name) const { return contains(kept, name); }
bool PipelinePlan::runs_inline(const std::string& name) const { return contains(inline_filters, name); }

const PlanStage* PipelinePlan::stage(const std::string& name) const {
    for (const auto& s : stages)
        if (s.name == name) return &s;
    return nullptr;
}

std::vector<std::string> PipelinePlan::must_stop_before(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& c : conflicts)
        if (c.starts == name && !contains(out, c.stops)) out.push_back(c.stops);
    return out;
}

std::string PipelinePlan::summary() const {
    return fmt::format("{} stages kept, {} started, {} stopped", kept.size(), added.size() + changed.size(),
                       removed.size() + changed.size());
}

namespace {
const PlanStage* find(const std::vector<PlanStage>& v, const std::string& name) {
    for (const auto& s : v)
        if (s.name == name) return &s;
    return nullptr;
}

// "stage" or "stage.port" of `next` -> (stage, port index), split at the first dot as the config does.
std::pair<const PlanStage*, size_t> resolve(const std::vector<PlanStage>& next, const std::string& ref) {
    auto dot = ref.find('.');
    const PlanStage* s = find(next, ref.substr(0, dot));
    if (!s || dot == std::string::npos) return {s, 0};
    auto it = std::find(s->ports.begin(), s->ports.end(), ref.substr(dot + 1));
    if (it == s->ports.end()) return {nullptr, 0};
    return {s, 1 + size_t(it - s->ports.begin())};
}

void classify(PipelinePlan& p, const std::vector<PlanStage>& running, const std::vector<PlanStage>& next) {
    for (const auto& s : next) {
        const PlanStage* r = find(running, s.name);
        if (!r) p.added.push_back(s.name);
        else if (r->kind == s.kind && r->type == s.type && r->fingerprint == s.fingerprint) p.kept.push_back(s.name);
        else p.changed.push_back(s.name);
    }
    for (const auto& r : running)
        if (!find(next, r.name)) p.removed.push_back(r.name);
}

void wire(PipelinePlan& p, const std::vector<PlanStage>& next) {
    for (const auto& s : next) {
        if (s.kind != StageKind::input) p.producers[s.name];
        for (const auto& ref : s.inputs) {
            auto [up, port] = resolve(next, ref);
            if (!up) continue;  // the config rejects unknown stages before a plan is made
            PlanEdge e{up->name, port, s.name};
            if (!contains(p.edges, e)) p.edges.push_back(e);
            auto& prod = p.producers[s.name];
            if (!contains(prod, up->name)) prod.push_back(up->name);
        }
    }
}

void choose_inline(PipelinePlan& p, const std::vector<PlanStage>& running) {
    for (auto& s : p.stages) {
        if (s.kind != StageKind::filter) continue;
        const PlanStage* r = p.is_kept(s.name) ? find(running, s.name) : nullptr;
        s.runs_inline = p.producers[s.name].size() == 1 && (!r || r->runs_inline);
        if (s.runs_inline) p.inline_filters.push_back(s.name);
    }
}

void find_conflicts(PipelinePlan& p, const std::vector<PlanStage>& running) {
    for (const auto& s : p.stages) {
        if (p.is_kept(s.name)) continue;
        for (const auto& r : running) {
            if (p.is_kept(r.name)) continue;  // stays: a clash with it cannot be solved by stopping it
            for (const auto& want : s.resources)
                for (const auto& held : r.resources)
                    if (clashes(want, held)) p.conflicts.push_back({r.name, s.name, want});
        }
    }
}
}  // namespace

PipelinePlan plan_pipeline(const std::vector<PlanStage>& running, const std::vector<PlanStage>& next) {
    PipelinePlan p;
    p.stages = next;
    classify(p, running, next);
    wire(p, next);
    choose_inline(p, running);
    find_conflicts(p, running);
    return p;
}

}  // namespace hbf
