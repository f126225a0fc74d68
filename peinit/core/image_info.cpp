#include "peinit/core/image_info.h"

#include <toml++/toml.h>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <ctime>
#include <sstream>

#include "peinit/core/json.h"
#include "peinit/core/record_json.h"

namespace peinit {

namespace pt = boost::property_tree;

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

Result<ImageInfo> ImageInfo::FromJson(const std::string& text, const std::string& file) {
    auto record = PEINIT_TRY(ParseVersionedRecord(text, file, kVersion,
                                                  "the image was built by a newer peinit-image"));
    const pt::ptree& tree = record.tree;
    ImageInfo info;
    info.version = record.version;
    for (auto [key, field] :
         {std::pair{"generator", &info.generator},
          std::pair{"kernel_release", &info.kernel_release},
          std::pair{"module_mode", &info.module_mode},
          std::pair{"key_fingerprint", &info.key_fingerprint}, std::pair{"built", &info.built}}) {
        auto value = tree.get_child_optional(key);
        if (!value) return Err(file + ": no \"" + key + "\"");
        if (!value->empty()) return Err(file + ": \"" + key + "\" must be a string");
        *field = value->data();
    }
    if (info.module_mode != "units" && info.module_mode != "host" && info.module_mode != "generic")
        return Err(file + ": \"module_mode\" must be \"units\", \"host\" or \"generic\", not \"" +
                   info.module_mode + "\"");
    return info;
}

}  // namespace peinit
