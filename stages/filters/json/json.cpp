// filter "json": validates each event with simdjson On-Demand and writes it back compact.
//
// Every value of the event is visited, so broken escapes, bad numbers, invalid UTF-8 and
// trailing garbage are all caught; a valid event is minified into the outgoing batch. An event
// that is not a valid JSON object goes by on_error: dropped and counted (default), passed as is,
// or wrapped as {"message": <the raw text>, "error": <why>}.
#include <simdjson.h>

#include "json_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

enum class OnError { drop, pass, wrap };

class Json final : public Filter {
public:
    explicit Json(const StageConfig& c) {
        std::string e = c.str("on_error");
        if (e == "drop") on_error_ = OnError::drop;
        else if (e == "pass") on_error_ = OnError::pass;
        else if (e == "wrap") on_error_ = OnError::wrap;
        else c.fail("on_error", "on_error must be \"drop\", \"pass\" or \"wrap\"");
    }

    void start(StageContext& ctx) override {
        ctx_ = &ctx;
        invalid_ = &ctx.metrics().dropped("invalid_json");
    }

    void process(BatchPtr in, Emitter& out) override {
        BatchPtr o = Batch::make();
        o->reserve_more(in->bytes());
        o->take_acks_from(*in);
        for (size_t i = 0; i < in->size(); ++i) {
            std::string_view ev = in->event(i);
            JsonCheck chk = check_object(parser_, ev.data(), ev.size(), in->capacity_after(i));
            if (chk.ok) {
                o->begin_event();
                append_compact(o->buf, ev);
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
    simdjson::ondemand::parser parser_;
    StageContext* ctx_ = nullptr;
    Counter* invalid_ = nullptr;
    RateLimit rl_;
};

const std::vector<OptionSpec> kJsonSchema = {
    {"on_error", OptType::string, "drop", "What to do with an event that is not a valid JSON object: drop | pass | wrap."},
};
HBF_REGISTER_FILTER("json", Json, kJsonSchema, "Validates each event as a JSON object (simdjson) and makes it compact.");

}  // namespace
}  // namespace hbf::stages
