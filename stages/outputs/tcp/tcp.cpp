// output "tcp": NDJSON lines to a TCP server (optionally TLS), over one kept-alive connection.
//
// A batch is written as it sits in memory (a dense batch is already NDJSON: one write). It is
// delivered once written to the socket: lines the kernel accepted just before the server died
// are lost, as with any plain TCP sender. A failed write closes the connection, and the whole
// batch is written again on a new one after a backoff (200 ms doubling to 10 s); while the
// server is away the output holds the batch and the pipeline backs up.
#include <openssl/ssl.h>
#include <unistd.h>

#include "host_port.h"
#include "net/link.h"
#include "registry.h"

namespace hbf::stages {
namespace {

constexpr int64_t kConnectTimeoutNs = 5'000'000'000, kWriteTimeoutNs = 30'000'000'000;
constexpr int64_t kBackoffMinNs = 200'000'000, kBackoffMaxNs = 10'000'000'000;

struct TcpOutOptions {
    std::string address;
    StringMap tls;
};

const OptionSchema<TcpOutOptions> kTcpOutSchema{
    {"address", &TcpOutOptions::address, "host:port of the server that takes NDJSON lines.", required{}},
    {"tls", &TcpOutOptions::tls, "{ ca = \"ca.pem\", verify = true, cert, key }: connect with TLS."},
};

class TcpOut final : public Output {
public:
    TcpOut(const TcpOutOptions& o, const StageConfig& c) {
        const std::string& a = o.address;
        HostPort hp;
        if (parse_host_port(a, hp) != HostPortError::none || hp.host.empty() || hp.port == 0)
            c.problem("address", "address must be host:port, e.g. \"10.0.0.9:5170\"");
        host_ = hp.host;
        port_ = hp.port;
        name_ = a;
        if (c.has("tls")) {
            std::vector<std::string> problems;
            tls_ = net::client_tls_from(o.tls, problems);
            for (const auto& why : problems) c.problem("tls", why);
        }
    }

    ~TcpOut() override {
        if (tls_) SSL_CTX_free(tls_);
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        up_ = &MetricsRegistry::global().gauge("hbf_tcp_out_connected", "1 while connected to the server.", {{"stage", ctx.name()}});
        ctx.log().info("sending NDJSON lines to {}{}", name_, tls_ ? " with TLS" : "");
    }

    void write(BatchPtr b) override {
        for (;;) {
            if (ctx_->abort_flag().load()) {
                b->mark(AckStatus::failed, "shutdown timeout: " + name_ + " not reachable");
                return;
            }
            std::string err = connected() ? send(*b) : "not connected";
            if (err.empty()) break;
            if (err != "not connected") down(err);
            const int64_t wait = retry_at_ - mono_ns();
            if (wait > 0) ::usleep(useconds_t(std::min<int64_t>(wait, 100'000'000) / 1000));
        }
        ctx_->metrics().events_out.add(b->size());
        ctx_->metrics().bytes_out.add(b->bytes());
        b->mark(AckStatus::delivered, "");
    }

    void tick() override {
        if (!link_.is_open()) return;
        char buf[4096];  // the server has nothing to say: drop what it sends, notice when it closes
        std::string err;
        while (link_.is_open()) {
            ssize_t r = link_.read_some(buf, sizeof buf, &err);
            if (r < 0) {  // closed while idle: reopened for the next batch, nothing to report yet
                ctx_->log().debug("{}: {} while idle", name_, err);
                link_.close();
                up_->set(0);
            }
            if (r <= 0) break;
        }
    }

    void stop() override { link_.close(); }

private:
    bool connected() {
        if (link_.is_open()) {
            tick();  // a close the server sent since the last batch
            if (link_.is_open()) return true;
        }
        if (mono_ns() < retry_at_) return false;
        std::string err = link_.open(host_, port_, tls_, mono_ns() + kConnectTimeoutNs);
        if (!err.empty()) {
            down(err);
            return false;
        }
        backoff_ = kBackoffMinNs;
        up_->set(1);
        if (down_logged_) ctx_->log().info("connected to {} again", name_);
        down_logged_ = false;
        ctx_->clear_failed();
        return true;
    }

    std::string send(const Batch& b) {
        const int64_t deadline = mono_ns() + kWriteTimeoutNs;
        if (b.dense()) return link_.write_all(b.buf, deadline);
        for (size_t i = 0; i < b.size(); ++i) {
            const auto& e = b.events[i];
            if (auto err = link_.write_all(std::string_view(b.buf.data() + e.off, e.len + 1), deadline); !err.empty()) return err;
        }
        return "";
    }

    void down(const std::string& why) {
        link_.close();
        up_->set(0);
        ctx_->metrics().errors.add();
        retry_at_ = mono_ns() + backoff_;
        backoff_ = std::min(backoff_ * 2, kBackoffMaxNs);
        if (!down_logged_) {
            ctx_->log().warn("{}: {}; retrying with backoff, holding the batch", name_, why);
            down_logged_ = true;
        }
        ctx_->set_failed(name_ + ": " + why);
    }

    std::string host_, name_;
    uint16_t port_ = 0;
    SSL_CTX* tls_ = nullptr;
    net::Link link_;
    int64_t retry_at_ = 0, backoff_ = kBackoffMinNs;
    bool down_logged_ = false;
    StageContext* ctx_ = nullptr;
    Gauge* up_ = nullptr;
};

HBF_REGISTER_OUTPUT("tcp", TcpOut, kTcpOutSchema, "Writes NDJSON lines to a TCP server (optionally TLS); delivered = written to the socket.");

}  // namespace
}  // namespace hbf::stages
