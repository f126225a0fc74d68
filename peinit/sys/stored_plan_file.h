#pragma once

// The image's stored plan (peinit/core/stored_plan.h) as the module stage takes it: read from
// ROOT/etc/peinit/plan.toml, its signature (plan.toml.sig, MANIFEST.sig's format) checked
// against the image's trusted keys before a byte of it is parsed, parsed, and refused when it
// was made for another kernel release. Fail-closed: the caller plans with libkmod on any error,
// and nothing is ever planned from bytes that did not verify.

#include <string>
#include <string_view>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"
#include "peinit/core/stored_plan.h"

namespace peinit {

class TrustStore;

struct VerifiedStoredPlan {
    StoredPlan plan;
    std::string signer;  // the fingerprint of the key that signed it
};

// Errors start with the path; an image without a stored plan is an error with code ENOENT.
// `trusted` null: the keys of paths.TrustedKeysDir(), read once the plan file is there.
Result<VerifiedStoredPlan> ReadStoredPlan(const BootPaths& paths, std::string_view kernel_release,
                                          const TrustStore* trusted = nullptr);

}  // namespace peinit
