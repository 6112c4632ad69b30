// filter "json": validates each event with simdjson and writes it back compact.
//
// Every value of the event is visited, so broken escapes, bad numbers, invalid UTF-8 and
// trailing garbage are all caught; a valid event is minified into the outgoing batch. An event
// that is not a valid JSON object goes by on_error: dropped and counted (default), passed as is,
// or wrapped as {"message": <the raw text>, "error": <why>}.
//
// A batch whose input already validated and compacted every event (Batch::compact_json: the http
// input) goes on as it is: parsing it again would find nothing and change nothing (on_error never
// applies to a valid event). An option that needs each event parsed must turn this off.
#include <simdjson.h>

#include "json_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

enum class OnError { drop, pass, wrap };

struct JsonOptions {
    std::string on_error = "drop";
};

const OptionSchema<JsonOptions> kJsonSchema{
    {"on_error", &JsonOptions::on_error, "What to do with an event that is not a valid JSON object: drop | pass | wrap.",
     one_of{"drop", "pass", "wrap"}},
};

class Json final : public Filter {
public:
    explicit Json(const JsonOptions& o) {
        const std::string& e = o.on_error;
        on_error_ = e == "pass" ? OnError::pass : e == "wrap" ? OnError::wrap : OnError::drop;
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        invalid_ = &ctx.metrics().dropped("invalid_json");
    }

    void process(BatchPtr in, Emitter& out) override {
        if (in->compact_json) {
            out.emit(std::move(in));
            return;
        }
        BatchPtr o = Batch::make();
        o->reserve_more(in->bytes());
        o->take_acks_from(*in);
        for (size_t i = 0; i < in->size(); ++i) {
            std::string_view ev = in->event(i);
            o->begin_event();
            JsonCheck chk = checker_.append_compact_if_valid(o->buf, ev.data(), ev.size(), in->capacity_after(i));
            if (chk.ok) {
                o->finish_event();
                continue;
            }
            log_limited(rl_, ctx_->log(), spdlog::level::warn, "invalid JSON event at byte {}: {} ({})", chk.offset, chk.message,
                        on_error_ == OnError::drop ? "dropped" : on_error_ == OnError::pass ? "passed on" : "wrapped");
            switch (on_error_) {
                case OnError::drop: invalid_->add(); break;
                case OnError::pass: o->append(ev); break;
                case OnError::wrap:
                    o->begin_event();
                    o->buf += "{\"message\":";
                    append_json_string(o->buf, ev);
                    o->buf += ",\"error\":";
                    append_json_string(o->buf, chk.message);
                    o->buf += '}';
                    o->finish_event();
                    break;
            }
        }
        out.emit(std::move(o));
    }

private:
    OnError on_error_ = OnError::drop;
    ObjectChecker checker_;
    StageContext* ctx_ = nullptr;
    Counter* invalid_ = nullptr;
    RateLimit rl_;
};

HBF_REGISTER_STATELESS_FILTER("json", Json, kJsonSchema, "Validates each event as a JSON object (simdjson) and makes it compact.");

}  // namespace
}  // namespace hbf::stages
