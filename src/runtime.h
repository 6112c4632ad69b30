// The running pipeline: one bounded queue in front of every filter and output, a thread per
// filter and output, a thread per input. Stop order: inputs stop producing; each queue drains
// into its stage; a stage finishes once every upstream stage finished and its queue is empty;
// outputs flush last.
//
// One executor builds and changes the pipeline: it applies a PipelinePlan (src/plan.h). start()
// applies the plan from nothing; reload() the plan from the running stages, in place: stages the
// plan keeps run on untouched (only their downstream wiring may change), changed and removed
// ones drain and stop, new ones start. Readers outside (the API, main) see a PipelineSnapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "plan.h"
#include "queue.h"
#include "stage.h"

namespace hbf {

// One stage as the runtime last saw it: copied out under the runtime's lock.
struct StageSnapshot {
    std::string name, type;
    StageKind kind = StageKind::input;
    std::vector<std::string> inputs;  // "stage" or "stage.port"
    std::vector<std::string> ports;   // the named ports it offers (route)
    std::shared_ptr<TapPoint> tap;    // what it emits, for `hbforward tap`
    std::string status;               // running, degraded, failing, finished, retiring
    std::string reason;               // why it is failing or degraded (or failed, once finished)
    std::string failure, degraded;
    bool retiring = false;            // removed or replaced by a reload, draining
    bool finished = false;
    uint64_t events_in = 0, events_out = 0, bytes_in = 0, bytes_out = 0, errors = 0;
    bool has_queue = false;
    int64_t queue_events = 0, queue_bytes = 0, queue_capacity_events = 0, queue_capacity_bytes = 0;
    std::string queue_json;  // extra members from the queue (a disk buffer's state), or ""
};

struct PipelineSnapshot {
    uint64_t generation = 1;
    bool stopping = false;
    std::vector<StageSnapshot> stages;  // a replaced stage's old version may drain beside the new one
};

class Runtime {
public:
    Runtime(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages);
    ~Runtime();

    // Applies the plan from nothing: starts the outputs', filters' and inputs' objects, then their
    // threads. Throws std::runtime_error naming the stage that failed; what had started is stopped.
    void start();
    // Graceful stop: inputs stop, queues drain, outputs flush.
    void request_stop();
    bool stopping() const { return stopping_.load(); }
    // When the caller gives up on the drain (wait_until's deadline): an output's last flush ends
    // before it, so that what a disk buffer keeps is counted and logged, not cut off.
    void drain_by(std::chrono::steady_clock::time_point deadline);
    // True when every stage has finished (all inputs ended and everything drained).
    bool finished() const;
    // True when every input has finished.
    bool inputs_finished() const;
    // Waits for the stages to finish until `deadline`; on timeout aborts what is left and
    // returns false.
    bool wait_until(std::chrono::steady_clock::time_point deadline);
    // Called on the stage's thread each time a stage finishes (set before start()): how the main
    // thread learns at once that the last one did, instead of at its next tick.
    void on_stage_finished(std::function<void()> f) { on_finished_ = std::move(f); }

    // Applies a validated config. Returns a one-line summary; throws std::runtime_error (with
    // the old pipeline still running, untouched) when a new stage fails to start.
    std::string reload(std::unique_ptr<PipelineConfig> cfg, std::vector<BuiltStage> stages);
    uint64_t generation() const { return generation_.load(); }
    // Joins and frees stages that a reload removed and that have drained.
    void reap();

    const PipelineConfig& config() const { return *cfg_; }
    PipelineSnapshot snapshot() const;
    std::chrono::steady_clock::time_point started_at() const { return started_at_; }

private:
    struct Node;
    struct Instance;
    struct Apply;  // one plan being applied

    std::unique_ptr<Node> make_node(BuiltStage b, const std::shared_ptr<const PipelineConfig>& cfg);
    std::vector<PlanStage> running_stages(Apply& a) const;
    std::string apply(std::shared_ptr<const PipelineConfig> cfg, std::vector<BuiltStage> stages, bool startup);
    // The executor's steps, in order.
    void place_nodes(Apply& a, std::vector<BuiltStage>& stages);
    void start_objects(Apply& a);
    void start_after_old(Apply& a, Node& n);  // an input that needs what its old version holds
    [[noreturn]] void roll_back(Apply& a, Node& failed, const std::string& why);
    void wire(Apply& a);
    void retire(Node& n);
    void hand_over(Apply& a, Node& old);          // a memory output changed to a disk buffer
    void start_deferred(Apply& a);
    void start_threads(Apply& a, bool inputs);

    void start_stage(Node& n);  // start() of the stage object; throws
    void start_thread(Node& n);
    void wait_done(Node& n, std::chrono::steady_clock::time_point deadline) const;
    void run_input(Node& n);
    void run_filter(Node& n);
    void take(Node& n, BatchPtr b);  // a batch for a filter: its pool, or process_filter()
    Instance& instance_for(Node& n);
    void process_filter(Node& n, BatchPtr b);
    void stop_filter(Node& n);
    void set_inline(Node& n, bool on);
    void run_output(Node& n);
    void close_output(Node& n);
    std::chrono::steady_clock::time_point flush_deadline(const Node& n) const;
    // Runs a stage's process()/write() on `b`: the batch's holds are reopened for this stage, and
    // an exception fails them with its text instead of letting the unwinding release them.
    template <typename F>
    void guarded(Node& n, std::vector<AckRef>& guard, Batch& b, const char* what, F&& call);
    // The same for an output's write_many() on the batches bs[0..count): a throw fails them all.
    template <typename F>
    void guarded(Node& n, std::vector<AckRef>& guard, Batch* const* bs, size_t count, const char* what, F&& call);
    // Fails what the stage did not finish: counted, logged (rate limited), reported to the inputs.
    void fail_events(Node& n, size_t events, const char* label, const std::string& why);
    // The same for one batch, which is then marked failed with `why` and released.
    void fail_batch(Node& n, BatchPtr& b, const char* label, const std::string& why);
    // After an abort, a batch taken from the queue but not yet started reports failed (true).
    bool aborted(Node& n, BatchPtr& b, const char* what);
    // The stage drains no more: later pushes are refused, and every batch left in its queue
    // reports failed.
    void fail_queued(Node& n, const std::string& why);
    void finish_node(Node& n);
    static bool waited_on(const Node& n, const Batch& b);
    void linger(size_t batches, size_t events, bool awaited) const;
    void reap_locked();  // with reload_m_ held
    void join_all();
    void abort_unfinished();
    StageSnapshot snapshot_of(const Node& n) const;

    // Each node holds the config its decl lives in: an old config is freed once no stage of it is left.
    std::shared_ptr<const PipelineConfig> cfg_;
    std::vector<BuiltStage> pending_;  // built by the caller, started by start()
    std::vector<std::unique_ptr<Node>> nodes_;
    mutable std::mutex nodes_m_;
    std::mutex reload_m_;
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> generation_{1};
    std::chrono::nanoseconds shutdown_timeout_;
    std::chrono::nanoseconds linger_;
    std::function<void()> on_finished_;
    std::chrono::steady_clock::time_point started_at_;
    std::atomic<std::chrono::steady_clock::time_point> drain_deadline_{std::chrono::steady_clock::time_point::max()};
};

}  // namespace hbf
