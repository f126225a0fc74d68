#include "peinit/record/image.h"

#include <ctime>

namespace peinit {

std::string IsoUtc(int64_t epoch_seconds) {
    std::time_t t = static_cast<std::time_t>(epoch_seconds);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) return "";
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Result<ImageInfo> ImageInfo::FromJson(std::string_view text, const std::string& file) {
    auto info = PEINIT_TRY(
        ReadRecord<ImageInfo>(text, file, kVersion, "the image was built by a newer peinit-image"));
    if (info.module_mode != "units" && info.module_mode != "host" && info.module_mode != "generic")
        return Err(file + ": \"module_mode\" must be \"units\", \"host\" or \"generic\", not \"" +
                   info.module_mode + "\"");
    return info;
}

}  // namespace peinit
