#pragma once

// What every record peinit writes as JSON shares (the files under /run/peinit, /etc/peinit/
// image.json): one C++ type per file whose members are listed once, in
//   template <typename F> void Members(F& f) { f("name", name).Enum("status", status, Parse); }
// and that one list both writes the JSON (RecordWriter, formatted by peinit/core/json.h) and
// reads it (RecordFields), so a key cannot be renamed on one side only. Nested objects and lists
// of objects are types with Members of their own (or a free RecordMembers(f, value)).
//
// Compatibility: every record has an integer `version`, its major schema version. A reader
// accepts its own version and older ones and refuses a newer one with an error naming the file
// and both versions. Within a version, a reader ignores keys it does not know and gives a key
// that is absent its default (older writers of the same version); a key that is present with
// the wrong JSON type is an error naming the file and the key's path.

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "peinit/core/json.h"
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

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};
template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// The value of `values` whose ToString is `text` (an enum read by its name), nullopt when none is.
template <typename T, std::size_t N>
std::optional<T> ParseByName(const T (&values)[N], std::string_view text) {
    for (T v : values) {
        if (ToString(v) == text) return v;
    }
    return std::nullopt;
}

// Lists the members of `value` to `f`: its Members(f), or a free RecordMembers(f, value) for a
// type that is not a record's own (RequestOrigin).
template <typename F, typename T>
void VisitMembers(F& f, T& value) {
    if constexpr (requires { value.Members(f); }) {
        value.Members(f);
    } else {
        RecordMembers(f, value);
    }
}
template <typename F, typename T>
concept Listable = requires(F& f, T& value) { value.Members(f); } ||
                   requires(F& f, T& value) { RecordMembers(f, value); };
// A list of such objects.
template <typename F, typename T>
concept ListableList = IsVector<T>::value && Listable<F, typename T::value_type>;

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
    // The member `key` into `out`, whatever its type: a scalar, a list of strings, an object
    // (a type with Members) or a list of them.
    template <typename T>
    RecordFields& operator()(std::string_view key, T& out) {
        if constexpr (Listable<RecordFields, T>) {
            return Object(key, out, [](RecordFields& f, T& v) { VisitMembers(f, v); });
        } else if constexpr (ListableList<RecordFields, T>) {
            using Item = typename T::value_type;
            return Objects(key, out, [](RecordFields& f, Item& v) { VisitMembers(f, v); });
        } else {
            return Get(key, out);
        }
    }
    // A member that must be there: absent is the error `no "KEY"`.
    template <typename T>
    RecordFields& Required(std::string_view key, T& out) {
        if (ok() && !Has(key)) return Fail("", "no \"" + std::string(key) + "\"");
        return (*this)(key, out);
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
    template <typename T>
    RecordFields& Keep(Result<T> value, T& out);
    RecordFields& Take(const RecordFields& child);

    JsonValue object_;
    std::string path_;
    std::string error_;
};

// Writes the members a record lists as one JSON object (toml::table, formatted by FormatJson).
class RecordWriter {
  public:
    template <typename T>
    RecordWriter& operator()(std::string_view key, const T& value) {
        if constexpr (IsOptional<T>::value) {
            if (value) (*this)(key, *value);
        } else {
            table_.insert(key, Value(value));
        }
        return *this;
    }
    template <typename T>
    RecordWriter& Required(std::string_view key, const T& value) {
        return (*this)(key, value);
    }
    template <typename T, typename Parse>
    RecordWriter& Enum(std::string_view key, const T& value, Parse) {
        table_.insert(key, std::string(ToString(value)));
        return *this;
    }

    // The object of `value`'s members. Members() takes its object by reference for reading;
    // writing only reads it.
    template <typename T>
    static toml::table Table(const T& value) {
        RecordWriter w;
        VisitMembers(w, const_cast<T&>(value));
        return std::move(w.table_);
    }

  private:
    template <typename T>
    static auto Value(const T& v) {
        if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) {
            return static_cast<int64_t>(v);
        } else if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
            return v;
        } else if constexpr (IsVector<T>::value) {
            toml::array a;
            for (const auto& item : v) a.push_back(Value(item));
            return a;
        } else {
            return Table(v);
        }
    }

    toml::table table_;
};

// A record as JSON: its members, keys sorted, one trailing newline.
template <typename T>
std::string WriteRecordJson(const T& record) {
    return FormatJson(RecordWriter::Table(record));
}

// ParseRecord, then `read(fields, record)` on its top-level object; every error is prefixed by
// `file`.
template <typename T, typename Read>
Result<T> ReadRecordWith(std::string_view text, const std::string& file, int reader_version,
                         Read read, const std::string& newer_hint = "") {
    auto doc = ParseRecord(text, file, reader_version, newer_hint);
    if (!doc) return Unexpected(doc.error());
    T record{};
    RecordFields fields(doc->root());
    read(fields, record);
    if (auto r = fields.Finish(); !r) return Err(file + ": " + r.error().message());
    return record;
}

// The same, reading the members the record lists.
template <typename T>
Result<T> ReadRecord(std::string_view text, const std::string& file, int reader_version,
                     const std::string& newer_hint = "") {
    return ReadRecordWith<T>(
        text, file, reader_version, [](RecordFields& f, T& r) { VisitMembers(f, r); }, newer_hint);
}

}  // namespace peinit
