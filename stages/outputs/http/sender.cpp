#include "sender.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace hbf::httpout {

namespace {
// What is kept of a reply: enough for an Elasticsearch bulk reply of a large request, a short
// excerpt of anything else (it is only logged).
constexpr size_t kBulkReplyCap = 64u << 20;
constexpr size_t kReplyCap = 64u << 10;
constexpr int64_t kMaxRetryAfterS = 3600;

long to_ms(std::chrono::nanoseconds d) { return long(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); }

size_t on_reply(char* p, size_t size, size_t n, void* user) {
    auto* r = static_cast<Request*>(user);
    size_t len = size * n;
    if (r->reply.size() < r->reply_cap) r->reply.append(p, std::min(len, r->reply_cap - r->reply.size()));
    return len;
}

std::string excerpt(std::string_view s, size_t n = 200) {
    std::string out;
    for (char c : s.substr(0, n)) out.push_back(c == '\n' || c == '\r' ? ' ' : c);
    if (s.size() > n) out += "...";
    return out;
}

std::once_flag g_curl_init;
}  // namespace

Sender::Sender(SenderOptions o)
    : o_(std::move(o)), rebuilder_(o_.body), recompressor_(o_.compression, o_.compression_level) {
    std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Sender::~Sender() {
    stop();
    for (auto& r : pool_)
        if (r->easy) curl_easy_cleanup(r->easy);
    if (multi_) curl_multi_cleanup(multi_);
    if (headers_) curl_slist_free_all(headers_);
}

void Sender::start(StageContext& ctx) {
    ctx_ = &ctx;
    auto& reg = MetricsRegistry::global();
    const std::string& st = ctx.name();
    const char* failed_help = "Events failed for good, by reason: rejected (a 4xx), item (an Elasticsearch item refused), "
                              "timeout (delivery_timeout), shutdown (undelivered when the shutdown timeout passed).";
    const char* req_help = "Requests answered, by status class (error = no answer: connection, TLS, timeout).";
    m_.delivered = &reg.counter("hbf_http_out_delivered_total", "Events the server accepted (2xx).", {{"stage", st}});
    m_.retried = &reg.counter("hbf_http_out_retries_total", "Requests sent again after a 408, 429, 5xx or a connection error.", {{"stage", st}});
    m_.failed_rejected = &reg.counter("hbf_http_out_failed_total", failed_help, {{"stage", st}, {"reason", "rejected"}});
    m_.failed_item = &reg.counter("hbf_http_out_failed_total", failed_help, {{"stage", st}, {"reason", "item"}});
    m_.failed_timeout = &reg.counter("hbf_http_out_failed_total", failed_help, {{"stage", st}, {"reason", "timeout"}});
    m_.failed_shutdown = &reg.counter("hbf_http_out_failed_total", failed_help, {{"stage", st}, {"reason", "shutdown"}});
    m_.status_2xx = &reg.counter("hbf_http_out_requests_total", req_help, {{"stage", st}, {"status", "2xx"}});
    m_.status_3xx = &reg.counter("hbf_http_out_requests_total", req_help, {{"stage", st}, {"status", "3xx"}});
    m_.status_4xx = &reg.counter("hbf_http_out_requests_total", req_help, {{"stage", st}, {"status", "4xx"}});
    m_.status_5xx = &reg.counter("hbf_http_out_requests_total", req_help, {{"stage", st}, {"status", "5xx"}});
    m_.status_error = &reg.counter("hbf_http_out_requests_total", req_help, {{"stage", st}, {"status", "error"}});
    m_.inflight = &reg.gauge("hbf_http_out_inflight_requests", "Requests sent and not yet answered.", {{"stage", st}});
    m_.duration = &reg.histogram("hbf_http_out_request_seconds", "Time from sending a request to its answer.", {{"stage", st}});

    multi_ = curl_multi_init();
    if (!multi_) throw std::runtime_error("cannot create a libcurl multi handle");
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, long(o_.max_inflight));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, long(o_.max_inflight));
    // libcurl sends "Expect: 100-continue" before large bodies and waits a second for it: off.
    headers_ = curl_slist_append(headers_, "Expect:");
    for (const auto& h : o_.headers) headers_ = curl_slist_append(headers_, h.c_str());

    // max_inflight requests on the wire, one more being built by the output thread.
    for (size_t i = 0; i < o_.max_inflight + 1; ++i) {
        auto r = std::make_unique<Request>();
        r->easy = curl_easy_init();
        if (!r->easy) throw std::runtime_error("cannot create a libcurl handle");
        set_up(*r);
        free_.push_back(r.get());
        pool_.push_back(std::move(r));
    }
    thread_ = std::thread([this] { loop(); });
}

