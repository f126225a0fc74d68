#pragma once

// Result<T>: the error type used across peinit's own APIs (no exceptions cross them).
//
// Modelled on Android init's android::base::Result and std::expected: a Result holds either a
// value or an Error. An Error carries a human-readable message and, when it came from a system
// call, the errno that caused it. The surface mirrors std::expected (has_value, value, error,
// operator*, operator->, explicit bool) so it can become an alias once the toolchain has it.

#include <cerrno>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace peinit {

class Error {
public:
    Error() = default;
    explicit Error(std::string message, int code = 0) : message_(std::move(message)), code_(code) {}

    // An error from a failed system call: the message gets ": <strerror>" appended and the
    // errno is kept for callers that branch on it (EEXIST, ENOSYS, ...).
    static Error FromErrno(std::string message, int err = errno) {
        return Error(std::move(message) + ": " + std::strerror(err), err);
    }

    const std::string& message() const { return message_; }
    // The errno this error came from, or 0 when it did not come from a system call.
    int code() const { return code_; }

    // Prefixes context ("units/a.toml: ") while keeping the errno.
    Error Context(const std::string& prefix) const { return Error(prefix + message_, code_); }

private:
    std::string message_;
    int code_ = 0;
};

// Tag type that lets `return Unexpected(err);` and `return Err("...");` build any Result<T>.
// "EKEYREJECTED", or "errno N" when the name is unknown.
inline std::string ErrnoName(int err) {
    const char* name = strerrorname_np(err);
    return name != nullptr ? name : "errno " + std::to_string(err);
}

struct Unexpected {
    explicit Unexpected(Error e) : error(std::move(e)) {}
    Error error;
};

inline Unexpected Err(std::string message, int code = 0) {
    return Unexpected(Error(std::move(message), code));
}
inline Unexpected ErrnoErr(std::string message, int err = errno) {
    return Unexpected(Error::FromErrno(std::move(message), err));
}

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
    Result(Unexpected u) : data_(std::in_place_index<1>, std::move(u.error)) {}  // NOLINT
    Result(Error e) : data_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

    bool has_value() const { return data_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(data_); }
    const T& value() const& { return std::get<0>(data_); }
    T&& value() && { return std::get<0>(std::move(data_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { return std::get<1>(data_); }
    Error& error() { return std::get<1>(data_); }

    template <typename U>
    T value_or(U&& fallback) const& {
        return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
    }

private:
    std::variant<T, Error> data_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Unexpected u) : error_(std::move(u.error)), ok_(false) {}  // NOLINT: implicit
    Result(Error e) : error_(std::move(e)), ok_(false) {}             // NOLINT: implicit

    bool has_value() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }
    Error& error() { return error_; }

private:
    Error error_;
    bool ok_ = true;
};

inline Result<void> Ok() { return {}; }

}  // namespace peinit

// TRY(expr): evaluates a Result-returning expression; on error returns the error from the
// enclosing function (which must return some Result<U>); otherwise yields the value (GNU
// statement expression, as Android's base/result.h does).
#define PEINIT_TRY(expr)                                              \
    ({                                                                \
        auto&& peinit_try_tmp_ = (expr);                              \
        if (!peinit_try_tmp_.has_value())                             \
            return ::peinit::Unexpected(std::move(peinit_try_tmp_.error())); \
        ::peinit::detail::TakeValue(std::move(peinit_try_tmp_));     \
    })

namespace peinit::detail {
template <typename T>
T TakeValue(Result<T>&& r) {
    return std::move(r).value();
}
inline void TakeValue(Result<void>&&) {}
}  // namespace peinit::detail
