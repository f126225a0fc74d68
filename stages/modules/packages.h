#pragma once

// The module stage's view of the signed packages in the image (R-10, boot side).
//
// Every package in the packages directory is read exactly once (ReadFileOnce) and verified
// against the trust store and the running kernel's release (VerifyPackage). A package that fails
// any check contributes nothing: its modules are never loaded, and a module the boot wants from
// it is reported as `package rejected (<reason>)`. Modules are only ever loaded from the verified
// bytes held here; a module found in no verified package is not loaded from a loose .ko in the
// module tree (fail closed).

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/sys/package.h"

namespace peinit {

// What happened to one package file, for the log and the boot record.
struct PackageReport {
    std::string file;  // file name in the packages directory, e.g. "storage.pkg"
    bool verified = false;
    std::string name;     // from the verified manifest ("" when rejected)
    std::string version;  // from the verified manifest
    std::string signer;   // fingerprint of the trusted key that signed it
    // Why it was rejected: the verifier's message ("hash-mismatch: modules/jbd2.ko has ..."),
    // or the read error.
    std::string reason;
    // Module names it provides (verified) or claims to provide (rejected: read from its
    // unverified manifest or member names, only to explain a failure, never to load).
    std::vector<std::string> modules;
};

// Where the bytes of one module come from.
struct ModuleSource {
    const VerifiedFile* file = nullptr;  // null: not loadable
    std::string package;                 // file name of the package that provides it
    // When file is null: "package rejected (<file>: <reason>)" or "not in a verified package".
    std::string failure;
};

class PackageSet {
  public:
    // Reads and verifies every "*.pkg" regular file in `dir` (sorted by name). A missing
    // directory is an empty set. A trust directory that cannot be loaded trusts nothing: every
    // package is then rejected with that reason.
    static PackageSet Load(const std::filesystem::path& dir, const std::filesystem::path& keys_dir,
                           const std::string& kernel_release);

    // Thread-safe (const, no I/O).
    ModuleSource Find(std::string_view module) const;

    const std::vector<PackageReport>& reports() const { return reports_; }
    // Non-fatal problems: an unreadable directory, a module provided by two packages.
    const std::vector<std::string>& warnings() const { return warnings_; }
    std::size_t verified_count() const { return verified_.size(); }

  private:
    struct Verified {
        std::string file;
        VerifiedPackage package;
    };
    std::vector<Verified> verified_;
    std::vector<PackageReport> reports_;
    std::vector<std::string> warnings_;
};

}  // namespace peinit