// A request's handle as every request is sent: the URL, headers, timeouts, TLS, proxy and auth
// of the options.
void Sender::set_up(Request& r) {
    CURL* e = r.easy;
    curl_easy_setopt(e, CURLOPT_URL, o_.url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r.errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to_ms(o_.request_timeout));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, to_ms(o_.connect_timeout));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, o_.proxy.c_str());  // "" = none, whatever the environment says
    curl_easy_setopt(e, CURLOPT_SSLVERSION, long(CURL_SSLVERSION_TLSv1_2));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o_.tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o_.tls_verify ? 2L : 0L);
    if (!o_.tls_ca.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, o_.tls_ca.c_str());
    if (!o_.tls_cert.empty()) curl_easy_setopt(e, CURLOPT_SSLCERT, o_.tls_cert.c_str());
    if (!o_.tls_key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, o_.tls_key.c_str());
    if (!o_.username.empty() || !o_.password.empty()) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, long(CURLAUTH_BASIC));
        curl_easy_setopt(e, CURLOPT_USERNAME, o_.username.c_str());
        curl_easy_setopt(e, CURLOPT_PASSWORD, o_.password.c_str());
    }
    r.reply_cap = o_.body.format == Format::elasticsearch_bulk ? kBulkReplyCap : kReplyCap;
}

void Sender::stop() {
    {
        std::lock_guard lk(mu_);
        quit_ = true;
    }
    if (multi_) curl_multi_wakeup(multi_);
    if (thread_.joinable()) thread_.join();
}

Request* Sender::acquire(const std::atomic<bool>& abort) {
    std::unique_lock lk(mu_);
    while (free_.empty()) {
        if (abort.load()) return nullptr;
        cv_.wait_for(lk, std::chrono::milliseconds(50));
    }
    Request* r = free_.back();
    free_.pop_back();
    return r;
}

void Sender::submit(Request* r) {
    {
        std::lock_guard lk(mu_);
        submitted_.push_back(r);
    }
    curl_multi_wakeup(multi_);
}

void Sender::give_back(Request* r) {
    std::lock_guard lk(mu_);
    free_.push_back(r);
    cv_.notify_all();
}

bool Sender::wait_idle(std::chrono::steady_clock::time_point deadline, const std::atomic<bool>& abort) {
    std::unique_lock lk(mu_);
    while (free_.size() != pool_.size()) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline || abort.load()) return false;
        cv_.wait_until(lk, std::min(deadline, now + std::chrono::milliseconds(50)));
    }
    return true;
}

uint64_t Sender::abort_all(const std::string& why) {
    std::unique_lock lk(mu_);
    abort_ = true;
    abort_why_ = why;
    abort_done_ = false;
    lk.unlock();
    curl_multi_wakeup(multi_);
    lk.lock();
    cv_.wait(lk, [&] { return abort_done_ || !thread_.joinable(); });
    return aborted_events_;
}

int64_t Sender::backoff_ns(int attempts) {
    int64_t d = o_.retry_initial.count();
    for (int i = 1; i < attempts && d < o_.retry_max.count(); ++i) d *= 2;
    d = std::min<int64_t>(d, o_.retry_max.count());
    // Jitter: somewhere in [d/2, d], so that many forwarders do not retry in step.
    seed_ ^= seed_ << 13;
    seed_ ^= seed_ >> 7;
    seed_ ^= seed_ << 17;
    return d / 2 + int64_t(seed_ % uint64_t(d / 2 + 1));
}

void Sender::loop() {
    std::vector<Request*> incoming;
    for (;;) {
        bool quit, abort;
        {
            std::lock_guard lk(mu_);
            quit = quit_;
            abort = abort_ && !abort_done_;
            incoming.insert(incoming.end(), submitted_.begin(), submitted_.end());
            submitted_.clear();
        }
        if (abort || quit) {
            fail_everything(abort ? abort_why_ : std::string("the output stopped"), incoming);
            if (quit) return;
            continue;
        }
        int64_t now = mono_ns();
        // Retries that are due go first: they are the oldest events.
        for (size_t i = 0; i < waiting_.size() && running_.size() < o_.max_inflight;) {
            if (waiting_[i]->due_ns <= now) {
                launch(waiting_[i]);
                waiting_.erase(waiting_.begin() + long(i));
            } else {
                ++i;
            }
        }
        size_t n = 0;
        for (; n < incoming.size() && running_.size() < o_.max_inflight; ++n) launch(incoming[n]);
        incoming.erase(incoming.begin(), incoming.begin() + long(n));

        int still = 0;
        curl_multi_perform(multi_, &still);
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            Request* r = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&r));
            CURLcode rc = msg->data.result;
            done(r, rc);
        }
        // Sleep until a socket is ready, a retry is due, or submit/stop wakes us.
        int64_t wait_ms = 100;
        now = mono_ns();
        for (Request* r : waiting_) wait_ms = std::min<int64_t>(wait_ms, std::max<int64_t>(0, (r->due_ns - now) / 1000000 + 1));
        if (!incoming.empty() && running_.size() < o_.max_inflight) wait_ms = 0;
        curl_multi_poll(multi_, nullptr, 0, int(wait_ms), nullptr);
    }
}

