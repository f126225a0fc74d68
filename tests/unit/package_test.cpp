// Signed module packages: round trip, the tamper matrix (each rejection with its own
// reason), the strict text formats, the trust store, the sealed memfd and a mutation sweep.
// Keys and fake modules are generated at test time; no private key is committed.

#include "peinit/sys/package.h"
#include "peinit/sys/module_decompress.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_memfd.h"

#include "tests/unit/fake_module_elf.h"
namespace peinit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kKver = "6.1.0-56-amd64";

std::vector<std::byte> Bytes(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

std::string Text(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// A fake module: a minimal ELF module named `module` (the name binding checks it), then a
// marker "<name>" (so tests can find it inside a package), then deterministic noise up to
// `size` bytes (never shorter than the ELF and the marker).
std::vector<std::byte> FakeKo(const std::string& name, std::size_t size,
                              const std::string& module = "") {
    const std::string m = module.empty() ? name : module;
    std::vector<std::byte> out = testing::FakeModuleElf(m, m);
    std::string s = "<" + name + ">";
    std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>()(name)));
    while (out.size() + s.size() < size) s.push_back(static_cast<char>(rng() & 0xff));
    auto tail = Bytes(s);
    out.insert(out.end(), tail.begin(), tail.end());
    return out;
}

// Where FakeKo's marker starts inside the file.
std::size_t MarkerOffset(const std::string& module) {
    return testing::FakeModuleElf(module, module).size();
}

PackageSpec DemoSpec() {
    PackageSpec spec;
    spec.name = "demo";
    spec.version = "1.0.0";
    spec.kernel_release = kKver;
    // Sizes straddle the 512-byte tar block: exact multiple, one over, small.
    spec.files.push_back({"modules/zeta.ko", FakeKo("zeta", 1024)});
    spec.files.push_back({"modules/alpha.ko", FakeKo("alpha", 4097)});
    spec.files.push_back({"modules/net/beta-drv.ko", FakeKo("beta", 500, "beta_drv")});
    return spec;
}

// Writes a tar archive with libarchive directly, bypassing WriteArchive's path checks, so
// tests can build the hostile containers a verifier must reject.
struct RawMember {
    RawMember(std::string p, std::string d, unsigned t = AE_IFREG, std::string l = {})
        : path(std::move(p)), data(std::move(d)), type(t), link(std::move(l)) {}
    std::string path;
    std::string data;
    unsigned type = AE_IFREG;
    std::string link;  // symlink target or hard-link source
};

std::vector<std::byte> RawTar(const std::vector<RawMember>& members, bool pax = false) {
    std::vector<std::byte> out;
    archive* a = archive_write_new();
    pax ? archive_write_set_format_pax(a) : archive_write_set_format_ustar(a);
    archive_write_set_bytes_per_block(a, 0);
    archive_write_open2(
        a, &out, nullptr,
        [](archive*, void* client, const void* buf, size_t len) -> la_ssize_t {
            auto* v = static_cast<std::vector<std::byte>*>(client);
            const auto* p = static_cast<const std::byte*>(buf);
            v->insert(v->end(), p, p + len);
            return static_cast<la_ssize_t>(len);
        },
        nullptr, nullptr);
    for (const auto& m : members) {
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, m.path.c_str());
        archive_entry_set_perm(e, 0644);
        if (!m.link.empty() && m.type == AE_IFREG) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, m.link.c_str());
            archive_entry_set_size(e, 0);
        } else {
            archive_entry_set_filetype(e, m.type);
            if (m.type == AE_IFLNK) archive_entry_set_symlink(e, m.link.c_str());
            archive_entry_set_size(e,
                                   m.type == AE_IFREG ? static_cast<la_int64_t>(m.data.size()) : 0);
        }
        EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
        if (m.type == AE_IFREG && !m.data.empty()) {
            archive_write_data(a, m.data.data(), m.data.size());
        }
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return out;
}

class PackageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto k1 = SigningKey::Generate();
        auto k2 = SigningKey::Generate();
        ASSERT_TRUE(k1 && k2);
        key_.emplace(std::move(*k1));
        other_key_.emplace(std::move(*k2));
        trusted_.Add(key_->public_key());
        auto pkg = CreatePackage(DemoSpec(), &*key_);
        ASSERT_TRUE(pkg) << pkg.error().message();
        package_ = std::move(*pkg);
        auto members = ReadArchive(package_);
        ASSERT_TRUE(members) << members.error().message();
        for (const auto& m : *members) members_.push_back({m.path, {m.data.begin(), m.data.end()}});
        ASSERT_EQ(members_.size(), 5u);
    }

    // The rejection reason of verifying `bytes`, or nullopt (and a test failure) if accepted.
    std::optional<PackageReject> RejectionOf(std::span<const std::byte> bytes,
                                             std::optional<std::string> kver = kKver) {
        auto result = VerifyPackage(bytes, trusted_, std::move(kver));
        if (result) {
            ADD_FAILURE() << "package was accepted";
            return std::nullopt;
        }
        last_message_ = result.error().message();
        auto reason = PackageRejectOf(result.error());
        EXPECT_TRUE(reason) << "error without a reason: " << last_message_;
        return reason;
    }

    // Rebuilds the package from `members` (already-signed MANIFEST and MANIFEST.sig kept).
    std::vector<std::byte> Rewrite(const std::vector<ArchiveMember>& members) {
        auto out = WriteArchive(members);
        EXPECT_TRUE(out) << out.error().message();
        return out ? *out : std::vector<std::byte>{};
    }

    // A package whose MANIFEST is `manifest` verbatim, correctly signed by `key_`, with the
    // demo payload.
    std::vector<std::byte> WithManifest(const std::string& manifest) {
        auto sig = SignManifest(Bytes(manifest), *key_);
        EXPECT_TRUE(sig);
        std::vector<ArchiveMember> members = {{"MANIFEST", Bytes(manifest)},
                                              {"MANIFEST.sig", Bytes(*sig)}};
        members.insert(members.end(), members_.begin() + 2, members_.end());
        return Rewrite(members);
    }

    std::string ManifestText() const { return Text(members_[0].data); }

    // Offset of `needle` inside the package bytes.
    std::size_t Find(std::string_view needle) const {
        std::string hay = Text(package_);
        auto pos = hay.find(needle);
        EXPECT_NE(pos, std::string::npos) << needle;
        return pos;
    }

    std::optional<SigningKey> key_;
    std::optional<SigningKey> other_key_;
    TrustStore trusted_;
    std::vector<std::byte> package_;
    std::vector<ArchiveMember> members_;
    std::string last_message_;
};

// --- round trip -----------------------------------------------------------------------------

