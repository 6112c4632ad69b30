// The forward input's server: one Asio event loop (TCP, TLS or a unix socket), a resumable
// msgpack scanner per connection, and a batch per event-loop round.
//
// A connection reads into its buffer and hands each complete frame to the ForwardDecoder,
// which appends the frame's events to the round's batch. The batch goes downstream once per
// round (or sooner, at batch_events); emit() blocks while the pipeline is full, so the event loop
// stops reading and TCP pushes back on the senders. Frames that asked for an ack (the `chunk`
// option) are answered {"ack": chunk} from the batch's AckState callback, once every output has
// settled the events: a failed delivery closes the connection instead, so the sender resends.
// A malformed frame closes only its own connection, with a logged reason and a counted error.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "decoder.h"
#include "net/server_input.h"

namespace hbf::forward {

struct ServerOptions {
    std::string host = "0.0.0.0";
    uint16_t port = 24224;
    std::string unix_path;  // listen on this unix socket instead of host:port
    size_t max_frame = 64 << 20;
    size_t max_connections = 4096;
    std::string shared_key, self_hostname;
    std::vector<std::pair<std::string, std::string>> users;  // username, password
    std::string tls_cert, tls_key;
    DecoderOptions decoder;
};

// The server (net::Server): listen() loads the TLS files and binds; run() runs the event loop
// until stop() and the drain finish; stop() stops accepting and reading, waits briefly for
// outstanding acks, and closes.
std::shared_ptr<net::Server> make_server(ServerOptions opts);

}  // namespace hbf::forward
