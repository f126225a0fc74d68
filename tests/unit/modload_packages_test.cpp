// The packages a session loads from (peinit/modload/packages.h): only verified bytes are handed
// out, a member is hashed only when needed and a tampered one rejects its package when it is,
// an untrusted signature trusts nothing, and the read ahead on PID 1's thread hands over the
// same set or nothing (never an exception). Each test has its own root (testing::DemandRoot).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "peinit/modload/packages.h"
#include "peinit/sys/linux_kernel.h"
#include "peinit/sys/package_crypto.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/unit/demand_root.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class ModloadPackagesTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(root_.Make({"af_alg", "algif_hash", "e1000e"}));
    }
    std::unique_ptr<PackageSet> Load(const std::string& release = testing::kFixtureKver) {
        const BootPaths p = root_.Paths();
        return PackageSet::Load(p.PackagesDir(), p.TrustedKeysDir(), release);
    }
    static std::string Bytes(const ModuleSource& src) {
        auto b = src.file->bytes();
        return std::string(reinterpret_cast<const char*>(b.data()), b.size());
    }

    testing::DemandRoot root_;
};

// A module in the signed package comes with its verified bytes, the package and the signer;
// one not in any package is not loadable, and says so. Only what was asked for is hashed.
TEST_F(ModloadPackagesTest, VerifiedBytesOnlyAndHashedOnDemand) {
    auto set = Load();
    ASSERT_NE(set, nullptr);
    ModuleSource alg = set->Find("af_alg");
    ASSERT_NE(alg.file, nullptr) << alg.failure;
    EXPECT_EQ(Bytes(alg), "fake module af_alg");
    EXPECT_EQ(alg.package, "all.pkg");
    EXPECT_FALSE(alg.signer.empty());
    ModuleSource missing = set->Find("af_packet");
    EXPECT_EQ(missing.file, nullptr);
    EXPECT_EQ(missing.failure, "not in a verified package");
    auto reports = set->reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_TRUE(reports[0].verified);
    EXPECT_EQ(reports[0].hashed, 1u);
    EXPECT_EQ(reports[0].hashed_bytes, static_cast<int64_t>(alg.file->bytes().size()));
}

// A tampered member rejects its package when it is needed (and from then on every member of
// it), naming the member; until then the others load.
TEST_F(ModloadPackagesTest, TamperedMemberRejectsItsPackageWhenNeeded) {
    root_.Tamper("e1000e");
    auto set = Load();
    ASSERT_NE(set, nullptr);
    EXPECT_NE(set->Find("af_alg").file, nullptr);
    ModuleSource bad = set->Find("e1000e");
    EXPECT_EQ(bad.file, nullptr);
    EXPECT_THAT(bad.failure,
                StartsWith("package rejected (all.pkg: hash-mismatch: modules/e1000e.ko"));
    ModuleSource after = set->Find("algif_hash");
    EXPECT_EQ(after.file, nullptr);
    EXPECT_THAT(after.failure, StartsWith("package rejected (all.pkg: "));
    EXPECT_FALSE(set->reports()[0].verified);
}

// Without the signer's key in the trust directory, or for another kernel release, nothing in
// the package is loadable.
TEST_F(ModloadPackagesTest, UntrustedSignerOrOtherReleaseLoadsNothing) {
    auto other = Load("6.1.0-another");
    ASSERT_NE(other, nullptr);
    ModuleSource wrong = other->Find("af_alg");
    EXPECT_EQ(wrong.file, nullptr);
    EXPECT_THAT(wrong.failure, StartsWith("package rejected (all.pkg: "));
    fs::remove(root_.root() / "etc/peinit/keys/test.pub");
    auto untrusted = Load();
    ASSERT_NE(untrusted, nullptr);
    ModuleSource none = untrusted->Find("af_alg");
    EXPECT_EQ(none.file, nullptr);
    EXPECT_THAT(none.failure, StartsWith("package rejected (all.pkg: "));
}

// The read ahead hands over the set it read (once) with the release it was started for; one
// whose work throws hands over nothing, without throwing: the caller reads the packages again.
TEST_F(ModloadPackagesTest, PrefetchHandsOverTheSetOnceOrNothing) {
    const BootPaths p = root_.Paths();
    auto prefetch =
        PackagePrefetch::Start(p.PackagesDir(), p.TrustedKeysDir(), testing::kFixtureKver);
    ASSERT_NE(prefetch, nullptr);
    EXPECT_EQ(prefetch->kernel_release(), testing::kFixtureKver);
    auto set = prefetch->Take();
    ASSERT_NE(set, nullptr);
    ModuleSource alg = set->Find("af_alg");
    ASSERT_NE(alg.file, nullptr) << alg.failure;
    EXPECT_EQ(Bytes(alg), "fake module af_alg");
    EXPECT_EQ(prefetch->Take(), nullptr);

    auto throws = PackagePrefetch::StartWith(
        testing::kFixtureKver,
        []() -> std::unique_ptr<PackageSet> { throw std::runtime_error("injected"); });
    ASSERT_NE(throws, nullptr);
    EXPECT_EQ(throws->Take(), nullptr);
}