TEST_F(PackageTest, RoundTripVerifies) {
    auto pkg = VerifyPackage(package_, trusted_, std::string(kKver));
    ASSERT_TRUE(pkg) << pkg.error().message();
    EXPECT_EQ(pkg->name(), "demo");
    EXPECT_EQ(pkg->version(), "1.0.0");
    EXPECT_EQ(pkg->kernel_release(), kKver);
    EXPECT_EQ(pkg->signer(), key_->public_key().fingerprint);
    ASSERT_EQ(pkg->files().size(), 3u);
    // Sorted by path, bytes identical to the inputs.
    EXPECT_EQ(pkg->files()[0].path(), "modules/alpha.ko");
    EXPECT_EQ(pkg->files()[1].path(), "modules/net/beta-drv.ko");
    EXPECT_EQ(pkg->files()[2].path(), "modules/zeta.ko");
    for (const auto& in : DemoSpec().files) {
        auto it = std::find_if(pkg->files().begin(), pkg->files().end(),
                               [&](const VerifiedFile& f) { return f.path() == in.path; });
        ASSERT_NE(it, pkg->files().end());
        EXPECT_TRUE(
            std::equal(it->bytes().begin(), it->bytes().end(), in.bytes.begin(), in.bytes.end()));
        EXPECT_EQ(it->sha256(), Sha256Of(in.bytes));
    }
    ASSERT_NE(pkg->FindModule("beta_drv"), nullptr);
    EXPECT_EQ(pkg->FindModule("beta-drv"), pkg->FindModule("beta_drv"));
    EXPECT_EQ(pkg->FindModule("nope"), nullptr);
}

TEST_F(PackageTest, KernelReleaseIsOptional) {
    EXPECT_TRUE(VerifyPackage(package_, trusted_, std::nullopt));
}

TEST_F(PackageTest, CreateIsDeterministic) {
    // Ed25519 signatures are deterministic and members carry fixed metadata.
    auto again = CreatePackage(DemoSpec(), &*key_);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, package_);
}

TEST_F(PackageTest, ContainerLayout) {
    EXPECT_EQ(members_[0].path, "MANIFEST");
    EXPECT_EQ(members_[1].path, "MANIFEST.sig");
    EXPECT_EQ(package_.size() % 512, 0u);
    // Ends exactly with the two-block end-of-archive marker.
    EXPECT_TRUE(std::all_of(package_.end() - 1024, package_.end(),
                            [](std::byte b) { return b == std::byte{0}; }));
    EXPECT_EQ(
        ManifestText(),
        "peinit-package-format 1\nname demo\nversion 1.0.0\nkernel-release " + std::string(kKver) +
            "\nfile modules/alpha.ko 4097 " + HexEncode(Sha256Of(FakeKo("alpha", 4097))) +
            "\nfile modules/net/beta-drv.ko 500 " + HexEncode(Sha256Of(FakeKo("beta", 500, "beta_drv"))) +
            "\nfile modules/zeta.ko 1024 " + HexEncode(Sha256Of(FakeKo("zeta", 1024))) + "\n");
}

TEST_F(PackageTest, SignPackageAddsAndReplacesSignature) {
    auto unsigned_pkg = CreatePackage(DemoSpec(), nullptr);
    ASSERT_TRUE(unsigned_pkg);
    EXPECT_EQ(RejectionOf(*unsigned_pkg), PackageReject::kUnsigned);
    auto signed_pkg = SignPackage(*unsigned_pkg, *key_);
    ASSERT_TRUE(signed_pkg) << signed_pkg.error().message();
    EXPECT_EQ(*signed_pkg, package_);
    // Re-signing with another key replaces the signature.
    auto resigned = SignPackage(package_, *other_key_);
    ASSERT_TRUE(resigned);
    EXPECT_EQ(RejectionOf(*resigned), PackageReject::kUntrustedKey);
    trusted_.Add(other_key_->public_key());
    auto pkg = VerifyPackage(*resigned, trusted_, std::nullopt);
    ASSERT_TRUE(pkg);
    EXPECT_EQ(pkg->signer(), other_key_->public_key().fingerprint);
}

TEST_F(PackageTest, SignPackageRefusesTamperedContents) {
    auto tampered = package_;
    tampered[Find("<alpha>") + 1] ^= std::byte{1};
    auto result = SignPackage(tampered, *key_);
    ASSERT_FALSE(result);
    EXPECT_EQ(PackageRejectOf(result.error()), PackageReject::kHashMismatch);
}

TEST_F(PackageTest, InspectShowsManifestAndSigner) {
    auto info = InspectPackage(package_);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->manifest.name, "demo");
    EXPECT_EQ(info->manifest.files.size(), 3u);
    ASSERT_TRUE(info->signature);
    EXPECT_EQ(info->signature->key_fingerprint, key_->public_key().fingerprint);
}

TEST_F(PackageTest, CreateRejectsBadInputs) {
    auto spec = DemoSpec();
    spec.files.push_back({"modules/alpha.ko", FakeKo("x", 10)});
    auto dup = CreatePackage(spec, &*key_);
    ASSERT_FALSE(dup);
    EXPECT_EQ(PackageRejectOf(dup.error()), PackageReject::kDuplicatePath);

    spec = DemoSpec();
    spec.files.push_back({"modules/../x.ko", FakeKo("x", 10)});
    auto trav = CreatePackage(spec, &*key_);
    ASSERT_FALSE(trav);
    EXPECT_EQ(PackageRejectOf(trav.error()), PackageReject::kBadPath);

    spec = DemoSpec();
    spec.name = "bad name";
    EXPECT_EQ(PackageRejectOf(CreatePackage(spec, &*key_).error()),
              PackageReject::kMalformedManifest);

    spec = DemoSpec();
    spec.files.clear();
    EXPECT_EQ(PackageRejectOf(CreatePackage(spec, &*key_).error()), PackageReject::kEmpty);
}

// --- tamper matrix: one byte changed ---------------------------------------------------------

// A validly signed member holding another module than its file name says (or a module whose
// two names disagree) is its own rejection: the file name is bound to the module inside.
TEST_F(PackageTest, MemberHoldingAnotherModuleIsModuleNameMismatch) {
    PackageSpec spec{"swap", "1", kKver, {}};
    spec.files.push_back({"modules/jbd2.ko", testing::FakeModuleElf("jbd2", "jbd2")});
    spec.files.push_back({"modules/ext4.ko", testing::FakeModuleElf("evil", "evil")});
    auto pkg = CreatePackage(spec, &*key_);
    ASSERT_TRUE(pkg) << pkg.error().message();
    EXPECT_EQ(RejectionOf(*pkg), PackageReject::kModuleNameMismatch);
    EXPECT_EQ(last_message_,
              "module-name-mismatch: modules/ext4.ko holds module \"evil\", not \"ext4\"");
    spec.files[1].bytes = testing::FakeModuleElf("ext4", "evil");
    auto split = CreatePackage(spec, &*key_);
    ASSERT_TRUE(split);
    EXPECT_EQ(RejectionOf(*split), PackageReject::kModuleNameMismatch);
    spec.files[1].bytes = testing::FakeModuleElf("ext4", "ext4");
    auto good = CreatePackage(spec, &*key_);
    ASSERT_TRUE(good);
    EXPECT_TRUE(VerifyPackage(*good, trusted_, kKver));
}

TEST_F(PackageTest, OneByteInManifestIsBadSignature) {
    auto bytes = package_;
    bytes[Find("name demo") + 5] = std::byte{'D'};
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kBadSignature);
}

