// hbforward(1), written from the same sources as `--help` and `hbforward stages`: the CLI's
// subcommands and options and every registered stage's schema, so the page cannot go stale.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace hbf {

// The page in man(7) format.
std::string render_manpage(const CLI::App& app);

}  // namespace hbf
