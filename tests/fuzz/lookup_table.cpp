// libFuzzer target: the lookup filter's table loaders, CSV and JSON. The first byte picks the
// format, the key column and the prefix; the rest is the file's content.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../../stages/filters/lookup/table.h"

using namespace hbf::stages::lookup;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0];
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    TableSpec spec;
    if (mode & 2) spec.key_column = "device-id";
    if (mode & 4) spec.columns = {"site", "region"};
    if (mode & 8) spec.prefix = "dev_";
    try {
        auto t = (mode & 1) ? parse_json(std::string(text), spec) : parse_csv(text, spec);
        for (const auto& [k, v] : t->rows) (void)t->find(k);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
