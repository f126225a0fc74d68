#include "peinit/modload/packages.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <system_error>
#include <thread>

#include "peinit/core/contain.h"
#include "peinit/core/module_policy.h"

namespace peinit {

std::unique_ptr<PackageSet> PackageSet::Load(const std::filesystem::path& dir,
                                             const std::filesystem::path& keys_dir,
                                             const std::string& kernel_release,
                                             unsigned digest_threads,
                                             std::shared_ptr<const TrustStore> trust) {
    using Clock = std::chrono::steady_clock;
    std::unique_ptr<PackageSet> set(new PackageSet());
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
    if (ec) set->warnings_.push_back("cannot list " + dir.string() + ": " + ec.message());
    std::sort(files.begin(), files.end());
    if (files.empty()) return set;

    // Signatures and manifests: the trust store (OpenSSL's first use, whose initialisation is
    // costly) and OpenPackage. Hashing ahead, this runs on a thread of its own: the trust store
    // loads while this thread reads the packages, and the signatures are checked while it
    // hashes; the digests are only compared once signature and manifest are checked.
    std::vector<Result<PackageBytes>> contents;
    std::promise<void> read;
    std::shared_future<void> read_done = read.get_future().share();
    std::string trust_error;
    std::vector<std::optional<Result<SignedPackage>>> opened(files.size());
    auto check_signatures = [&] {
        auto loaded = trust ? Result<TrustStore>(*trust) : TrustStore::LoadDirectory(keys_dir);
        read_done.wait();
        if (!loaded) {
            trust_error = "no usable trust store: " + loaded.error().message();
            return;
        }
        for (std::size_t f = 0; f < files.size(); ++f) {
            if (!contents[f]) continue;
            opened[f] = OpenPackage(std::move(*contents[f]), *loaded, kernel_release);
        }
    };
    std::future<void> checked;
    std::vector<std::span<const std::byte>> views;
    {
        // The packages are read (and the checking thread told so) whatever happens here.
        struct TellRead {
            std::promise<void>& read;
            ~TellRead() { read.set_value(); }
        } tell{read};
        if (digest_threads > 0) {
            try {
                checked = std::async(std::launch::async, check_signatures);
            } catch (const std::system_error&) {
                // No thread: checked below, after hashing.
            }
        }
        for (const auto& path : files) contents.push_back(ReadFileSealed(path));
        // Views of the bytes, taken before the checking thread's OpenPackage moves the buffers
        // (their memory stays put).
        for (const auto& c : contents) {
            views.push_back(c ? c->span() : std::span<const std::byte>());
        }
    }

    std::vector<std::vector<MemberDigest>> digests(files.size());
    if (digest_threads > 0) {
        const auto start = Clock::now();
        digests = DigestPayloads(views, digest_threads);
        set->digest_ahead_ = std::chrono::duration_cast<std::chrono::microseconds>(
            Clock::now() - start);
    }
    if (checked.valid()) {
        checked.get();
    } else {
        check_signatures();
    }

    for (std::size_t f = 0; f < files.size(); ++f) {
        set->AddEntry(files[f].filename().string(), contents[f], views[f],
                      !trust_error.empty() ? std::optional<Result<SignedPackage>>(Err(trust_error))
                                           : std::move(opened[f]),
                      std::move(digests[f]));
    }
    return set;
}

void PackageSet::AddEntry(std::string file, const Result<PackageBytes>& content,
                          std::span<const std::byte> view,
                          std::optional<Result<SignedPackage>> opened,
                          std::vector<MemberDigest> digests) {
    Entry entry;
    entry.file = std::move(file);
    entry.report.file = entry.file;
    if (!content) {
        entry.report.reason = content.error().message();
        entries_.push_back(std::move(entry));
        return;
    }
    if (!opened || !*opened) {
        // The bytes stay ours on failure: their claimed names explain the rejection.
        entry.report.reason = opened ? opened->error().message() : "signature not checked";
        entry.report.modules = ClaimedModules(view);
        entries_.push_back(std::move(entry));
        return;
    }
    SignedPackage& package = **opened;
    package.AdoptDigests(digests);
    const std::size_t e = entries_.size();
    entry.report.verified = true;
    entry.report.name = package.name();
    entry.report.version = package.version();
    entry.report.signer = package.signer();
    for (std::size_t i = 0; i < package.size(); ++i) {
        std::string module = package.module_name(i);
        auto [at, inserted] = index_.try_emplace(module, e, i);
        if (!inserted) {
            warnings_.push_back("module " + module + " is in packages " +
                                entries_[at->second.first].file + " and " + entry.file +
                                "; using " + entries_[at->second.first].file);
        }
        entry.report.modules.push_back(std::move(module));
    }
    entry.package = std::move(package);
    entries_.push_back(std::move(entry));
}

std::unique_ptr<PackageSet> PackageSet::Indexed(const std::filesystem::path& dir,
                                                std::map<std::string, std::string> index,
                                                std::shared_ptr<const TrustStore> trust,
                                                const std::string& kernel_release) {
    std::unique_ptr<PackageSet> set(new PackageSet());
    set->lazy_ = LazyOpen{dir, std::move(index), std::move(trust), kernel_release, {}};
    return set;
}

void PackageSet::OpenFor(std::string_view module) {
    if (!lazy_) return;
    auto it = lazy_->index.find(NormalizeModuleName(module));
    if (it == lazy_->index.end() || !lazy_->opened.insert(it->second).second) return;
    // Only the file name from the index, inside the packages directory.
    const std::string& file = it->second;
    if (file.empty() || file.find('/') != std::string::npos || file.starts_with(".") ||
        !file.ends_with(".pkg")) {
        return;
    }
    // On the sealed tree the file is mapped in place (only the pages read are touched);
    // anywhere else it is copied into a sealed memfd first.
    auto content = MapReadOnlyMountFile(lazy_->dir / file);
    if (!content) content = ReadFileSealed(lazy_->dir / file);
    std::span<const std::byte> view = content ? content->span() : std::span<const std::byte>();
    std::optional<Result<SignedPackage>> opened;
    if (content) {
        opened = lazy_->trust ? OpenPackage(std::move(*content), *lazy_->trust,
                                            lazy_->kernel_release)
                              : Result<SignedPackage>(Err("no usable trust store"));
    }
    AddEntry(file, content, view, std::move(opened), {});
}

std::map<std::string, std::string> ParsePackagesIndex(std::string_view text) {
    std::map<std::string, std::string> index;
    while (!text.empty()) {
        const std::size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        if (line.empty() || line.starts_with("#")) continue;
        const std::size_t space = line.find(' ');
        if (space == std::string_view::npos) continue;
        index.try_emplace(NormalizeModuleName(line.substr(0, space)),
                          std::string(line.substr(space + 1)));
    }
    return index;
}

std::string PackagesIndexText(const std::filesystem::path& dir) {
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with(".") && it->path().extension() == ".pkg") files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    std::string text =
        "# MODULE PACKAGE-FILE: which package claims which module (unverified: the helper opens\n"
        "# only that package and checks its signature and the member's digest before a load)\n";
    std::set<std::string> seen;
    for (const auto& path : files) {
        auto bytes = ReadFileOnce(path);
        if (!bytes) continue;
        for (const auto& module : ClaimedModules(*bytes)) {
            if (seen.insert(NormalizeModuleName(module)).second) {
                text += NormalizeModuleName(module) + " " + path.filename().string() + "\n";
            }
        }
    }
    return text;
}

