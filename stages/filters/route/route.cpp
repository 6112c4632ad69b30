// filter "route": sends each event to every named route whose condition it matches, or to
// "_unmatched". Downstream stages read a route as "<stage>.<route>"; reading "<stage>" itself gets
// every event, routed or not.
//
// All conditions share one FieldReader, so an event is read once however many routes there are.
// When every event goes to the same single port the input batch is passed on as is; otherwise each
// port gets its own batch (the events' text appended) holding a clone of every ack hold.
#include "../common/config_util.h"
#include "registry.h"

namespace hbf::stages {
namespace {

using filters::Condition;
using filters::FieldReader;

struct RouteOptions {
    const toml::table* routes = nullptr;
};

const OptionSchema<RouteOptions> kRouteSchema{
    {"routes", &RouteOptions::routes,
     "Route name = condition; read a route downstream as \"<stage>.<route>\", the rest as \"<stage>._unmatched\".", required{}},
};

// The routes in the order written; a route whose name or value is wrong is a problem of the stage.
std::vector<std::pair<std::string, const toml::node*>> route_table(const StageConfig& c, const toml::table* t) {
    if (!t || t->empty()) c.fail("routes", "route needs at least one route: [filters.<name>.routes] major = '.severity == \"major\"'");
    auto routes = filters::members_in_order(*t);
    if (routes.size() > 62) c.problem("routes", "route takes at most 62 routes");
    const std::string& file = c.where("routes").file;
    for (auto& [name, node] : routes) {
        if (!node->is_string()) c.problem_at(location_of(*node, file), "route '" + name + "' must be a condition string");
        if (name == "_unmatched") c.problem_at(location_of(*node, file), "'_unmatched' is reserved for the events no route matches");
        if (name.find('.') != std::string::npos) c.problem_at(location_of(*node, file), "route name '" + name + "' may not hold a dot");
    }
    return routes;
}

std::vector<std::string> route_ports(const StageConfig& c) {
    std::vector<std::string> ports;
    for (auto& [name, node] : route_table(c, c.table("routes"))) ports.push_back(name);
    ports.push_back("_unmatched");
    return ports;
}

class Route final : public Filter {
public:
    Route(const RouteOptions& o, const StageConfig& c) {
        for (auto& [name, node] : route_table(c, o.routes)) {
            if (!node->is_string()) continue;
            auto cond = filters::condition_option(c, "routes", node->as_string()->get(), reader_, node, "route '" + name + "'");
            if (cond) conds_.push_back(std::move(*cond));
        }
        nports_ = conds_.size() + 2;  // the stage itself, each route, _unmatched
        hits_.resize(nports_);
    }

    void start(StageContext& ctx) override { unrouted_ = &ctx.metrics().dropped("unmatched_unread"); }

    void process(BatchPtr in, Emitter& out) override {
        Batch& b = *in;
        // First pass: which ports each event goes to, as a bit set per event.
        masks_.resize(b.size());
        std::fill(hits_.begin(), hits_.end(), 0);
        const size_t unmatched = nports_ - 1;
        for (size_t i = 0; i < b.size(); ++i) {
            std::string_view ev = b.event(i);
            reader_.read(parser_, ev.data(), ev.size(), b.capacity_after(i));
            uint64_t m = 0;
            for (size_t r = 0; r < conds_.size(); ++r)
                if (conds_[r].eval(reader_)) m |= 1ull << (r + 1), ++hits_[r + 1];
            if (!m) m = 1ull << unmatched, ++hits_[unmatched];
            masks_[i] = m;
        }
        if (!out.has_targets(unmatched) && hits_[unmatched]) unrouted_->add(hits_[unmatched]);
        // The ports that will get something.
        size_t used = 0, only = 0;
        for (size_t p = 1; p < nports_; ++p)
            if (hits_[p] && out.has_targets(p)) ++used, only = p;
        bool self = out.has_targets(0);
        if (!self && used == 1 && hits_[only] == b.size()) {
            out.emit(std::move(in), only);
            return;
        }
        for (size_t p = 1; p < nports_; ++p) {
            if (!hits_[p] || !out.has_targets(p)) continue;
            BatchPtr o = Batch::make();
            o->reserve_more(b.bytes());
            for (const auto& a : b.acks) o->acks.push_back(a.clone());
            o->received_ns = b.received_ns;
            for (size_t i = 0; i < b.size(); ++i)
                if (masks_[i] >> p & 1) o->append(b.event(i));
            out.emit(std::move(o), p);
        }
        if (self) out.emit(std::move(in), 0);
        else if (used == 0) in->mark(AckStatus::dropped, "no stage reads the routes these events matched");
        else in->mark(AckStatus::delivered);  // its events went on as the port batches, each with its own hold
    }

private:
    FieldReader reader_;
    std::vector<Condition> conds_;
    size_t nports_ = 0;
    std::vector<uint64_t> masks_;
    std::vector<size_t> hits_;
    simdjson::ondemand::parser parser_;
    Counter* unrouted_ = nullptr;
};

HBF_REGISTER_FILTER_PORTS("route", Route, kRouteSchema, "Sends each event to every route whose condition it matches, else to _unmatched.",
                          route_ports);

}  // namespace
}  // namespace hbf::stages
