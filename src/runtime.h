// The running pipeline: one bounded queue in front of every filter and output, a thread per
// filter and output, a thread per input. Start order: outputs, filters, inputs. Stop order:
// inputs stop producing; each queue drains into its stage; a stage finishes once every
// upstream stage finished and its queue is empty; outputs flush last.
//
// Hot reload applies a new config in place: stages whose table did not change keep running
// untouched (only their downstream wiring may change), changed and removed stages drain and
// stop, new ones start.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "queue.h"
#include "stage.h"

namespace hbf {

class Runtime {
public:
    struct Node final : InlineConsumer {
        Runtime* rt = nullptr;
        std::mutex proc_m;                  // a filter runs one batch at a time, inline or on its thread
        void consume(BatchPtr b) override { rt->process_filter(*this, std::move(b)); }
        bool downstream_full() const override { return emitter->any_full(); }

        const StageDecl* decl = nullptr;
        std::shared_ptr<const PipelineConfig> cfg;  // the config `decl` lives in, kept alive by it
        BuiltStage built;
        std::unique_ptr<StageContext> ctx;
        std::unique_ptr<BatchQueue> queue;  // filters and outputs
        std::unique_ptr<Emitter> emitter;
        std::vector<BatchQueue*> feeds;     // distinct downstream queues, for producer counting
        std::thread thread;
        std::atomic<bool> done{false};
        std::atomic<bool> started{false};
        std::atomic<bool> retiring{false};  // removed by a reload, draining
        std::chrono::steady_clock::time_point retire_deadline{};  // then what it still holds fails
        std::vector<AckRef> guard;          // see Runtime::guarded()
        RateLimit fail_rl;
        uint64_t generation = 1;            // the config generation that started it
    };

    Runtime(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages);
    ~Runtime();

    // Starts outputs, then filters, then inputs. Throws std::runtime_error naming the stage
    // that failed; what had started is stopped again.
    void start();
    // Graceful stop: inputs stop, queues drain, outputs flush.
    void request_stop();
    bool stopping() const { return stopping_.load(); }
    // True when every stage has finished (all inputs ended and everything drained).
    bool finished() const;
    // Waits for the stages to finish until `deadline`; on timeout aborts what is left and
    // returns false.
    bool wait_until(std::chrono::steady_clock::time_point deadline);

    // Applies a validated config. Returns a one-line summary; throws std::runtime_error (with
    // the old pipeline still running, untouched) when a new stage fails to start.
    std::string reload(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages);
    uint64_t generation() const { return generation_.load(); }
    // Joins and frees stages that a reload removed and that have drained.
    void reap();

    const PipelineConfig& config() const { return *cfg_; }
    // Call with the lock held (nodes_lock()): the list changes on reload.
    const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
    std::unique_lock<std::mutex> nodes_lock() const { return std::unique_lock(nodes_m_); }
    std::chrono::steady_clock::time_point started_at() const { return started_at_; }

private:
    std::unique_ptr<Node> make_node(BuiltStage b);
    void start_stage(Node& n);   // start() of the stage object; throws
    void start_thread(Node& n);
    void run_input(Node& n);
    void run_filter(Node& n);
    void process_filter(Node& n, BatchPtr b);
    // A filter with a single upstream edge runs inline in that upstream's thread.
    void set_inline(Node& n, bool on);
    void run_output(Node& n);
    // Runs a stage's process()/write() on `b`: the batch's holds are reopened for this stage, and
    // an exception fails them with its text instead of letting the unwinding release them.
    template <typename F>
    void guarded(Node& n, Batch& b, const char* what, F&& call);
    // Fails what the stage did not finish: counted, logged (rate limited), reported to the inputs.
    void fail_events(Node& n, size_t events, const char* label, const std::string& why);
    // After an abort, a batch taken from the queue but not yet started reports failed (true).
    bool aborted(Node& n, BatchPtr& b, const char* what);
    // After an abort: every batch left in the stage's queue reports failed.
    void fail_queued(Node& n, const std::string& why);
    void finish_node(Node& n);
    void linger(size_t batches, size_t events) const;
    void reap_locked();  // with reload_m_ held
    void join_all();
    // Each node's targets and feeds from the decls' inputs; returns per node the new feeds.
    std::vector<std::vector<std::vector<BatchQueue*>>> plan_targets(const std::vector<Node*>& live) const;

    // Each node holds the config its decl lives in: an old config is freed once no stage of it is left.
    std::shared_ptr<const PipelineConfig> cfg_;
    std::vector<std::unique_ptr<Node>> nodes_;
    mutable std::mutex nodes_m_;
    std::mutex reload_m_;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> generation_{1};
    std::chrono::nanoseconds shutdown_timeout_;
    std::chrono::nanoseconds linger_;
    std::chrono::steady_clock::time_point started_at_;
};

}  // namespace hbf
