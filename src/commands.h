// Extra CLI subcommands contributed from outside the core (the Kafka stage's dev-broker, top).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace hbf {

struct Command {
    std::string name;
    std::string help;
    // Adds options to the subcommand and returns the function that runs it (exit code).
    std::function<std::function<int()>(CLI::App&)> setup;
};

std::vector<Command>& commands();

struct CommandRegistrar {
    explicit CommandRegistrar(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace hbf
