#pragma once

// A JSON document a test parsed (peinit's own output: `peinitctl ... --json`, `peinit plan
// --json`, a record), read by dotted paths whose numeric parts index arrays:
// "lock.locked", "modules.list.0.name". An absent member reads as null (IsNull(), "", 0, false),
// so a test asserts on values, never crashes on a missing key.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "peinit/record/json.h"

namespace peinit::testing {

class TestJson {
  public:
    explicit TestJson(const std::string& text) : parsed_(JsonDocument::Parse(text)) {
        EXPECT_TRUE(parsed_) << (parsed_ ? "" : parsed_.error().message()) << "\n" << text;
    }
    // The document when `text` parses, else nullopt without a test failure (a line that may
    // have been cut, among others that carry the same document).
    static std::optional<TestJson> IfParses(const std::string& text) {
        auto parsed = JsonDocument::Parse(text);
        if (!parsed) return std::nullopt;
        return TestJson(std::move(parsed));
    }
    bool ok() const { return parsed_.has_value(); }

    JsonValue At(std::string_view path) const {
        if (!parsed_) return JsonValue();
        JsonValue v = parsed_->root();
        while (!path.empty()) {
            auto dot = path.find('.');
            std::string_view part = path.substr(0, dot);
            path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
            if (v.IsArray() && !part.empty() &&
                part.find_first_not_of("0123456789") == std::string_view::npos) {
                v = v.At(std::stoul(std::string(part)));
            } else {
                v = v.Get(part);
            }
        }
        return v;
    }
    bool Has(std::string_view path) const { return !At(path).IsNull(); }
    std::string Str(std::string_view path) const { return At(path).String(); }
    int64_t Int(std::string_view path) const { return At(path).Int(); }
    bool Bool(std::string_view path) const { return At(path).Bool(); }
    std::size_t Size(std::string_view path) const {
        JsonValue v = At(path);
        return v.IsObject() ? v.Keys().size() : v.Size();
    }

  private:
    explicit TestJson(Result<JsonDocument> parsed) : parsed_(std::move(parsed)) {}
    Result<JsonDocument> parsed_;
};

}  // namespace peinit::testing
