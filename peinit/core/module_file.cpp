#include "peinit/core/module_file.h"

namespace peinit {

namespace {

struct Suffix {
    std::string_view text;
    ModuleCompression compression;
};
constexpr Suffix kSuffixes[] = {{".ko", ModuleCompression::kNone},
                                {".ko.gz", ModuleCompression::kGzip},
                                {".ko.xz", ModuleCompression::kXz},
                                {".ko.zst", ModuleCompression::kZstd}};

const Suffix* SuffixOf(std::string_view name) {
    for (const auto& s : kSuffixes) {
        if (name.size() > s.text.size() && name.ends_with(s.text)) return &s;
    }
    return nullptr;
}

}  // namespace

std::optional<ModuleCompression> ModuleCompressionOf(std::string_view file_name) {
    const Suffix* s = SuffixOf(file_name);
    if (!s) return std::nullopt;
    return s->compression;
}

std::string_view StripModuleSuffix(std::string_view file_name) {
    const Suffix* s = SuffixOf(file_name);
    if (s) file_name.remove_suffix(s->text.size());
    return file_name;
}

std::string_view ToString(ModuleCompression c) {
    switch (c) {
        case ModuleCompression::kNone:
            return "none";
        case ModuleCompression::kGzip:
            return "gzip";
        case ModuleCompression::kXz:
            return "xz";
        case ModuleCompression::kZstd:
            return "zstd";
    }
    return "unknown";
}

}  // namespace peinit