// The sealed tree's index names the package of each module; an indexed set opens only that
// package, and a module the index misnames is not loadable (the index is a hint, not trusted).
TEST_F(ModloadPackagesTest, IndexedSetTrustsTheSignatureNotTheIndex) {
    const BootPaths p = root_.Paths();
    auto index = ParsePackagesIndex(PackagesIndexText(p.PackagesDir()));
    EXPECT_EQ(index["af_alg"], "all.pkg");
    EXPECT_EQ(index["e1000e"], "all.pkg");
    index["af_packet"] = "all.pkg";
    auto trust = TrustStore::LoadDirectory(p.TrustedKeysDir());
    ASSERT_TRUE(trust) << trust.error().message();
    auto indexed = PackageSet::Indexed(p.PackagesDir(), index,
                                       std::make_shared<const TrustStore>(std::move(*trust)),
                                       testing::kFixtureKver);
    ASSERT_NE(indexed, nullptr);
    ModuleSource alg = indexed->Find("af_alg");
    ASSERT_NE(alg.file, nullptr) << alg.failure;
    EXPECT_EQ(Bytes(alg), "fake module af_alg");
    ModuleSource misnamed = indexed->Find("af_packet");
    EXPECT_EQ(misnamed.file, nullptr);
    EXPECT_THAT(misnamed.failure, HasSubstr("not in a verified package"));
}

// PID 1 makes the packages directory a read-only bind mount of itself before reading it: the
// boot then maps every package in place (no copy) and nothing can write one (EROFS); a package
// with a second hard link is copied instead (the other link could be writable), and the
// verification is the same either way. Real mounts in a private mount namespace (root only).
TEST_F(ModloadPackagesTest, ReadOnlyPackagesDirectoryIsMappedInPlace) {
    const BootPaths p = root_.Paths();
    const std::string dir = p.PackagesDir().string();
    {
        auto copied = Load();
        ASSERT_EQ(copied->reports().size(), 1u);
        EXPECT_FALSE(copied->reports()[0].in_place) << "a writable directory is copied";
    }
    if (geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        GTEST_SKIP() << "needs root for a private mount namespace";
    }
    LinuxKernel kernel;
    auto mounted = MountPackagesReadOnly(kernel, dir);
    ASSERT_TRUE(mounted) << mounted.error().message();
    EXPECT_TRUE(*mounted);
    const int w = ::open((p.PackagesDir() / "all.pkg").c_str(), O_WRONLY | O_CLOEXEC);
    EXPECT_LT(w, 0);
    EXPECT_EQ(errno, EROFS);
    if (w >= 0) ::close(w);

    auto set = Load();
    ASSERT_EQ(set->reports().size(), 1u);
    EXPECT_TRUE(set->reports()[0].in_place);
    ModuleSource alg = set->Find("af_alg");
    ASSERT_NE(alg.file, nullptr) << alg.failure;
    EXPECT_EQ(Bytes(alg), "fake module af_alg");

    // A second link (made before the directory became read-only) means a copy.
    ASSERT_EQ(::umount2(dir.c_str(), MNT_DETACH), 0) << strerror(errno);
    fs::create_hard_link(p.PackagesDir() / "all.pkg", root_.Paths().root / "all.pkg.link");
    ASSERT_TRUE(MountPackagesReadOnly(kernel, dir));
    auto linked = MapReadOnlyMountFile(p.PackagesDir() / "all.pkg");
    ASSERT_FALSE(linked);
    EXPECT_THAT(linked.error().message(), HasSubstr("2 hard links"));
    auto set2 = Load();
    EXPECT_FALSE(set2->reports()[0].in_place);
    EXPECT_NE(set2->Find("af_alg").file, nullptr);
}

// No packages directory: nothing mounted, not an error. A remount that does not take leaves
// nothing mounted (the bind is undone) and says why; a bind that fails leaves nothing to undo.
TEST_F(ModloadPackagesTest, MountPackagesReadOnlyUndoesAFailedRemount) {
    FakeKernel kernel;
    auto none = MountPackagesReadOnly(kernel, (root_.Paths().root / "no-such-dir").string());
    ASSERT_TRUE(none) << none.error().message();
    EXPECT_FALSE(*none);
    EXPECT_TRUE(kernel.Calls().empty());

    const std::string dir = root_.Paths().PackagesDir().string();
    auto ok = MountPackagesReadOnly(kernel, dir);
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_TRUE(*ok);
    EXPECT_NE(*kernel.MountFlags(dir) & MS_RDONLY, 0u);
    EXPECT_TRUE(kernel.Calls(KernelOp::kUmount).empty());

    struct NoRemount : FakeKernel {
        Result<void> Mount(const std::string& source, const std::string& target,
                           const std::string& fstype, unsigned long flags,
                           const std::string& data) override {
            if ((flags & MS_REMOUNT) != 0) return ErrnoErr("mount", EPERM);
            return FakeKernel::Mount(source, target, fstype, flags, data);
        }
    } no_remount;
    auto refused = MountPackagesReadOnly(no_remount, dir);
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message(), HasSubstr("remount read-only"));
    EXPECT_EQ(no_remount.CallNames(KernelOp::kUmount), std::vector<std::string>{dir});

    FakeKernel failing;
    failing.SetOpError(KernelOp::kMount, dir, EACCES);
    ASSERT_FALSE(MountPackagesReadOnly(failing, dir));
    EXPECT_TRUE(failing.Calls(KernelOp::kUmount).empty()) << "nothing was mounted";
}

}  // namespace
}  // namespace peinit
