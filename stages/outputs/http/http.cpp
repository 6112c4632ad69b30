// output "http": POSTs events to an HTTP collector (another hbforward, Vector, Fluent Bit,
// Elasticsearch's _bulk, Splunk's HEC), acknowledged per event from the server's answers.
//
// The output thread cuts batches into requests (max_events, max_bytes, max_wait), builds and
// compresses each body from the events' JSON text, and hands it to the Sender's I/O thread
// (libcurl multi). A 2xx delivers a request's events; 408, 429, 5xx and connection errors are
// retried with backoff (Retry-After honoured) until delivered or delivery_timeout; any other
// status fails them for good. When max_inflight requests are out, write() waits for one to come
// back: the output's queue fills and the inputs slow down, memory stays bounded.
#include <cstring>

#include "body.h"
#include "registry.h"
#include "sender.h"

namespace hbf::stages {
namespace {

using namespace hbf::httpout;

struct Batching {
    size_t max_events = 1000;
    size_t max_bytes = 1u << 20;
    std::chrono::nanoseconds max_wait = std::chrono::seconds(1);
};

bool truthy(const std::string& v, bool& out) {
    if (v == "true") out = true;
    else if (v == "false") out = false;
    else return false;
    return true;
}

struct HttpOutOptions {
    std::string url;
    std::string format = "ndjson";
    std::string compression = "none";
    int64_t compression_level = 0;
    StringMap batch;
    int64_t max_inflight = 4;
    StringMap headers, auth, tls;
    std::string proxy;
    Duration request_timeout = std::chrono::seconds(30);
    Duration connect_timeout = std::chrono::seconds(10);
    Duration retry_backoff = std::chrono::milliseconds(100);
    Duration retry_backoff_max = std::chrono::seconds(30);
    Duration delivery_timeout{0};
    Duration flush_timeout = std::chrono::seconds(5);
    std::optional<std::string> index;
    std::string es_action = "index";
    std::string sourcetype, source, host, time_field;
};

using HO = HttpOutOptions;
const OptionSchema<HO> kHttpOutSchema{
    {"url", &HO::url,
     "Where to POST: http://host:port/path or https://... (Elasticsearch: .../_bulk; Splunk: .../services/collector/event).",
     required{}},
    {"format", &HO::format, "ndjson | json_array | elasticsearch_bulk | splunk_hec."},
    {"compression", &HO::compression, "none | gzip | zstd (Content-Encoding)."},
    {"compression_level", &HO::compression_level, "0 = the default: gzip 1 (fastest), zstd 3; gzip 1-9, zstd 1-19."},
    {"batch", &HO::batch, "{ max_events = 1000, max_bytes = \"1MiB\", max_wait = \"1s\" }: when a request is sent."},
    {"max_inflight", &HO::max_inflight, "Requests out at once (each on its own kept-alive connection); more waits: backpressure.",
     between{1, 256}},
    {"headers", &HO::headers, "Extra request headers, name = \"value\"."},
    {"auth", &HO::auth, "{ type = \"basic\", username, password }, { type = \"bearer\", token } or { type = \"splunk\", token }."},
    {"tls", &HO::tls, "{ ca = \"ca.pem\", verify = true, cert = \"client.pem\", key = \"client.key\" }; verification is on by default."},
    {"proxy", &HO::proxy, "HTTP proxy URL; empty = connect directly (proxy environment variables are ignored)."},
    {"request_timeout", &HO::request_timeout, "A request with no complete answer within this time is retried.", at_least{1e-9}},
    {"connect_timeout", &HO::connect_timeout, "Time allowed to connect (and complete TLS).", at_least{1e-9}},
    {"retry_backoff", &HO::retry_backoff, "First retry delay; doubled each attempt, with jitter, up to retry_backoff_max.", at_least{1e-9}},
    {"retry_backoff_max", &HO::retry_backoff_max, "Longest delay between retries (a server's Retry-After is honoured as given).",
     at_least{1e-9}},
    {"delivery_timeout", &HO::delivery_timeout, "How long a request may be retried; 0 = until delivered. Expired = failed upstream."},
    {"flush_timeout", &HO::flush_timeout,
     "At shutdown, how long to wait for answers before reporting the rest failed (keep it under shutdown_timeout)."},
    {"index", &HO::index,
     "elasticsearch_bulk: index name, strftime pattern of the receive time in UTC (\"healthbot-%Y.%m.%d\"); splunk_hec: the HEC index.",
     shown{"hbforward"}},
    {"es_action", &HO::es_action, "elasticsearch_bulk: index | create (data streams need create).", one_of{"index", "create"}},
    {"sourcetype", &HO::sourcetype, "splunk_hec: the events' sourcetype; empty = the token's default."},
    {"source", &HO::source, "splunk_hec: the events' source."},
    {"host", &HO::host, "splunk_hec: the events' host."},
    {"time_field", &HO::time_field,
     "splunk_hec: field holding the event time (epoch seconds/ms or RFC 3339); empty = the receive time."},
};

void check_url(const std::string& url, const StageConfig& c) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        c.problem("url", "url must start with http:// or https://, e.g. \"https://collector:8443/ingest\"");
        return;
    }
    CURLU* u = curl_url();
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK) c.problem("url", "url \"" + url + "\" cannot be parsed: " + curl_url_strerror(uc));
}

