#pragma once

// The signed packages of an image as one set: what the module-loading session
// (session.h) loads module bytes from.
//
// Load reads every package in the packages directory once (ReadPackageFile: mapped in place
// when the directory is a read-only mount, as PID 1 makes it with MountPackagesReadOnly, so that
// no byte is copied before init_module and only the pages the boot needs are touched; else one
// copy by the kernel into a sealed memfd) and checks everything but the payload hashes: container, signature against the trust store, manifest,
// the running kernel's release, file set, order and sizes (OpenPackage). A package that fails
// any of that contributes nothing.
//
// Payload hashes are checked before a single byte of a member reaches the kernel, and only for
// what is about to load, as the loads need them (streaming, issue 26): StartStream takes the
// plan's modules in the order the loader will start them and a thread of its own hashes their
// members one after the other while the loads proceed; Find hands out a member only once it and
// every member of its package before it in that order matched (a worker that gets there first
// hashes what nobody is hashing yet, and waits for a member another thread is hashing: no
// member is hashed twice). So the first module loads as soon as the signature is checked and
// its own bytes (and those of the members before it: its dependencies) are
// hashed, and no member the plan does not need is read for hashing at all.
//
// A member whose hash does not match rejects its package from then on (fail closed): the module
// asked for and every later one from that package fail with `package rejected (<file>:
// hash-mismatch: ...)`. Modules handed out before (their own bytes matched, and every member
// before them in the order did) stay loaded and are named in the report (`released`); with the
// stream, a mismatch anywhere in the boot set is still found (FinishStream waits for the
// whole set), even in a member whose load is skipped. A module no stream lists is hashed on
// first use (Find). A module found in no usable package is `not in a verified
// package`: a loose .ko in the module tree is never loaded (fail closed).
//
// Thread-safe: Find may be called from the loader's workers.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "peinit/sys/kernel.h"
#include "peinit/sys/package.h"

namespace peinit {

// What happened to one package file, for the log and the boot record.
struct PackageReport {
    std::string file;  // file name in the packages directory, e.g. "storage.pkg"
    // Signature and manifest checked, and no hash checked so far mismatched.
    bool verified = false;
    std::string name;     // from the signed manifest ("" when rejected before it was read)
    std::string version;  // from the signed manifest
    std::string signer;   // fingerprint of the trusted key that signed it
    // Why it was rejected: the verifier's message ("hash-mismatch: modules/jbd2.ko has ..."),
    // or the read error.
    std::string reason;
    // Module names it provides (signed manifest) or claims to provide (rejected before its
    // signature was checked: read from its unverified manifest or member names, only to explain
    // a failure, never to load).
    std::vector<std::string> modules;
    // Members whose SHA-256 has been checked (the rest were not needed).
    std::size_t hashed = 0;
    // Modules whose verified bytes were handed out for loading (Find), in that order: when the
    // package is rejected, the modules already loaded (or loading) from it.
    std::vector<std::string> released;
    // Read in place from a read-only mount (no copy), not copied into a sealed memfd.
    bool in_place = false;
    // Bytes hashed (each member at most once).
    int64_t hashed_bytes = 0;
};

// Where the bytes of one module come from.
struct ModuleSource {
    const VerifiedFile* file = nullptr;  // null: not loadable
    std::string package;                 // file name of the package that provides it
    std::string signer;                  // fingerprint of the key that signed that package
    // When file is null: "package rejected (<file>: <reason>)" or "not in a verified package".
    std::string failure;
};

class PackageSet {
  public:
    // Reads and checks every "*.pkg" regular file in `dir` (sorted by name). A missing
    // directory is an empty set. A trust directory that cannot be loaded trusts nothing: every
    // package is then rejected with that reason. The trust store loads on a thread of its own
    // while the packages are read. No member is hashed here.
    //
    // `trust`, when given, is the trust store (kept in memory since the boot) and `keys_dir`
    // is not read.
    static std::unique_ptr<PackageSet> Load(const std::filesystem::path& dir,
                                            const std::filesystem::path& keys_dir,
                                            const std::string& kernel_release,
                                            std::shared_ptr<const TrustStore> trust = nullptr);
    // A set that reads nothing up front: the first Find or StartStream of a module reads
    // the one package `index` (module -> file name in `dir`, ParsePackagesIndex) names for it,
    // and checks it exactly as Load does (signature against `trust`, manifest, release; the
    // member's digest before its bytes are handed out). The index is a hint, not trusted: a
    // module it misnames is not in the verified package it names, i.e. `not in a verified
    // package` (fail closed). The demand-load helper uses this so that one call reads the
    // packages it loads from, not every package.
    static std::unique_ptr<PackageSet> Indexed(const std::filesystem::path& dir,
                                               std::map<std::string, std::string> index,
                                               std::shared_ptr<const TrustStore> trust,
                                               const std::string& kernel_release);
    ~PackageSet();

    // Starts checking the members providing `modules` (names in no package are ignored), in
    // that order, on a thread of its own (none when no thread can be created: Find then hashes
    // what it hands out), and makes Find keep that order per package (see above). A stream
    // still running is finished first.
    void StartStream(const std::vector<std::string>& modules);
    // Waits until every member of the stream is checked or its package rejected, and ends it.
    void FinishStream();
    // CPU time spent hashing members, summed over the threads that did.
    std::chrono::microseconds hash_time() const;

