#pragma once

// Invariant checks for the fuzz targets: a violated invariant aborts with a message, which
// libFuzzer reports as a crash and saves the input (like a sanitizer finding).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, what)                                                           \
    do {                                                                                 \
        if (!(cond)) ::peinit::fuzz::Fail(__FILE__, __LINE__, #cond, std::string(what)); \
    } while (0)

namespace peinit::fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* cond,
                              const std::string& what) {
    std::fprintf(stderr, "%s:%d: invariant violated: %s\n  %s\n", file, line, cond, what.c_str());
    std::abort();
}

// The fuzz input as text (every parser here takes text; embedded NULs included).
inline std::string_view AsText(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

}  // namespace peinit::fuzz