// At an abort or a stop: everything still held fails, running, waiting for a retry or not yet sent.
void Sender::fail_everything(const std::string& why, std::vector<Request*>& incoming) {
    uint64_t events = 0;
    for (Request* r : running_) {
        curl_multi_remove_handle(multi_, r->easy);
        m_.inflight->add(-1);
    }
    for (auto* list : {&running_, &waiting_, &incoming})
        for (Request* r : *list) {
            events += r->items.size();
            m_.failed_shutdown->add(r->items.size());
            settle_all(r, AckStatus::failed, why);
        }
    running_.clear();
    waiting_.clear();
    incoming.clear();
    std::lock_guard lk(mu_);
    aborted_events_ += events;
    abort_done_ = true;
    cv_.notify_all();
}

void Sender::launch(Request* r) {
    int64_t now = mono_ns();
    if (r->first_ns == 0) r->first_ns = now;
    r->sent_ns = now;
    r->reply.clear();
    r->errbuf[0] = 0;
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->wire.data());
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(r->wire.size()));
    CURLMcode mc = curl_multi_add_handle(multi_, r->easy);
    if (mc != CURLM_OK) {
        retry_or_fail(r, 0, std::string("libcurl refused the request: ") + curl_multi_strerror(mc));
        return;
    }
    m_.inflight->add(1);
    running_.push_back(r);
}

void Sender::done(Request* r, CURLcode rc) {
    curl_multi_remove_handle(multi_, r->easy);
    running_.erase(std::find(running_.begin(), running_.end(), r));
    m_.inflight->add(-1);
    m_.duration->observe_ns(mono_ns() - r->sent_ns);
    if (rc != CURLE_OK) {
        m_.status_error->add();
        std::string why = fmt::format("POST {}: {}", o_.url, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
        retry_or_fail(r, 0, why);
        return;
    }
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) {
        m_.status_2xx->add();
        ctx_->metrics().bytes_out.add(r->wire.size());
        if (o_.body.format == Format::elasticsearch_bulk) {
            BulkReply br = read_bulk_reply(reply_parser_, r->reply, r->items.size(), r->results);
            if (!br.problem.empty()) {
                // The server took the request; what it did with each document is unknown. Counted as
                // delivered (sending it again could only duplicate), and said so.
                log_limited(item_rl_, ctx_->log(), spdlog::level::warn,
                            "POST {} answered {} with an unreadable bulk reply ({}), events counted delivered: {}", o_.url, code,
                            br.problem, excerpt(r->reply));
            } else if (br.errors) {
                settle_bulk(r, br);
                return;
            }
        }
        settle_all(r, AckStatus::delivered, {});
        return;
    }
    if (code == 408 || code == 429 || code >= 500) {
        (code >= 500 ? m_.status_5xx : m_.status_4xx)->add();
        curl_off_t ra = 0;
        if (code == 429 || code == 503) curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &ra);
        retry_or_fail(r, std::min<int64_t>(ra, kMaxRetryAfterS), fmt::format("POST {} answered {}: {}", o_.url, code, excerpt(r->reply)));
        return;
    }
    // Anything else (400, 401, 403, 404, 413, a redirect...) will not get better by sending again.
    (code >= 400 ? m_.status_4xx : m_.status_3xx)->add();
    m_.failed_rejected->add(r->items.size());
    std::string why = fmt::format("POST {} answered {}: {}", o_.url, code, excerpt(r->reply));
    log_limited(fail_rl_, ctx_->log(), spdlog::level::err, "{} events failed for good: {}", r->items.size(), why);
    settle_all(r, AckStatus::failed, why, true);
}