TEST_F(PackageTest, ManifestHashFieldChangedIsBadSignature) {
    // An attacker who fixes up a manifest hash to match a tampered payload breaks the signature.
    auto bytes = package_;
    std::size_t pos =
        Find("file modules/alpha.ko 4097 ") + std::strlen("file modules/alpha.ko 4097 ");
    bytes[pos] = bytes[pos] == std::byte{'0'} ? std::byte{'1'} : std::byte{'0'};
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kBadSignature);
}

TEST_F(PackageTest, OneByteInSignatureIsBadSignature) {
    auto bytes = package_;
    std::size_t pos = Find("\nsignature ") + std::strlen("\nsignature ") + 10;
    bytes[pos] = bytes[pos] == std::byte{'a'} ? std::byte{'b'} : std::byte{'a'};
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kBadSignature);
}

TEST_F(PackageTest, OneByteInSignerFingerprintIsUntrustedKey) {
    auto bytes = package_;
    std::size_t pos = Find("key-sha256 ") + std::strlen("key-sha256 ");
    bytes[pos] = bytes[pos] == std::byte{'a'} ? std::byte{'b'} : std::byte{'a'};
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kUntrustedKey);
}

TEST_F(PackageTest, SignatureNotHexIsMalformedSignature) {
    auto bytes = package_;
    bytes[Find("\nsignature ") + std::strlen("\nsignature ")] = std::byte{'Z'};
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kMalformedSignature);
}

TEST_F(PackageTest, OneByteInEachPayloadIsHashMismatch) {
    for (std::string name : {"alpha", "beta", "zeta"}) {
        const std::string marker = "<" + name + ">";
        SCOPED_TRACE(marker);
        // First byte, a middle byte and the last byte of the file.
        std::size_t start = Find(marker) - MarkerOffset(name == "beta" ? "beta_drv" : name);
        auto file = std::find_if(members_.begin(), members_.end(), [&](const ArchiveMember& m) {
            return Text(m.data).find(marker) != std::string::npos;
        });
        ASSERT_NE(file, members_.end());
        for (std::size_t off : {std::size_t{0}, file->data.size() / 2, file->data.size() - 1}) {
            auto bytes = package_;
            bytes[start + off] ^= std::byte{0x80};
            EXPECT_EQ(RejectionOf(bytes), PackageReject::kHashMismatch) << "offset " << off;
            EXPECT_NE(last_message_.find(file->path), std::string::npos) << last_message_;
        }
    }
}

// --- tamper matrix: structure ----------------------------------------------------------------

TEST_F(PackageTest, TruncatedInsidePayload) {
    std::span<const std::byte> cut(package_.data(), Find("<alpha>") + 100);
    EXPECT_EQ(RejectionOf(cut), PackageReject::kTruncated);
}

TEST_F(PackageTest, TruncatedInsideHeader) {
    std::span<const std::byte> cut(package_.data(), 512 + 512 + 300);
    EXPECT_EQ(RejectionOf(cut), PackageReject::kTruncated);
}

TEST_F(PackageTest, TruncatedEndMarker) {
    // Cut at a member boundary, which libarchive alone would accept as a complete archive.
    std::span<const std::byte> cut(package_.data(), package_.size() - 1024);
    EXPECT_EQ(RejectionOf(cut), PackageReject::kTruncated);
    std::span<const std::byte> half(package_.data(), package_.size() - 512);
    EXPECT_EQ(RejectionOf(half), PackageReject::kTruncated);
}

TEST_F(PackageTest, TrailingData) {
    auto bytes = package_;
    bytes.push_back(std::byte{'x'});
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kTrailingData);
    // Even zeros: the package ends at its end-of-archive marker.
    bytes = package_;
    bytes.resize(bytes.size() + 512);
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kTrailingData);
    // A second archive appended.
    bytes = package_;
    bytes.insert(bytes.end(), package_.begin(), package_.end());
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kTrailingData);
}

TEST_F(PackageTest, NonZeroPaddingIsNotAPackage) {
    // alpha.ko is 4097 bytes: its last block has 511 bytes of padding.
    auto bytes = package_;
    bytes[Find("<alpha>") - MarkerOffset("alpha") + 4097 + 10] = std::byte{'!'};
    EXPECT_EQ(RejectionOf(bytes), PackageReject::kNotAPackage);
    EXPECT_NE(last_message_.find("padding"), std::string::npos) << last_message_;
}

TEST_F(PackageTest, ExtraFileNotInManifest) {
    auto members = members_;
    members.push_back({"modules/zzz-extra.ko", FakeKo("extra", 64)});
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kExtraFile);
    EXPECT_NE(last_message_.find("modules/zzz-extra.ko"), std::string::npos);
}

TEST_F(PackageTest, ListedFileMissing) {
    for (std::size_t drop : {2u, 3u, 4u}) {
        auto members = members_;
        std::string path = members[drop].path;
        members.erase(members.begin() + static_cast<long>(drop));
        EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kMissingFile) << path;
        EXPECT_NE(last_message_.find(path), std::string::npos) << last_message_;
    }
}

TEST_F(PackageTest, PayloadOutOfOrder) {
    auto members = members_;
    std::swap(members[2], members[4]);
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kBadLayout);
}

TEST_F(PackageTest, DuplicateEntries) {
    auto members = members_;
    members.insert(members.begin() + 3, members[2]);
    std::vector<RawMember> raw;
    for (const auto& m : members) raw.push_back({m.path, Text(m.data)});
    EXPECT_EQ(RejectionOf(RawTar(raw)), PackageReject::kDuplicatePath);
    // A second MANIFEST later in the archive is a duplicate too.
    raw.clear();
    for (const auto& m : members_) raw.push_back({m.path, Text(m.data)});
    raw.push_back({"MANIFEST", "peinit-package-format 1\n"});
    EXPECT_EQ(RejectionOf(RawTar(raw)), PackageReject::kDuplicatePath);
}

TEST_F(PackageTest, PathTraversal) {
    for (std::string path : {"modules/../../etc/evil.ko", "../evil.ko", "/modules/abs.ko",
                             "modules/./x.ko", "modules//x.ko", "modules/x y.ko"}) {
        std::vector<RawMember> raw;
        for (const auto& m : members_) raw.push_back({m.path, Text(m.data)});
        raw.push_back({path, "payload"});
        EXPECT_EQ(RejectionOf(RawTar(raw)), PackageReject::kBadPath) << path;
        // pax headers carry the path without ustar's length split; same verdict.
        EXPECT_EQ(RejectionOf(RawTar(raw, /*pax=*/true)), PackageReject::kBadPath) << path;
    }
}

TEST_F(PackageTest, PayloadOutsideModulesDir) {
    auto members = members_;
    members.push_back({"etc/evil.ko", FakeKo("evil", 10)});
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kBadPath);
    members = members_;
    members.push_back({"modules/evil.sh", FakeKo("evil", 10)});
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kBadPath);
}

TEST_F(PackageTest, SymlinkMember) {
    std::vector<RawMember> raw;
    for (const auto& m : members_) raw.push_back({m.path, Text(m.data)});
    raw.push_back({"modules/link.ko", "", AE_IFLNK, "/lib/modules/x/evil.ko"});
    EXPECT_EQ(RejectionOf(RawTar(raw)), PackageReject::kNotRegularFile);
    EXPECT_NE(last_message_.find("symbolic link"), std::string::npos) << last_message_;
}

