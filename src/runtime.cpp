#include "runtime.h"

#include "buffer/disk_queue.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <set>
#include <stdexcept>

namespace hbf {

namespace {
constexpr auto kPollTimeout = std::chrono::milliseconds(100);
constexpr size_t kPopMax = 32;
constexpr size_t kLingerBelow = 256;  // events: a hand-over smaller than this lingers
}  // namespace

std::unique_ptr<Runtime::Node> Runtime::make_node(BuiltStage b) {
    auto n = std::make_unique<Node>();
    n->decl = b.decl;
    n->cfg = cfg_;
    n->built = std::move(b);
    n->ctx = std::make_unique<StageContext>(n->decl->name, n->decl->type, to_string(n->decl->kind));
    n->ctx->data_dir = cfg_->service.data_dir;
    n->ctx->batch_events = size_t(cfg_->service.batch_events);
    if (n->decl->kind != StageKind::input) n->queue = buffer::make_queue(cfg_->service, *n->decl, *n->ctx, stopping_);
    n->emitter = std::make_unique<Emitter>(*n->ctx);
    n->ctx->targets.resize(1 + n->decl->ports.size());
    n->generation = generation_.load();
    n->rt = this;
    return n;
}

std::vector<std::vector<std::vector<BatchQueue*>>> Runtime::plan_targets(const std::vector<Node*>& live) const {
    std::map<std::string, size_t> idx;
    for (size_t i = 0; i < live.size(); ++i) idx[live[i]->decl->name] = i;
    std::vector<std::vector<std::vector<BatchQueue*>>> out(live.size());
    for (size_t i = 0; i < live.size(); ++i) out[i].resize(1 + live[i]->decl->ports.size());
    for (Node* n : live) {
        for (const auto& r : n->decl->inputs) {
            size_t u = idx.at(r.stage);
            const Node* up = live[u];
            size_t port = 0;
            if (!r.port.empty()) {
                auto it = std::find(up->decl->ports.begin(), up->decl->ports.end(), r.port);
                port = 1 + size_t(it - up->decl->ports.begin());
            }
            auto& list = out[u][port];
            if (std::find(list.begin(), list.end(), n->queue.get()) == list.end()) list.push_back(n->queue.get());
        }
    }
    return out;
}

static std::vector<BatchQueue*> distinct(const std::vector<std::vector<BatchQueue*>>& ports) {
    std::vector<BatchQueue*> f;
    for (const auto& p : ports)
        for (auto* q : p)
            if (std::find(f.begin(), f.end(), q) == f.end()) f.push_back(q);
    return f;
}

Runtime::Runtime(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages)
    : cfg_(std::move(cfg)), shutdown_timeout_(cfg_->service.shutdown_timeout), linger_(cfg_->service.linger) {
    for (auto& b : stages) nodes_.push_back(make_node(std::move(b)));
    std::vector<Node*> live;
    for (auto& n : nodes_) live.push_back(n.get());
    auto plan = plan_targets(live);
    for (size_t i = 0; i < live.size(); ++i) {
        live[i]->ctx->targets = plan[i];
        live[i]->feeds = distinct(plan[i]);
        for (auto* q : live[i]->feeds) q->add_producer();
    }
    for (Node* n : live)
        if (n->built.filter) set_inline(*n, n->queue->producers() == 1);
}

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
    if (n.built.filter) n.built.filter->start(*n.ctx);
    if (n.built.input) n.built.input->start(*n.ctx);
}

void Runtime::start_thread(Node& n) {
    n.started = true;
    if (n.built.output) n.thread = std::thread([this, &n] { run_output(n); });
    if (n.built.filter) n.thread = std::thread([this, &n] { run_filter(n); });
    if (n.built.input) n.thread = std::thread([this, &n] { run_input(n); });
}

