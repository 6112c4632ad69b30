// output "kafka": the producer's lifecycle. Delivery reports settle the in-flight batches; a
// fatal producer error (the idempotent producer's) purges what librdkafka holds, recreates the
// producer and produces those messages again; flush and stop at shutdown.
#include <algorithm>

#include "kafka_output.h"

namespace hbf::kafka_output {
namespace {

// Which event of `b` a message's payload points at.
size_t index_of(const Batch& b, const char* payload) {
    uint32_t off = uint32_t(payload - b.buf.data());
    auto it = std::lower_bound(b.events.begin(), b.events.end(), off, [](const EventRef& e, uint32_t o) { return e.off < o; });
    if (it != b.events.end() && it->off == off) return size_t(it - b.events.begin());
    for (size_t i = 0; i < b.events.size(); ++i)  // events out of order in the buffer
        if (b.events[i].off == off) return i;
    return 0;
}

}  // namespace

void KafkaOut::dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    static_cast<KafkaOut*>(static_cast<kafka::Client*>(opaque))->on_delivery(m);
}

int KafkaOut::stats_cb(rd_kafka_t*, char* json, size_t len, void* opaque) {
    static_cast<KafkaOut*>(static_cast<kafka::Client*>(opaque))->on_stats(std::string_view(json, len));
    return 0;  // librdkafka frees json
}

void KafkaOut::make_producer() {
    rd_kafka_conf_t* conf = rd_kafka_conf_dup(conf_.get());
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
    attach(conf);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    ++producer_gen_;
    stats_->reset_totals();
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("cannot create the Kafka producer: ") + err);
    }
    if (topic_.is_static()) {
        rkt_ = rd_kafka_topic_new(rk_, topic_.literal().c_str(), nullptr);
        if (!rkt_) throw std::runtime_error("cannot use topic " + topic_.literal() + ": " + rd_kafka_err2str(rd_kafka_last_error()));
    }
}

void KafkaOut::destroy_producer() {
    if (!rk_) return;
    for (auto& [n, t] : topics_)
        if (t) rd_kafka_topic_destroy(t);
    topics_.clear();
    if (rkt_) rd_kafka_topic_destroy(rkt_);
    rkt_ = nullptr;
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
}

void KafkaOut::on_delivery(const rd_kafka_message_t* m) {
    auto* f = static_cast<InFlight*>(m->_private);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++f->delivered;
        delivered_->add();
        if (all_down_) brokers_back();
    } else if (!shutting_down_ && (m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                                   m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT || producer_failed())) {
        fatal_ = true;  // produced again once the producer is recreated; the batch stays held
        replay_.push_back({f, index_of(*f->batch, static_cast<const char*>(m->payload))});
        return;
    } else {
        failed_->add();
        const char* why = rd_kafka_err2str(m->err);
        log_limited(fail_rl_, *log_, spdlog::level::err, "delivery to topic {} failed: {}",
                    m->rkt ? rd_kafka_topic_name(m->rkt) : "?", why);
        f->note(AckStatus::failed, why, refused_for_good(m->err));
    }
    inflight_events_->add(-1);
    inflight_bytes_->add(-int64_t(m->len));
    release(f);
}

// True once librdkafka has raised a fatal error: the request that raised it reports its own
// messages with the broker's error (OUT_OF_ORDER_SEQUENCE_NUMBER), and those are produced again too.
bool KafkaOut::producer_failed() const {
    return rk_ && rd_kafka_fatal_error(rk_, nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

void KafkaOut::release(InFlight* f) {
    if (--f->pending > 0) return;
    if (f->worst == AckStatus::failed && !f->retryable) f->batch->mark_failed_for_good(f->reason);
    else f->batch->mark(f->worst, f->reason);
    ctx_->metrics().events_out.add(f->delivered);
    f->batch.reset();  // settles its acks
    f->delivered = 0;
    f->worst = AckStatus::delivered;
    f->retryable = false;
    f->reason.clear();
    free_.push_back(f);
}

InFlight* KafkaOut::take_inflight() {
    if (free_.empty()) {
        pool_.push_back(std::make_unique<InFlight>());
        return pool_.back().get();
    }
    InFlight* f = free_.back();
    free_.pop_back();
    return f;
}

// After a fatal error: purge what librdkafka holds (each purged message lands in replay_),
// recreate the producer and produce those messages again, each to the topic and with the key
// topic_and_key gives it, as the first time.
void KafkaOut::recover_if_fatal() {
    if (!fatal_ || recovering_) return;
    recovering_ = true;
    char why[512] = "";
    rd_kafka_fatal_error(rk_, why, sizeof why);
    log_->error("fatal producer error: {}; recreating the producer and producing {}+ undelivered messages again", why,
                rd_kafka_outq_len(rk_));
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && rd_kafka_outq_len(rk_) > 0; ++i) rd_kafka_poll(rk_, 10);
    destroy_producer();
    make_producer();
    fatal_ = false;  // after the purge, whose reports set it again
    std::vector<std::pair<InFlight*, size_t>> again;
    again.swap(replay_);
    for (auto& [f, i] : again) {
        inflight_events_->add(-1);
        inflight_bytes_->add(-int64_t(f->batch->events[i].len));
        retried_->add();
        rd_kafka_topic_t* rkt;
        std::string_view key;
        if (!topic_and_key(*f->batch, i, *f, rkt, key) || !produce(rkt, f->batch->event(i), key, f)) release(f);
    }
    recovering_ = false;
}

void KafkaOut::tick() {
    rd_kafka_poll(rk_, 0);
    recover_if_fatal();
    update_health();
}

void KafkaOut::flush(std::chrono::steady_clock::time_point deadline) {
    deadline = std::min(deadline, std::chrono::steady_clock::now() + flush_timeout_);
    while (rk_ && (rd_kafka_outq_len(rk_) > 0 || !replay_.empty())) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        rd_kafka_flush(rk_, int(std::min<int64_t>(left.count(), 100)));
        recover_if_fatal();
    }
    if (!rk_) return;
    int left = rd_kafka_outq_len(rk_);
    if (left == 0) return;
    // What remains is failed, and each batch holding it reports so upstream.
    uint64_t failed_before = failed_->get();
    shutting_down_ = true;
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && rd_kafka_outq_len(rk_) > 0; ++i) rd_kafka_poll(rk_, 10);
    // The stage is left failed: the process exits 1, and the batches' acks report failure upstream.
    std::string why;
    {
        std::lock_guard lk(error_m_);
        why = last_error_.empty() ? "no error from librdkafka" : "last error: " + last_error_;
    }
    std::string failure = fmt::format("{} events undelivered at shutdown: {} did not acknowledge them within flush_timeout ({})",
                                      failed_->get() - failed_before, bootstrap_, why);
    log_->error("{}", failure);
    ctx_->set_failed(failure);
}

void KafkaOut::stop() { destroy_producer(); }

}  // namespace hbf::kafka_output
