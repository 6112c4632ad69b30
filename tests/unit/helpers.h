// Helpers for unit tests: run a stage on a batch without a pipeline around it.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "config.h"
#include "queue.h"
#include "registry.h"

namespace hbf::test {

// A fresh directory under /tmp, removed with everything in it at the end of the scope.
struct TempDir {
    TempDir() {
        char t[] = "/tmp/hbf-test-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string path;
};

// Loads a config from text; fails the test if it has errors.
inline std::unique_ptr<PipelineConfig> config(const std::string& text) {
    auto cfg = load_config_text(text, "test.toml");
    INFO(cfg->report());
    REQUIRE(cfg->ok());
    return cfg;
}

// A batch of the given event texts.
inline BatchPtr batch(const std::vector<std::string>& events) {
    BatchPtr b = Batch::make();
    for (const auto& e : events) b->append(e);
    return b;
}

inline std::vector<std::string> texts(const Batch& b) {
    std::vector<std::string> out;
    for (size_t i = 0; i < b.size(); ++i) out.emplace_back(b.event(i));
    return out;
}

// Builds one filter from a [filters.f] table body and runs batches through it, collecting
// what comes out of each port (0 = the stage itself, then its named ports in order).
class FilterHarness {
public:
    explicit FilterHarness(const std::string& type, const std::string& body) {
        text_ = "[inputs.i]\ntype = \"stdin\"\n[filters.f]\ntype = \"" + type + "\"\ninputs = [\"i\"]\n" + body +
                "\n[outputs.o]\ntype = \"null\"\ninputs = [\"f\"]\n";
        cfg_ = load_config_text(text_, "test.toml");
        INFO(cfg_->report());
        REQUIRE(cfg_->ok());
        built_ = build_stages(*cfg_);
        INFO(cfg_->report());
        REQUIRE(cfg_->ok());
        for (auto& b : built_)
            if (b.filter) filter_ = b.filter.get(), decl_ = b.decl;
        REQUIRE(filter_);
        ctx_ = std::make_unique<StageContext>("f", type, "filter");
        ctx_->targets.resize(1 + decl_->ports.size());
        for (size_t p = 0; p < ctx_->targets.size(); ++p) {
            queues_.push_back(std::make_unique<BatchQueue>(1 << 30, int64_t(1) << 40));
            ctx_->targets[p].push_back(queues_.back().get());
        }
        emitter_ = std::make_unique<Emitter>(*ctx_);
        filter_->start(*ctx_);
    }

    StageContext& ctx() { return *ctx_; }

    // Runs one batch; returns the event texts emitted on `port`.
    std::vector<std::string> run(BatchPtr b, size_t port = 0) {
        filter_->process(std::move(b), *emitter_);
        return drain(port);
    }
    std::vector<std::string> run(const std::vector<std::string>& events, size_t port = 0) { return run(batch(events), port); }

    std::vector<std::string> drain(size_t port) {
        std::vector<std::string> out;
        BatchPtr got[64];
        size_t n;
        while ((n = queues_[port]->pop(got, 64, std::chrono::microseconds(0))) > 0)
            for (size_t i = 0; i < n; ++i) {
                auto t = texts(*got[i]);
                out.insert(out.end(), t.begin(), t.end());
            }
        return out;
    }

private:
    std::string text_;
    std::unique_ptr<PipelineConfig> cfg_;
    std::vector<BuiltStage> built_;
    Filter* filter_ = nullptr;
    const StageDecl* decl_ = nullptr;
    std::unique_ptr<StageContext> ctx_;
    std::vector<std::unique_ptr<BatchQueue>> queues_;
    std::unique_ptr<Emitter> emitter_;
};

}  // namespace hbf::test
