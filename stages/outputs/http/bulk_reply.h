// Reading an Elasticsearch (or OpenSearch) bulk reply item by item.
//
// A bulk request can answer 200 and still refuse some of its documents: the body then says
// "errors": true and each entry of "items" (in request order) carries its own status. 429 means
// the node was too busy (the item is sent again); any other status >= 300 refuses it for good.
#pragma once

#include <string>
#include <vector>

#include <simdjson.h>

namespace hbf::httpout {

enum class ItemResult : unsigned char { ok, retry, failed };

struct BulkReply {
    std::string problem;      // non-empty when the reply is not a bulk reply
    bool errors = false;      // the reply's "errors" flag
    std::string first_error;  // "mapper_parsing_exception: failed to parse field [x]" of the first refused item
};

// Fills `out` with one result per request item (`items` of them). Items the reply does not
// mention are failed. `reply` gets SIMDJSON_PADDING spare capacity; its text is not changed.
BulkReply read_bulk_reply(simdjson::ondemand::parser& parser, std::string& reply, size_t items, std::vector<ItemResult>& out);

}  // namespace hbf::httpout
