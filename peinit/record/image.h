#pragma once

// The image's provenance record, /etc/peinit/image.json: which builder made the image, for which
// kernel release, how its module set was chosen, which key signs its package and when it was
// built. One type shared by the writer (peinit-image, when it builds an image) and the readers
// (PID 1, peinitctl), as booster shares its config type between generator and init.
//
// Compatibility: `version` is the record's major version. A reader accepts its own version and
// older ones and ignores fields it does not know (added within a major version); a newer major
// version is refused with both versions named.

#include <cstdint>
#include <string>
#include <string_view>

#include "peinit/core/result.h"
#include "peinit/record/record.h"

namespace peinit {

// Where the builder ships the record in an image, and where PID 1's config stage records it for
// `peinitctl status` (it moves into the real root with /run).
inline constexpr const char* kImageInfoPath = "/etc/peinit/image.json";
inline constexpr const char* kImageRecordPath = "/run/peinit/image.json";

struct ImageInfo {
    static constexpr int kVersion = 1;

    int version = kVersion;
    std::string generator;       // "peinit-image <version>"
    std::string kernel_release;  // "6.1.0-57-amd64"
    std::string module_mode;     // "units" | "host" | "generic" (image.toml `modules_from`)
    // Lowercase hex SHA-256 of the raw Ed25519 public key that signs the image package: the
    // fingerprint `peinit-pkg` prints and MANIFEST.sig names the signer by.
    std::string key_fingerprint;
    std::string built;  // SOURCE_DATE_EPOCH as ISO-8601 UTC, "1970-01-01T00:00:00Z"

    template <typename F>
    void Members(F& f) {
        f("version", version)
            .Required("generator", generator)
            .Required("kernel_release", kernel_release)
            .Required("module_mode", module_mode)
            .Required("key_fingerprint", key_fingerprint)
            .Required("built", built);
    }
    // The record as JSON (peinit/core/json.h), keys sorted, one trailing newline.
    std::string ToJson() const { return WriteRecordJson(*this); }
    // Parses a record; `file` names it in errors ("/etc/peinit/image.json:3: ...",
    // "/etc/peinit/image.json: version 2 is newer than this reader's 1 ...").
    static Result<ImageInfo> FromJson(std::string_view text, const std::string& file);
};

// Seconds since the epoch as ISO-8601 UTC ("2024-03-01T12:00:00Z"); the builder's `built`.
std::string IsoUtc(int64_t epoch_seconds);

}  // namespace peinit
