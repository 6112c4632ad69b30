// The running pipeline: one bounded queue in front of every filter and output, a thread per
// filter and output, a thread per input. Start order: outputs, filters, inputs. Stop order:
// inputs stop producing; each queue drains into its stage; a stage finishes once every
// upstream stage finished and its queue is empty; outputs flush last.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "queue.h"
#include "stage.h"

namespace hbf {

class Runtime {
public:
    struct Node {
        const StageDecl* decl = nullptr;
        BuiltStage built;
        std::unique_ptr<StageContext> ctx;
        std::unique_ptr<BatchQueue> queue;  // filters and outputs
        std::unique_ptr<Emitter> emitter;
        std::vector<BatchQueue*> feeds;     // distinct downstream queues, for producer counting
        std::thread thread;
        std::atomic<bool> done{false};
        std::atomic<bool> started{false};
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

    const PipelineConfig& config() const { return *cfg_; }
    const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
    std::chrono::steady_clock::time_point started_at() const { return started_at_; }

private:
    void run_input(Node& n);
    void run_filter(Node& n);
    void run_output(Node& n);
    void finish_node(Node& n);
    void join_all();

    std::unique_ptr<PipelineConfig> cfg_;
    std::vector<std::unique_ptr<Node>> nodes_;
    std::atomic<bool> stopping_{false};
    std::chrono::steady_clock::time_point started_at_;
};

}  // namespace hbf