TEST_F(PackageTest, HardLinkDirectoryAndDeviceMembers) {
    for (RawMember odd :
         {RawMember{"modules/hard.ko", "", AE_IFREG, "modules/alpha.ko"},
          RawMember{"modules/dir", "", AE_IFDIR, ""}, RawMember{"modules/dev.ko", "", AE_IFCHR, ""},
          RawMember{"modules/fifo.ko", "", AE_IFIFO, ""}}) {
        std::vector<RawMember> raw;
        for (const auto& m : members_) raw.push_back({m.path, Text(m.data)});
        raw.push_back(odd);
        EXPECT_EQ(RejectionOf(RawTar(raw)), PackageReject::kNotRegularFile) << odd.path;
    }
}

TEST_F(PackageTest, UntrustedKey) {
    auto pkg = CreatePackage(DemoSpec(), &*other_key_);
    ASSERT_TRUE(pkg);
    EXPECT_EQ(RejectionOf(*pkg), PackageReject::kUntrustedKey);
    EXPECT_NE(last_message_.find(other_key_->public_key().fingerprint), std::string::npos);
}

TEST_F(PackageTest, EmptyTrustStoreTrustsNothing) {
    trusted_ = TrustStore();
    EXPECT_EQ(RejectionOf(package_), PackageReject::kUntrustedKey);
}

TEST_F(PackageTest, WrongKernelRelease) {
    EXPECT_EQ(RejectionOf(package_, std::string("6.1.0-99-amd64")),
              PackageReject::kWrongKernelRelease);
}

TEST_F(PackageTest, EmptyPackage) {
    EXPECT_EQ(RejectionOf(std::span<const std::byte>()), PackageReject::kEmpty);
    std::vector<std::byte> just_marker(1024);
    EXPECT_EQ(RejectionOf(just_marker), PackageReject::kEmpty);
    auto no_files = RawTar({});
    EXPECT_EQ(RejectionOf(no_files), PackageReject::kEmpty);
}

TEST_F(PackageTest, RandomGarbage) {
    std::mt19937 rng(42);
    for (std::size_t size : {1u, 100u, 511u, 512u, 4096u, 100000u}) {
        std::vector<std::byte> garbage(size);
        for (auto& b : garbage) b = static_cast<std::byte>(rng());
        EXPECT_EQ(RejectionOf(garbage), PackageReject::kNotAPackage) << size;
    }
    EXPECT_EQ(RejectionOf(Bytes(std::string(2048, 'A'))), PackageReject::kNotAPackage);
}

TEST_F(PackageTest, CompressedPackageIsNotAPackage) {
    // Only plain tar is read: no decompressor is ever run on untrusted input.
    std::vector<std::byte> gz = {std::byte{0x1f}, std::byte{0x8b}, std::byte{8}, std::byte{0}};
    gz.resize(1024);
    EXPECT_EQ(RejectionOf(gz), PackageReject::kNotAPackage);
}

TEST_F(PackageTest, Unsigned) {
    auto members = members_;
    members.erase(members.begin() + 1);
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kUnsigned);
}

TEST_F(PackageTest, ManifestNotFirstOrSignatureNotSecond) {
    auto members = members_;
    std::swap(members[0], members[1]);
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kBadLayout);
    members = members_;
    std::rotate(members.begin() + 1, members.begin() + 2, members.end());
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kBadLayout);
}

TEST_F(PackageTest, SizeMismatch) {
    // A correctly signed manifest that lies about a size (hash of the real bytes).
    std::string m = ManifestText();
    std::string from = "modules/alpha.ko 4097 ";
    m.replace(m.find(from), from.size(), "modules/alpha.ko 4096 ");
    EXPECT_EQ(RejectionOf(WithManifest(m)), PackageReject::kSizeMismatch);
}

TEST_F(PackageTest, SignedButWrongHashIsHashMismatch) {
    std::string m = ManifestText();
    std::size_t pos = m.find("modules/zeta.ko 1024 ") + std::strlen("modules/zeta.ko 1024 ");
    m[pos] = m[pos] == 'f' ? 'e' : 'f';
    EXPECT_EQ(RejectionOf(WithManifest(m)), PackageReject::kHashMismatch);
}

// The boot hashes members outside its lock (HashMember) and has them judged after (Check). A
// package judges only hashes of its very own bytes: the hash of an intact copy's member is
// refused for a tampered package, its own tampered member rejects it (nothing more is handed
// out, also members that matched), and the intact package accepts its own hashes.
TEST_F(PackageTest, MemberHashesCountOnlyForTheBytesTheyCover) {
    auto tampered = package_;
    tampered[Find("<zeta>")] ^= std::byte{0x80};
    auto intact = OpenPackage(PackageBytes(package_), trusted_, std::string(kKver));
    auto changed = OpenPackage(PackageBytes(tampered), trusted_, std::string(kKver));
    ASSERT_TRUE(intact && changed);
    const std::size_t zeta = changed->IndexOfModule("zeta");
    ASSERT_LT(zeta, changed->size());
    const std::size_t alpha = changed->IndexOfModule("alpha");

    auto other = changed->Check(intact->HashMember(zeta));
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().message(), "member hash of another package object");
    EXPECT_EQ(changed->Verified(zeta), nullptr);

    ASSERT_TRUE(changed->Check(changed->HashMember(alpha)));
    ASSERT_NE(changed->Verified(alpha), nullptr);
    auto bad = changed->Check(changed->HashMember(zeta));
    ASSERT_FALSE(bad);
    EXPECT_THAT(bad.error().message(), ::testing::StartsWith("hash-mismatch: modules/zeta.ko"));
    EXPECT_EQ(changed->Verified(alpha), nullptr);
    EXPECT_FALSE(changed->Check(changed->HashMember(alpha)));
    EXPECT_TRUE(changed->rejection().has_value());

    EXPECT_EQ(intact->verified_count(), 0u);
    for (std::size_t i = 0; i < intact->size(); ++i) {
        ASSERT_TRUE(intact->Check(intact->HashMember(i)));
    }
    EXPECT_EQ(intact->verified_count(), intact->size());
}

TEST_F(PackageTest, UnknownManifestField) {
    std::string m = ManifestText();
    m.insert(m.find("file "), "license GPL\n");
    EXPECT_EQ(RejectionOf(WithManifest(m)), PackageReject::kUnknownField);
    EXPECT_NE(last_message_.find("license"), std::string::npos);
}

TEST_F(PackageTest, UnknownFormatVersion) {
    std::string m = ManifestText();
    m.replace(0, std::strlen("peinit-package-format 1"), "peinit-package-format 2");
    EXPECT_EQ(RejectionOf(WithManifest(m)), PackageReject::kUnknownFormatVersion);
}

TEST_F(PackageTest, SignedManifestWithoutFilesIsEmpty) {
    std::string m = ManifestText();
    m.resize(m.find("file "));
    std::vector<ArchiveMember> members = {{"MANIFEST", Bytes(m)},
                                          {"MANIFEST.sig", Bytes(*SignManifest(Bytes(m), *key_))}};
    EXPECT_EQ(RejectionOf(Rewrite(members)), PackageReject::kEmpty);
}

// --- manifest and signature text -------------------------------------------------------------

