// What a stage holds while it runs that no other stage may hold at the same time: an address it
// listens on, a file it writes or reads with a checkpoint, a directory. Each stage declares its
// own from its options (as Vector's SourceConfig::resources does), so the core never guesses
// them from option names; the plan stops an old stage before a new one that needs the same
// resource starts.
#pragma once

#include <string>
#include <vector>

namespace hbf {

struct Resource {
    enum class Kind { listen, file, directory };
    enum class Protocol { tcp, udp };  // of a listen address: a TCP and a UDP socket may share a port
    Kind kind;
    std::string value;  // "host:port", a path (or a path template), a directory
    Protocol protocol = Protocol::tcp;
    bool operator==(const Resource&) const = default;
};

// What a stage's resources may be named after besides its options: its name and the service's
// data_dir (a file input's checkpoint is <data_dir>/file-<name>.checkpoint).
struct StagePlace {
    std::string name;
    std::string data_dir;
};

}  // namespace hbf
