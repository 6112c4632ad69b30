// host:port as options and the command line write it: one parser for the socket stages and the API.
#include <catch2/catch.hpp>

#include "host_port.h"

using namespace hbf;

TEST_CASE("host_port splits at the last colon and takes the brackets off an IPv6 literal") {
    HostPort hp;
    REQUIRE(parse_host_port("0.0.0.0:8080", hp) == HostPortError::none);
    CHECK((hp.host == "0.0.0.0" && hp.port == 8080));
    REQUIRE(parse_host_port("[::1]:24224", hp) == HostPortError::none);
    CHECK((hp.host == "::1" && hp.port == 24224));
    REQUIRE(parse_host_port("localhost:0", hp) == HostPortError::none);
    CHECK((hp.host == "localhost" && hp.port == 0));
    REQUIRE(parse_host_port(":5514", hp) == HostPortError::none);
    CHECK((hp.host.empty() && hp.port == 5514));
}

TEST_CASE("host_port tells a missing port from a bad one") {
    HostPort hp;
    CHECK(parse_host_port("127.0.0.1", hp) == HostPortError::no_port);
    CHECK(parse_host_port("127.0.0.1:", hp) == HostPortError::no_port);
    CHECK(parse_host_port("127.0.0.1:65536", hp) == HostPortError::bad_port);
    CHECK(parse_host_port("127.0.0.1:80abc", hp) == HostPortError::bad_port);
    CHECK(parse_host_port("127.0.0.1:-1", hp) == HostPortError::bad_port);
}
