// output "forward": sends events to Fluentd, Fluent Bit or another hbforward with the Forward
// protocol v1, as PackedForward frames (CompressedPackedForward with compression = "gzip").
//
// Each batch becomes one frame per distinct tag: entries [EventTime, record] converted from the
// events' JSON text with simdjson On-Demand straight into msgpack. Frames wait in `unsent_` and
// go to a server picked by mode (failover: the first one reachable, in order; balance: round
// robin). With require_ack a frame carries a `chunk` id and stays in its server's in-flight list
// until {"ack": id} comes back; a frame not acked within ack_timeout, or whose connection broke,
// goes back to the front of `unsent_` (duplicates possible, losses not). Without require_ack a
// frame is delivered once written to the socket. A batch's acks settle when all its frames did.
// Everything runs on the output's thread: write() returns once the batch's frames are sent and
// no more than kMaxInflight await acks, so a slow or absent server backs the pipeline up.
#include <deque>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>
#include <zlib.h>

#include <msgpuck.h>

#include "../../inputs/forward/to_json.h"
#include "field_template.h"
#include "forward/event_time.h"
#include "forward/handshake.h"
#include "forward/scan.h"
#include "json_msgpack.h"
#include "host_port.h"
#include "net/link.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using namespace hbf::forward;
using net::Link;

constexpr size_t kMaxInflight = 32;
constexpr int64_t kConnectTimeoutNs = 5'000'000'000;
constexpr int64_t kWriteTimeoutNs = 30'000'000'000;
constexpr int64_t kBackoffMinNs = 200'000'000, kBackoffMaxNs = 10'000'000'000;

struct Hold {  // one per batch written
    BatchPtr batch;
    int frames_left = 0;
    bool failed = false;
    std::string reason;
};

struct Chunk {
    std::string id, frame;
    Hold* hold = nullptr;
    size_t events = 0;
    int64_t sent_ns = 0;
};

struct Peer {
    std::string host, name;
    uint16_t port = 0;
    Link link;
    std::deque<Chunk*> inflight;
    std::string rbuf;
    size_t rfill = 0;
    MsgpackScanner scanner{1 << 20};
    int64_t retry_at = 0, backoff = kBackoffMinNs;
    bool down_logged = false;
    Gauge* up = nullptr;
};

struct Group {  // the entries of one tag within a batch
    std::string tag, entries;
    size_t events = 0;
};

