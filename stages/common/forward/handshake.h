// The Forward protocol's handshake (shared_key authentication), both sides.
//
//   server -> ["HELO", {"nonce": bin, "auth": salt or "", "keepalive": true}]
//   client -> ["PING", hostname, salt, sha512_hex(salt + hostname + nonce + shared_key),
//              username, sha512_hex(auth_salt + username + password)]   (both "" without users)
//   server -> ["PONG", ok, reason, server_hostname, sha512_hex(salt + server_hostname + nonce + shared_key)]
// Messages are built with msgpuck; parsers take objects MsgpackScanner found complete.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace hbf::forward {

std::string sha512_hex(std::initializer_list<std::string_view> parts);
std::string random_bytes(size_t n);

std::string make_helo(std::string_view nonce, std::string_view auth_salt);
struct Helo {
    std::string nonce, auth;
};
bool parse_helo(const char* p, Helo& out);

struct Ping {
    std::string hostname, salt, digest, username, password_digest;
};
std::string make_ping(const Ping& ping);
bool parse_ping(const char* p, Ping& out);

struct Pong {
    bool ok = false;
    std::string reason, hostname, digest;
};
std::string make_pong(const Pong& pong);
bool parse_pong(const char* p, Pong& out);

// {"ack": chunk}
std::string make_ack_reply(std::string_view chunk);
// The chunk of an {"ack": chunk} map; false when p holds something else.
bool parse_ack_reply(const char* p, std::string& chunk);

}  // namespace hbf::forward
