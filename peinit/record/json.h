#pragma once

// Strict, typed JSON reading, on json-c (linked statically: libtss2-dev already depends on it,
// and peinitctl stays a program that needs only glibc): peinit's own records
// (peinit/record/record.h) and the attestation formats (the TPM event log's records and their
// content strings, the attestation bundle). Types are checked: a reader tells `"locked":true`
// from `"locked":"true"`.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"

struct json_object;

namespace peinit {

// A borrowed view of one JSON value inside a JsonDocument (valid while the document lives).
class JsonValue {
  public:
    JsonValue() = default;
    explicit JsonValue(json_object* o) : o_(o) {}

    bool IsObject() const;
    bool IsArray() const;
    bool IsString() const;
    bool IsBool() const;
    bool IsInt() const;
    bool IsNull() const { return o_ == nullptr; }

    // Member `key` of an object; a null value when absent (or when this is no object).
    JsonValue Get(std::string_view key) const;
    // Keys of an object, in document order.
    std::vector<std::string> Keys() const;
    std::size_t Size() const;  // array length
    JsonValue At(std::size_t i) const;

    std::string String() const;  // the exact bytes, \u0000 included
    bool Bool() const;
    int64_t Int() const;

    // Typed members: an error "KEY: missing" / "KEY: must be a string" for the caller to place.
    Result<std::string> StringAt(std::string_view key) const;
    Result<bool> BoolAt(std::string_view key) const;
    Result<int64_t> IntAt(std::string_view key) const;
    Result<std::vector<std::string>> StringsAt(std::string_view key) const;

    // The JSON type's name for messages: "string", "object", ...
    std::string TypeName() const;

  private:
    json_object* o_ = nullptr;
};

class JsonDocument {
  public:
    // Parses exactly one JSON text (RFC 8259, UTF-8 validated; surrounding white space allowed,
    // nothing else after it). The error names the problem and its byte offset.
    // `error_at`, when given, receives the byte offset of a syntax error.
    static Result<JsonDocument> Parse(std::string_view text, std::size_t* error_at = nullptr);
    JsonValue root() const { return JsonValue(root_.get()); }

  private:
    struct Put {
        void operator()(json_object* o) const;
    };
    std::unique_ptr<json_object, Put> root_;
};

}  // namespace peinit
