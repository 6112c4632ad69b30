#include "bulk_reply.h"

#include "json_util.h"

namespace hbf::httpout {

namespace {
using namespace simdjson;

// One item: {"index": {"_index": ..., "status": 201, "error": {"type": ..., "reason": ...}}}.
ItemResult read_item(ondemand::value item, std::string& first_error) {
    ondemand::object outer;
    if (item.get_object().get(outer) != SUCCESS) return ItemResult::failed;
    for (auto field : outer) {
        ondemand::object inner;
        if (field.value().get_object().get(inner) != SUCCESS) return ItemResult::failed;
        int64_t status = 0;
        std::string_view type, reason;
        for (auto f : inner) {
            std::string_view key;
            if (f.unescaped_key().get(key) != SUCCESS) return ItemResult::failed;
            if (key == "status") {
                if (f.value().get_int64().get(status) != SUCCESS) return ItemResult::failed;
            } else if (key == "error") {
                ondemand::value ev;
                if (f.value().get(ev) != SUCCESS) return ItemResult::failed;
                ondemand::object eo;
                if (ev.get_object().get(eo) == SUCCESS) {
                    for (auto ef : eo) {
                        std::string_view ek;
                        if (ef.unescaped_key().get(ek) != SUCCESS) break;
                        std::string_view* into = ek == "type" ? &type : ek == "reason" ? &reason : nullptr;
                        if (into && ef.value().get_string().get(*into) != SUCCESS) into->remove_prefix(into->size());
                    }
                }
            }
        }
        if (status >= 200 && status < 300) return ItemResult::ok;
        if (status == 429) return ItemResult::retry;
        if (first_error.empty()) {
            first_error = "status " + std::to_string(status);
            if (!type.empty()) first_error.append(", ").append(type);
            if (!reason.empty()) first_error.append(": ").append(reason);
        }
        return ItemResult::failed;
    }
    return ItemResult::failed;
}
}  // namespace

BulkReply read_bulk_reply(ondemand::parser& parser, std::string& reply, size_t items, std::vector<ItemResult>& out) {
    BulkReply r;
    out.assign(items, ItemResult::failed);
    size_t len = reply.size();
    reply.reserve(len + SIMDJSON_PADDING);
    ondemand::document doc;
    ondemand::object top;
    if (parser.iterate(reply.data(), len, reply.capacity()).get(doc) != SUCCESS || doc.get_object().get(top) != SUCCESS) {
        r.problem = "the reply is not a JSON object";
        return r;
    }
    size_t seen = 0;
    bool saw_items = false;
    for (auto field : top) {
        std::string_view key;
        if (field.unescaped_key().get(key) != SUCCESS) break;
        if (key == "errors") {
            if (field.value().get_bool().get(r.errors) != SUCCESS) {
                r.problem = "\"errors\" is not a boolean";
                return r;
            }
            if (!r.errors) {  // every item succeeded: nothing more to read
                out.assign(items, ItemResult::ok);
                return r;
            }
        } else if (key == "items") {
            saw_items = true;
            ondemand::array arr;
            if (field.value().get_array().get(arr) != SUCCESS) {
                r.problem = "\"items\" is not an array";
                return r;
            }
            for (auto v : arr) {
                ondemand::value item;
                if (v.get(item) != SUCCESS) break;
                ItemResult ir = read_item(item, r.first_error);
                if (seen < items) out[seen] = ir;
                ++seen;
            }
        }
    }
    if (!saw_items) {
        r.problem = "the reply has neither \"errors\": false nor \"items\"";
        return r;
    }
    if (seen != items && r.first_error.empty())
        r.first_error = "the reply lists " + std::to_string(seen) + " items for " + std::to_string(items) + " documents";
    return r;
}

}  // namespace hbf::httpout
