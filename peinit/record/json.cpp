#include "peinit/record/json.h"

#include <json-c/json.h>

namespace peinit {

void JsonDocument::Put::operator()(json_object* o) const { json_object_put(o); }

Result<JsonDocument> JsonDocument::Parse(std::string_view text, std::size_t* error_at) {
    // json-c takes the length as an int.
    if (text.size() > (1u << 30)) return Err("JSON text too large");
    std::unique_ptr<json_tokener, void (*)(json_tokener*)> tok(json_tokener_new(),
                                                               json_tokener_free);
    if (!tok) return Err("out of memory");
    json_tokener_set_flags(tok.get(), JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    std::size_t start = text.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos) return Err("empty, not JSON");
    std::string_view body = text.substr(start);
    json_object* obj = json_tokener_parse_ex(tok.get(), body.data(), static_cast<int>(body.size()));
    json_tokener_error jerr = json_tokener_get_error(tok.get());
    if (jerr == json_tokener_continue) {
        if (error_at != nullptr) *error_at = text.size();
        return Err("not JSON: truncated");
    }
    if (jerr != json_tokener_success) {
        std::size_t at = start + json_tokener_get_parse_end(tok.get());
        if (error_at != nullptr) *error_at = at;
        return Err(std::string("not JSON: ") + json_tokener_error_desc(jerr) + " at byte " +
                   std::to_string(at));
    }
    JsonDocument doc;
    doc.root_.reset(obj);
    std::size_t end = start + json_tokener_get_parse_end(tok.get());
    if (text.find_first_not_of(" \t\r\n", end) != std::string_view::npos) {
        if (error_at != nullptr) *error_at = end;
        return Err("not JSON: trailing data at byte " + std::to_string(end));
    }
    // A top-level JSON `null` parses to a null pointer; nothing peinit reads is null.
    if (obj == nullptr) return Err("not JSON: null");
    return doc;
}

bool JsonValue::IsObject() const {
    return o_ != nullptr && json_object_is_type(o_, json_type_object);
}
bool JsonValue::IsArray() const {
    return o_ != nullptr && json_object_is_type(o_, json_type_array);
}
bool JsonValue::IsString() const {
    return o_ != nullptr && json_object_is_type(o_, json_type_string);
}
bool JsonValue::IsBool() const {
    return o_ != nullptr && json_object_is_type(o_, json_type_boolean);
}
bool JsonValue::IsInt() const { return o_ != nullptr && json_object_is_type(o_, json_type_int); }

JsonValue JsonValue::Get(std::string_view key) const {
    if (!IsObject()) return JsonValue();
    json_object* out = nullptr;
    std::string k(key);
    if (!json_object_object_get_ex(o_, k.c_str(), &out)) return JsonValue();
    return JsonValue(out);
}

std::vector<std::string> JsonValue::Keys() const {
    std::vector<std::string> keys;
    if (!IsObject()) return keys;
    json_object_object_foreach(o_, key, value) {
        (void)value;
        keys.emplace_back(key);
    }
    return keys;
}

std::size_t JsonValue::Size() const { return IsArray() ? json_object_array_length(o_) : 0; }
JsonValue JsonValue::At(std::size_t i) const {
    return IsArray() ? JsonValue(json_object_array_get_idx(o_, i)) : JsonValue();
}

std::string JsonValue::String() const {
    if (!IsString()) return {};
    return std::string(json_object_get_string(o_),
                       static_cast<std::size_t>(json_object_get_string_len(o_)));
}
bool JsonValue::Bool() const { return IsBool() && json_object_get_boolean(o_) != 0; }
int64_t JsonValue::Int() const { return IsInt() ? json_object_get_int64(o_) : 0; }

std::string JsonValue::TypeName() const {
    if (o_ == nullptr) return "null";
    switch (json_object_get_type(o_)) {
        case json_type_boolean:
            return "boolean";
        case json_type_double:
            return "number";
        case json_type_int:
            return "integer";
        case json_type_object:
            return "object";
        case json_type_array:
            return "array";
        case json_type_string:
            return "string";
        default:
            return "null";
    }
}

namespace {
Unexpected Missing(std::string_view key) { return Err(std::string(key) + ": missing"); }
Unexpected WrongType(std::string_view key, const char* want, const JsonValue& v) {
    return Err(std::string(key) + ": must be " + want + ", not " + v.TypeName());
}
bool Has(const JsonValue& parent, std::string_view key) {
    if (!parent.IsObject()) return false;
    for (const auto& k : parent.Keys()) {
        if (k == key) return true;
    }
    return false;
}
}  // namespace

Result<std::string> JsonValue::StringAt(std::string_view key) const {
    JsonValue v = Get(key);
    if (v.IsNull()) return Has(*this, key) ? WrongType(key, "a string", v) : Missing(key);
    if (!v.IsString()) return WrongType(key, "a string", v);
    return v.String();
}

Result<bool> JsonValue::BoolAt(std::string_view key) const {
    JsonValue v = Get(key);
    if (v.IsNull()) return Has(*this, key) ? WrongType(key, "a boolean", v) : Missing(key);
    if (!v.IsBool()) return WrongType(key, "a boolean", v);
    return v.Bool();
}

Result<int64_t> JsonValue::IntAt(std::string_view key) const {
    JsonValue v = Get(key);
    if (v.IsNull()) return Has(*this, key) ? WrongType(key, "an integer", v) : Missing(key);
    if (!v.IsInt()) return WrongType(key, "an integer", v);
    return v.Int();
}

Result<std::vector<std::string>> JsonValue::StringsAt(std::string_view key) const {
    JsonValue v = Get(key);
    if (v.IsNull()) return Has(*this, key) ? WrongType(key, "an array", v) : Missing(key);
    if (!v.IsArray()) return WrongType(key, "an array of strings", v);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.Size(); ++i) {
        JsonValue item = v.At(i);
        if (!item.IsString()) {
            return Err(std::string(key) + "[" + std::to_string(i) + "]: must be a string, not " +
                       item.TypeName());
        }
        out.push_back(item.String());
    }
    return out;
}

}  // namespace peinit