void Sender::retry_or_fail(Request* r, int64_t retry_after_s, const std::string& why) {
    ++r->attempts;
    int64_t now = mono_ns();
    int64_t delay = retry_after_s > 0 ? retry_after_s * 1000000000 : backoff_ns(r->attempts);
    int64_t limit = o_.delivery_timeout.count();
    if (limit > 0) {
        int64_t deadline = r->first_ns + limit;
        if (now >= deadline) {
            m_.failed_timeout->add(r->items.size());
            std::string msg = fmt::format("not delivered within delivery_timeout ({} attempts); last error: {}", r->attempts, why);
            log_limited(fail_rl_, ctx_->log(), spdlog::level::err, "{} events failed: {}", r->items.size(), msg);
            settle_all(r, AckStatus::failed, msg);
            return;
        }
        delay = std::min(delay, deadline - now);  // one last attempt at the deadline
    }
    m_.retried->add();
    r->last_error = why;
    r->due_ns = now + delay;
    log_limited(retry_rl_, ctx_->log(), spdlog::level::warn, "{}; {} events sent again in {} ms (attempt {})", why, r->items.size(),
                delay / 1000000, r->attempts + 1);
    waiting_.push_back(r);
}

void Sender::settle(Held* h, uint32_t n, AckStatus s, std::string_view why, bool final) { settle_impl(h, n, s, why, true, final); }

void Sender::settle_impl(Held* h, uint32_t n, AckStatus s, std::string_view why, bool events, bool final) {
    if (n == 0) return;
    {
        std::lock_guard lk(h->m);
        if (events && s == AckStatus::failed && !final) h->retryable = true;
        if (!events) {
        } else if (s == AckStatus::delivered) {
            h->delivered += n;
        } else if (int(s) > int(h->worst)) {
            h->worst = s;
            h->reason.assign(why);
        }
    }
    if (events && s == AckStatus::delivered) m_.delivered->add(n);
    if (h->pending.fetch_sub(n, std::memory_order_acq_rel) != n) return;
    // The last event of the batch: its acks settle now, with an explicit status either way.
    if (h->worst == AckStatus::failed && !h->retryable) h->batch->mark_failed_for_good(h->reason);
    else h->batch->mark(h->worst, h->reason);
    ctx_->metrics().events_out.add(h->delivered);
    delete h;
}

void Sender::settle_all(Request* r, AckStatus s, std::string_view why, bool final) {
    auto& items = r->items;
    for (size_t i = 0; i < items.size();) {
        size_t j = i + 1;
        while (j < items.size() && items[j].held == items[i].held) ++j;
        settle(items[i].held, uint32_t(j - i), s, why, final);
        i = j;
    }
    finish(r);
}

void Sender::settle_bulk(Request* r, const BulkReply& br) {
    size_t kept = 0, failed = 0;
    std::string why = "elasticsearch refused the document: " + br.first_error;
    for (size_t i = 0; i < r->items.size(); ++i) {
        Item it = r->items[i];
        switch (r->results[i]) {
            case ItemResult::ok: settle(it.held, 1, AckStatus::delivered, {}); break;
            case ItemResult::failed:
                ++failed;
                settle(it.held, 1, AckStatus::failed, why, true);  // the document itself was refused
                break;
            case ItemResult::retry: r->items[kept++] = it; break;
        }
    }
    if (failed) {
        m_.failed_item->add(failed);
        log_limited(item_rl_, ctx_->log(), spdlog::level::err, "POST {}: {} of {} documents refused for good (first: {})", o_.url,
                    failed, r->items.size(), br.first_error);
    }
    r->items.resize(kept);
    if (kept == 0) {
        finish(r);
        return;
    }
    rebuild(r);
    retry_or_fail(r, 0, fmt::format("POST {}: {} documents answered 429 (too many requests)", o_.url, kept));
}

void Sender::rebuild(Request* r) {
    rebuilder_.begin(r->body);
    for (const Item& it : r->items) {
        Batch& b = *it.held->batch;
        rebuilder_.add(r->body, b.event(it.index), b.capacity_after(it.index), b.received_ns);
    }
    rebuilder_.end(r->body);
    if (o_.compression == Compression::none) r->wire.swap(r->body);
    else recompressor_.compress(r->body, r->wire);
}

void Sender::finish(Request* r) {
    r->items.clear();
    r->body.clear();
    r->wire.clear();
    r->attempts = 0;
    r->first_ns = 0;
    r->last_error.clear();
    // A large reply or body is not kept between requests.
    if (r->reply.capacity() > kReplyCap) std::string().swap(r->reply);
    std::lock_guard lk(mu_);
    free_.push_back(r);
    cv_.notify_all();
}

}  // namespace hbf::httpout