TEST(PackageManifest, ParsesAndSerializesCanonically) {
    std::string text =
        "peinit-package-format 1\nname n\nversion 1\nkernel-release 6.1.0-56-amd64\n"
        "file modules/a.ko 0 " +
        std::string(64, 'a') + "\n";
    auto m = ParseManifest(text);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(m->files.size(), 1u);
    EXPECT_EQ(SerializeManifest(*m), text);
}

TEST(PackageManifest, RejectsEveryOtherSpelling) {
    const std::string hash(64, 'a');
    const std::string head = "peinit-package-format 1\nname n\nversion 1\nkernel-release k\n";
    const std::string file = "file modules/a.ko 1 " + hash + "\n";
    struct Case {
        std::string text;
        PackageReject reason;
    } cases[] = {
        {"", PackageReject::kMalformedManifest},
        {head + "file modules/a.ko 1 " + hash, PackageReject::kMalformedManifest},  // no LF
        {head + file + "\n", PackageReject::kMalformedManifest},                    // empty line
        {head + "file modules/a.ko 01 " + hash + "\n", PackageReject::kMalformedManifest},
        {head + "file modules/a.ko +1 " + hash + "\n", PackageReject::kMalformedManifest},
        {head + "file modules/a.ko 1 " + std::string(64, 'A') + "\n",
         PackageReject::kMalformedManifest},
        {head + "file modules/a.ko  1 " + hash + "\n", PackageReject::kMalformedManifest},
        {head + "file modules/a.ko 1 " + hash + " \n", PackageReject::kMalformedManifest},
        {head + "file modules/a.ko 1 " + hash + "\r\n", PackageReject::kMalformedManifest},
        {"peinit-package-format 1\nversion 1\nname n\nkernel-release k\n" + file,
         PackageReject::kMalformedManifest},
        {"peinit-package-format 1\nname n\nname m\nversion 1\nkernel-release k\n" + file,
         PackageReject::kMalformedManifest},
        {"name n\n" + head + file, PackageReject::kMalformedManifest},
        {"peinit-package-format 01\n", PackageReject::kMalformedManifest},
        {"peinit-package-format 0\n", PackageReject::kUnknownFormatVersion},
        {"peinit-package-format 99999999999999999999\n", PackageReject::kMalformedManifest},
        {head + "comment x\n" + file, PackageReject::kUnknownField},
        {head + file + "Name n\n", PackageReject::kUnknownField},
        {head, PackageReject::kEmpty},
        {head + "file modules/b.ko 1 " + hash + "\n" + file, PackageReject::kMalformedManifest},
        {head + file + file, PackageReject::kDuplicatePath},
        {head + "file modules/../a.ko 1 " + hash + "\n", PackageReject::kBadPath},
        {head + "file MANIFEST 1 " + hash + "\n", PackageReject::kBadPath},
        {head + "file modules/a.ko 99999999999 " + hash + "\n", PackageReject::kTooLarge},
        {head + "file modules/a.ko 1 " + hash + "\xff\n", PackageReject::kMalformedManifest},
        {std::string(kMaxManifestBytes + 1, 'x'), PackageReject::kTooLarge},
    };
    for (const auto& c : cases) {
        auto m = ParseManifest(c.text);
        ASSERT_FALSE(m) << c.text;
        EXPECT_EQ(PackageRejectOf(m.error()), c.reason) << c.text << " -> " << m.error().message();
    }
}

TEST(PackageSignatureText, RoundTripAndStrictness) {
    PackageSignature sig;
    sig.key_fingerprint = std::string(64, 'c');
    sig.value.fill(std::byte{0xab});
    std::string text = SerializeSignature(sig);
    auto parsed = ParseSignature(text);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->key_fingerprint, sig.key_fingerprint);
    EXPECT_EQ(parsed->value, sig.value);
    for (std::string bad :
         {text.substr(0, text.size() - 1), text + "\n",
          "algorithm rsa" + text.substr(std::strlen("algorithm ed25519")), std::string()}) {
        auto r = ParseSignature(bad);
        ASSERT_FALSE(r);
        EXPECT_EQ(PackageRejectOf(r.error()), PackageReject::kMalformedSignature);
    }
}

TEST(PackagePaths, PayloadPathRules) {
    for (std::string ok :
         {"modules/a.ko", "modules/kernel/drivers/net/virtio_net.ko", "modules/a-b_c+d.ko",
          "modules/fs/ext4.ko.zst", "modules/fs/ext4.ko.xz", "modules/fs/ext4.ko.gz"}) {
        EXPECT_TRUE(ValidatePayloadPath(ok)) << ok;
    }
    const std::vector<std::string> bad_paths = {
        "",
        "a.ko",
        "modules/",
        "modules/.ko",
        "modules/a.ko/",
        "/modules/a.ko",
        "modules/../a.ko",
        "modules/a.o",
        "modules/a~.ko",
        "modules/a.ko.bz2",
        "modules/.ko.zst",
        "modules/" + std::string(kMaxPathBytes, 'a') + ".ko"};
    for (const std::string& bad : bad_paths) {
        auto r = ValidatePayloadPath(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(PackageRejectOf(r.error()), PackageReject::kBadPath) << bad;
    }
    EXPECT_EQ(ModuleNameOfPath("modules/net/virtio-net.ko"), "virtio_net");
    EXPECT_EQ(ModuleNameOfPath("modules/fs/ext4.ko.zst"), "ext4");
    EXPECT_EQ(ModuleNameOfPath("modules/fs/nls-utf8.ko.xz"), "nls_utf8");
}

TEST(PackageReasons, SlugsAreDistinctAndParseBack) {
    std::set<std::string_view> slugs;
    for (int i = 0; i <= static_cast<int>(PackageReject::kHashMismatch); ++i) {
        auto reason = static_cast<PackageReject>(i);
        EXPECT_TRUE(slugs.insert(PackageRejectSlug(reason)).second);
        EXPECT_EQ(PackageRejectOf(Reject(reason, "x").error), reason);
    }
    EXPECT_EQ(PackageRejectOf(Error("open: No such file")), std::nullopt);
}

// --- keys and trust store --------------------------------------------------------------------

class PackageFilesTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/peinit-package-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }
    void Write(const fs::path& path, std::string_view data, mode_t mode = 0644) {
        std::ofstream(path, std::ios::binary) << data;
        fs::permissions(path, static_cast<fs::perms>(mode));
    }
    fs::path dir_;
};

