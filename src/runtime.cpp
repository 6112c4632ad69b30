#include "runtime.h"

#include "buffer/disk_queue.h"
#include "ordered.h"
#include "thread_name.h"

#include <algorithm>
#include <array>
#include <fmt/format.h>
#include <map>
#include <set>
#include <shared_mutex>
#include <stdexcept>

namespace hbf {

namespace {
constexpr auto kPollTimeout = std::chrono::milliseconds(100);
constexpr auto kSettlePoll = std::chrono::milliseconds(2);  // the tick of an output settling in tick()
constexpr size_t kPopMax = 32;
constexpr size_t kLingerBelow = 256;  // events: a hand-over smaller than this lingers
}  // namespace

// One object of a filter and what runs it. A filter has one; a stateless filter that runs in the
// workers of an ordered pool has one more per worker, made the first time that worker needs it.
struct Runtime::Instance {
    Filter* filter = nullptr;
    std::unique_ptr<Filter> own;  // the extra instances
    std::mutex m;                 // an instance runs one batch at a time
    std::vector<AckRef> guard;    // see Runtime::guarded()
};

struct Runtime::Node final : InlineConsumer {
    Runtime* rt = nullptr;
    void consume(BatchPtr b) override { rt->take(*this, std::move(b)); }
    bool downstream_full() const override { return emitter->any_full(); }

    const StageDecl* decl = nullptr;
    std::shared_ptr<const PipelineConfig> cfg;  // the config `decl` lives in, kept alive by it
    BuiltStage built;
    std::unique_ptr<StageContext> ctx;
    std::unique_ptr<BatchQueue> queue;  // filters and outputs
    std::unique_ptr<Emitter> emitter;
    std::vector<Edge> feeds;            // one per distinct downstream queue; under ctx->targets_m
    std::thread thread;
    bool object_started = false;        // its start() returned
    std::atomic<bool> done{false};
    std::atomic<bool> started{false};   // its thread runs
    std::atomic<bool> retiring{false};  // removed by a reload, draining
    std::chrono::steady_clock::time_point retire_deadline{};  // then what it still holds fails
    RateLimit fail_rl;
    std::vector<AckRef> out_guard;      // outputs, see Runtime::guarded()

