// libFuzzer target: the config loader (TOML, the schema check of every stage's table, the
// wiring) and the stage factories that `validate` runs. Nothing is started.
#include <cstdint>
#include <string>

#include "config.h"
#include "log.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    hbf::setup_logging("off", "text");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto cfg = hbf::load_config_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    if (cfg->ok()) hbf::build_stages(*cfg);
    (void)cfg->report();
    return 0;
}