void PackageSet::Refresh(Entry& entry) {
    if (entry.package) entry.report.hashed = entry.package->verified_count();
}

void PackageSet::Reject(Entry& entry, const Error& error) {
    entry.report.verified = false;
    entry.report.reason = error.message();
    Refresh(entry);
}

void PackageSet::Prepare(const std::vector<std::string>& modules) {
    std::lock_guard lock(mu_);
    for (const auto& m : modules) OpenFor(m);
    std::vector<std::vector<std::size_t>> wanted(entries_.size());
    for (const auto& m : modules) {
        auto it = index_.find(NormalizeModuleName(m));
        if (it != index_.end()) wanted[it->second.first].push_back(it->second.second);
    }
    for (std::size_t e = 0; e < entries_.size(); ++e) {
        Entry& entry = entries_[e];
        if (wanted[e].empty() || !entry.package) continue;
        std::sort(wanted[e].begin(), wanted[e].end());
        if (auto r = entry.package->Verify(wanted[e]); !r) Reject(entry, r.error());
        Refresh(entry);
    }
}

ModuleSource PackageSet::Find(std::string_view module) {
    std::lock_guard lock(mu_);
    OpenFor(module);
    ModuleSource source;
    const std::string wanted = NormalizeModuleName(module);
    if (auto it = index_.find(wanted); it != index_.end()) {
        Entry& entry = entries_[it->second.first];
        const std::size_t i = it->second.second;
        source.package = entry.file;
        if (entry.report.verified && !entry.package->Verified(i) &&
            !entry.package->rejection()) {
            const std::size_t one[] = {i};
            if (auto r = entry.package->Verify(one); !r) Reject(entry, r.error());
            Refresh(entry);
        }
        if (const VerifiedFile* f = entry.package->Verified(i); f && entry.report.verified) {
            source.file = f;
            source.signer = entry.package->signer();
            return source;
        }
        source.failure = "package rejected (" + entry.file + ": " + entry.report.reason + ")";
        return source;
    }
    for (const auto& entry : entries_) {
        if (entry.report.verified) continue;
        const auto& mods = entry.report.modules;
        if (std::find(mods.begin(), mods.end(), wanted) != mods.end()) {
            source.package = entry.file;
            source.failure = "package rejected (" + entry.file + ": " + entry.report.reason + ")";
            return source;
        }
    }
    source.failure = "not in a verified package";
    return source;
}