void Runtime::start() {
    started_at_ = std::chrono::steady_clock::now();
    for (StageKind kind : {StageKind::output, StageKind::filter, StageKind::input}) {
        for (auto& np : nodes_) {
            Node& n = *np;
            if (n.decl->kind != kind) continue;
            try {
                start_stage(n);
            } catch (const std::exception& e) {
                std::string msg = fmt::format("stage '{}' ({} {}) failed to start: {}", n.decl->name, to_string(n.decl->kind),
                                              n.decl->type, e.what());
                request_stop();
                for (auto& m : nodes_) {
                    if (!m->started) {
                        m->done = true;
                        for (auto* q : m->feeds) q->remove_producer();
                    }
                }
                wait_until(std::chrono::steady_clock::now() + shutdown_timeout_);
                throw std::runtime_error(msg);
            }
            start_thread(n);
        }
    }
}

std::string Runtime::reload(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages) {
    std::lock_guard rl(reload_m_);
    if (stopping_) throw std::runtime_error("shutting down");
    reap_locked();
    // Which running stages stay: same name, kind, type and table.
    std::map<std::string, Node*> running;
    {
        auto lk = nodes_lock();
        for (auto& n : nodes_)
            if (!n->retiring && !n->done) running[n->decl->name] = n.get();
    }
    std::vector<Node*> live;
    std::vector<std::unique_ptr<Node>> fresh;
    std::set<Node*> kept;
    std::shared_ptr<const PipelineConfig> prev = std::move(cfg_);
    cfg_ = std::move(cfg);
    generation_.fetch_add(1);
    for (auto& b : stages) {
        auto it = running.find(b.decl->name);
        if (it != running.end() && it->second->decl->kind == b.decl->kind && it->second->decl->type == b.decl->type &&
            it->second->decl->fingerprint == b.decl->fingerprint) {
            live.push_back(it->second);
            kept.insert(it->second);
            auto lk = nodes_lock();
            it->second->decl = b.decl;  // same options; its inputs may have changed
            it->second->cfg = cfg_;
        } else {
            fresh.push_back(make_node(std::move(b)));
            live.push_back(fresh.back().get());
        }
    }
    // Start the new stages' objects first: a failure leaves the old pipeline as it was.
    std::vector<BatchQueue*> holds;
    for (auto& n : fresh) {
        std::string failure;
        try {
            start_stage(*n);
        } catch (const std::exception& e) {
            failure = e.what();
        }
        // A changed input may need what its old version holds (the http input's port): stop the
        // old one, let it finish what it accepted, and try again.
        auto old = running.find(n->decl->name);
        if (!failure.empty() && n->built.input && old != running.end() && !kept.count(old->second)) {
            Node& o = *old->second;
            o.ctx->log().warn("stopping the old version to start the new one: {}", failure);
            // Hold its downstream queues open: they must not see zero producers before the new
            // version is wired in, or their stages would finish.
            for (auto* q : o.feeds) {
                q->add_producer();
                holds.push_back(q);
            }
            o.retiring = true;
            o.retire_deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
            o.ctx->request_stop();
            o.built.input->stop();
            auto deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
            while (!o.done && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            try {
                start_stage(*n);
                failure.clear();
            } catch (const std::exception& e) {
                failure = std::string(e.what()) + " (its old version was stopped)";
            }
        }
        if (!failure.empty()) {
            std::string msg = fmt::format("stage '{}' ({} {}) failed to start: {}", n->decl->name, to_string(n->decl->kind),
                                          n->decl->type, failure);
            for (auto& m : fresh) {
                if (m.get() == n.get()) break;
                if (m->built.output) m->built.output->stop();
                if (m->built.filter) m->built.filter->stop();
                if (m->built.input) m->built.input->stop();
            }
            cfg_ = std::move(prev);  // the new config's decls die here: msg was built first
            generation_.fetch_sub(1);
            for (auto* q : holds) q->remove_producer();
            throw std::runtime_error(msg);
        }
    }
    prev.reset();  // kept stages moved to the new config; retiring ones hold the old one until reaped

    auto plan = plan_targets(live);
    // New edges get their producer count before any batch can use them.
    std::vector<std::vector<BatchQueue*>> new_feeds(live.size());
    for (size_t i = 0; i < live.size(); ++i) {
        new_feeds[i] = distinct(plan[i]);
        for (auto* q : new_feeds[i])
            if (std::find(live[i]->feeds.begin(), live[i]->feeds.end(), q) == live[i]->feeds.end()) q->add_producer();
    }
    // Inline only where no reordering can happen: a new filter's queue is empty, and a filter
    // that already ran inline had nothing queued. A second producer turns it off.
    std::set<Node*> is_fresh;
    for (auto& n : fresh) is_fresh.insert(n.get());
    for (Node* n : live)
        if (n->built.filter)
            set_inline(*n, n->queue->producers() == 1 && (is_fresh.count(n) || n->queue->inline_consumer.load() != nullptr));
    {
        auto lk = nodes_lock();
        for (auto& n : fresh) nodes_.push_back(std::move(n));
    }
    for (Node* n : live)
        if (!n->started && n->decl->kind != StageKind::input) start_thread(*n);
    // Wire the new stages first, then rewire kept ones (an emit in progress finishes on the old
    // targets first): a kept stage must never reach a new filter whose targets are still empty,
    // or that filter would drop the batch as having no downstream stage.
    std::vector<size_t> order;
    for (size_t i = 0; i < live.size(); ++i)
        if (is_fresh.count(live[i])) order.push_back(i);
    for (size_t i = 0; i < live.size(); ++i)
        if (!is_fresh.count(live[i])) order.push_back(i);
    for (size_t i : order) {
        Node* n = live[i];
        std::vector<BatchQueue*> gone;
        {
            std::unique_lock lk(n->ctx->targets_m);
            n->ctx->targets = plan[i];
            for (auto* q : n->feeds)
                if (std::find(new_feeds[i].begin(), new_feeds[i].end(), q) == new_feeds[i].end()) gone.push_back(q);
            n->feeds = new_feeds[i];
        }
        for (auto* q : gone) q->remove_producer();
    }
    for (auto* q : holds) q->remove_producer();
    // Removed stages: inputs stop; filters and outputs drain what they have and finish.
    size_t removed = 0;
    for (auto& [name, n] : running) {
        if (kept.count(n)) continue;
        ++removed;
        n->retiring = true;
        n->retire_deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
        if (n->built.input) {
            n->ctx->request_stop();
            n->built.input->stop();
        }
    }
    for (Node* n : live)
        if (!n->started && n->decl->kind == StageKind::input) start_thread(*n);
    return fmt::format("config generation {}: {} stages kept, {} started, {} stopped", generation_.load(), kept.size(),
                       live.size() - kept.size(), removed);
}

void Runtime::reap() {
    // A reload in progress holds pointers to the nodes it retires; it reaps itself when it starts.
    std::unique_lock rl(reload_m_, std::try_to_lock);
    if (rl.owns_lock()) reap_locked();
}

void Runtime::reap_locked() {
    auto lk = nodes_lock();
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
        if (n.retiring && n.done) {
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
    auto lk = nodes_lock();
    for (auto& n : nodes_) {
        if (n->decl->kind != StageKind::input) continue;
        n->ctx->request_stop();
        if (n->started && n->built.input) n->built.input->stop();
    }
}

bool Runtime::finished() const {
    auto lk = nodes_lock();
    return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->done.load(); });
}