void parse_encoding(const HttpOutOptions& in, const StageConfig& c, SenderOptions& o) {
    if (!parse_format(in.format, o.body.format))
        c.problem("format", "format must be ndjson, json_array, elasticsearch_bulk or splunk_hec");
    if (!parse_compression(in.compression, o.compression)) c.problem("compression", "compression must be none, gzip or zstd");
    int64_t level = in.compression_level;
    if (level < 0 || level > 19 || (o.compression == Compression::gzip && level > 9))
        c.problem("compression_level", "compression_level must be 0 (the default), 1-9 for gzip or 1-19 for zstd");
    o.compression_level = int(level);
}

// batch = { max_events, max_bytes, max_wait }: a key left out keeps its default.
void parse_batching(const StringMap& batch, const StageConfig& c, Batching& batching) {
    for (auto& [k, v] : batch) {
        if (k == "max_events") {
            auto n = parse_size(v);
            if (!n || *n < 1 || *n > 1000000) c.problem("batch", "batch.max_events must be between 1 and 1000000");
            else batching.max_events = *n;
        } else if (k == "max_bytes") {
            auto n = parse_size(v);
            if (!n || *n < 1024 || *n > (1ull << 30)) c.problem("batch", "batch.max_bytes must be a size between 1KiB and 1GiB, e.g. \"1MiB\"");
            else batching.max_bytes = *n;
        } else if (k == "max_wait") {
            auto d = parse_duration(v);
            if (!d || d->count() <= 0) c.problem("batch", "batch.max_wait must be a positive duration, e.g. \"1s\"");
            else batching.max_wait = *d;
        } else {
            c.problem("batch", "unknown key '" + k + "' in batch (use max_events, max_bytes, max_wait)");
        }
    }
}