// Issue 15: a private key directory is the caller's own, closed to group and others, and never
// inside a git work tree.
TEST_F(PackageFilesTest, PrivateKeyDirMustBeOwnClosedAndOutsideRepositories) {
    const fs::path keys = dir_ / "keys";
    EXPECT_TRUE(CheckPrivateKeyDir(keys)) << "a missing directory is created 0700 on first use";
    fs::create_directory(keys);
    fs::permissions(keys, static_cast<fs::perms>(0755));
    auto open = CheckPrivateKeyDir(keys);
    ASSERT_FALSE(open);
    EXPECT_THAT(open.error().message(),
                ::testing::HasSubstr(keys.string() + ": key directory is accessible by group or "
                                                     "others (mode 0755); chmod 700 it"));
    fs::permissions(keys, static_cast<fs::perms>(0700));
    EXPECT_TRUE(CheckPrivateKeyDir(keys));
    ASSERT_EQ(::chown(keys.c_str(), 65534, 65534), 0);
    auto foreign = CheckPrivateKeyDir(keys);
    ASSERT_FALSE(foreign);
    EXPECT_THAT(foreign.error().message(), ::testing::HasSubstr("owned by uid 65534"));

    fs::create_directories(dir_ / "repo/.git");
    fs::create_directories(dir_ / "repo/sub");
    auto in_repo = CheckPrivateKeyDir(dir_ / "repo/sub/keys");
    ASSERT_FALSE(in_repo);
    EXPECT_THAT(in_repo.error().message(),
                ::testing::HasSubstr("is inside the git work tree " + (dir_ / "repo").string()));
}

TEST_F(PackageFilesTest, TrustStoreLoadsPubFiles) {
    auto k1 = SigningKey::Generate();
    auto k2 = SigningKey::Generate();
    ASSERT_TRUE(k1 && k2);
    Write(dir_ / "a.pub", *k1->PublicPem());
    Write(dir_ / "b.pub", *k2->PublicPem());
    Write(dir_ / "b-again.pub", *k2->PublicPem());
    Write(dir_ / "README", "not a key, ignored");
    auto store = TrustStore::LoadDirectory(dir_);
    ASSERT_TRUE(store) << store.error().message();
    EXPECT_EQ(store->keys().size(), 2u);
    EXPECT_NE(store->Find(k1->public_key().fingerprint), nullptr);
    EXPECT_NE(store->Find(k2->public_key().fingerprint), nullptr);
    EXPECT_EQ(store->Find(std::string(64, '0')), nullptr);
    // The fingerprint is SHA-256 of the raw key.
    EXPECT_EQ(k1->public_key().fingerprint, HexEncode(Sha256Of(k1->public_key().raw)));
}

// Trusted keys are read without OpenSSL's generic key decoder when they are what peinit-pkg
// writes (PEM "PUBLIC KEY", an Ed25519 SubjectPublicKeyInfo): the key is the one OpenSSL reads.
// The same bytes under another algorithm's identifier (X25519) or any other block still go to
// the decoder and are refused with its reason.
TEST_F(PackageFilesTest, Ed25519KeysReadDirectlyAreTheKeysOpenSslReads) {
    for (int i = 0; i < 3; ++i) {
        auto key = SigningKey::Generate();
        ASSERT_TRUE(key);
        auto pem = key->PublicPem();
        ASSERT_TRUE(pem);
        auto parsed = ParsePublicKeyPem(*pem);
        ASSERT_TRUE(parsed) << parsed.error().message();
        EXPECT_EQ(parsed->raw, key->public_key().raw);
        EXPECT_EQ(parsed->fingerprint, key->public_key().fingerprint);
    }
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    auto pem_of = [](unsigned char algorithm, const std::array<std::byte, 32>& raw) {
        std::vector<unsigned char> der = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                          0x2b, 0x65, algorithm, 0x03, 0x21, 0x00};
        for (std::byte b : raw) der.push_back(static_cast<unsigned char>(b));
        BIO* bio = BIO_new(BIO_s_mem());
        EXPECT_GT(PEM_write_bio(bio, "PUBLIC KEY", "", der.data(), static_cast<long>(der.size())),
                  0);
        char* text = nullptr;
        long len = BIO_get_mem_data(bio, &text);
        std::string out(text, static_cast<std::size_t>(len));
        BIO_free(bio);
        return out;
    };
    auto same = ParsePublicKeyPem(pem_of(0x70, key->public_key().raw));  // 1.3.101.112 Ed25519
    ASSERT_TRUE(same) << same.error().message();
    EXPECT_EQ(same->raw, key->public_key().raw);
    auto x25519 = ParsePublicKeyPem(pem_of(0x6e, key->public_key().raw));  // 1.3.101.110
    ASSERT_FALSE(x25519);
    EXPECT_THAT(x25519.error().message(), ::testing::HasSubstr("not an Ed25519 key"));
    auto secret = key->PrivatePem();
    ASSERT_TRUE(secret);
    auto private_block = ParsePublicKeyPem(*secret);
    ASSERT_FALSE(private_block);
    EXPECT_THAT(private_block.error().message(), ::testing::HasSubstr("not a PEM public key"));
}

TEST_F(PackageFilesTest, TrustStoreRejectsBadKeyFiles) {
    Write(dir_ / "bad.pub", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
    auto store = TrustStore::LoadDirectory(dir_);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message().find("bad.pub"), std::string::npos);
    EXPECT_FALSE(TrustStore::LoadDirectory(dir_ / "missing"));
}

TEST_F(PackageFilesTest, TrustStoreRejectsNonEd25519Keys) {
    // An EC P-256 public key: valid PEM, wrong algorithm.
    EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    ASSERT_NE(ec, nullptr);
    BIO* bio = BIO_new(BIO_s_mem());
    ASSERT_EQ(PEM_write_bio_PUBKEY(bio, ec), 1);
    char* pem = nullptr;
    long len = BIO_get_mem_data(bio, &pem);
    Write(dir_ / "ec.pub", std::string_view(pem, static_cast<std::size_t>(len)));
    BIO_free(bio);
    EVP_PKEY_free(ec);
    auto store = TrustStore::LoadDirectory(dir_);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message().find("Ed25519"), std::string::npos)
        << store.error().message();
}

TEST_F(PackageFilesTest, PrivateKeyFileMustBePrivate) {
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    Write(dir_ / "k.key", *key->PrivatePem(), 0644);
    auto loose = SigningKey::LoadFile(dir_ / "k.key");
    ASSERT_FALSE(loose);
    EXPECT_NE(loose.error().message().find("chmod 600"), std::string::npos);
    fs::permissions(dir_ / "k.key", fs::perms::owner_read | fs::perms::owner_write);
    auto loaded = SigningKey::LoadFile(dir_ / "k.key");
    ASSERT_TRUE(loaded) << loaded.error().message();
    EXPECT_EQ(loaded->public_key().fingerprint, key->public_key().fingerprint);
}

// A private key reached through a symbolic link, owned by someone else, or in a directory
// others can change is refused: whoever controls any of them can swap the key (issue 24 point 6).
TEST_F(PackageFilesTest, PrivateKeyPathMustBeControlledByTheCaller) {
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    Write(dir_ / "k.key", *key->PrivatePem(), 0600);
    fs::create_symlink(dir_ / "k.key", dir_ / "link.key");
    auto linked = SigningKey::LoadFile(dir_ / "link.key");
    ASSERT_FALSE(linked);
    EXPECT_EQ(linked.error().message(),
              (dir_ / "link.key").string() +
                  ": private key is a symbolic link; name the key file itself (a link can be "
                  "pointed elsewhere by whoever owns its directory)");

    fs::create_directory(dir_ / "open");
    Write(dir_ / "open" / "k.key", *key->PrivatePem(), 0600);
    fs::permissions(dir_ / "open", fs::perms::all);  // 0777, no sticky bit
    auto open = SigningKey::LoadFile(dir_ / "open" / "k.key");
    ASSERT_FALSE(open);
    EXPECT_EQ(open.error().message(),
              (dir_ / "open" / "k.key").string() + ": directory " + (dir_ / "open").string() +
                  " is writable by group or others (mode 0777), who could replace the private "
                  "key in it");
    fs::permissions(dir_ / "open", fs::perms::sticky_bit, fs::perm_options::add);
    EXPECT_TRUE(SigningKey::LoadFile(dir_ / "open" / "k.key"));  // as in /tmp

    if (::geteuid() != 0) return;  // giving a file away needs root (CI runs as root)
    ASSERT_EQ(::chown((dir_ / "k.key").c_str(), ::geteuid() + 1, static_cast<gid_t>(-1)), 0);
    auto foreign = SigningKey::LoadFile(dir_ / "k.key");
    ASSERT_FALSE(foreign);
    EXPECT_EQ(foreign.error().message(),
              (dir_ / "k.key").string() + ": private key is owned by uid " +
                  std::to_string(::geteuid() + 1) + ", not by uid " +
                  std::to_string(::geteuid()) + " (who uses it)");
}