void PackageSet::RejectPackageOf(std::string_view module, const Error& error) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(NormalizeModuleName(module)); it != index_.end()) {
        Reject(entries_[it->second.first], error);
    }
}

std::size_t PackageSet::SizeOf(std::string_view module) const {
    std::lock_guard lock(mu_);
    auto it = index_.find(NormalizeModuleName(module));
    if (it == index_.end()) return 0;
    const Entry& entry = entries_[it->second.first];
    return entry.package ? entry.package->file_size(it->second.second) : 0;
}

std::shared_ptr<PackagePrefetch> PackagePrefetch::Start(std::filesystem::path packages_dir,
                                                        std::filesystem::path keys_dir,
                                                        std::string kernel_release) {
    return StartWith(kernel_release, [dir = std::move(packages_dir), keys = std::move(keys_dir),
                                      release = kernel_release] {
        return PackageSet::Load(dir, keys, release,
                                std::max(1u, std::thread::hardware_concurrency()));
    });
}

std::shared_ptr<PackagePrefetch> PackagePrefetch::StartWith(
    std::string kernel_release, std::function<std::unique_ptr<PackageSet>()> load) {
    auto prefetch = std::make_shared<PackagePrefetch>();
    prefetch->kernel_release_ = std::move(kernel_release);
    try {
        prefetch->future_ = std::async(
            std::launch::async, [load = std::move(load), timing = prefetch->timing_] {
                using Clock = std::chrono::steady_clock;
                const auto start = Clock::now();
                auto set = load();
                timing->load =
                    std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
                if (set) timing->digests = set->digest_ahead_time();
                return set;
            });
    } catch (const std::system_error&) {
        return nullptr;
    }
    return prefetch;
}

std::unique_ptr<PackageSet> PackagePrefetch::Take() {
    if (!future_.valid()) return nullptr;
    try {
        return future_.get();
    } catch (...) {
        // The future holds what the thread threw (issue 24 point 4): nothing of it is trusted,
        // the caller reads and checks the packages again itself.
        spdlog::warn("{}: reading them again", UnexpectedException("packages read ahead"));
        return nullptr;
    }
}

std::vector<PackageReport> PackageSet::reports() const {
    std::lock_guard lock(mu_);
    std::vector<PackageReport> out;
    for (const auto& e : entries_) out.push_back(e.report);
    return out;
}

}  // namespace peinit