// Content-Type and Content-Encoding come first, then the user's headers in their order.
void add_headers(const StringMap& headers, const StageConfig& c, SenderOptions& o) {
    o.headers.push_back(std::string("Content-Type: ") + content_type(o.body.format));
    if (const char* ce = content_encoding(o.compression)) o.headers.push_back(std::string("Content-Encoding: ") + ce);
    for (auto& [k, v] : headers) {
        if (k.empty() || k.find_first_of(": \r\n") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
            c.problem("headers", "header \"" + k + "\" is not a valid header name and value");
        o.headers.push_back(k + ": " + v);
    }
}

// basic sets curl's credentials; bearer and splunk add an Authorization header after the others.
void parse_auth(const StringMap& auth, const StageConfig& c, SenderOptions& o) {
    std::string type, user, pass, token;
    for (auto& [k, v] : auth) {
        if (k == "type") type = v;
        else if (k == "username") user = v;
        else if (k == "password") pass = v;
        else if (k == "token") token = v;
        else c.problem("auth", "unknown key '" + k + "' in auth (use type, username, password, token)");
    }
    if (type == "basic") {
        if (user.empty()) c.problem("auth", "auth type \"basic\" needs a username (and a password)");
        o.username = user;
        o.password = pass;
    } else if (type == "bearer" || type == "splunk") {
        if (token.empty()) c.problem("auth", "auth type \"" + type + "\" needs a non-empty token");
        o.headers.push_back(std::string("Authorization: ") + (type == "bearer" ? "Bearer " : "Splunk ") + token);
    } else if (type != "none") {
        c.problem("auth", "auth type must be \"none\", \"basic\", \"bearer\" or \"splunk\"");
    }
}

void parse_tls(const StringMap& tls, const StageConfig& c, SenderOptions& o) {
    for (auto& [k, v] : tls) {
        if (k == "ca") o.tls_ca = v;
        else if (k == "cert") o.tls_cert = v;
        else if (k == "key") o.tls_key = v;
        else if (k == "verify") {
            if (!truthy(v, o.tls_verify)) c.problem("tls", "tls.verify must be true or false");
        } else c.problem("tls", "unknown key '" + k + "' in tls (use ca, verify, cert, key)");
    }
    if (o.tls_cert.empty() != o.tls_key.empty()) c.problem("tls", "a client certificate needs both tls.cert and tls.key");
}

// index, es_action and the splunk_hec fields; each is checked against the body format.
void parse_format_fields(const HttpOutOptions& in, const StageConfig& c, BodyOptions& body) {
    if (in.index) {
        if (body.format == Format::elasticsearch_bulk) body.es_index = *in.index;
        else if (body.format == Format::splunk_hec) body.hec_index = *in.index;
        else c.problem("index", "index applies to format = \"elasticsearch_bulk\" or \"splunk_hec\"");
        if (in.index->empty()) c.problem("index", "index must not be empty");
    }
    body.es_action = in.es_action;
    for (auto k : {"sourcetype", "source", "host", "time_field"})
        if (c.has(k) && body.format != Format::splunk_hec) c.problem(k, std::string(k) + " applies to format = \"splunk_hec\"");
    body.hec_sourcetype = in.sourcetype;
    body.hec_source = in.source;
    body.hec_host = in.host;
    body.hec_time_field = in.time_field;
}

// Every problem is recorded in c; the caller builds nothing from options that have one.
// The helpers run in the order of the options, so problems are reported in that order.
SenderOptions parse_options(const HttpOutOptions& in, const StageConfig& c, Batching& batching) {
    SenderOptions o;
    o.url = in.url;
    check_url(o.url, c);
    parse_encoding(in, c, o);
    parse_batching(in.batch, c, batching);
    o.max_inflight = size_t(in.max_inflight);
    add_headers(in.headers, c, o);
    if (c.has("auth")) parse_auth(in.auth, c, o);
    if (c.has("tls")) parse_tls(in.tls, c, o);
    o.proxy = in.proxy;

    o.request_timeout = in.request_timeout;
    o.connect_timeout = in.connect_timeout;
    o.retry_initial = in.retry_backoff;
    o.retry_max = in.retry_backoff_max;
    o.delivery_timeout = in.delivery_timeout;
    if (o.retry_max < o.retry_initial) c.problem("retry_backoff_max", "retry_backoff_max must not be below retry_backoff");

    parse_format_fields(in, c, o.body);
    c.stop_if_problems();  // before a compressor or sender is made from them
    return o;
}

class HttpOut final : public Output {
public:
    HttpOut(const HttpOutOptions& o, const StageConfig& c)
        : opts_(parse_options(o, c, batching_)), builder_(opts_.body), compressor_(opts_.compression, opts_.compression_level),
          sender_(opts_), flush_timeout_(o.flush_timeout) {}

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        sender_.start(ctx);
        ctx.log().info("posting {} to {} (max_inflight {})", to_string(opts_.body.format), opts_.url, opts_.max_inflight);
    }

    void write(BatchPtr b) override {
        auto* h = new Held;
        const size_t n = b->size();
        const int64_t received = b->received_ns;
        h->batch = std::move(b);
        h->pending.store(uint32_t(n) + 1);  // + this call's own hold
        Batch& batch = *h->batch;
        for (size_t i = 0; i < n; ++i) {
            std::string_view ev = batch.event(i);
            // + 1: a JSON array's closing bracket, so a body never passes max_bytes (a server's max_body).
            if (cur_ && !cur_->items.empty() && cur_->body.size() + ev.size() + builder_.overhead() + 1 > batching_.max_bytes) submit();
            if (!cur_ && !begin()) {
                // The shutdown timeout passed while every request was out: the rest is failed.
                sender_.settle(h, uint32_t(n - i), AckStatus::failed, "shutdown timeout passed while max_inflight requests were out");
                break;
            }
            builder_.add(cur_->body, ev, batch.capacity_after(i), received);
            cur_->items.push_back({h, uint32_t(i)});
            if (cur_->items.size() >= batching_.max_events || cur_->body.size() + 1 >= batching_.max_bytes) submit();
        }
        sender_.release_hold(h);  // settles an empty batch
        if (cur_ && !cur_->items.empty() && std::chrono::steady_clock::now() - cur_started_ >= batching_.max_wait) submit();
    }

    void tick() override {
        if (cur_ && !cur_->items.empty() && std::chrono::steady_clock::now() - cur_started_ >= batching_.max_wait) submit();
    }

    void flush(std::chrono::steady_clock::time_point deadline) override {
        if (cur_ && !cur_->items.empty()) submit();
        if (cur_) {
            sender_.give_back(cur_);
            cur_ = nullptr;
        }
        deadline = std::min(deadline, std::chrono::steady_clock::now() + flush_timeout_);
        if (sender_.wait_idle(deadline, ctx_->abort_flag())) return;
        uint64_t lost = sender_.abort_all("not delivered when the shutdown timeout passed");
        std::string failure = fmt::format("{} events undelivered at shutdown: {} did not accept them in time", lost, opts_.url);
        ctx_->log().error("{}", failure);
        ctx_->set_failed(failure);
    }

    void stop() override { sender_.stop(); }

private:
    static const char* to_string(Format f) {
        switch (f) {
            case Format::ndjson: return "ndjson";
            case Format::json_array: return "a JSON array";
            case Format::elasticsearch_bulk: return "Elasticsearch bulk requests";
            case Format::splunk_hec: return "Splunk HEC events";
        }
        return "";
    }

    bool begin() {
        cur_ = sender_.acquire(ctx_->abort_flag());
        if (!cur_) return false;
        builder_.begin(cur_->body);
        cur_started_ = std::chrono::steady_clock::now();
        return true;
    }

    void submit() {
        builder_.end(cur_->body);
        Request* r = std::exchange(cur_, nullptr);
        if (opts_.compression == Compression::none) {
            r->wire.swap(r->body);
        } else {
            try {
                compressor_.compress(r->body, r->wire);
            } catch (const std::exception& e) {  // the events are failed, never left unsettled
                sender_.fail_unsent(r, std::string("cannot compress the request: ") + e.what());
                return;
            }
        }
        sender_.submit(r);
    }

    Batching batching_;
    SenderOptions opts_;
    BodyBuilder builder_;
    Compressor compressor_;
    Sender sender_;
    std::chrono::nanoseconds flush_timeout_;
    Request* cur_ = nullptr;
    std::chrono::steady_clock::time_point cur_started_;
    StageContext* ctx_ = nullptr;
};

HBF_REGISTER_OUTPUT("http", HttpOut, kHttpOutSchema,
                    "POSTs events to an HTTP collector (ndjson, JSON array, Elasticsearch bulk, Splunk HEC), acknowledged per request.");

}  // namespace
}  // namespace hbf::stages
