// Threads carry their stage's name, so `top -H`, `ps -L` and gdb tell them apart.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace hbf {

// Names the calling thread `name` + `suffix`. Linux keeps 15 bytes: a long name is cut, the
// suffix (a worker's "/2") is kept.
inline void name_this_thread(std::string_view name, std::string_view suffix = {}) {
    constexpr size_t kMax = 15;
    std::string n(name.substr(0, kMax > suffix.size() ? kMax - suffix.size() : 0));
    n.append(suffix.substr(0, kMax));
    pthread_setname_np(pthread_self(), n.c_str());
}

}  // namespace hbf
