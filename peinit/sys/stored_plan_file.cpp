#include "peinit/sys/stored_plan_file.h"

#include <cerrno>
#include <optional>
#include <span>

#include "peinit/sys/config_files.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/sys/package_format.h"

namespace peinit {

Result<VerifiedStoredPlan> ReadStoredPlan(const BootPaths& paths, std::string_view kernel_release,
                                          const TrustStore* trusted) {
    const std::string file = kStoredPlanPath;
    auto text = ReadConfigFile(paths.Under(kStoredPlanPath).string());
    if (!text) {
        if (text.error().code() == ENOENT) return Err(file + ": the image has none", ENOENT);
        return text.error();
    }
    auto sig = ReadConfigFile(paths.Under(kStoredPlanSignaturePath).string());
    if (!sig) {
        return Reject(PackageReject::kUnsigned, "no signature (" + sig.error().message() + ")")
            .error.Context(file + ": ");
    }
    std::optional<TrustStore> loaded;
    if (trusted == nullptr) {
        auto keys = TrustStore::LoadDirectory(paths.TrustedKeysDir());
        if (!keys) return keys.error().Context(file + ": trusted keys: ");
        loaded = std::move(*keys);
        trusted = &*loaded;
    }
    auto bytes = std::as_bytes(std::span(text->text.data(), text->text.size()));
    VerifiedStoredPlan out;
    auto signer = VerifySignatureText(*trusted, bytes, sig->text, file);
    if (!signer) return signer.error().Context(file + ": ");
    out.signer = std::move(*signer);
    out.plan = PEINIT_TRY(StoredPlan::FromToml(text->text, file));
    if (out.plan.kernel_release != kernel_release) {
        return Reject(PackageReject::kWrongKernelRelease, "planned for kernel " +
                                                              out.plan.kernel_release +
                                                              ", this kernel is " +
                                                              std::string(kernel_release))
            .error.Context(file + ": ");
    }
    return out;
}

}  // namespace peinit
