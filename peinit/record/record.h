#pragma once

// What every record peinit writes as JSON shares (the files under /run/peinit, /etc/peinit/
// image.json): one C++ type per file, its writing (ToJson, through peinit/core/json.h) and its
// reading (FromJson, here) side by side, so that a renamed key fails a round-trip test instead of
// a reader at run time.
//
// Compatibility: every record has an integer `version`, its major schema version. A reader
// accepts its own version and older ones and refuses a newer one with an error naming the file
// and both versions. Within a version, a reader ignores keys it does not know and gives a key
// that is absent its default (older writers of the same version); a key that is present with
// the wrong JSON type is an error naming the file and the key's path.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/record/json.h"

namespace peinit {

// The parsed document of one record, its version checked.
struct RecordDocument {
    JsonDocument document;
    int version = 0;
    JsonValue root() const { return document.root(); }
};

// `file` names the record in every error ("/run/peinit/modules.json: ..."); `newer_hint` is
// appended in parentheses to the newer-version error ("the image was built by a newer
// peinit-image").
Result<RecordDocument> ParseRecord(std::string_view text, const std::string& file,
                                   int reader_version, const std::string& newer_hint = "");

// Reads the members of one JSON object into typed fields. An absent member leaves the field as
// it is (its default); the first member of the wrong type (or an enum value the reader does not
// know) is kept as the error, with the member's path ("modules[3].status"), and Finish()
// returns it. Every read after an error is skipped.
class RecordFields {
  public:
    RecordFields(JsonValue object, std::string path = "");

    RecordFields& Get(std::string_view key, std::string& out);
    RecordFields& Get(std::string_view key, int64_t& out);
    RecordFields& Get(std::string_view key, int& out);
    RecordFields& Get(std::string_view key, bool& out);
    RecordFields& Get(std::string_view key, std::vector<std::string>& out);
    // A member that must be there: absent is the error `no "KEY"`.
    template <typename T>
    RecordFields& Require(std::string_view key, T& out) {
        if (ok() && !Has(key)) return Fail("", "no \"" + std::string(key) + "\"");
        return Get(key, out);
    }
    template <typename T, typename Read>
    RecordFields& RequireObjects(std::string_view key, std::vector<T>& out, Read read) {
        if (ok() && !Has(key)) return Fail("", "no \"" + std::string(key) + "\"");
        return Objects(key, out, read);
    }
    // A member that may be absent: nullopt then.
    template <typename T>
    RecordFields& Get(std::string_view key, std::optional<T>& out) {
        if (!Has(key)) return *this;
        T value{};
        Get(key, value);
        if (ok()) out = std::move(value);
        return *this;
    }
    // A string member naming one value of an enum: `parse` returns nullopt for an unknown one.
    template <typename T, typename Parse>
    RecordFields& Enum(std::string_view key, T& out, Parse parse) {
        std::string text;
        if (!Has(key) || !Get(key, text).ok()) return *this;
        if (auto v = parse(text)) {
            out = *v;
        } else {
            Fail(key, "unknown value \"" + text + "\"");
        }
        return *this;
    }
    // A member object, read by `read(RecordFields&, T&)`.
    template <typename T, typename Read>
    RecordFields& Object(std::string_view key, T& out, Read read) {
        if (!Has(key)) return *this;
        RecordFields child = Child(key);
        if (child.ok()) read(child, out);
        return Take(child);
    }
    // An array of objects, each read by `read(RecordFields&, T&)` into a default T.
    template <typename T, typename Read>
    RecordFields& Objects(std::string_view key, std::vector<T>& out, Read read) {
        if (!Has(key) || !ok()) return *this;
        JsonValue list = object_.Get(key);
        if (!list.IsArray()) return Fail(key, "must be an array, not " + list.TypeName());
        out.clear();
        for (std::size_t i = 0; i < list.Size() && ok(); ++i) {
            RecordFields item(list.At(i), Path(key) + "[" + std::to_string(i) + "]");
            if (!item.object_.IsObject()) {
                item.Fail("", "must be an object, not " + item.object_.TypeName());
            } else {
                T value{};
                read(item, value);
                out.push_back(std::move(value));
            }
            Take(item);
        }
        return *this;
    }

    bool ok() const { return error_.empty(); }
    // Records a problem of the member `key` (or of this object when `key` is empty), unless an
    // error was recorded already: "PATH.KEY: PROBLEM".
    RecordFields& Fail(std::string_view key, const std::string& problem);
    // Ok, or the first error as "PATH: PROBLEM".
    Result<void> Finish() const;

  private:
    bool Has(std::string_view key) const;
    std::string Path(std::string_view key) const;
    RecordFields Child(std::string_view key);
    RecordFields& Take(const RecordFields& child);

    JsonValue object_;
    std::string path_;
    std::string error_;
};

// ParseRecord, then `read` on its top-level object; every error is prefixed by `file`.
template <typename T, typename Read>
Result<T> ReadRecord(std::string_view text, const std::string& file, int reader_version,
                     Read read, const std::string& newer_hint = "") {
    auto doc = ParseRecord(text, file, reader_version, newer_hint);
    if (!doc) return Unexpected(doc.error());
    T record{};
    RecordFields fields(doc->root());
    read(fields, record);
    if (auto r = fields.Finish(); !r) return Err(file + ": " + r.error().message());
    return record;
}

}  // namespace peinit