std::string gzip(std::string_view in, z_stream& zs) {
    deflateReset(&zs);
    std::string out(deflateBound(&zs, uLong(in.size())) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = uInt(in.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = uInt(out.size());
    deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    return out;
}

struct ForwardOutOptions {
    StringList servers;
    std::string mode = "failover";
    std::string tag = "hbforward";
    std::string time_field;
    std::string compression = "none";
    bool require_ack = false;
    Duration ack_timeout = std::chrono::seconds(30);
    std::string shared_key;
    std::optional<std::string> self_hostname;
    std::string username, password;
    StringMap tls;
};

using FO = ForwardOutOptions;
const OptionSchema<FO> kForwardOutSchema{
    {"servers", &FO::servers, "Forward servers, host:port, in failover order.", required{}},
    {"mode", &FO::mode, "\"failover\": the first reachable server, in order; \"balance\": round robin.", one_of{"failover", "balance"}},
    {"tag", &FO::tag, "Tag template: literal text and {field} / {a.b} / {field|fallback}, as the kafka topic."},
    {"time_field", &FO::time_field, "Event field with the time (RFC 3339 text or epoch seconds); default the receive time."},
    {"compression", &FO::compression, "none | gzip (CompressedPackedForward).", one_of{"none", "gzip"}},
    {"require_ack", &FO::require_ack, "Send the chunk option: an event is delivered once the server acknowledged it."},
    {"ack_timeout", &FO::ack_timeout, "With require_ack: a frame not acknowledged by then is sent again.", at_least{1e-9}},
    {"shared_key", &FO::shared_key, "Answer the server's HELO handshake with this key; empty = no handshake."},
    {"self_hostname", &FO::self_hostname, "Host name sent in PING; default this host's name.", shown{""}},
    {"username", &FO::username, "User for a server that asks for one in HELO."},
    {"password", &FO::password, "That user's password."},
    {"tls", &FO::tls, "{ ca = \"ca.pem\", verify = true, cert, key }: connect with TLS."},
};

class ForwardOut final : public Output {
public:
    ForwardOut(const ForwardOutOptions& o, const StageConfig& c) {
        for (const auto& s : o.servers) {
            HostPort hp;
            if (parse_host_port(s, hp) != HostPortError::none || hp.port == 0) {
                c.problem("servers", "each server must be host:port, e.g. \"10.0.0.7:24224\": \"" + s + "\"");
                continue;
            }
            auto& p = peers_.emplace_back(std::make_unique<Peer>());
            p->host = hp.host;
            p->port = hp.port;
            p->name = s;
        }
        if (o.servers.empty()) c.problem("servers", "servers must name at least one host:port");
        balance_ = o.mode == "balance";
        try {
            tag_ = FieldTemplate(o.tag);
        } catch (const std::invalid_argument& e) {
            c.problem("tag", std::string("tag: ") + e.what());
        }
        time_field_ = o.time_field;
        if (!time_field_.empty()) {
            time_ptr_ = "/";
            for (char ch : time_field_) time_ptr_ += ch == '.' ? std::string("/") : ch == '~' ? std::string("~0") : ch == '/' ? std::string("~1") : std::string(1, ch);
        }
        gzip_ = o.compression == "gzip";
        require_ack_ = o.require_ack;
        ack_timeout_ = o.ack_timeout.count();
        shared_key_ = o.shared_key;
        username_ = o.username;
        password_ = o.password;
        char host[256] = "";
        self_hostname_ = o.self_hostname ? *o.self_hostname : (gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "hbforward");
        if (c.has("tls")) {
            std::vector<std::string> problems;
            tls_ = net::client_tls_from(o.tls, problems);
            for (const auto& why : problems) c.problem("tls", why);
        }
        deflateInit2(&zs_, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    }

    ~ForwardOut() override {
        deflateEnd(&zs_);
        if (tls_) SSL_CTX_free(tls_);
        for (auto* c : pool_) delete c;
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        auto& reg = MetricsRegistry::global();
        const Labels l{{"stage", ctx.name()}};
        sent_ = &reg.counter("hbf_forward_out_chunks_sent_total", "Frames written to a server (resends included).", l);
        acked_ = &reg.counter("hbf_forward_out_chunks_acked_total", "Frames a server acknowledged ({\"ack\": chunk}).", l);
        resent_ = &reg.counter("hbf_forward_out_chunks_resent_total", "Frames sent again: ack_timeout passed or the connection broke.", l);
        invalid_ = &ctx.metrics().dropped("invalid_json");
        for (auto& p : peers_)
            p->up = &reg.gauge("hbf_forward_out_server_up", "1 while connected to this server.", {{"stage", ctx.name()}, {"server", p->name}});
        ctx.log().info("sending to {} ({}{}{})", peers_.size() == 1 ? peers_[0]->name : std::to_string(peers_.size()) + " servers",
                       balance_ ? "balance" : "failover", require_ack_ ? ", require_ack" : "", gzip_ ? ", gzip" : "");
    }

    void write(BatchPtr b) override {
        Hold* hold = new Hold();
        build_frames(*b, *hold);
        hold->batch = std::move(b);
        if (hold->frames_left == 0) {  // nothing sendable (every event invalid)
            hold->frames_left = 1;
            settle(hold, true, 0);
        }
        // Backpressure: return once the frames are out and the in-flight window has room.
        while (!unsent_.empty() || inflight_count() > kMaxInflight) {
            if (ctx_->abort_flag().load()) {
                fail_all("shutdown timeout: not sent");
                return;
            }
            pump(50'000'000);
        }
    }

    void tick() override { pump(0); }

    void flush(std::chrono::steady_clock::time_point deadline) override {
        while (!unsent_.empty() || inflight_count() > 0) {
            if (std::chrono::steady_clock::now() >= deadline || ctx_->abort_flag().load()) {
                size_t n = unsent_.size() + inflight_count();
                std::string why = fmt::format("{} frames not {} by the shutdown deadline", n, require_ack_ ? "acknowledged" : "sent");
                ctx_->log().error("{}", why);
                ctx_->set_failed(why);
                fail_all(why);
                return;
            }
            pump(50'000'000);
        }
    }

    void stop() override {
        for (auto& p : peers_) p->link.close();
    }

private:
    // --- frames --------------------------------------------------------------------------

    void build_frames(Batch& b, Hold& hold) {
        for (auto& g : groups_) g.entries.clear(), g.events = 0;
        size_t used = 0;
        const EventTime received{b.received_ns / 1'000'000'000, uint32_t(b.received_ns % 1'000'000'000)};
        for (size_t i = 0; i < b.size(); ++i) {
            auto ev = b.event(i);
            simdjson::ondemand::document doc;
            if (parser_.iterate(ev.data(), ev.size(), b.capacity_after(i)).get(doc) != simdjson::SUCCESS) {
                invalid(i, "not JSON");
                continue;
            }
            tag_buf_.clear();
            std::string_view missing;
            if (tag_.is_static()) tag_buf_ = tag_.literal();
            else if (!tag_.render(doc, tag_buf_, &missing)) tag_buf_ = "hbforward";  // a missing field without fallback
            EventTime t = received;
            if (!time_ptr_.empty()) event_time(doc, t);
            doc.rewind();
            Group* g = nullptr;
            for (size_t k = 0; k < used; ++k)
                if (groups_[k].tag == tag_buf_) g = &groups_[k];
            if (!g) {
                if (used == groups_.size()) groups_.emplace_back();
                g = &groups_[used++];
                g->tag = tag_buf_;
            }
            const size_t mark = g->entries.size();
            char hdr[10];
            g->entries.push_back(char(0x92));
            g->entries.append(hdr, size_t(encode_event_time(hdr, t) - hdr));
            if (!json_object_to_msgpack(doc, g->entries)) {
                g->entries.resize(mark);
                invalid(i, "not a JSON object");
                continue;
            }
            ++g->events;
        }
        for (size_t k = 0; k < used; ++k) {
            Group& g = groups_[k];
            if (g.events == 0) continue;
            Chunk* c = make_chunk();
            c->hold = &hold;
            c->events = g.events;
            encode_frame(g, *c);
            ++hold.frames_left;
            unsent_.push_back(c);
        }
    }

    void event_time(simdjson::ondemand::document& doc, EventTime& t) {
        simdjson::ondemand::value v;
        if (doc.at_pointer(time_ptr_).get(v) != simdjson::SUCCESS) return;
        std::string_view s;
        double d;
        if (v.get_string().get(s) == simdjson::SUCCESS) {
            EventTime parsed;
            if (parse_rfc3339(s, parsed)) t = parsed;
        } else if (v.get_double().get(d) == simdjson::SUCCESS && d >= 0 && d < 4294967296.0) {
            t.sec = int64_t(d);
            t.nsec = uint32_t((d - double(t.sec)) * 1e9);
        }
    }

    void invalid(size_t i, const char* why) {
        invalid_->add();
        log_limited(rl_invalid_, ctx_->log(), spdlog::level::warn, "event {} of a batch is {}: dropped", i, why);
    }

    void encode_frame(const Group& g, Chunk& c) {
        std::string_view entries = g.entries;
        std::string packed;
        if (gzip_) {
            packed = gzip(entries, zs_);
            entries = packed;
        }
        if (require_ack_) {
            char raw[16];
            std::memcpy(raw, &chunk_prefix_, 8);
            uint64_t n = ++chunk_seq_;
            std::memcpy(raw + 8, &n, 8);
            c.id.clear();
            write_base64(c.id, raw, 16);
        }
        std::string& f = c.frame;
        f.clear();
        f.reserve(entries.size() + g.tag.size() + 64);
        char hdr[16];
        f.append(hdr, size_t(mp_encode_array(hdr, 3) - hdr));
        f.append(hdr, size_t(mp_encode_strl(hdr, uint32_t(g.tag.size())) - hdr));
        f += g.tag;
        f.append(hdr, size_t(mp_encode_binl(hdr, uint32_t(entries.size())) - hdr));
        f.append(entries);
        f.append(hdr, size_t(mp_encode_map(hdr, 1 + (require_ack_ ? 1 : 0) + (gzip_ ? 1 : 0)) - hdr));
        f.append(hdr, size_t(mp_encode_str(hdr, "size", 4) - hdr));
        f.append(hdr, size_t(mp_encode_uint(hdr, g.events) - hdr));
        if (require_ack_) {
            f.append(hdr, size_t(mp_encode_str(hdr, "chunk", 5) - hdr));
            f.append(hdr, size_t(mp_encode_strl(hdr, uint32_t(c.id.size())) - hdr));
            f += c.id;
        }
        if (gzip_) {
            f.append(hdr, size_t(mp_encode_str(hdr, "compressed", 10) - hdr));
            f.append(hdr, size_t(mp_encode_str(hdr, "gzip", 4) - hdr));
        }
    }

    Chunk* make_chunk() {
        if (free_.empty()) {
            pool_.push_back(new Chunk());
            return pool_.back();
        }
        Chunk* c = free_.back();
        free_.pop_back();
        return c;
    }

    void settle(Hold* h, bool ok, size_t events, const std::string& why = "") {
        if (!ok && !h->failed) h->failed = true, h->reason = why;
        if (ok) ctx_->metrics().events_out.add(events);
        if (--h->frames_left > 0) return;
        if (h->failed) {
            ctx_->metrics().errors.add();
            h->batch->mark(AckStatus::failed, h->reason);
        } else {
            h->batch->mark(AckStatus::delivered, "");
        }
        delete h;  // releases the batch: its acks settle
    }

    void done(Chunk* c, bool ok, const std::string& why = "") {
        settle(c->hold, ok, c->events, why);
        c->hold = nullptr;
        if (c->frame.capacity() > (8u << 20)) std::string().swap(c->frame);
        free_.push_back(c);
    }

    void fail_all(const std::string& why) {
        for (auto& p : peers_) {
            for (Chunk* c : p->inflight) done(c, false, why);
            p->inflight.clear();
        }
        for (Chunk* c : unsent_) done(c, false, why);
        unsent_.clear();
    }

    size_t inflight_count() const {
        size_t n = 0;
        for (auto& p : peers_) n += p->inflight.size();
        return n;
    }

    // --- connections -----------------------------------------------------------------------

    void pump(int64_t wait_ns) {
        const int64_t now = mono_ns();
        for (size_t i = 0; i < peers_.size(); ++i) read_acks(i);
        if (require_ack_)
            for (size_t i = 0; i < peers_.size(); ++i) {
                Peer& p = *peers_[i];
                if (!p.inflight.empty() && now - p.inflight.front()->sent_ns > ack_timeout_) {
                    log_limited(rl_timeout_, ctx_->log(), spdlog::level::warn,
                                "{} did not acknowledge chunk {} within ack_timeout: reconnecting and resending {} frames", p.name,
                                p.inflight.front()->id, p.inflight.size());
                    down(i, "ack_timeout passed");
                }
            }
        while (!unsent_.empty()) {
            int i = pick();
            if (i < 0) break;
            Peer& p = *peers_[size_t(i)];
            Chunk* c = unsent_.front();
            std::string err = p.link.write_all(c->frame, mono_ns() + kWriteTimeoutNs);
            if (!err.empty()) {
                down(size_t(i), err);
                continue;
            }
            unsent_.pop_front();
            sent_->add();
            if (c->sent_ns) resent_->add();
            c->sent_ns = mono_ns();
            ctx_->metrics().bytes_out.add(c->frame.size());
            if (require_ack_) p.inflight.push_back(c);
            else done(c, true);
        }
        if (wait_ns <= 0) return;
        // Wait for acks (or a server's close), at most until the next reconnection attempt.
        pollfd fds[16];
        nfds_t n = 0;
        for (auto& p : peers_)
            if (p->link.is_open() && n < 16) fds[n++] = {p->link.fd(), POLLIN, 0};
        int64_t until = mono_ns() + wait_ns;
        if (!unsent_.empty())
            for (auto& p : peers_)
                if (!p->link.is_open()) until = std::min(until, std::max(p->retry_at, mono_ns() + 1'000'000));
        int ms = int(std::max<int64_t>(1, (until - mono_ns()) / 1'000'000));
        if (n) ::poll(fds, n, ms);
        else ::usleep(useconds_t(ms) * 1000);
    }

    int pick() {
        const int64_t now = mono_ns();
        const size_t n = peers_.size();
        const size_t first = balance_ ? rr_++ % n : 0;
        // Failover prefers the first server: one that is down is retried as soon as its backoff allows.
        for (size_t k = 0; k < n; ++k) {
            size_t i = (first + k) % n;
            Peer& p = *peers_[i];
            if (p.link.is_open()) {
                if (!balance_ || p.inflight.size() < kMaxInflight) return int(i);
                continue;
            }
            if (now >= p.retry_at && connect(i)) return int(i);
        }
        return -1;
    }

    bool connect(size_t i) {
        Peer& p = *peers_[i];
        std::string err = p.link.open(p.host, p.port, tls_, mono_ns() + kConnectTimeoutNs);
        if (err.empty() && !shared_key_.empty()) err = handshake(p);
        if (!err.empty()) {
            down(i, err);
            return false;
        }
        p.rfill = 0;
        p.scanner.reset();
        p.backoff = kBackoffMinNs;
        p.up->set(1);
        if (p.down_logged) ctx_->log().info("connected to {} again", p.name);
        p.down_logged = false;
        ctx_->clear_failed();
        return true;
    }

    // Reads one msgpack object with a deadline (the handshake's HELO and PONG).
    bool read_object(Peer& p, int64_t deadline, std::string* err) {
        for (;;) {
            if (p.rfill > 0) {
                Scan s = p.scanner.scan(p.rbuf.data(), p.rfill);
                if (s == Scan::complete) return true;
                if (s == Scan::error) {
                    *err = std::string("malformed reply: ") + p.scanner.error();
                    return false;
                }
            }
            if (p.rbuf.size() - p.rfill < 4096) p.rbuf.resize(p.rfill + 16384);
            ssize_t r = p.link.read_some(p.rbuf.data() + p.rfill, p.rbuf.size() - p.rfill, err);
            if (r < 0) return false;
            if (r > 0) {
                p.rfill += size_t(r);
                continue;
            }
            if (!p.link.wait_readable(deadline)) {
                *err = "no handshake reply within 5s";
                return false;
            }
        }
    }

    void consume(Peer& p) {
        size_t sz = p.scanner.size();
        std::memmove(p.rbuf.data(), p.rbuf.data() + sz, p.rfill - sz);
        p.rfill -= sz;
        p.scanner.reset();
    }

    std::string handshake(Peer& p) {
        const int64_t deadline = mono_ns() + kConnectTimeoutNs;
        std::string err;
        p.rfill = 0;
        p.scanner.reset();
        Helo helo;
        if (!read_object(p, deadline, &err)) return "handshake: " + err;
        if (!parse_helo(p.rbuf.data(), helo)) return "handshake: the server did not send HELO (is shared_key set on it?)";
        consume(p);
        Ping ping;
        ping.hostname = self_hostname_;
        ping.salt = random_bytes(16);
        ping.digest = sha512_hex({ping.salt, self_hostname_, helo.nonce, shared_key_});
        if (!helo.auth.empty()) {
            ping.username = username_;
            ping.password_digest = sha512_hex({helo.auth, username_, password_});
        }
        err = p.link.write_all(make_ping(ping), deadline);
        if (!err.empty()) return "handshake: " + err;
        if (!read_object(p, deadline, &err)) return "handshake: " + err;
        Pong pong;
        if (!parse_pong(p.rbuf.data(), pong)) return "handshake: expected PONG";
        consume(p);
        if (!pong.ok) return "handshake refused by the server: " + pong.reason;
        if (pong.digest != sha512_hex({ping.salt, pong.hostname, helo.nonce, shared_key_}))
            return "handshake: the server's PONG digest is wrong (a different shared_key)";
        return "";
    }

    void read_acks(size_t i) {
        Peer& p = *peers_[i];
        if (!p.link.is_open()) return;
        for (;;) {
            if (p.rbuf.size() - p.rfill < 4096) p.rbuf.resize(p.rfill + 16384);
            std::string err;
            ssize_t r = p.link.read_some(p.rbuf.data() + p.rfill, p.rbuf.size() - p.rfill, &err);
            if (r < 0 && p.inflight.empty()) {  // an idle keep-alive connection the server closed: reopen when needed
                ctx_->log().debug("{}: {} while idle", p.name, err);
                p.link.close();
                p.up->set(0);
                return;
            }
            if (r < 0) return down(i, err);
            if (r == 0) break;
            p.rfill += size_t(r);
            for (;;) {
                Scan s = p.scanner.scan(p.rbuf.data(), p.rfill);
                if (s == Scan::incomplete) break;
                if (s == Scan::error) return down(i, std::string("malformed reply: ") + p.scanner.error());
                std::string chunk;
                if (parse_ack_reply(p.rbuf.data(), chunk)) on_ack(p, chunk);
                consume(p);
            }
        }
    }

    void on_ack(Peer& p, const std::string& chunk) {
        for (auto it = p.inflight.begin(); it != p.inflight.end(); ++it)
            if ((*it)->id == chunk) {
                Chunk* c = *it;
                p.inflight.erase(it);
                acked_->add();
                done(c, true);
                return;
            }
        // An ack for a chunk already resent elsewhere: nothing to do.
    }

    void down(size_t i, const std::string& why) {
        Peer& p = *peers_[i];
        const bool was_open = p.link.is_open();
        p.link.close();
        p.up->set(0);
        p.rfill = 0;
        p.scanner.reset();
        p.retry_at = mono_ns() + p.backoff;
        if (!p.down_logged) {
            ctx_->log().warn("{}: {}; {} frames will be resent, retrying with backoff", p.name, why, p.inflight.size());
            p.down_logged = true;
        }
        p.backoff = std::min(p.backoff * 2, kBackoffMaxNs);
        if (was_open || !p.inflight.empty()) ctx_->metrics().errors.add();
        // Unacknowledged frames go first, in the order they were sent.
        for (auto it = p.inflight.rbegin(); it != p.inflight.rend(); ++it) unsent_.push_front(*it);
        p.inflight.clear();
        bool any = false;
        for (auto& q : peers_) any |= q->link.is_open();
        if (!any) ctx_->set_failed("no forward server reachable: " + p.name + ": " + why);
    }

    std::vector<std::unique_ptr<Peer>> peers_;
    bool balance_ = false, gzip_ = false, require_ack_ = false;
    size_t rr_ = 0;
    FieldTemplate tag_;
    std::string time_field_, time_ptr_, shared_key_, username_, password_, self_hostname_, tag_buf_;
    int64_t ack_timeout_ = 0;
    SSL_CTX* tls_ = nullptr;
    z_stream zs_{};
    simdjson::ondemand::parser parser_;
    std::vector<Group> groups_;
    std::deque<Chunk*> unsent_;
    std::vector<Chunk*> pool_, free_;
    uint64_t chunk_prefix_ = uint64_t(mono_ns()) ^ (uint64_t(getpid()) << 32), chunk_seq_ = 0;
    StageContext* ctx_ = nullptr;
    Counter *sent_ = nullptr, *acked_ = nullptr, *resent_ = nullptr, *invalid_ = nullptr;
    RateLimit rl_invalid_, rl_timeout_;
};

HBF_REGISTER_OUTPUT("forward", ForwardOut, kForwardOutSchema,
                    "Sends events to Fluentd, Fluent Bit or hbforward with the Forward protocol (PackedForward, gzip, acks, failover).");

}  // namespace
}  // namespace hbf::stages
