// The packages a session loads from (peinit/modload/packages.h): only verified bytes are handed
// out, a member is hashed only when needed and a tampered one rejects its package when it is,
// an untrusted signature trusts nothing, and the read ahead on PID 1's thread hands over the
// same set or nothing (never an exception). Each test has its own root (testing::DemandRoot).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "peinit/modload/packages.h"
#include "peinit/sys/package_crypto.h"
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

}  // namespace
}  // namespace peinit
