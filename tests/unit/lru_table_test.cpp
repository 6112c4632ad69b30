#include <catch2/catch.hpp>
#include <cstdint>
#include <list>
#include <random>
#include <string>
#include <unordered_map>

#include "../../stages/filters/common/hash.h"
#include "../../stages/filters/common/lru_table.h"

using hbf::filters::LruTable;

TEST_CASE("lru table agrees with a list-and-map model under inserts, hits and evictions, keys sharing low bits included") {
    const size_t cap = 64;
    LruTable<uint64_t> t(cap);
    std::list<uint64_t> order;  // most recent first
    std::unordered_map<uint64_t, std::pair<uint64_t, std::list<uint64_t>::iterator>> model;
    std::mt19937_64 rng(7);
    for (int step = 0; step < 200000; ++step) {
        // Few distinct low halves, so home slots and tags collide a lot; high halves tell keys apart.
        uint64_t key = (uint64_t(rng() % 40) << 32) | (rng() % 24) * 0x10001ULL;
        uint64_t* v = t.find(key);
        auto m = model.find(key);
        REQUIRE((v != nullptr) == (m != model.end()));
        if (v) {
            REQUIRE(*v == m->second.first);
            order.splice(order.begin(), order, m->second.second);
            continue;
        }
        bool evicted = false;
        t.insert(key, &evicted) = uint64_t(step);
        REQUIRE(evicted == (model.size() == cap));
        if (evicted) {
            model.erase(order.back());
            order.pop_back();
        }
        order.push_front(key);
        model[key] = {uint64_t(step), order.begin()};
        REQUIRE(t.size() == model.size());
    }
}

TEST_CASE("hash_text tells apart texts that differ in one byte or in length") {
    using hbf::filters::hash_text;
    std::string base = "interface-kpis-playbook/xe-0/1/4";
    for (size_t len = 0; len <= base.size(); ++len) {
        std::string a = base.substr(0, len);
        if (len) CHECK(hash_text(a) != hash_text(a.substr(0, len - 1)));
        for (size_t i = 0; i < len; ++i) {
            std::string b = a;
            b[i] ^= 1;
            CHECK(hash_text(a) != hash_text(b));
        }
    }
    CHECK(hash_text(std::string("a\0", 2)) != hash_text("a"));
}
