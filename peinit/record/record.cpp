#include "peinit/record/record.h"

#include <algorithm>

namespace peinit {

Result<RecordDocument> ParseRecord(std::string_view text, const std::string& file,
                                   int reader_version, const std::string& newer_hint) {
    std::size_t at = std::string_view::npos;
    auto doc = JsonDocument::Parse(text, &at);
    if (!doc) {
        // "FILE:LINE: problem", the line of a syntax error counted from 1.
        if (at == std::string_view::npos) return Err(file + ": " + doc.error().message());
        const auto line =
            1 + std::count(text.begin(), text.begin() + std::min(at, text.size()), '\n');
        return Err(file + ":" + std::to_string(line) + ": " + doc.error().message());
    }
    JsonValue root = doc->root();
    if (!root.IsObject()) return Err(file + ": must be a JSON object, not " + root.TypeName());
    JsonValue version = root.Get("version");
    if (version.IsNull()) return Err(file + ": no \"version\"");
    if (!version.IsInt() || version.Int() < 1) {
        return Err(file + ": \"version\" must be a positive integer");
    }
    if (version.Int() > reader_version) {
        return Err(file + ": version " + std::to_string(version.Int()) +
                   " is newer than this reader's " + std::to_string(reader_version) +
                   (newer_hint.empty() ? std::string() : " (" + newer_hint + ")"));
    }
    RecordDocument out;
    out.version = static_cast<int>(version.Int());
    out.document = std::move(*doc);
    return out;
}

RecordFields::RecordFields(JsonValue object, std::string path)
    : object_(object), path_(std::move(path)) {}

bool RecordFields::Has(std::string_view key) const {
    if (!ok() || !object_.IsObject()) return false;
    for (const auto& k : object_.Keys()) {
        if (k == key) return true;
    }
    return false;
}

std::string RecordFields::Path(std::string_view key) const {
    if (key.empty()) return path_;
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

RecordFields& RecordFields::Fail(std::string_view key, const std::string& problem) {
    if (ok()) {
        std::string where = Path(key);
        error_ = where.empty() ? problem : where + ": " + problem;
    }
    return *this;
}

RecordFields& RecordFields::Take(const RecordFields& child) {
    if (ok() && !child.ok()) error_ = child.error_;
    return *this;
}

RecordFields RecordFields::Child(std::string_view key) {
    JsonValue v = object_.Get(key);
    RecordFields child(v, Path(key));
    if (!v.IsObject()) child.Fail("", "must be an object, not " + v.TypeName());
    return child;
}

template <typename T>
RecordFields& RecordFields::Keep(Result<T> value, T& out) {
    if (!ok()) return *this;
    // JsonValue's typed getters name the key ("KEY: must be a string, not integer").
    if (!value) {
        error_ = path_.empty() ? value.error().message() : path_ + "." + value.error().message();
    } else {
        out = std::move(*value);
    }
    return *this;
}

RecordFields& RecordFields::Get(std::string_view key, std::string& out) {
    return Has(key) ? Keep(object_.StringAt(key), out) : *this;
}

RecordFields& RecordFields::Get(std::string_view key, int64_t& out) {
    return Has(key) ? Keep(object_.IntAt(key), out) : *this;
}

RecordFields& RecordFields::Get(std::string_view key, int& out) {
    int64_t wide = out;
    Get(key, wide);
    if (ok() && (wide < INT32_MIN || wide > INT32_MAX)) return Fail(key, "out of range");
    out = static_cast<int>(wide);
    return *this;
}

RecordFields& RecordFields::Get(std::string_view key, bool& out) {
    return Has(key) ? Keep(object_.BoolAt(key), out) : *this;
}

RecordFields& RecordFields::Get(std::string_view key, std::vector<std::string>& out) {
    return Has(key) ? Keep(object_.StringsAt(key), out) : *this;
}

Result<void> RecordFields::Finish() const {
    if (!ok()) return Err(error_);
    return Ok();
}

}  // namespace peinit
