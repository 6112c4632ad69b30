// output "kafka": the produce paths. A batch's events go to librdkafka grouped by topic
// (rd_kafka_produce_batch), or one by one when messages carry headers (rd_kafka_producev); each
// event's topic and key come from one place, topic_and_key, which recovery uses too.
#include <cerrno>

#include "kafka_output.h"

namespace hbf::kafka_output {

void KafkaOut::write(BatchPtr b) {
    last_write_ = std::chrono::steady_clock::now();
    InFlight* f = take_inflight();
    f->batch = std::move(b);
    f->pending = 1;  // held by this call until every message is produced
    if (headers_.empty()) write_grouped(f);
    else write_each(f);
    release(f);
    rd_kafka_poll(rk_, 0);
    recover_if_fatal();
}

// The topic handle and key of event i: static ones as they are, templated ones read from the
// event. False when the event was dropped (not JSON, a field missing, an illegal topic name).
bool KafkaOut::topic_and_key(Batch& batch, size_t i, InFlight& f, rd_kafka_topic_t*& rkt, std::string_view& key) {
    rkt = rkt_;
    if (!parse_) {
        if (has_key_) key = key_.literal();
        return true;
    }
    std::string_view ev = batch.event(i);
    simdjson::ondemand::document doc;
    if (parser_.iterate(ev.data(), ev.size(), batch.capacity_after(i)).get(doc) != simdjson::SUCCESS) {
        drop(f, *missing_field_, "the event is not JSON; its topic cannot be resolved");
        return false;
    }
    return resolve(doc, rkt, key, f);
}

bool KafkaOut::resolve(simdjson::ondemand::document& doc, rd_kafka_topic_t*& rkt, std::string_view& key, InFlight& f) {
    std::string_view missing;
    if (!topic_.is_static()) {
        topic_buf_.clear();
        if (!topic_.render(doc, topic_buf_, &missing)) {
            drop(f, *missing_field_, fmt::format("field '{}' of the topic template is missing", missing));
            return false;
        }
        rkt = topic_handle(topic_buf_);
        if (!rkt) {
            drop(f, *bad_topic_, fmt::format("topic \"{}\": {}", topic_buf_, kafka::topic_name_problem(topic_buf_)));
            return false;
        }
    }
    if (has_key_) {
        if (key_.is_static()) {
            key = key_.literal();
        } else {
            key_buf_.clear();
            if (key_.render(doc, key_buf_, &missing)) key = key_buf_;  // a missing key field: no key
        }
    }
    return true;
}

// A cached handle, or nullptr for a name Kafka does not allow.
rd_kafka_topic_t* KafkaOut::topic_handle(const std::string& name) {
    auto it = topics_.find(std::string_view(name));
    if (it != topics_.end()) return it->second;
    rd_kafka_topic_t* t = nullptr;
    if (kafka::topic_name_problem(name).empty()) t = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
    if (t || topics_.size() < 10000) topics_.emplace(name, t);
    return t;
}

// Messages with headers: one rd_kafka_producev each (produce_batch cannot set headers).
void KafkaOut::write_each(InFlight* f) {
    Batch& batch = *f->batch;
    for (size_t i = 0; i < batch.size(); ++i) {
        std::string_view ev = batch.event(i);
        rd_kafka_topic_t* rkt;
        std::string_view key;
        if (!topic_and_key(batch, i, *f, rkt, key)) continue;
        if (!produce(rkt, ev, key, f)) continue;
        ++f->pending;
    }
}

// The batch's messages grouped by topic, each group handed over with one
// rd_kafka_produce_batch: librdkafka then reads the clock once per group instead of twice per
// message (that was 40% of this thread's time with producev). Order within a topic is kept.
void KafkaOut::write_grouped(InFlight* f) {
    Batch& batch = *f->batch;
    const bool key_per_event = has_key_ && !key_.is_static();
    for (size_t g = 0; g < groups_used_; ++g) groups_[g].clear();
    groups_used_ = 0;
    group_of_.clear();
    keys_.clear();
    for (size_t i = 0; i < batch.size(); ++i) {
        std::string_view ev = batch.event(i);
        rd_kafka_topic_t* rkt;
        std::string_view key;
        if (!topic_and_key(batch, i, *f, rkt, key)) continue;
        Group& g = group(rkt);
        rd_kafka_message_t& m = g.msgs.emplace_back();
        m = rd_kafka_message_t{};
        m.payload = const_cast<char*>(ev.data());
        m.len = ev.size();
        m._private = f;
        if (key_per_event) {  // rendered into keys_, which may move: pointers are set below
            g.key_at.push_back(key.empty() ? kNoKey : uint32_t(keys_.size()));
            keys_.append(key);
            m.key_len = key.size();
        } else if (!key.empty()) {
            m.key = const_cast<char*>(key.data());
            m.key_len = key.size();
        }
    }
    for (size_t gi = 0; gi < groups_used_; ++gi) {
        Group& g = groups_[gi];
        if (key_per_event)
            for (size_t j = 0; j < g.msgs.size(); ++j)
                if (g.key_at[j] != kNoKey) g.msgs[j].key = keys_.data() + g.key_at[j];
        produce_group(g, f);
    }
}

KafkaOut::Group& KafkaOut::group(rd_kafka_topic_t* rkt) {
    if (groups_used_ > 0 && groups_[groups_used_ - 1].rkt == rkt) return groups_[groups_used_ - 1];
    auto [it, fresh] = group_of_.try_emplace(rkt, groups_used_);
    if (!fresh) return groups_[it->second];
    if (groups_used_ == groups_.size()) groups_.emplace_back();
    Group& g = groups_[groups_used_++];
    g.rkt = rkt;
    g.topic = rd_kafka_topic_name(rkt);
    g.producer_gen = producer_gen_;
    return g;
}

void KafkaOut::produce_group(Group& g, InFlight* f) {
    auto& msgs = g.msgs;
    while (!msgs.empty()) {
        if (g.producer_gen != producer_gen_) {  // recreated while an earlier group waited: the old handle is gone
            g.rkt = topic_.is_static() ? rkt_ : topic_handle(g.topic);
            g.producer_gen = producer_gen_;
        }
        int n = int(msgs.size());
        int ok = rd_kafka_produce_batch(g.rkt, RD_KAFKA_PARTITION_UA, 0, msgs.data(), n);
        size_t keep = 0;  // messages refused for a full queue, moved to the front in order
        int64_t bytes = 0;
        for (auto& m : msgs) {
            if (!m.err) {
                bytes += int64_t(m.len);
            } else if (m.err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                msgs[keep] = m;
                msgs[keep++].err = RD_KAFKA_RESP_ERR_NO_ERROR;
            } else {
                fail(*f, fmt::format("produce to {} failed: {}", g.topic, rd_kafka_err2str(m.err)), 1, refused_for_good(m.err));
            }
        }
        f->pending += uint32_t(ok);
        inflight_events_->add(ok);
        inflight_bytes_->add(bytes);
        msgs.resize(keep);
        if (keep == 0) break;
        // Backpressure: serve delivery reports until librdkafka has room. Only this thread
        // serves them, so a refused message is never overtaken by a later one of the same call.
        if (ctx_->abort_flag().load()) {
            fail(*f, fmt::format("shutdown timeout passed while librdkafka's queue was full ({} events)", keep), keep);
            return;
        }
        rd_kafka_poll(rk_, 50);
        recover_if_fatal();
        update_health();
    }
}

bool KafkaOut::produce(rd_kafka_topic_t* rkt, std::string_view ev, std::string_view key, InFlight* f) {
    for (;;) {
        int rc;
        if (headers_.empty()) {
            rc = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, const_cast<char*>(ev.data()), ev.size(),
                                  key.empty() ? nullptr : key.data(), key.size(), f);
        } else {
            rd_kafka_headers_t* h = rd_kafka_headers_new(headers_.size());
            for (const auto& [k, v] : headers_) rd_kafka_header_add(h, k.data(), ssize_t(k.size()), v.data(), ssize_t(v.size()));
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk_, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA), RD_KAFKA_V_MSGFLAGS(0),
                RD_KAFKA_V_VALUE(const_cast<char*>(ev.data()), ev.size()),
                RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(f),
                RD_KAFKA_V_END);
            if (e) rd_kafka_headers_destroy(h);
            rc = e ? -1 : 0;
            if (e) errno = e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? ENOBUFS : EINVAL;
        }
        if (rc == 0) {
            inflight_events_->add(1);
            inflight_bytes_->add(int64_t(ev.size()));
            return true;
        }
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL || errno == ENOBUFS) {
            // Backpressure: serve delivery reports until librdkafka has room.
            if (ctx_->abort_flag().load()) {
                fail(*f, "shutdown timeout passed while librdkafka's queue was full");
                return false;
            }
            uint64_t gen = producer_gen_;
            std::string topic = rd_kafka_topic_name(rkt);
            rd_kafka_poll(rk_, 50);
            recover_if_fatal();
            update_health();
            if (gen != producer_gen_) rkt = topic_.is_static() ? rkt_ : topic_handle(topic);  // the old handle is gone
            continue;
        }
        fail(*f, fmt::format("produce to {} failed: {}", rd_kafka_topic_name(rkt), rd_kafka_err2str(err)), 1, refused_for_good(err));
        return false;
    }
}

void KafkaOut::drop(InFlight& f, Counter& c, const std::string& why) {
    c.add();
    log_limited(drop_rl_, *log_, spdlog::level::warn, "event dropped: {}", why);
    f.note(AckStatus::dropped, why);
}

void KafkaOut::fail(InFlight& f, const std::string& why, uint64_t events, bool final) {
    failed_->add(events);
    log_limited(fail_rl_, *log_, spdlog::level::err, "{}", why);
    f.note(AckStatus::failed, why, final);
}

// Errors about the message itself: producing it again would fail again.
bool KafkaOut::refused_for_good(rd_kafka_resp_err_t e) {
    switch (e) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
        case RD_KAFKA_RESP_ERR_INVALID_MSG:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: return true;
        default: return false;
    }
}

}  // namespace hbf::kafka_output
