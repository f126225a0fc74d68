#include "peinit/modload/packages.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <set>
#include <system_error>
#include <thread>

#include "peinit/core/contain.h"
#include "peinit/core/module_policy.h"
#include "peinit/modload/loader.h"

namespace peinit {

std::unique_ptr<PackageSet> PackageSet::Load(const std::filesystem::path& dir,
                                             const std::filesystem::path& keys_dir,
                                             const std::string& kernel_release,
                                             std::shared_ptr<const TrustStore> trust) {
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

    // The trust store (OpenSSL's first use, whose initialisation is costly) loads on a thread
    // of its own while the packages are read.
    auto load_trust = [&]() -> Result<TrustStore> {
        return trust ? Result<TrustStore>(*trust) : TrustStore::LoadDirectory(keys_dir);
    };
    std::future<Result<TrustStore>> trust_loading;
    try {
        trust_loading = std::async(std::launch::async, load_trust);
    } catch (const std::system_error&) {
        // No thread: loaded below, after reading.
    }
    std::vector<Result<PackageBytes>> contents;
    for (const auto& path : files) contents.push_back(ReadPackageFile(path));
    Result<TrustStore> loaded = trust_loading.valid() ? trust_loading.get() : load_trust();

    for (std::size_t f = 0; f < files.size(); ++f) {
        // A view of the bytes, taken before OpenPackage moves the buffer (its memory stays put).
        std::span<const std::byte> view =
            contents[f] ? contents[f]->span() : std::span<const std::byte>();
        std::optional<Result<SignedPackage>> opened;
        if (!loaded) {
            opened = Err("no usable trust store: " + loaded.error().message());
        } else if (contents[f]) {
            opened = OpenPackage(std::move(*contents[f]), *loaded, kernel_release);
        }
        set->AddEntry(files[f].filename().string(), contents[f], view, std::move(opened));
    }
    return set;
}

void PackageSet::AddEntry(std::string file, const Result<PackageBytes>& content,
                          std::span<const std::byte> view,
                          std::optional<Result<SignedPackage>> opened) {
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
    const std::size_t e = entries_.size();
    entry.report.in_place = content->in_place();
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
    entry.hashing.assign(package.size(), 0);
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
    auto content = ReadPackageFile(lazy_->dir / file);
    std::span<const std::byte> view = content ? content->span() : std::span<const std::byte>();
    std::optional<Result<SignedPackage>> opened;
    if (content) {
        opened = lazy_->trust ? OpenPackage(std::move(*content), *lazy_->trust,
                                            lazy_->kernel_release)
                              : Result<SignedPackage>(Err("no usable trust store"));
    }
    AddEntry(file, content, view, std::move(opened));
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

PackageSet::~PackageSet() { FinishStream(); }

namespace {

// This thread's CPU time: what hashing costs, however many threads compete for the CPUs.
int64_t ThreadCpuUs() {
    timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace

bool PackageSet::CheckUpTo(Entry& entry, std::size_t i, std::unique_lock<std::mutex>& lock,
                           bool wait) {
    // The members to check, in order: those before i in the stream, then i.
    std::vector<std::size_t> todo;
    for (std::size_t m : entry.stream) {
        if (m == i) break;
        todo.push_back(m);
    }
    todo.push_back(i);
    // A member another thread is hashing is waited for, never hashed twice. The wait is marked
    // as one for input (LoaderInputWait): a worker asleep here is not a module init that sleeps,
    // and the loader adds no worker for it.
    while (entry.report.verified) {
        std::optional<std::size_t> next;
        bool busy = false;
        for (std::size_t m : todo) {
            if (entry.package->Verified(m)) continue;
            if (entry.hashing[m] == 0) {
                next = m;
                break;
            }
            busy = true;
        }
        if (!next) {
            if (!busy) return true;  // all checked
            if (!wait) return true;  // the stream moves on; the thread hashing it finishes it
            LoaderInputWait input;
            hashed_.wait(lock);
            continue;
        }
        ++entry.hashing[*next];
        lock.unlock();
        const int64_t start = ThreadCpuUs();
        const MemberHash hash = entry.package->HashMember(*next);  // bytes nobody changes
        hash_us_ += ThreadCpuUs() - start;
        lock.lock();
        --entry.hashing[*next];
        entry.report.hashed_bytes += static_cast<int64_t>(entry.package->file_size(*next));
        if (auto r = entry.package->Check(hash); !r) Reject(entry, r.error());
        Refresh(entry);
        hashed_.notify_all();
    }
    return false;
}

void PackageSet::StartStream(const std::vector<std::string>& modules) {
    FinishStream();
    std::lock_guard lock(mu_);
    for (const auto& m : modules) OpenFor(m);
    for (const auto& m : modules) {
        auto it = index_.find(NormalizeModuleName(m));
        if (it == index_.end()) continue;
        auto& stream = entries_[it->second.first].stream;
        if (std::find(stream.begin(), stream.end(), it->second.second) != stream.end()) continue;
        stream.push_back(it->second.second);
        stream_.push_back(it->second);
    }
    if (stream_.empty()) return;
    try {
        streamer_ = std::thread([this] { Stream(); });
    } catch (const std::system_error&) {
        // No thread: Find checks each member (and those before it) when it is asked for.
    }
}

void PackageSet::Stream() {
    try {
        std::unique_lock lock(mu_);
        for (const auto& [e, i] : stream_) CheckUpTo(entries_[e], i, lock, /*wait=*/false);
    } catch (...) {
        // Nothing escapes the thread (it would end PID 1): FinishStream checks what is left.
    }
}

void PackageSet::FinishStream() {
    if (streamer_.joinable()) streamer_.join();
    std::unique_lock lock(mu_);
    // Without a thread, or when it could not finish: every member of the stream is judged.
    for (const auto& [e, i] : stream_) CheckUpTo(entries_[e], i, lock, /*wait=*/true);
    stream_.clear();
    for (auto& entry : entries_) entry.stream.clear();
}

std::chrono::microseconds PackageSet::hash_time() const {
    return std::chrono::microseconds(hash_us_.load());
}

ModuleSource PackageSet::Find(std::string_view module) {
    std::unique_lock lock(mu_);
    OpenFor(module);
    ModuleSource source;
    const std::string wanted = NormalizeModuleName(module);
    if (auto it = index_.find(wanted); it != index_.end()) {
        Entry& entry = entries_[it->second.first];
        const std::size_t i = it->second.second;
        source.package = entry.file;
        if (entry.package && CheckUpTo(entry, i, lock, /*wait=*/true)) {
            source.file = entry.package->Verified(i);
            source.signer = entry.package->signer();
            auto& released = entry.report.released;
            if (std::find(released.begin(), released.end(), wanted) == released.end()) {
                released.push_back(wanted);
            }
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

Result<bool> MountPackagesReadOnly(Kernel& kernel, const std::string& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) return false;
        return ErrnoErr(dir);
    }
    if (!S_ISDIR(st.st_mode)) return Err(dir + ": not a directory");
    PEINIT_TRY(kernel.Mount(dir, dir, "", MS_BIND, ""));
    constexpr unsigned long kFlags = MS_RDONLY | MS_NOSUID | MS_NODEV;
    auto remounted = kernel.Mount("", dir, "", MS_REMOUNT | MS_BIND | kFlags, "");
    auto flags = remounted ? kernel.MountFlags(dir) : Result<unsigned long>(remounted.error());
    if (!flags || (*flags & kFlags) != kFlags) {
        (void)kernel.Umount(dir, MNT_DETACH);
        return flags ? Err(dir + ": the bind mount did not become read-only")
                     : Err(dir + ": remount read-only: " + flags.error().message(),
                           flags.error().code());
    }
    return true;
}

std::shared_ptr<PackagePrefetch> PackagePrefetch::Start(std::filesystem::path packages_dir,
                                                        std::filesystem::path keys_dir,
                                                        std::string kernel_release) {
    return StartWith(kernel_release, [dir = std::move(packages_dir), keys = std::move(keys_dir),
                                      release = kernel_release] {
        return PackageSet::Load(dir, keys, release);
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