    // Filters: `workers` > 1 runs batches through `pool` (src/ordered.h). instances[0] is
    // built.filter; instances[k] is the one worker k of a pool uses, for a stateless filter.
    int workers = 1;
    bool stateless = false;
    std::array<std::atomic<Instance*>, StageDecl::kMaxWorkers + 1> instances{};
    std::vector<std::unique_ptr<Instance>> owned;  // under inst_m
    std::mutex inst_m;
    // What more instances are made from: the decl this node was built from (a reload that keeps
    // the stage points `decl` at the new config's equal copy).
    std::shared_ptr<const PipelineConfig> made_cfg;
    const StageDecl* made_decl = nullptr;
    std::atomic<bool> instance_failed{false};
    std::unique_ptr<OrderedPool> pool;  // last: its threads end before what they use goes
};

// One plan being applied, and what the executor made of it so far.
struct Runtime::Apply {
    PipelinePlan plan;
    std::shared_ptr<const PipelineConfig> cfg;
    bool startup = false;
    std::map<std::string, Node*> running;  // before the plan: not retiring, not finished
    std::map<std::string, Node*> next;     // the new pipeline's node per stage
    std::vector<std::unique_ptr<Node>> fresh;
    std::vector<Node*> deferred;           // start once the old stages they wait for stopped
    std::vector<Edge> holds;               // downstream queues held open while an old input stops early
    std::set<Node*> retired;
    std::set<Node*> is_fresh;
    struct Wiring {
        Node* node;
        std::vector<std::vector<BatchQueue*>> targets;
        std::vector<Edge> feeds;
    };
    std::vector<Wiring> wiring;
    std::string deferred_failure;
};

std::unique_ptr<Runtime::Node> Runtime::make_node(BuiltStage b, const std::shared_ptr<const PipelineConfig>& cfg) {
    auto n = std::make_unique<Node>();
    n->decl = b.decl;
    n->cfg = cfg;
    n->built = std::move(b);
    n->ctx = std::make_unique<StageContext>(n->decl->name, n->decl->type, to_string(n->decl->kind));
    n->ctx->data_dir = cfg->service.data_dir;
    n->ctx->batch_events = size_t(cfg->service.batch_events);
    if (n->decl->kind != StageKind::input) n->queue = buffer::make_queue(cfg->service, *n->decl, *n->ctx, stopping_);
    n->emitter = std::make_unique<Emitter>(*n->ctx);
    n->ctx->targets.resize(1 + n->decl->ports.size());
    n->rt = this;
    if (n->built.filter) {
        n->workers = n->decl->workers;
        n->stateless = n->decl->info && n->decl->info->stateless;
        n->made_cfg = cfg;
        n->made_decl = n->decl;
        n->owned.push_back(std::make_unique<Instance>());
        n->owned.back()->filter = n->built.filter.get();
        n->instances[0] = n->owned.back().get();
    }
    return n;
}

Runtime::Runtime(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages)
    : cfg_(std::move(cfg)), pending_(std::move(stages)), shutdown_timeout_(cfg_->service.shutdown_timeout),
      linger_(cfg_->service.linger) {}

void Runtime::set_inline(Node& n, bool on) {
    n.queue->inline_consumer.store(on ? &n : nullptr, std::memory_order_release);
}

Runtime::~Runtime() {
    if (!finished()) {
        for (auto& n : nodes_) n->ctx->request_abort();
        for (auto& n : nodes_)
            if (n->built.input && n->started) n->built.input->stop();
    }
    join_all();
}

void Runtime::join_all() {
    for (auto& n : nodes_)
        if (n->thread.joinable()) n->thread.join();
}

void Runtime::start_stage(Node& n) {
    if (n.built.output) {
        n.queue->open();  // a disk buffer's directory: fails the start with its path
        n.built.output->start(*n.ctx);
    }
    if (n.built.filter) {
        n.built.filter->start(*n.ctx);
        if (n.workers > 1)
            n.pool = std::make_unique<OrderedPool>(size_t(n.workers), 2 * size_t(n.workers),
                                                   [this, &n](BatchPtr b) { process_filter(n, std::move(b)); },
                                                   n.ctx->name());
    }
    if (n.built.input) n.built.input->start(*n.ctx);
    n.object_started = true;
}

void Runtime::start_thread(Node& n) {
    n.started = true;
    n.thread = std::thread([this, &n] {
        name_this_thread(n.ctx->name());
        if (n.built.output) run_output(n);
        else if (n.built.filter) run_filter(n);
        else if (n.built.input) run_input(n);
    });
}

void Runtime::wait_done(Node& n, std::chrono::steady_clock::time_point deadline) const {
    while (!n.done && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

void Runtime::start() {
    std::lock_guard rl(reload_m_);
    started_at_ = std::chrono::steady_clock::now();
    apply(cfg_, std::move(pending_), true);
}

std::string Runtime::reload(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages) {
    std::lock_guard rl(reload_m_);
    if (stopping_) throw std::runtime_error("shutting down");
    reap_locked();
    return apply(std::move(cfg), std::move(stages), false);
}

// What runs now, as the planner sees it; one look, so the plan and the executor agree.
std::vector<PlanStage> Runtime::running_stages(Apply& a) const {
    std::vector<PlanStage> out;
    std::lock_guard lk(nodes_m_);
    for (const auto& n : nodes_) {
        if (n->retiring || n->done) continue;
        a.running[n->decl->name] = n.get();
        out.push_back(plan_stage(*n->decl, n->cfg->service));
        out.back().runs_inline = n->queue && n->queue->inline_consumer.load() != nullptr;
    }
    return out;
}

// The one executor: startup applies the plan from nothing, a reload the plan from what runs.
std::string Runtime::apply(std::shared_ptr<const PipelineConfig> cfg, std::vector<BuiltStage> stages, bool startup) {
    Apply a;
    a.cfg = std::move(cfg);
    a.startup = startup;
    a.plan = plan_pipeline(running_stages(a), plan_stages(*a.cfg));
    place_nodes(a, stages);
    start_objects(a);  // a failure throws here, the running pipeline untouched
    {
        std::lock_guard lk(nodes_m_);
        for (const auto& name : a.plan.kept) {
            Node& n = *a.next.at(name);
            n.decl = a.cfg->find(name);  // same options; its inputs may have changed
            n.cfg = a.cfg;
        }
        for (auto& n : a.fresh) nodes_.push_back(std::move(n));
    }
    cfg_ = a.cfg;
    if (!a.startup) generation_.fetch_add(1);
    wire(a);
    for (const auto& name : a.plan.removed) retire(*a.running.at(name));
    for (const auto& name : a.plan.changed)
        if (auto it = a.running.find(name); it != a.running.end() && !a.retired.count(it->second)) {
            hand_over(a, *it->second);
            retire(*it->second);
        }
    start_deferred(a);
    start_threads(a, true);
    if (!a.deferred_failure.empty()) throw std::runtime_error(a.deferred_failure);
    return fmt::format("config generation {}: {}", generation_.load(), a.plan.summary());
}

void Runtime::place_nodes(Apply& a, std::vector<BuiltStage>& stages) {
    for (auto& b : stages) {
        const std::string& name = b.decl->name;
        if (a.plan.is_kept(name)) {
            a.next[name] = a.running.at(name);
        } else {
            a.fresh.push_back(make_node(std::move(b), a.cfg));
            a.next[name] = a.fresh.back().get();
            a.is_fresh.insert(a.fresh.back().get());
        }
    }
}

// Outputs first, then filters, then inputs. A stage that needs what an old stage holds waits for
// it: an input whose old holder is an input stops that one now; the others start after wiring.
void Runtime::start_objects(Apply& a) {
    for (StageKind kind : {StageKind::output, StageKind::filter, StageKind::input}) {
        for (auto& np : a.fresh) {
            Node& n = *np;
            if (n.decl->kind != kind) continue;
            auto olds = a.plan.must_stop_before(n.decl->name);
            bool early = kind == StageKind::input && std::all_of(olds.begin(), olds.end(), [&](const std::string& o) {
                             return a.running.at(o)->decl->kind == StageKind::input;
                         });
            if (!olds.empty() && !early) {
                a.deferred.push_back(&n);
                continue;
            }
            if (!olds.empty()) {
                start_after_old(a, n);
                continue;
            }
            try {
                start_stage(n);
            } catch (const std::exception& e) {
                roll_back(a, n, e.what());
            }
        }
    }
}

void Runtime::start_after_old(Apply& a, Node& n) {
    auto deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
    for (const auto& name : a.plan.must_stop_before(n.decl->name)) {
        Node& o = *a.running.at(name);
        o.ctx->log().info("stopping before its new version starts: it holds what that one needs");
        {
            // Its downstream queues must not see zero producers before the new version is wired
            // in, or their stages would finish.
            std::shared_lock lk(o.ctx->targets_m);
            for (const auto& e : o.feeds) a.holds.emplace_back(*e.queue());
        }
        retire(o);
        a.retired.insert(&o);
    }
    for (const auto& name : a.plan.must_stop_before(n.decl->name)) wait_done(*a.running.at(name), deadline);
    try {
        start_stage(n);
    } catch (const std::exception& e) {
        roll_back(a, n, std::string(e.what()) + " (its old version was stopped)");
    }
}

void Runtime::roll_back(Apply& a, Node& failed, const std::string& why) {
    std::string msg = fmt::format("stage '{}' ({} {}) failed to start: {}", failed.decl->name, to_string(failed.decl->kind),
                                  failed.decl->type, why);
    for (auto& m : a.fresh) {
        if (!m->object_started) continue;
        if (m->built.output) {
            m->built.output->stop();
            m->queue->close();
        }
        if (m->built.filter) stop_filter(*m);
        if (m->built.input) m->built.input->stop();
    }
    a.holds.clear();
    a.fresh.clear();  // the new config's decls may die with `a`: msg was built first
    throw std::runtime_error(msg);
}

// Every edge of the new pipeline is registered with its queue before any thread can finish for
// lack of producers; then the new stages are wired, then the kept ones (an emit in progress
// finishes on the old targets first): a kept stage must never reach a new filter whose targets
// are still empty. The edges a stage no longer has are dropped last.
void Runtime::wire(Apply& a) {
    std::map<Node*, size_t> at;
    for (const auto& s : a.plan.stages) {
        Node* n = a.next.at(s.name);
        at[n] = a.wiring.size();
        a.wiring.push_back({n, std::vector<std::vector<BatchQueue*>>(1 + s.ports.size()), {}});
    }
    for (const auto& e : a.plan.edges) {
        auto& w = a.wiring[at.at(a.next.at(e.from))];
        BatchQueue* q = a.next.at(e.to)->queue.get();
        auto& list = w.targets[e.port];
        if (std::find(list.begin(), list.end(), q) == list.end()) list.push_back(q);
        bool known = std::any_of(w.feeds.begin(), w.feeds.end(), [&](const Edge& f) { return f.queue() == q; });
        if (!known) w.feeds.emplace_back(*q);
    }
    for (const auto& s : a.plan.stages)
        if (s.kind == StageKind::filter) set_inline(*a.next.at(s.name), s.runs_inline);
    start_threads(a, false);
    std::stable_partition(a.wiring.begin(), a.wiring.end(), [&](const Apply::Wiring& w) { return a.is_fresh.count(w.node) > 0; });
    for (auto& w : a.wiring) {
        // A kept stage whose targets stay the same is left alone: its emits in progress, blocked
        // or not, go on (its new edges, the same queues, are dropped). Only the runtime writes
        // targets, under reload_m_, so reading them here needs no lock.
        if (!a.is_fresh.count(w.node) && w.node->ctx->targets == w.targets) continue;
        std::vector<Edge> gone;
        w.node->ctx->begin_retarget();  // its blocked pushes give up the lock (see Emitter)
        {
            std::unique_lock lk(w.node->ctx->targets_m);
            w.node->ctx->targets = std::move(w.targets);
            gone = std::exchange(w.node->feeds, std::move(w.feeds));
        }
        w.node->ctx->end_retarget();
    }
    a.holds.clear();
}

void Runtime::start_threads(Apply& a, bool inputs) {
    for (const auto& s : a.plan.stages) {
        Node& n = *a.next.at(s.name);
        if (n.started || !n.object_started || (s.kind == StageKind::input) != inputs) continue;
        start_thread(n);
    }
}

// Removed stages: inputs stop; filters and outputs drain what they have and finish.
void Runtime::retire(Node& n) {
    n.retire_deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
    n.retiring = true;
    if (n.built.input) {
        n.ctx->request_stop();
        if (n.object_started) n.built.input->stop();
    }
}

// An output changed from a memory buffer to a disk buffer hands what is queued for it to the
// new version's disk buffer at once (the reload's thread moves the batches; the disk buffer takes
// them without waiting for the disk), instead of leaving them to the old version, which may be
// stuck on an unreachable peer until the shutdown timeout fails them: the disk is where the user
// asked for those events to wait. What the old output has in hand it still flushes, and what does
// not fit in the disk buffer stays with it. (A new version that waits for the old one to stop,
// because both hold the same path, cannot take them: the old one drains as any changed output.)
void Runtime::hand_over(Apply& a, Node& old) {
    if (old.decl->kind != StageKind::output || old.decl->buffer.disk || !old.queue) return;
    Node& next = *a.next.at(old.decl->name);
    if (!next.decl->buffer.disk || !next.object_started || !next.queue) return;
    BatchPtr in[kPopMax];
    size_t moved = 0;
    const std::atomic<bool> no_abort{false};
    while (!next.queue->full()) {
        size_t got = old.queue->pop(in, kPopMax, std::chrono::microseconds(0));
        if (got == 0) break;
        for (size_t i = 0; i < got; ++i) {
            size_t events = in[i]->size();
            // Not full, so it is taken without waiting (or, with when_full = drop_newest, dropped
            // and counted as it would be when pushed there by an input).
            if (next.queue->push(in[i], no_abort)) {
                moved += events;
                continue;
            }
            fail_batch(old, in[i], "reload", fmt::format("reload: the new version of output '{}' refused the hand-over", old.decl->name));
        }
    }
    if (moved) old.ctx->log().info("reload: handed {} queued events to the new version's disk buffer", moved);
}

// Stages that had to wait for an old one: started now that it finished (or its time ran out). The
// config is applied by now: a stage that still fails to start fails what reaches it.
void Runtime::start_deferred(Apply& a) {
    auto deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
    for (Node* n : a.deferred) {
        for (const auto& name : a.plan.must_stop_before(n->decl->name)) wait_done(*a.running.at(name), deadline);
        try {
            start_stage(*n);
        } catch (const std::exception& e) {
            a.deferred_failure = fmt::format("stage '{}' ({} {}) failed to start: {} (its old version was stopped; the rest of the "
                                             "new config is applied)",
                                             n->decl->name, to_string(n->decl->kind), n->decl->type, e.what());
            n->ctx->log().error("{}", a.deferred_failure);
            n->ctx->set_failed(e.what());
            n->ctx->request_abort();
            if (n->queue) set_inline(*n, false);
        }
        if (n->object_started && n->built.input) continue;  // starts with the other new inputs
        if (n->built.input) finish_node(*n);
        else start_thread(*n);
    }
}

void Runtime::reap() {
    // A reload in progress holds pointers to the nodes it retires; it reaps itself when it starts.
    std::unique_lock rl(reload_m_, std::try_to_lock);
    if (rl.owns_lock()) reap_locked();
}

void Runtime::reap_locked() {
    std::lock_guard lk(nodes_m_);
    auto now = std::chrono::steady_clock::now();
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        Node& n = **it;
        // A removed stage gets the shutdown timeout to finish what it holds, as at shutdown.
        if (n.retiring && !n.done && now >= n.retire_deadline && !n.ctx->abort_flag().load()) {
            n.ctx->log().error("removed by a reload but not finished within the shutdown timeout ({} events still queued): "
                               "what it holds is reported failed",
                               n.queue ? n.queue->events() : 0);
            n.ctx->request_abort();
        }
        // Freed only once no stage holds an edge to its queue (an aborted stage may finish first).
        if (n.retiring && n.done && (!n.queue || n.queue->producers() == 0)) {
            if (n.thread.joinable()) n.thread.join();
            it = nodes_.erase(it);
        } else {
            ++it;
        }
    }
}

void Runtime::request_stop() {
    std::lock_guard rl(reload_m_);
    if (stopping_.exchange(true)) return;
    std::lock_guard lk(nodes_m_);
    for (auto& n : nodes_) {
        if (n->decl->kind != StageKind::input) continue;
        n->ctx->request_stop();
        if (n->started && n->built.input) n->built.input->stop();
    }
}

bool Runtime::finished() const {
    std::lock_guard lk(nodes_m_);
    return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->done.load(); });
}

