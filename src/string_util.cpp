#include "string_util.h"

namespace hbf {
namespace {

#if defined(__GLIBCXX__)
// libstdc++'s basic_string::_M_set_length sets the length and writes the terminating NUL, nothing
// else. It is private; an explicit instantiation may name it ([temp.spec.general]/6), the way
// folly's resizeWithoutInitialization reaches it. Instantiated once, here.
using SetLength = void (std::string::*)(std::string::size_type);
SetLength set_length();
template <SetLength F>
struct SetLengthAccess {
    friend SetLength set_length() { return F; }
};
template struct SetLengthAccess<&std::string::_M_set_length>;
#endif

}  // namespace

void resize_uninitialized(std::string& s, size_t n) {
#if defined(__GLIBCXX__)
    if (n > s.capacity()) s.reserve(n);
    (s.*set_length())(n);
#else
    s.resize(n);
#endif
}

}  // namespace hbf
