#include "forward/handshake.h"

#include <msgpuck.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdexcept>

namespace hbf::forward {
namespace {

void put_str(std::string& out, std::string_view s) {
    char hdr[5];
    char* e = mp_encode_strl(hdr, uint32_t(s.size()));
    out.append(hdr, size_t(e - hdr));
    out.append(s);
}

void put_bin(std::string& out, std::string_view s) {
    char hdr[5];
    char* e = mp_encode_binl(hdr, uint32_t(s.size()));
    out.append(hdr, size_t(e - hdr));
    out.append(s);
}

void put_raw(std::string& out, char* (*enc)(char*, uint32_t), uint32_t n) {
    char hdr[5];
    char* e = enc(hdr, n);
    out.append(hdr, size_t(e - hdr));
}

bool get_str(const char*& p, std::string& out) {
    auto t = mp_typeof(*p);
    if (t != MP_STR && t != MP_BIN) return false;
    uint32_t n;
    const char* s = mp_decode_strbin(&p, &n);
    out.assign(s, n);
    return true;
}

bool is(const char*& p, std::string_view word) {
    std::string s;
    return get_str(p, s) && s == word;
}

}  // namespace

std::string sha512_hex(std::initializer_list<std::string_view> parts) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr);
    for (auto s : parts) EVP_DigestUpdate(ctx, s.data(), s.size());
    unsigned char md[64];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

std::string random_bytes(size_t n) {
    std::string s(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), int(n)) != 1) throw std::runtime_error("RAND_bytes failed");
    return s;
}

std::string make_helo(std::string_view nonce, std::string_view auth_salt) {
    std::string out;
    put_raw(out, mp_encode_array, 2);
    put_str(out, "HELO");
    put_raw(out, mp_encode_map, 3);
    put_str(out, "nonce");
    put_bin(out, nonce);
    put_str(out, "auth");
    put_bin(out, auth_salt);
    put_str(out, "keepalive");
    out += char(0xc3);
    return out;
}

bool parse_helo(const char* p, Helo& out) {
    if (mp_typeof(*p) != MP_ARRAY || mp_decode_array(&p) != 2 || !is(p, "HELO") || mp_typeof(*p) != MP_MAP) return false;
    uint32_t n = mp_decode_map(&p);
    bool nonce = false;
    for (uint32_t i = 0; i < n; ++i) {
        std::string key;
        if (!get_str(p, key)) {
            mp_next(&p);
            mp_next(&p);
            continue;
        }
        if (key == "nonce") nonce = get_str(p, out.nonce);
        else if (key == "auth") {
            if (mp_typeof(*p) == MP_NIL) mp_next(&p);
            else if (!get_str(p, out.auth)) return false;
        } else mp_next(&p);
        if (key == "nonce" && !nonce) return false;
    }
    return nonce;
}

std::string make_ping(const Ping& ping) {
    std::string out;
    put_raw(out, mp_encode_array, 6);
    put_str(out, "PING");
    put_str(out, ping.hostname);
    put_str(out, ping.salt);
    put_str(out, ping.digest);
    put_str(out, ping.username);
    put_str(out, ping.password_digest);
    return out;
}

bool parse_ping(const char* p, Ping& out) {
    return mp_typeof(*p) == MP_ARRAY && mp_decode_array(&p) == 6 && is(p, "PING") && get_str(p, out.hostname) &&
           get_str(p, out.salt) && get_str(p, out.digest) && get_str(p, out.username) && get_str(p, out.password_digest);
}

std::string make_pong(const Pong& pong) {
    std::string out;
    put_raw(out, mp_encode_array, 5);
    put_str(out, "PONG");
    out += pong.ok ? char(0xc3) : char(0xc2);
    put_str(out, pong.reason);
    put_str(out, pong.hostname);
    put_str(out, pong.digest);
    return out;
}

bool parse_pong(const char* p, Pong& out) {
    if (mp_typeof(*p) != MP_ARRAY || mp_decode_array(&p) != 5 || !is(p, "PONG") || mp_typeof(*p) != MP_BOOL) return false;
    out.ok = mp_decode_bool(&p);
    return get_str(p, out.reason) && get_str(p, out.hostname) && get_str(p, out.digest);
}

std::string make_ack_reply(std::string_view chunk) {
    std::string out;
    put_raw(out, mp_encode_map, 1);
    put_str(out, "ack");
    put_str(out, chunk);
    return out;
}

bool parse_ack_reply(const char* p, std::string& chunk) {
    if (mp_typeof(*p) != MP_MAP) return false;
    uint32_t n = mp_decode_map(&p);
    bool found = false;
    for (uint32_t i = 0; i < n; ++i) {
        std::string key;
        const bool str_key = get_str(p, key);
        if (!str_key) mp_next(&p);
        if (str_key && key == "ack") {
            if (!get_str(p, chunk)) return false;
            found = true;
        } else {
            mp_next(&p);
        }
    }
    return found;
}

}  // namespace hbf::forward