// The .pub where the private key belongs is named as a public key, not a key to chmod (a public
// key is world-readable by design); a private key that is not private still is.
TEST_F(PackageFilesTest, PublicKeyGivenAsPrivateKeyIsNamed) {
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    Write(dir_ / "k.pub", *key->PublicPem(), 0644);
    auto loaded = SigningKey::LoadFile(dir_ / "k.pub");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().message(),
              (dir_ / "k.pub").string() + ": this is a public key (fingerprint " +
                  key->public_key().fingerprint +
                  "), not a private key: pass the private key it belongs to (peinit-pkg keygen "
                  "writes NAME.key beside NAME.pub)");
    Write(dir_ / "junk.key", "not a key at all\n", 0600);
    auto junk = SigningKey::LoadFile(dir_ / "junk.key");
    ASSERT_FALSE(junk);
    EXPECT_NE(junk.error().message().find("not a PEM private key"), std::string::npos)
        << junk.error().message();
}

TEST_F(PackageFilesTest, ReadFileOnce) {
    Write(dir_ / "f", "hello");
    auto data = ReadFileOnce(dir_ / "f");
    ASSERT_TRUE(data);
    EXPECT_EQ(Text(*data), "hello");
    EXPECT_FALSE(ReadFileOnce(dir_ / "f", 4));
    EXPECT_FALSE(ReadFileOnce(dir_));
    auto missing = ReadFileOnce(dir_ / "missing");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    // Larger than one read, and exactly at the limit.
    std::string big(300000, 'x');
    Write(dir_ / "big", big);
    auto whole = ReadFileOnce(dir_ / "big", big.size());
    ASSERT_TRUE(whole);
    EXPECT_EQ(Text(*whole), big);
    EXPECT_FALSE(ReadFileOnce(dir_ / "big", big.size() - 1));
}

// The boot's read: one kernel-side copy into a sealed memfd. The bytes are the file's as it was
// read; changing the file afterwards changes nothing the package object holds.
TEST_F(PackageFilesTest, ReadFileSealedIsACopyNobodyCanChange) {
    std::string big(300000, 'x');
    big[1234] = 'y';
    Write(dir_ / "big", big);
    auto sealed = ReadFileSealed(dir_ / "big", big.size());
    ASSERT_TRUE(sealed) << sealed.error().message();
    EXPECT_EQ(Text(sealed->span()), big);
    Write(dir_ / "big", std::string(big.size(), 'z'));
    EXPECT_EQ(Text(sealed->span()), big);
    PackageBytes moved = std::move(*sealed);
    EXPECT_EQ(Text(moved.span()), big);
    EXPECT_FALSE(ReadFileSealed(dir_ / "big", big.size() - 1));
    EXPECT_FALSE(ReadFileSealed(dir_));
    auto missing = ReadFileSealed(dir_ / "missing");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    Write(dir_ / "empty", "");
    auto empty = ReadFileSealed(dir_ / "empty");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->span().empty());
}

// --- the sealed memfd ------------------------------------------------------------------------

TEST(PackageMemfd, HoldsExactlyTheBytesAndIsSealed) {
    auto payload = FakeKo("memfd", 10000);
    auto sealed = MakeSealedMemfd("demo.ko", payload);
    ASSERT_TRUE(sealed) << sealed.error().message();
    int fd = sealed->fd();

    struct stat st;
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(static_cast<std::size_t>(st.st_size), payload.size());
    std::vector<std::byte> back(payload.size() + 1);
    EXPECT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(payload.size()));
    back.resize(payload.size());
    EXPECT_EQ(back, payload);

    int seals = ::fcntl(fd, F_GET_SEALS);
    EXPECT_EQ(seals, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    EXPECT_EQ((::fcntl(fd, F_GETFL) & O_ACCMODE), O_RDONLY);  // finit_module needs this

    // Our descriptor cannot write, and neither can a writable reopen (the seals hold).
    EXPECT_EQ(::write(fd, "x", 1), -1);
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    int rw = ::open(proc.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(rw, 0);
    EXPECT_EQ(::pwrite(rw, "x", 1, 0), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::ftruncate(rw, 1), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::ftruncate(rw, static_cast<off_t>(payload.size()) + 1), -1);
    EXPECT_EQ(::pwrite(rw, "x", 1, static_cast<off_t>(payload.size())), -1);
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_WRITE, MAP_SHARED, rw, 0), MAP_FAILED);
    EXPECT_EQ(::fcntl(rw, F_ADD_SEALS, 0), -1);  // F_SEAL_SEAL: no change to seals at all
    ::close(rw);

    EXPECT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(payload.size()));
    EXPECT_EQ(back, payload);
}

TEST(PackageMemfd, VerifiedPayloadToMemfd) {
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    TrustStore trusted;
    trusted.Add(key->public_key());
    auto bytes = CreatePackage(DemoSpec(), &*key);
    ASSERT_TRUE(bytes);
    auto pkg = VerifyPackage(*bytes, trusted, std::string(kKver));
    ASSERT_TRUE(pkg);
    for (const auto& file : pkg->files()) {
        auto sealed = MakeSealedMemfd(file.module_name(), file.bytes());
        ASSERT_TRUE(sealed);
        std::vector<std::byte> back(file.bytes().size());
        ASSERT_EQ(::pread(sealed->fd(), back.data(), back.size(), 0),
                  static_cast<ssize_t>(back.size()));
        EXPECT_EQ(Sha256Of(back), file.sha256());
    }
    auto empty = MakeSealedMemfd("empty.ko", {});
    EXPECT_TRUE(empty);
}

// --- robustness ------------------------------------------------------------------------------

