// What applying a config to a running pipeline changes, computed as a value before anything runs.
//
// `plan_pipeline(running, next)` is pure (no threads, no I/O): from the stages that run now
// (none at startup) and the stages of the new config it says which stages are kept, added,
// removed and changed, the edges of the new pipeline, each queue's producers, which filters run
// inline, and which new stages must wait for an old one to stop first because both need the same
// resource. The runtime applies any plan with one executor: startup is the plan from nothing.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "registry.h"

namespace hbf {

struct PipelineConfig;
struct ServiceConfig;
struct StageDecl;

std::string to_string(const Resource& r);
// Two resources are the same thing: equal, or listen addresses on one port where a host is a wildcard.
bool clashes(const Resource& a, const Resource& b);

// What the stage declares from its options (its registration's `resources`, see resource.h),
// and an output's disk buffer directory.
std::vector<Resource> resources_of(const StageDecl& d, const ServiceConfig& service);

// A stage as the planner sees it.
struct PlanStage {
    std::string name;
    StageKind kind = StageKind::input;
    std::string type;
    std::string fingerprint;              // equal fingerprints (and kind and type): the stage is kept
    std::vector<std::string> inputs;      // upstream "stage" or "stage.port"
    std::vector<std::string> ports;       // named output ports it offers
    std::vector<Resource> resources;
    bool runs_inline = false;             // running stages: the filter runs inline now
};
PlanStage plan_stage(const StageDecl& d, const ServiceConfig& service);
std::vector<PlanStage> plan_stages(const PipelineConfig& cfg);

struct PlanEdge {
    std::string from;
    size_t port = 0;  // 0 = the stage itself, 1 + i = its ports[i]
    std::string to;
    bool operator==(const PlanEdge&) const = default;
};

// The new stage `starts` needs what the old version `stops` holds: stop that one first.
struct PlanConflict {
    std::string stops, starts;
    Resource resource;
};

struct PipelinePlan {
    std::vector<std::string> kept;     // running, unchanged: keeps its thread and queue
    std::vector<std::string> added;    // new names
    std::vector<std::string> changed;  // same name, new table: the old version stops, a new one starts
    std::vector<std::string> removed;  // gone from the config
    std::vector<PlanEdge> edges;       // of the new pipeline, each (from, port, to) once
    // Per filter and output: the distinct stages that push into its queue.
    std::map<std::string, std::vector<std::string>> producers;
    // Filters that run inline in their one producer's thread.
    std::vector<std::string> inline_filters;
    std::vector<PlanConflict> conflicts;
    std::vector<PlanStage> stages;     // the new pipeline, in config order, `runs_inline` set

    bool is_kept(const std::string& name) const;
    bool runs_inline(const std::string& name) const;
    const PlanStage* stage(const std::string& name) const;
    // The old stages a new one must wait for.
    std::vector<std::string> must_stop_before(const std::string& name) const;
    // "N stages kept, M started, K stopped"
    std::string summary() const;
};

// `running`: the stages running now (empty at startup), as a previous plan left them. A filter
// runs inline when exactly one stage produces into it and it is new or already ran inline: a
// filter that had a queue of its own keeps it, so nothing it queued is overtaken.
PipelinePlan plan_pipeline(const std::vector<PlanStage>& running, const std::vector<PlanStage>& next);

}  // namespace hbf
