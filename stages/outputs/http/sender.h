// The http output's I/O thread: libcurl's multi interface drives up to max_inflight requests
// on kept-alive connections, retries with backoff, and settles each request's events.
//
// Threads: the output thread builds a Request (acquire, fill, submit); the I/O thread owns it
// from submit until it is settled and handed back to the pool. A batch (Held) stays alive until
// every one of its events was settled by some request; the thread that settles the last one
// releases its acks, always with an explicit status.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>

#include "batch.h"
#include "body.h"
#include "bulk_reply.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"

namespace hbf::httpout {

// One batch while requests carry its events.
struct Held {
    BatchPtr batch;
    std::atomic<uint32_t> pending{0};  // events not yet settled, + 1 while write() still adds them
    std::mutex m;                      // guards the outcome: both threads may settle events
    AckStatus worst = AckStatus::delivered;
    bool retryable = false;  // a failure that was not final (a timeout, a 5xx given up on, a shutdown)
    std::string reason;
    uint32_t delivered = 0;
};

struct Item {
    Held* held;
    uint32_t index;
};

struct Request {
    std::vector<Item> items;
    std::string body;   // as built
    std::string wire;   // as sent (compressed)
    std::string reply;  // the answer, up to reply_cap bytes
    size_t reply_cap = 0;
    std::vector<ItemResult> results;
    CURL* easy = nullptr;
    char errbuf[CURL_ERROR_SIZE] = {};
    int attempts = 0;
    int64_t first_ns = 0;  // monotonic: when it was first sent (for delivery_timeout)
    int64_t sent_ns = 0;
    int64_t due_ns = 0;    // monotonic: when a retry goes out
    std::string last_error;
};

struct SenderOptions {
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string username, password;    // basic auth, set through libcurl
    std::string tls_ca, tls_cert, tls_key;
    bool tls_verify = true;
    std::string proxy;
    size_t max_inflight = 4;
    std::chrono::nanoseconds request_timeout{std::chrono::seconds(30)};
    std::chrono::nanoseconds connect_timeout{std::chrono::seconds(10)};
    std::chrono::nanoseconds retry_initial{std::chrono::milliseconds(100)};
    std::chrono::nanoseconds retry_max{std::chrono::seconds(30)};
    std::chrono::nanoseconds delivery_timeout{0};  // 0 = retry until delivered
    BodyOptions body;
    Compression compression = Compression::none;
    int compression_level = 0;
};

struct SenderMetrics {
    Counter *delivered, *retried, *failed_rejected, *failed_item, *failed_timeout, *failed_shutdown;
    Counter *status_2xx, *status_3xx, *status_4xx, *status_5xx, *status_error;
    Gauge* inflight;
    Histogram* duration;
};

class Sender {
public:
    explicit Sender(SenderOptions o);
    ~Sender();
    Sender(const Sender&) = delete;
    Sender& operator=(const Sender&) = delete;

    void start(StageContext& ctx);
    void stop();

    // A free request (items and body empty). Blocks while max_inflight requests are out: that is
    // the output's backpressure. nullptr once `abort` is set.
    Request* acquire(const std::atomic<bool>& abort);
    // Hands a filled request (body closed and compressed) to the I/O thread.
    void submit(Request* r);
    // Fails the events of a request that cannot be sent, and takes it back.
    void fail_unsent(Request* r, const std::string& why) {
        m_.failed_rejected->add(r->items.size());
        ctx_->log().error("{} events failed: {}", r->items.size(), why);
        settle_all(r, AckStatus::failed, why);
    }
    // Gives back a request that was acquired and never filled.
    void give_back(Request* r);
    // Waits until every request is settled; false when the deadline passed (or `abort` was set) first.
    bool wait_idle(std::chrono::steady_clock::time_point deadline, const std::atomic<bool>& abort);
    // Fails every request not yet settled (shutdown); returns how many events that was.
    uint64_t abort_all(const std::string& why);

    // Records the outcome of `n` events of `h`; the last one releases the batch. `final`: the
    // server refused them for good (a 4xx), a disk buffer in front removes them instead of retrying.
    void settle(Held* h, uint32_t n, AckStatus s, std::string_view why, bool final = false);
    // Drops write()'s own hold on `h` (counted in pending besides its events).
    void release_hold(Held* h) { settle_impl(h, 1, AckStatus::delivered, {}, false, false); }

private:
    void settle_impl(Held* h, uint32_t n, AckStatus s, std::string_view why, bool events, bool final);
    void loop();
    void set_up(Request& r);
    void fail_everything(const std::string& why, std::vector<Request*>& incoming);
    void launch(Request* r);
    void done(Request* r, CURLcode rc);
    void retry_or_fail(Request* r, int64_t retry_after_s, const std::string& why);
    void settle_all(Request* r, AckStatus s, std::string_view why, bool final = false);
    void finish(Request* r);
    void rebuild(Request* r);
    void settle_bulk(Request* r, const BulkReply& br);
    int64_t backoff_ns(int attempts);

    SenderOptions o_;
    StageContext* ctx_ = nullptr;
    SenderMetrics m_{};
    CURLM* multi_ = nullptr;
    curl_slist* headers_ = nullptr;
    std::vector<std::unique_ptr<Request>> pool_;

    std::mutex mu_;
    std::condition_variable cv_;     // a request came back to the pool / everything is idle
    std::vector<Request*> free_;
    std::vector<Request*> submitted_;
    bool quit_ = false;
    bool abort_ = false;
    std::string abort_why_;
    uint64_t aborted_events_ = 0;
    bool abort_done_ = false;

    // I/O thread only.
    std::vector<Request*> running_, waiting_;
    BodyBuilder rebuilder_;
    Compressor recompressor_;
    simdjson::ondemand::parser reply_parser_;
    uint64_t seed_ = 0x9e3779b97f4a7c15ull;
    std::thread thread_;
    RateLimit retry_rl_, fail_rl_, item_rl_;
};

}  // namespace hbf::httpout