// Random byte flips, truncations and splices over a valid package: never a crash (run under
// ASan/UBSan with -DPEINIT_SANITIZE=ON), and whatever is accepted has exactly the original
// payload (only a change to tar metadata we ignore may pass; nothing else).
TEST_F(PackageTest, MutationSweepNeverAcceptsChangedPayload) {
    auto original = VerifyPackage(package_, trusted_, std::string(kKver));
    ASSERT_TRUE(original);
    std::mt19937 rng(1234);
    int accepted = 0;
    for (int i = 0; i < 3000; ++i) {
        auto bytes = package_;
        switch (i % 3) {
            case 0:
                for (int n = 1 + static_cast<int>(rng() % 4); n > 0; --n) {
                    bytes[rng() % bytes.size()] ^= static_cast<std::byte>(1 + rng() % 255);
                }
                break;
            case 1:
                bytes.resize(rng() % bytes.size());
                break;
            default: {
                std::size_t at = rng() % bytes.size();
                std::size_t len = 1 + rng() % 600;
                for (std::size_t j = at; j < std::min(bytes.size(), at + len); ++j) {
                    bytes[j] = static_cast<std::byte>(rng());
                }
            }
        }
        auto result = VerifyPackage(bytes, trusted_, std::string(kKver));
        if (!result) {
            EXPECT_TRUE(PackageRejectOf(result.error())) << result.error().message();
            continue;
        }
        ++accepted;
        ASSERT_EQ(result->files().size(), original->files().size());
        for (std::size_t f = 0; f < original->files().size(); ++f) {
            EXPECT_EQ(result->files()[f].path(), original->files()[f].path());
            EXPECT_TRUE(
                std::ranges::equal(result->files()[f].bytes(), original->files()[f].bytes()));
        }
    }
    // Almost every mutation must be caught; the few accepted ones changed tar header fields we
    // ignore (mode, owner, time) together with a matching header checksum, which random
    // mutation rarely achieves.
    EXPECT_LT(accepted, 30);
}

// --- real modules ----------------------------------------------------------------------------

TEST(PackageRealModules, DebianModulesRoundTrip) {
    fs::path root = PEINIT_DEBIAN_KERNEL_DIR;
    if (root.empty() || !fs::exists(root / "lib/modules")) GTEST_SKIP() << "no Debian kernel";
    fs::path kdir;
    for (const auto& e : fs::directory_iterator(root / "lib/modules")) kdir = e.path();
    PackageSpec spec{"real", "1", kdir.filename().string(), {}};
    for (std::string rel : {"kernel/drivers/block/virtio_blk.ko", "kernel/net/key/af_key.ko"}) {
        auto data = ReadFileOnce(kdir / rel);
        if (!data) GTEST_SKIP() << rel << " missing";
        spec.files.push_back({"modules/" + fs::path(rel).filename().string(), std::move(*data)});
    }
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    TrustStore trusted;
    trusted.Add(key->public_key());
    auto bytes = CreatePackage(spec, &*key);
    ASSERT_TRUE(bytes) << bytes.error().message();
    auto pkg = VerifyPackage(*bytes, trusted, spec.kernel_release);
    ASSERT_TRUE(pkg) << pkg.error().message();
    ASSERT_NE(pkg->FindModule("virtio_blk"), nullptr);
    EXPECT_TRUE(std::ranges::equal(pkg->FindModule("virtio_blk")->bytes(), spec.files[0].bytes));
}

// --- committed fixture -----------------------------------------------------------------------

// A v1 package signed once by a throwaway key (only its public half is committed): this build
// must keep verifying packages written by earlier builds.
// The format-1 fixture was signed before the name binding: its container, signature,
// manifest and hashes still check (the format is unchanged), and its payloads, which are not
// kernel modules, are now refused by the name binding.
TEST(PackageFixture, GoldenV1PackageStillParsesAndHashes) {
    fs::path dir = fs::path(PEINIT_FIXTURES_DIR) / "packages";
    if (!fs::exists(dir / "demo-v1.pkg")) GTEST_SKIP() << "fixture not generated";
    auto trusted = TrustStore::LoadDirectory(dir / "keys");
    ASSERT_TRUE(trusted) << trusted.error().message();
    auto bytes = ReadFileOnce(dir / "demo-v1.pkg");
    ASSERT_TRUE(bytes);
    auto copy = ReadFileOnce(dir / "demo-v1.pkg");
    ASSERT_TRUE(copy);
    auto pkg = OpenPackage(PackageBytes(std::move(*bytes)), *trusted, std::string("6.1.0-56-amd64"));
    ASSERT_TRUE(pkg) << pkg.error().message();
    ASSERT_TRUE(pkg->VerifyAll());
    EXPECT_EQ(pkg->name(), "demo");
    EXPECT_EQ(pkg->version(), "1.0");
    EXPECT_EQ(pkg->signer(), "b270f6ce6d0c19c612b1b2e3c4bcbcfe5f7d23af832ade6544cb878581a01e23");
    ASSERT_EQ(pkg->size(), 2u);
    EXPECT_EQ(pkg->path(0), "modules/alpha.ko");
    EXPECT_EQ(Text(pkg->Verified(0)->bytes()),
              "\x7f"
              "ELF fake module \"alpha\" for the format-1 fixture\n");
    EXPECT_EQ(pkg->path(1), "modules/beta.ko");
    EXPECT_EQ(Text(pkg->Verified(1)->bytes()),
              "\x7f"
              "ELF fake module \"beta\" for the format-1 fixture\n");
    auto verified = VerifyPackage(std::span<const std::byte>(copy->data(), copy->size()),
                                  *trusted, std::string("6.1.0-56-amd64"));
    ASSERT_FALSE(verified);
    EXPECT_EQ(PackageRejectOf(verified.error()), PackageReject::kModuleNameMismatch);
}

}  // namespace
}  // namespace peinit

namespace peinit {
namespace {

// the decoders kmod uses, on what their encoders produce; errors name the file.
TEST(ModuleImage, DecompressesEveryFormatAndNamesBadInput) {
    std::vector<std::byte> elf(100000);
    for (std::size_t i = 0; i < elf.size(); ++i) elf[i] = std::byte(static_cast<unsigned char>(i * 7 % 251));
    EXPECT_EQ(ModuleImageOf("modules/a.ko", elf)->bytes().data(), elf.data());  // a view, no copy
    for (auto [c, suffix] : {std::pair{ModuleCompression::kGzip, ".ko.gz"},
                             std::pair{ModuleCompression::kXz, ".ko.xz"},
                             std::pair{ModuleCompression::kZstd, ".ko.zst"}}) {
        auto packed = CompressModule(c, elf);
        ASSERT_TRUE(packed) << suffix;
        auto image = ModuleImageOf(std::string("modules/a") + suffix, *packed);
        ASSERT_TRUE(image) << image.error().message();
        EXPECT_TRUE(std::equal(image->bytes().begin(), image->bytes().end(), elf.begin(), elf.end()))
            << suffix;
        std::vector<std::byte> garbage(packed->size(), std::byte{0x55});
        auto bad = ModuleImageOf(std::string("modules/a") + suffix, garbage);
        ASSERT_FALSE(bad) << suffix;
        EXPECT_THAT(bad.error().message(), ::testing::StartsWith(std::string("modules/a") + suffix + ": "));
        auto cut = ModuleImageOf(std::string("modules/a") + suffix,
                                 std::span(*packed).first(packed->size() / 2));
        ASSERT_FALSE(cut) << suffix;
        EXPECT_THAT(cut.error().message(), ::testing::HasSubstr("truncated")) << suffix;
    }
    EXPECT_FALSE(ModuleImageOf("modules/a.ko.bz2", elf));
}

}  // namespace
}  // namespace peinit