bool Runtime::inputs_finished() const {
    std::lock_guard lk(nodes_m_);
    return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->decl->kind != StageKind::input || n->done.load(); });
}

void Runtime::abort_unfinished() {
    std::lock_guard lk(nodes_m_);
    for (auto& n : nodes_) {
        if (n->done) continue;
        spdlog::error("stage '{}' did not finish within the shutdown timeout ({} events still queued)", n->decl->name,
                      n->queue ? n->queue->events() : 0);
        n->ctx->request_abort();
    }
}

bool Runtime::wait_until(std::chrono::steady_clock::time_point deadline) {
    while (!finished()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            abort_unfinished();
            // A moment for the aborted stages to report what they held as failed (an HTTP client
            // waiting for its ack hears 503) before the caller exits.
            auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            while (std::chrono::steady_clock::now() < grace && !finished()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            // The caller may _exit now: the threads that did finish are joined (a stuck one cannot be).
            std::lock_guard lk(nodes_m_);
            for (auto& n : nodes_)
                if (n->done && n->thread.joinable()) n->thread.join();
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::lock_guard lk(nodes_m_);
    join_all();
    return true;
}

void Runtime::finish_node(Node& n) {
    std::vector<Edge> feeds;
    {
        std::unique_lock lk(n.ctx->targets_m);
        feeds = std::move(n.feeds);
        n.feeds.clear();
    }
    feeds.clear();  // its downstream queues lose a producer
    n.done = true;
    if (on_finished_) on_finished_();
}

void Runtime::run_input(Node& n) {
    try {
        n.built.input->run(*n.ctx, *n.emitter);
    } catch (const std::exception& e) {
        n.ctx->log().error("input stopped: {}", e.what());
        n.ctx->set_failed(e.what());
    }
    n.ctx->log().debug("input finished");
    finish_node(n);
}

template <typename F>
void Runtime::guarded(Node& n, std::vector<AckRef>& guard, Batch& b, const char* what, F&& call) {
    Batch* one = &b;
    guarded(n, guard, &one, 1, what, std::forward<F>(call));
}

template <typename F>
void Runtime::guarded(Node& n, std::vector<AckRef>& guard, Batch* const* bs, size_t count, const char* what, F&& call) {
    guard.clear();
    size_t events = 0;
    for (size_t i = 0; i < count; ++i) {
        events += bs[i]->size();
        for (auto& a : bs[i]->acks) {
            a.reopen();
            guard.push_back(a.clone());
        }
    }
    std::string why;
    try {
        call();
    } catch (const std::exception& e) {
        why = e.what();
    } catch (...) {
        why = "unknown exception";
    }
    if (why.empty()) {
        // Neutral: the batch's own holds (settled by the stage, now or later) tell the outcome.
        for (auto& g : guard) g.mark(AckStatus::delivered);
    } else {
        n.ctx->metrics().errors.add();
        std::string on = count == 1 ? fmt::format("a batch of {} events", events) : fmt::format("{} batches of {} events", count, events);
        fail_events(n, events, "exception", fmt::format("{} '{}' failed on {}: {}", what, n.decl->name, on, why));
        const std::string reason = fmt::format("{} '{}' failed: {}", what, n.decl->name, why);
        for (auto& g : guard) g.mark(AckStatus::failed, &reason);
    }
    guard.clear();
}

void Runtime::fail_events(Node& n, size_t events, const char* label, const std::string& why) {
    MetricsRegistry::global()
        .counter("hbf_events_failed_total", "Events a stage could not finish (it threw, or the shutdown timeout passed), reported failed to their input.",
                 {{"stage", n.decl->name}, {"type", n.decl->type}, {"reason", label}})
        .add(events);
    log_limited(n.fail_rl, n.ctx->log(), spdlog::level::err, "{}; reported failed to the input", why);
}

void Runtime::fail_batch(Node& n, BatchPtr& b, const char* label, const std::string& why) {
    const size_t events = b->size();
    fail_events(n, events, label, fmt::format("{} events: {}", events, why));
    b->mark(AckStatus::failed, why);
    b.reset();
}

// One count and one log line for everything left in the queue, not one a batch.
void Runtime::fail_queued(Node& n, const std::string& why) {
    if (!n.queue) return;
    n.queue->seal();
    BatchPtr in[kPopMax];
    size_t events = 0;
    // Wake-up tokens can make a pop return nothing while batches remain behind them. A disk
    // queue hands out nothing once stopping: what it holds stays on disk for the next start.
    for (int empty = 0; n.queue->events() > 0 && empty < 3;) {
        size_t got = n.queue->pop(in, kPopMax, std::chrono::microseconds(0));
        empty = got ? 0 : empty + 1;
        for (size_t i = 0; i < got; ++i) {
            events += in[i]->size();
            in[i]->mark(AckStatus::failed, why);
            in[i].reset();
        }
    }
    if (events) fail_events(n, events, "shutdown_timeout", fmt::format("{} events: {}", events, why));
}

bool Runtime::aborted(Node& n, BatchPtr& b, const char* what) {
    if (!n.ctx->abort_flag().load()) return false;
    fail_batch(n, b, "shutdown_timeout", fmt::format("shutdown timeout: still queued for {} '{}'", what, n.decl->name));
    return true;
}

// A filter with workers hands its batches to its pool, unless the caller is already a worker of
// a pool above it (then the chain runs on in that worker).
void Runtime::take(Node& n, BatchPtr b) {
    if (n.pool && !OrderedSection::current()) n.pool->submit(std::move(b));
    else process_filter(n, std::move(b));
}

// In a pool's worker, a stateless filter runs the worker's own instance, at once; a filter that
// keeps state waits for the batch's turn and runs its one instance, in order.
Runtime::Instance& Runtime::instance_for(Node& n) {
    OrderedSection* s = OrderedSection::current();
    if (!s) return *n.instances[0].load(std::memory_order_relaxed);
    if (n.stateless && !n.instance_failed.load(std::memory_order_relaxed) && s->slot() < n.instances.size()) {
        if (Instance* i = n.instances[s->slot()].load(std::memory_order_acquire)) return *i;
        std::lock_guard lk(n.inst_m);
        if (Instance* i = n.instances[s->slot()].load(std::memory_order_acquire)) return *i;
        try {
            auto inst = std::make_unique<Instance>();
            inst->own = n.made_decl->info->make_filter(*n.made_decl->cfg);
            inst->own->start(*n.ctx);
            inst->filter = inst->own.get();
            n.owned.push_back(std::move(inst));
            n.instances[s->slot()].store(n.owned.back().get(), std::memory_order_release);
            return *n.owned.back();
        } catch (const std::exception& e) {
            // Cannot happen for a config that built once; if it does, the filter runs in order.
            n.ctx->log().error("cannot make an instance for worker {}: {}; running one batch at a time", s->slot(), e.what());
            n.instance_failed = true;
        }
    }
    s->enter();
    return *n.instances[0].load(std::memory_order_relaxed);
}

void Runtime::process_filter(Node& n, BatchPtr b) {
    Instance& inst = instance_for(n);
    std::lock_guard lk(inst.m);
    auto& m = n.ctx->metrics();
    m.events_in.add(b->size());
    m.bytes_in.add(b->bytes());
    int64_t t0 = b->received_ns;
    Batch& ref = *b;
    guarded(n, inst.guard, ref, "filter", [&] { inst.filter->process(std::move(b), *n.emitter); });
    m.latency.observe_ns(now_ns() - t0);
}

// Every instance of the filter stops; its pool finished first.
void Runtime::stop_filter(Node& n) {
    if (n.pool) n.pool->stop();
    if (!n.object_started) return;
    std::lock_guard lk(n.inst_m);
    for (auto& i : n.owned) i->filter->stop();
}

void Runtime::run_filter(Node& n) {
    BatchPtr in[kPopMax];
    for (;;) {
        size_t got = n.queue->pop(in, kPopMax, kPollTimeout);
        size_t events = 0;
        bool awaited = false;
        for (size_t i = 0; i < got; ++i) {
            events += in[i]->size();
            awaited |= waited_on(n, *in[i]);
            if (aborted(n, in[i], "filter")) continue;
            take(n, std::move(in[i]));
        }
        linger(got, events, awaited);
        // What its pool still holds is finished by stop() below: waiting here for the pool to be idle
        // would cost a whole poll timeout at the end of every run with workers.
        if (got == 0 && n.queue->producers() == 0 && n.queue->events() == 0) break;
        if (n.ctx->abort_flag().load()) break;
    }
    if (n.pool) n.pool->stop();  // what it holds goes on (or fails, aborted) before the queue is sealed
    fail_queued(n, fmt::format("shutdown timeout: still queued for filter '{}'", n.decl->name));
    stop_filter(n);
    finish_node(n);
}

// An input waits for the batch's delivery: it still carries acks, which only a delivery settles
// (a webhook request with ack = "delivered", a file input's checkpoint, a Kafka input's offset).
// A batch from a disk buffer carries only the buffer's own, and nobody waits on those.
bool Runtime::waited_on(const Node& n, const Batch& b) {
    return !b.acks.empty() && !n.queue->on_disk();
}

// After a small hand-over, wait a little for more instead of going back to sleep on the queue:
// a thread parked on the queue costs its producer a futex wake-up per batch, and under many
// small requests (the HTTP input) those wake-ups were a fifth of the CPU. Not after a hand-over
// that an input waits on (`awaited`): a webhook client with ack = "delivered" sends nothing more
// until it is answered, so the wait would only add to its latency and cut its rate
// (bench/README.md, tenth round). Nor after a take that filled its array: more batches are
// waiting, and with many small batches (a webhook round of a few requests each) a thread that
// lingered after every full take fell behind its producers, its queue grew to its budget and the
// peak RSS with it (bench/README.md, thirteenth round).
void Runtime::linger(size_t batches, size_t events, bool awaited) const {
    if (batches > 0 && batches < kPopMax && !awaited && events < kLingerBelow && linger_.count() > 0 &&
        !stopping_.load(std::memory_order_relaxed))
        std::this_thread::sleep_for(linger_);
}

void Runtime::run_output(Node& n) {
    BatchPtr in[kPopMax];
    Batch* taken[kPopMax];
    auto& m = n.ctx->metrics();
    Output& out = *n.built.output;
    // An output that takes a pop at once (the file output: one stat and one writev for all of
    // it, measured in bench/README.md) gets it when its queue is in memory; an output with a disk
    // buffer (or a backlog of one) is handed one batch at a time, as every other output is.
    const bool together = out.writes_many() && !n.queue->on_disk();
    auto next_tick = std::chrono::steady_clock::now();
    for (;;) {
        const bool settling = out.settles_in_tick();
        size_t got = n.queue->pop(in, kPopMax, settling ? kSettlePoll : kPollTimeout);
        size_t events = 0, kept = 0;
        bool awaited = false;
        for (size_t i = 0; i < got; ++i) {
            events += in[i]->size();
            m.events_in.add(in[i]->size());
            m.bytes_in.add(in[i]->bytes());
            m.latency.observe_ns(now_ns() - in[i]->received_ns);
            awaited |= waited_on(n, *in[i]);
            if (aborted(n, in[i], "output")) continue;
            if (together) {
                taken[kept] = in[i].get();
                if (kept != i) in[kept] = std::move(in[i]);
                ++kept;
                continue;
            }
            Batch& b = *in[i];
            guarded(n, n.out_guard, b, "output", [&] { out.write(std::move(in[i])); });
            in[i].reset();
        }
        if (kept) {
            // A throw fails every batch of the call (see Output::write_many()).
            guarded(n, n.out_guard, taken, kept, "output", [&] { out.write_many(in, kept); });
            for (size_t i = 0; i < kept; ++i) in[i].reset();
        }
        linger(got, events, awaited);
        auto now = std::chrono::steady_clock::now();
        if (now >= next_tick || (settling && got == 0)) {
            out.tick();
            next_tick = now + kPollTimeout;
        }
        if (got == 0 && n.queue->producers() == 0 && n.queue->events() == 0) break;
        if (n.ctx->abort_flag().load()) break;
    }
    fail_queued(n, fmt::format("shutdown timeout: still queued for output '{}'", n.decl->name));
    close_output(n);
    finish_node(n);
}


void Runtime::drain_by(std::chrono::steady_clock::time_point deadline) { drain_deadline_.store(deadline); }

// When an output's last flush must end: a shutdown timeout from now, and before whoever waits for
// it gives up (the drain's deadline, a removed stage's), less a margin for the output's stop and
// its disk buffer's close. Ending the flush exactly at that deadline raced with it: the output
// finished and its buffer logged what it kept, while the runtime had already called the stage
// unfinished and the process exited 1.
std::chrono::steady_clock::time_point Runtime::flush_deadline(const Node& n) const {
    using namespace std::chrono;
    const auto margin = std::min<steady_clock::duration>(shutdown_timeout_ / 10, milliseconds(500));
    auto until = steady_clock::now() + shutdown_timeout_;
    if (auto by = drain_deadline_.load(); by != steady_clock::time_point::max()) until = std::min(until, by - margin);
    if (n.retiring.load()) until = std::min(until, n.retire_deadline - margin);
    return until;
}

void Runtime::close_output(Node& n) {
    if (!n.object_started) return;  // it never started (a reload could not start it)
    try {
        n.built.output->flush(flush_deadline(n));
        n.built.output->stop();
    } catch (const std::exception& e) {
        n.ctx->log().error("output failed to flush: {}", e.what());
    }
    n.queue->close();  // a disk buffer keeps what the output did not settle
}

StageSnapshot Runtime::snapshot_of(const Node& n) const {
    StageSnapshot s;
    s.name = n.decl->name;
    s.type = n.decl->type;
    s.kind = n.decl->kind;
    for (const auto& r : n.decl->inputs) s.inputs.push_back(r.port.empty() ? r.stage : r.stage + "." + r.port);
    s.ports = n.decl->ports;
    s.tap = n.ctx->tap;
    s.failure = n.ctx->failure();
    s.degraded = n.ctx->degraded();
    s.retiring = n.retiring;
    s.finished = n.done;
    // failing: failed for good; degraded: cannot deliver now, retrying.
    s.reason = s.failure;
    if (s.retiring) s.status = "retiring";
    else if (s.finished) s.status = "finished";
    else if (!s.failure.empty()) s.status = "failing";
    else if (!s.degraded.empty()) s.status = "degraded", s.reason = s.degraded;
    else s.status = "running";
    auto& m = n.ctx->metrics();
    s.events_in = m.events_in.get();
    s.events_out = m.events_out.get();
    s.bytes_in = m.bytes_in.get();
    s.bytes_out = m.bytes_out.get();
    s.errors = m.errors.get();
    if (n.queue) {
        s.has_queue = true;
        s.queue_events = n.queue->events();
        s.queue_bytes = n.queue->bytes();
        s.queue_capacity_events = n.queue->max_events();
        s.queue_capacity_bytes = n.queue->max_bytes();
        s.queue_json = n.queue->describe_json();
    }
    return s;
}

PipelineSnapshot Runtime::snapshot() const {
    PipelineSnapshot p;
    p.generation = generation_.load();
    p.stopping = stopping_.load();
    std::lock_guard lk(nodes_m_);
    p.stages.reserve(nodes_.size());
    for (const auto& n : nodes_) p.stages.push_back(snapshot_of(*n));
    return p;
}

}  // namespace hbf
