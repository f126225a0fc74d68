// libFuzzer target: the signed-package verifier (peinit/sys/package.h, PACKAGE.md), given
// arbitrary bytes as a package, with the fixture's public key as the only trusted key
// (tests/fixtures/packages/keys/fixture.pub; its private half does not exist any more, so no
// input can be signed anew: accepted inputs are re-packings of a signed MANIFEST). Also the two
// other readers of untrusted packages: ClaimedModules (PID 1 names the modules of a rejected
// package with it) and InspectPackage (`peinit-pkg list`).
//
// Checks: every rejection carries a PackageReject reason; an accepted package is signed by the
// trusted key for the expected kernel release, its files are sorted, validly named and hash to
// the manifest, InspectPackage and ClaimedModules agree with it, and it is rejected with the
// right reason for another kernel release or an empty trust store.

#include <cstdio>
#include <cstdlib>

#include "peinit/sys/package.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace peinit;

constexpr const char* kKeyFile = PEINIT_FIXTURES_DIR "/packages/keys/fixture.pub";
constexpr const char* kKernelRelease = "6.1.0-56-amd64";  // the fixture package's

const TrustStore& Trusted() {
    static const TrustStore store = [] {
        auto pem = ReadFileOnce(kKeyFile, 16 * 1024);
        auto key = pem ? ParsePublicKeyPem(std::string_view(
                             reinterpret_cast<const char*>(pem->data()), pem->size()))
                       : Result<PublicKey>(pem.error());
        if (!key) {
            std::fprintf(stderr, "%s: %s\n", kKeyFile, key.error().message().c_str());
            std::exit(1);
        }
        TrustStore s;
        s.Add(*key);
        return s;
    }();
    return store;
}

void CheckRejected(const Error& e, const char* who) {
    FUZZ_CHECK(PackageRejectOf(e).has_value(),
               std::string(who) + " failed without a PackageReject reason: " + e.message());
}

void CheckAccepted(std::span<const std::byte> bytes, const VerifiedPackage& p) {
    const TrustStore& trusted = Trusted();
    FUZZ_CHECK(p.signer() == trusted.keys()[0].fingerprint, "signer is not the trusted key");
    FUZZ_CHECK(p.kernel_release() == kKernelRelease, "wrong kernel release accepted");
    FUZZ_CHECK(!p.files().empty(), "accepted a package without files");
    std::vector<std::string> modules;
    for (size_t i = 0; i < p.files().size(); ++i) {
        const VerifiedFile& f = p.files()[i];
        FUZZ_CHECK(i == 0 || p.files()[i - 1].path() < f.path(), "files not sorted and unique");
        FUZZ_CHECK(ValidatePayloadPath(f.path()).has_value(), "bad payload path " + f.path());
        FUZZ_CHECK(Sha256Of(f.bytes()) == f.sha256(), f.path() + ": bytes do not match SHA-256");
        FUZZ_CHECK(p.FindModule(f.module_name()) != nullptr, "FindModule misses " + f.path());
        modules.push_back(f.module_name());
    }

    auto info = InspectPackage(bytes);
    FUZZ_CHECK(info.has_value(), "InspectPackage rejects a verified package");
    FUZZ_CHECK(info->signature && info->signature->key_fingerprint == p.signer(),
               "InspectPackage shows another signer");
    const Manifest& m = info->manifest;
    FUZZ_CHECK(m.name == p.name() && m.version == p.version() &&
                   m.kernel_release == p.kernel_release() && m.files.size() == p.files().size(),
               "InspectPackage shows another manifest");
    for (size_t i = 0; i < m.files.size(); ++i) {
        FUZZ_CHECK(m.files[i].path == p.files()[i].path() &&
                       m.files[i].size == p.files()[i].bytes().size() &&
                       m.files[i].sha256 == p.files()[i].sha256(),
                   "InspectPackage lists another file");
    }
    FUZZ_CHECK(ClaimedModules(bytes) == modules, "ClaimedModules differs from the verified files");

    auto other = VerifyPackage(bytes, trusted, std::string("6.1.0-0-other"));
    FUZZ_CHECK(!other && PackageRejectOf(other.error()) == PackageReject::kWrongKernelRelease,
               "accepted for another kernel release");
    auto untrusted = VerifyPackage(bytes, TrustStore(), std::string(kKernelRelease));
    FUZZ_CHECK(!untrusted && PackageRejectOf(untrusted.error()) == PackageReject::kUntrustedKey,
               "accepted with an empty trust store");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    Trusted();  // fail at start-up, not on the first input, when the key is missing
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);

    auto verified = VerifyPackage(bytes, Trusted(), std::string(kKernelRelease));
    if (verified) {
        CheckAccepted(bytes, *verified);
    } else {
        CheckRejected(verified.error(), "VerifyPackage");
    }

    auto info = InspectPackage(bytes);
    if (!info) {
        CheckRejected(info.error(), "InspectPackage");
    } else {
        FUZZ_CHECK(SerializeManifest(info->manifest).size() <= kMaxManifestBytes,
                   "InspectPackage accepted an oversized manifest");
    }
    for (const auto& name : ClaimedModules(bytes)) {
        FUZZ_CHECK(!name.empty() && name.find('/') == std::string::npos,
                   "ClaimedModules returned \"" + name + "\"");
    }
    return 0;
}