    // Rejects the package providing `module` from now on (a check after the hashes failed: its
    // member holds another module than its name says); nothing more loads from it.
    void RejectPackageOf(std::string_view module, const Error& error);

    // The size of the member providing `module` (its signed manifest size, nothing hashed), 0
    // when no usable package has it: the loader's estimate of what a load costs.
    std::size_t SizeOf(std::string_view module) const;

    // The verified bytes of `module`, hashing its member first when that was not done yet
    // (and, in a stream, every member of its package before it). A member another thread is
    // hashing is waited for (a LoaderInputWait), not hashed again.
    ModuleSource Find(std::string_view module);

    std::vector<PackageReport> reports() const;
    // Non-fatal problems: an unreadable directory, a module provided by two packages.
    const std::vector<std::string>& warnings() const { return warnings_; }

  private:
    PackageSet() = default;
    struct Entry {
        std::string file;
        std::optional<SignedPackage> package;  // nullopt: rejected before any hash
        PackageReport report;
        std::vector<char> hashing;        // per member: how many threads are hashing it now
        std::vector<std::size_t> stream;  // members of the running stream, in its order
    };
    void AddEntry(std::string file, const Result<PackageBytes>& content,
                  std::span<const std::byte> view, std::optional<Result<SignedPackage>> opened);
    // Indexed sets: opens the package the index names for `module` once (needs mu_ held).
    void OpenFor(std::string_view module);
    struct LazyOpen {
        std::filesystem::path dir;
        std::map<std::string, std::string> index;
        std::shared_ptr<const TrustStore> trust;
        std::string kernel_release;
        std::set<std::string> opened;
    };
    std::optional<LazyOpen> lazy_;
    // Locked: the report is brought up to date.
    void Reject(Entry& entry, const Error& error);
    void Refresh(Entry& entry);
    // Checks member `i` of `entry` and, in a stream, every member before it there, hashing them
    // outside the lock. A member another thread is hashing is never hashed twice: with `wait`
    // this call waits for that thread's result, without it (the stream's thread) it leaves that
    // member to it. False when the package is rejected (before or by this call).
    bool CheckUpTo(Entry& entry, std::size_t i, std::unique_lock<std::mutex>& lock, bool wait);
    void Stream();  // the stream's thread

    mutable std::mutex mu_;
    std::condition_variable hashed_;  // a member's hash was checked (mu_)
    // A deque: entries never move (threads hash their bytes outside the lock).
    std::deque<Entry> entries_;
    // Module name -> (entry, member index) for the usable packages, first package wins.
    std::map<std::string, std::pair<std::size_t, std::size_t>, std::less<>> index_;
    std::vector<std::string> warnings_;
    std::vector<std::pair<std::size_t, std::size_t>> stream_;  // (entry, member) in order
    std::thread streamer_;
    std::atomic<int64_t> hash_us_{0};
};

// The packages index of the sealed tree (peinit/core/sealed_tree.h): one `MODULE FILE` line per
// module the packages in `dir` claim (read without verification, first file by name wins), and
// its reader. Lines that do not parse are skipped.
std::string PackagesIndexText(const std::filesystem::path& dir);
std::map<std::string, std::string> ParsePackagesIndex(std::string_view text);

// PID 1's first act on the packages, before the read-ahead opens any: `dir` becomes a read-only
// bind mount of itself (MS_BIND, then MS_REMOUNT|MS_BIND|MS_RDONLY|MS_NOSUID|MS_NODEV, read
// back), so that the boot maps the packages in place (ReadPackageFile) instead of copying them.
// Ok(false): there is no such directory. An error leaves nothing mounted (a bind whose remount
// failed is undone); the boot then copies the packages, as on any writable mount. The handoff
// unmounts it (MNT_DETACH) before it empties the initramfs.
Result<bool> MountPackagesReadOnly(Kernel& kernel, const std::string& dir);

// PackageSet::Load on a thread of its own, started by PID 1 before the first stage: reading and
// checking signatures overlap the stages before the module stage, which then takes the set over (ModloadSession::AdoptPackages). Nothing in it depends on
// the configuration: the packages and keys directories are fixed, the release is uname's.
class PackagePrefetch {
  public:
    // Starts the work; nullptr when no thread could be created (the module stage then reads the
    // packages itself).
    static std::shared_ptr<PackagePrefetch> Start(std::filesystem::path packages_dir,
                                                  std::filesystem::path keys_dir,
                                                  std::string kernel_release);
    // The same with the work given (tests: a load that throws).
    static std::shared_ptr<PackagePrefetch> StartWith(
        std::string kernel_release, std::function<std::unique_ptr<PackageSet>()> load);
    const std::string& kernel_release() const { return kernel_release_; }
    // How long reading the packages and checking their signatures took (valid once Take has
    // returned the set).
    struct Timing {
        std::chrono::microseconds load{0};
    };
    const Timing& timing() const { return *timing_; }
    // Waits for the set (once; nullptr after that, or when the work failed). Whatever the
    // thread threw is contained: logged, and nullptr (the caller reads the packages itself).
    std::unique_ptr<PackageSet> Take();

  private:
    std::string kernel_release_;
    std::shared_ptr<Timing> timing_ = std::make_shared<Timing>();
    std::future<std::unique_ptr<PackageSet>> future_;
};

}  // namespace peinit
