#include "peinit/record/image.h"

#include <toml++/toml.h>

#include <ctime>

#include "peinit/core/json.h"
#include "peinit/record/record.h"

namespace peinit {

std::string IsoUtc(int64_t epoch_seconds) {
    std::time_t t = static_cast<std::time_t>(epoch_seconds);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) return "";
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string ImageInfo::ToJson() const {
    return FormatJson(toml::table{{"version", version},
                                  {"generator", generator},
                                  {"kernel_release", kernel_release},
                                  {"module_mode", module_mode},
                                  {"key_fingerprint", key_fingerprint},
                                  {"built", built}});
}

Result<ImageInfo> ImageInfo::FromJson(std::string_view text, const std::string& file) {
    auto info = PEINIT_TRY(ReadRecord<ImageInfo>(
        text, file, kVersion,
        [](RecordFields& f, ImageInfo& r) {
            f.Get("version", r.version)
                .Require("generator", r.generator)
                .Require("kernel_release", r.kernel_release)
                .Require("module_mode", r.module_mode)
                .Require("key_fingerprint", r.key_fingerprint)
                .Require("built", r.built);
        },
        "the image was built by a newer peinit-image"));
    if (info.module_mode != "units" && info.module_mode != "host" && info.module_mode != "generic")
        return Err(file + ": \"module_mode\" must be \"units\", \"host\" or \"generic\", not \"" +
                   info.module_mode + "\"");
    return info;
}

}  // namespace peinit
