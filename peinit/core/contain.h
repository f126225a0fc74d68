#pragma once

// Exceptions stop where peinit's own code calls code that may throw (conventions: no exception
// crosses peinit's APIs; a bug or std::bad_alloc is the only source). Contain runs `f` and turns
// whatever it throws into an Error, so that the caller's fail-closed path still runs: the
// handover empties and seals kernel.modprobe, a stage thread hands its failure to the stage that
// waits for it, and PID 1 goes on to the lock or the emergency path as the stage table says.

#include <exception>
#include <string>
#include <string_view>

#include "peinit/core/result.h"

namespace peinit {

// "WHAT: unexpected exception: <what()>" for the exception being handled (call in a catch).
inline std::string UnexpectedException(std::string_view what) {
    std::string out(what);
    if (!out.empty()) out += ": ";
    out += "unexpected exception";
    try {
        throw;
    } catch (const std::exception& e) {
        out += ": ";
        out += e.what();
    } catch (...) {
    }
    return out;
}

// f() (a Result<T>), or the error "WHAT: unexpected exception: ..." when it throws.
template <typename F>
auto Contain(std::string_view what, F&& f) noexcept -> decltype(f()) {
    try {
        return f();
    } catch (...) {
        return Err(UnexpectedException(what));
    }
}

}  // namespace peinit