bool Runtime::wait_until(std::chrono::steady_clock::time_point deadline) {
    while (!finished()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            {
                auto lk = nodes_lock();
                for (auto& n : nodes_) {
                    if (!n->done) {
                        spdlog::error("stage '{}' did not finish within the shutdown timeout ({} events still queued)", n->decl->name,
                                      n->queue ? n->queue->events() : 0);
                        n->ctx->request_abort();
                    }
                }
            }
            // A moment for the aborted stages to report what they held as failed (an HTTP client
            // waiting for its ack hears 503) before the caller exits.
            auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            while (std::chrono::steady_clock::now() < grace && !finished()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto lk = nodes_lock();
    join_all();
    return true;
}

void Runtime::finish_node(Node& n) {
    std::vector<BatchQueue*> feeds;
    {
        std::unique_lock lk(n.ctx->targets_m);
        feeds = n.feeds;
    }
    for (auto* q : feeds) q->remove_producer();
    n.done = true;
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
void Runtime::guarded(Node& n, Batch& b, const char* what, F&& call) {
    auto& guard = n.guard;
    guard.clear();
    for (auto& a : b.acks) {
        a.reopen();
        guard.push_back(a.clone());
    }
    const size_t events = b.size();
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
        fail_events(n, events, "exception", fmt::format("{} '{}' failed on a batch of {} events: {}", what, n.decl->name, events, why));
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

void Runtime::fail_queued(Node& n, const std::string& why) {
    if (!n.queue) return;
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
    std::string why = fmt::format("shutdown timeout: still queued for {} '{}'", what, n.decl->name);
    fail_events(n, b->size(), "shutdown_timeout", fmt::format("{} events: {}", b->size(), why));
    b->mark(AckStatus::failed, why);
    b.reset();
    return true;
}

void Runtime::process_filter(Node& n, BatchPtr b) {
    std::lock_guard lk(n.proc_m);
    auto& m = n.ctx->metrics();
    m.events_in.add(b->size());
    m.bytes_in.add(b->bytes());
    int64_t t0 = b->received_ns;
    Batch& ref = *b;
    guarded(n, ref, "filter", [&] { n.built.filter->process(std::move(b), *n.emitter); });
    m.latency.observe_ns(now_ns() - t0);
}

void Runtime::run_filter(Node& n) {
    BatchPtr in[kPopMax];
    for (;;) {
        size_t got = n.queue->pop(in, kPopMax, kPollTimeout);
        size_t events = 0;
        for (size_t i = 0; i < got; ++i) {
            events += in[i]->size();
            if (aborted(n, in[i], "filter")) continue;
            process_filter(n, std::move(in[i]));
        }
        linger(got, events);
        if (got == 0 && n.queue->producers() == 0 && n.queue->events() == 0) break;
        if (n.ctx->abort_flag().load()) break;
    }
    fail_queued(n, fmt::format("shutdown timeout: still queued for filter '{}'", n.decl->name));
    n.built.filter->stop();
    finish_node(n);
}

// After a small hand-over, wait a little for more instead of going back to sleep on the queue:
// a thread parked on the queue costs its producer a futex wake-up per batch, and under many
// small requests (the HTTP input) those wake-ups were a fifth of the CPU.
void Runtime::linger(size_t batches, size_t events) const {
    if (batches > 0 && events < kLingerBelow && linger_.count() > 0 && !stopping_.load(std::memory_order_relaxed))
        std::this_thread::sleep_for(linger_);
}

void Runtime::run_output(Node& n) {
    BatchPtr in[kPopMax];
    auto& m = n.ctx->metrics();
    auto next_tick = std::chrono::steady_clock::now();
    for (;;) {
        size_t got = n.queue->pop(in, kPopMax, kPollTimeout);
        size_t events = 0;
        for (size_t i = 0; i < got; ++i) {
            events += in[i]->size();
            m.events_in.add(in[i]->size());
            m.bytes_in.add(in[i]->bytes());
            m.latency.observe_ns(now_ns() - in[i]->received_ns);
            if (aborted(n, in[i], "output")) continue;
            Batch& b = *in[i];
            guarded(n, b, "output", [&] { n.built.output->write(std::move(in[i])); });
            in[i].reset();
        }
        linger(got, events);
        auto now = std::chrono::steady_clock::now();
        if (now >= next_tick) {
            n.built.output->tick();
            next_tick = now + kPollTimeout;
        }
        if (got == 0 && n.queue->producers() == 0 && n.queue->events() == 0) break;
        if (n.ctx->abort_flag().load()) break;
    }
    fail_queued(n, fmt::format("shutdown timeout: still queued for output '{}'", n.decl->name));
    try {
        n.built.output->flush(std::chrono::steady_clock::now() + shutdown_timeout_);
        n.built.output->stop();
    } catch (const std::exception& e) {
        n.ctx->log().error("output failed to flush: {}", e.what());
    }
    n.queue->close();  // a disk buffer keeps what the output did not settle
    finish_node(n);
}

}  // namespace hbf
