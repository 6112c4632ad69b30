#include "runtime.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <stdexcept>

namespace hbf {

namespace {
constexpr auto kPollTimeout = std::chrono::milliseconds(100);
constexpr size_t kPopMax = 32;
}  // namespace

Runtime::Runtime(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages) : cfg_(std::move(cfg)) {
    std::map<std::string, Node*> by_name;
    for (auto& b : stages) {
        auto n = std::make_unique<Node>();
        n->decl = b.decl;
        n->built = std::move(b);
        n->ctx = std::make_unique<StageContext>(n->decl->name, n->decl->type, to_string(n->decl->kind));
        if (n->decl->kind != StageKind::input)
            n->queue = std::make_unique<BatchQueue>(cfg_->service.queue_events, cfg_->service.queue_bytes);
        n->ctx->data_dir = cfg_->service.data_dir;
        n->ctx->batch_events = size_t(cfg_->service.batch_events);
        n->emitter = std::make_unique<Emitter>(*n->ctx);
        n->ctx->targets.resize(1 + n->decl->ports.size());
        by_name[n->decl->name] = n.get();
        nodes_.push_back(std::move(n));
    }
    // Wire: each downstream stage's queue goes into its upstream's port list.
    for (auto& n : nodes_) {
        for (const auto& r : n->decl->inputs) {
            Node* up = by_name.at(r.stage);
            size_t port = 0;
            if (!r.port.empty()) {
                auto it = std::find(up->decl->ports.begin(), up->decl->ports.end(), r.port);
                port = 1 + size_t(it - up->decl->ports.begin());
            }
            auto& list = up->ctx->targets[port];
            if (std::find(list.begin(), list.end(), n->queue.get()) == list.end()) list.push_back(n->queue.get());
            if (std::find(up->feeds.begin(), up->feeds.end(), n->queue.get()) == up->feeds.end()) {
                up->feeds.push_back(n->queue.get());
                n->queue->add_producer();
            }
        }
    }
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

void Runtime::start() {
    started_at_ = std::chrono::steady_clock::now();
    auto fail = [&](Node& n, const std::exception& e) {
        std::string msg = fmt::format("stage '{}' ({} {}) failed to start: {}", n.decl->name, to_string(n.decl->kind), n.decl->type, e.what());
        // Stop what had started: inputs first, then let the rest drain.
        request_stop();
        for (auto& m : nodes_) {
            if (!m->started) {
                m->done = true;
                for (auto* q : m->feeds) q->remove_producer();
            }
        }
        wait_until(std::chrono::steady_clock::now() + cfg_->service.shutdown_timeout);
        throw std::runtime_error(msg);
    };
    for (StageKind kind : {StageKind::output, StageKind::filter, StageKind::input}) {
        for (auto& np : nodes_) {
            Node& n = *np;
            if (n.decl->kind != kind) continue;
            try {
                if (n.built.output) n.built.output->start(*n.ctx);
                if (n.built.filter) n.built.filter->start(*n.ctx);
                if (n.built.input) n.built.input->start(*n.ctx);
            } catch (const std::exception& e) {
                fail(n, e);
            }
            n.started = true;
            if (n.built.output) n.thread = std::thread([this, &n] { run_output(n); });
            if (n.built.filter) n.thread = std::thread([this, &n] { run_filter(n); });
            if (n.built.input) n.thread = std::thread([this, &n] { run_input(n); });
        }
    }
}

void Runtime::request_stop() {
    if (stopping_.exchange(true)) return;
    for (auto& n : nodes_) {
        if (n->decl->kind != StageKind::input) continue;
        n->ctx->request_stop();
        if (n->started && n->built.input) n->built.input->stop();
    }
}

bool Runtime::finished() const {
    return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->done.load(); });
}

bool Runtime::wait_until(std::chrono::steady_clock::time_point deadline) {
    while (!finished()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            for (auto& n : nodes_) {
                if (!n->done) {
                    spdlog::error("stage '{}' did not finish within the shutdown timeout ({} events still queued)", n->decl->name,
                                  n->queue ? n->queue->events() : 0);
                    n->ctx->request_abort();
                }
            }
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    join_all();
    return true;
}

void Runtime::finish_node(Node& n) {
    for (auto* q : n.feeds) q->remove_producer();
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

void Runtime::run_filter(Node& n) {
    BatchPtr in[kPopMax];
    auto& m = n.ctx->metrics();
    for (;;) {
        size_t got = n.queue->pop(in, kPopMax, kPollTimeout);
        for (size_t i = 0; i < got; ++i) {
            m.events_in.add(in[i]->size());
            m.bytes_in.add(in[i]->bytes());
            int64_t t0 = in[i]->received_ns;
            try {
                n.built.filter->process(std::move(in[i]), *n.emitter);
            } catch (const std::exception& e) {
                m.errors.add();
                n.ctx->log().error("filter failed on a batch: {}", e.what());
            }
            m.latency.observe_ns(now_ns() - t0);
            in[i].reset();
        }
        if (got == 0 && n.queue->producers() == 0 && n.queue->events() == 0) break;
        if (n.ctx->abort_flag().load()) break;
    }
    n.built.filter->stop();
    finish_node(n);
}

void Runtime::run_output(Node& n) {
    BatchPtr in[kPopMax];
    auto& m = n.ctx->metrics();
    auto next_tick = std::chrono::steady_clock::now();
    for (;;) {
        size_t got = n.queue->pop(in, kPopMax, kPollTimeout);
        for (size_t i = 0; i < got; ++i) {
            m.events_in.add(in[i]->size());
            m.bytes_in.add(in[i]->bytes());
            m.latency.observe_ns(now_ns() - in[i]->received_ns);
            try {
                n.built.output->write(std::move(in[i]));
            } catch (const std::exception& e) {
                m.errors.add();
                n.ctx->log().error("output failed on a batch: {}", e.what());
            }
            in[i].reset();
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= next_tick) {
            n.built.output->tick();
            next_tick = now + kPollTimeout;
        }
        if (got == 0 && n.queue->producers() == 0 && n.queue->events() == 0) break;
        if (n.ctx->abort_flag().load()) break;
    }
    try {
        n.built.output->flush(std::chrono::steady_clock::now() + cfg_->service.shutdown_timeout);
        n.built.output->stop();
    } catch (const std::exception& e) {
        n.ctx->log().error("output failed to flush: {}", e.what());
    }
    finish_node(n);
}

}  // namespace hbf
