#pragma once

// The verifier's reference policy (peinit-verify --reference REF.toml; ATTESTATION.md
// "The reference"): what a machine's attested boot must show. TOML:
//
//   [attestation_key]              # from `peinitctl attest --enroll` on the machine
//   name = "000b..."               # the AK's TPM name
//   public_pem = """-----BEGIN PUBLIC KEY-----..."""
//
//   [image]                        # optional
//   kernel_release = "6.1.0-28-amd64"
//   key_fingerprints = ["..."]     # the image's signing key(s)
//
//   [modules]
//   signers = ["<sha256 of the Ed25519 key>", ...]   # every module's signer is one of these
//   allowed = ["virtio_blk", "ext4"]                # optional: no other module may load
//   exact = false                                   # true: exactly `allowed` must load
//
//   [lock]
//   required = true                # a lock event with requested and locked true
//   mechanisms = ["syscall"]       # allowed mechanisms (default: syscall)
//
//   [policy]                       # each optional: the measured value must equal it
//   lock_after_boot = true
//   autoload_policy = "disabled"
//   signing_policy = "enforce"
//
//   [log]
//   require_leave_initrd = false   # true: the boot must have measured its handover

#include <optional>
#include <string>
#include <vector>

#include "peinit/core/config_error.h"
#include "peinit/core/result.h"

namespace peinit::verify {

struct Reference {
    std::string path;
    // [attestation_key]
    std::string ak_name;  // lowercase hex
    std::string ak_public_pem;
    // [image]
    std::optional<std::string> kernel_release;
    std::optional<std::vector<std::string>> image_key_fingerprints;
    // [modules]
    std::vector<std::string> signers;
    std::optional<std::vector<std::string>> allowed_modules;
    bool exact_modules = false;
    // [lock]
    bool lock_required = true;
    std::vector<std::string> lock_mechanisms{"syscall"};
    // [policy]
    std::optional<bool> lock_after_boot;
    std::optional<std::string> autoload_policy;
    std::optional<std::string> signing_policy;
    // [log]
    bool require_leave_initrd = false;
};

// Parses a reference; every problem (syntax, unknown table or key, wrong type, missing
// required key) goes to `errors` as `path:line: message`, all of them in one run.
std::optional<Reference> ParseReference(const std::string& path, const std::string& text,
                                        ConfigErrors& errors);

// Reads and parses `path`; an unreadable file is one error without a line.
std::optional<Reference> LoadReference(const std::string& path, ConfigErrors& errors);

}  // namespace peinit::verify
