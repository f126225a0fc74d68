#include "stages/modules/packages.h"

#include <algorithm>
#include <system_error>

#include "peinit/core/module_policy.h"
#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_crypto.h"

namespace peinit {

PackageSet PackageSet::Load(const std::filesystem::path& dir, const std::filesystem::path& keys_dir,
                            const std::string& kernel_release) {
    PackageSet set;
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) return set;

    std::vector<std::filesystem::path> files;
    std::filesystem::directory_iterator it(dir, ec);
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        const auto& p = it->path();
        std::string name = p.filename().string();
        if (name.starts_with(".") || p.extension() != ".pkg") continue;
        files.push_back(p);
    }
    if (ec) set.warnings_.push_back("cannot list " + dir.string() + ": " + ec.message());
    std::sort(files.begin(), files.end());
    if (files.empty()) return set;

    std::string trust_error;
    TrustStore trusted;
    if (auto loaded = TrustStore::LoadDirectory(keys_dir)) {
        trusted = std::move(*loaded);
    } else {
        trust_error = "no usable trust store: " + loaded.error().message();
    }

    for (const auto& path : files) {
        PackageReport report;
        report.file = path.filename().string();
        auto bytes = ReadFileOnce(path);
        if (!bytes) {
            report.reason = bytes.error().message();
            set.reports_.push_back(std::move(report));
            continue;
        }
        auto verified = trust_error.empty() ? VerifyPackage(*bytes, trusted, kernel_release)
                                            : Result<VerifiedPackage>(Error(trust_error));
        if (!verified) {
            report.reason = verified.error().message();
            report.modules = ClaimedModules(*bytes);
            set.reports_.push_back(std::move(report));
            continue;
        }
        report.verified = true;
        report.name = verified->name();
        report.version = verified->version();
        report.signer = verified->signer();
        for (const auto& f : verified->files()) {
            std::string module = f.module_name();
            if (auto earlier = set.Find(module); earlier.file != nullptr) {
                set.warnings_.push_back("module " + module + " is in packages " + earlier.package +
                                        " and " + report.file + "; using " + earlier.package);
            }
            report.modules.push_back(std::move(module));
        }
        set.verified_.push_back({report.file, std::move(*verified)});
        set.reports_.push_back(std::move(report));
    }
    return set;
}

ModuleSource PackageSet::Find(std::string_view module) const {
    ModuleSource source;
    for (const auto& v : verified_) {
        if (const VerifiedFile* f = v.package.FindModule(module)) {
            source.file = f;
            source.package = v.file;
            return source;
        }
    }
    const std::string wanted = NormalizeModuleName(module);
    for (const auto& r : reports_) {
        if (r.verified) continue;
        if (std::find(r.modules.begin(), r.modules.end(), wanted) != r.modules.end()) {
            source.failure = "package rejected (" + r.file + ": " + r.reason + ")";
            return source;
        }
    }
    source.failure = "not in a verified package";
    return source;
}

}  // namespace peinit
