#include "initramfs/image_packages.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <span>
#include <sstream>

#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_format.h"

namespace peinit::image {

namespace {

constexpr const char* kKeyFileName = "image-signing.key";
// Split well inside the format's limits (1024 files, 256 MiB per package).
constexpr std::size_t kFilesPerPackage = 1000;
constexpr std::size_t kBytesPerPackage = 192u << 20;

Result<std::vector<std::byte>> ReadHostFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return ErrnoErr(path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return ErrnoErr(path);
    std::string s = ss.str();
    std::vector<std::byte> out(s.size());
    std::transform(s.begin(), s.end(), out.begin(), [](char c) { return std::byte(c); });
    return out;
}

// Creates `path` with `mode` and its missing parents with 0755 (a key directory such as
// /etc/peinit/keys/private must not close /etc/peinit to others).
Result<void> MakeDirs(const std::string& path, mode_t mode) {
    for (size_t pos = 1; pos != std::string::npos;) {
        pos = path.find('/', pos + 1);
        std::string p = path.substr(0, pos);
        if (::mkdir(p.c_str(), pos == std::string::npos ? mode : 0755) != 0 && errno != EEXIST)
            return ErrnoErr("mkdir " + p);
    }
    return Ok();
}

// Field characters of the manifest ([A-Za-z0-9._+~-], 1..64).
std::string SanitizeField(const std::string& s) {
    std::string out;
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '+' || c == '~' || c == '-';
        out += ok ? c : '-';
    }
    if (out.size() > kMaxFieldBytes) out.resize(kMaxFieldBytes);
    return out.empty() ? "image" : out;
}

std::string BaseName(const std::string& p) {
    auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

// What to do about a pre-built package that does not verify, by the verifier's reason: an
// untrusted signer is a missing `keys` entry, a wrong release a package built for another
// kernel; only a package that is damaged or forged may be meant to ship that way.
std::string RejectionHint(const Error& error, std::span<const std::byte> bytes,
                          const std::string& kver) {
    auto reason = PackageRejectOf(error);
    if (reason == PackageReject::kUntrustedKey) {
        auto info = InspectPackage(bytes);
        std::string signer = info && info->signature ? info->signature->key_fingerprint : "?";
        return "add the signer's public key, fingerprint " + signer +
               ", to \"keys\" (peinit-pkg keygen wrote it as NAME.pub beside the NAME.key the "
               "package was signed with)";
    }
    if (reason == PackageReject::kWrongKernelRelease)
        return "rebuild it for kernel " + kver + " (peinit-pkg create --kver " + kver + ")";
    if (reason == PackageReject::kUnsigned)
        return "sign it (peinit-pkg sign --key KEY) and add that key's .pub to \"keys\"";
    return "if it is damaged on purpose, set expect = \"rejected\" to ship it deliberately";
}

}  // namespace

std::string DefaultImageKeyDir() {
    if (const char* c = std::getenv("PEINIT_CACHE"); c != nullptr && *c != '\0')
        return std::string(c) + "/image-keys";
    const char* home = std::getenv("HOME");
    return std::string(home != nullptr && *home != '\0' ? home : "/root") +
           "/.cache/peinit/image-keys";
}

Result<ImageSigningKey> LoadImageSigningKey(const ImageDefinition& def,
                                            const std::string& key_dir) {
    if (def.signing_key) {
        auto key = SigningKey::LoadFile(def.signing_key->value);
        if (!key)
            return key.error().Context(def.file + ":" + std::to_string(def.signing_key->line) +
                                       ": signing_key: ");
        return ImageSigningKey{std::move(*key), def.signing_key->value};
    }
    if (auto r = CheckPrivateKeyDir(key_dir); !r) return r.error().Context("image key directory: ");
    const std::string path = key_dir + "/" + kKeyFileName;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) return ErrnoErr(path);
        // First use: generate, write to a private temporary file, link into place. link(2)
        // fails with EEXIST when a concurrent build won; then its key is the key.
        PEINIT_TRY(MakeDirs(key_dir, 0700));
        SigningKey fresh = PEINIT_TRY(SigningKey::Generate());
        std::string pem = PEINIT_TRY(fresh.PrivatePem());
        std::string tmp = key_dir + "/.image-signing.key.XXXXXX";
        int fd = ::mkstemp(tmp.data());
        if (fd < 0) return ErrnoErr("mkstemp " + tmp);
        bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()) &&
                  ::fsync(fd) == 0;
        int err = errno;
        ::close(fd);
        if (!ok) {
            ::unlink(tmp.c_str());
            return ErrnoErr("cannot write " + tmp, err);
        }
        if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
            err = errno;
            ::unlink(tmp.c_str());
            return ErrnoErr("cannot create " + path, err);
        }
        ::unlink(tmp.c_str());
    }
    auto key = SigningKey::LoadFile(path);
    if (!key) return key.error().Context("image signing key: ");
    return ImageSigningKey{std::move(*key), path};
}

Result<std::vector<PackageFile>> PackImageModules(const std::string& name, const std::string& kver,
                                                  const std::vector<PackModule>& modules,
                                                  const SigningKey& key, int64_t mtime) {
    // Group into chunks within the limits, in path order (the input order is the closure's,
    // sorted by path).
    std::vector<std::vector<PackageInput>> chunks;
    std::vector<std::vector<std::string>> names;
    std::size_t bytes_in_chunk = 0;
    for (const auto& m : modules) {
        std::vector<std::byte> data = PEINIT_TRY(ReadHostFile(m.host_path));
        if (chunks.empty() || chunks.back().size() >= kFilesPerPackage ||
            bytes_in_chunk + data.size() > kBytesPerPackage) {
            chunks.emplace_back();
            names.emplace_back();
            bytes_in_chunk = 0;
        }
        bytes_in_chunk += data.size();
        names.back().push_back(ModuleNameOfPath(m.rel_path));
        chunks.back().push_back({std::string(kPayloadPrefix) + m.rel_path, std::move(data)});
    }
    std::vector<PackageFile> out;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        PackageSpec spec;
        spec.name = SanitizeField(name);
        spec.kernel_release = kver;
        // Version: a digest of the payload, so a changed module set has a new version.
        std::string digest_input;
        for (const auto& f : chunks[i]) {
            auto sha = Sha256Of(f.bytes);
            digest_input += f.path + " " + HexEncode(sha.data(), sha.size()) + "\n";
        }
        auto d = Sha256Of(std::as_bytes(std::span(digest_input.data(), digest_input.size())));
        spec.version = HexEncode(d.data(), d.size()).substr(0, 16);
        spec.files = std::move(chunks[i]);
        auto bytes = CreatePackage(spec, &key, mtime);
        if (!bytes) return bytes.error().Context("cannot pack the image's modules: ");
        PackageFile f;
        f.file_name = i == 0 ? "image.pkg" : "image-" + std::to_string(i + 1) + ".pkg";
        f.bytes = std::move(*bytes);
        f.modules = std::move(names[i]);
        out.push_back(std::move(f));
    }
    return out;
}

Result<CheckedPackage> CheckExtraPackage(const ExtraPackage& entry, const std::string& file,
                                         const TrustStore& trusted, const std::string& kver) {
    const std::string where = file + ":" + std::to_string(entry.line) + ": package " + entry.path;
    auto bytes = ReadFileOnce(entry.path);
    if (!bytes) return bytes.error().Context(where + ": ");
    CheckedPackage c;
    c.file.file_name = BaseName(entry.path);
    auto verified = VerifyPackage(*bytes, trusted, kver);
    if (verified) {
        c.verified = true;
        for (const auto& f : verified->files()) c.file.modules.push_back(f.module_name());
    } else {
        c.reason = verified.error().message();
        c.file.modules = ClaimedModules(*bytes);
    }
    c.file.bytes = std::move(*bytes);
    if (entry.expect == PackageExpect::kValid && !c.verified)
        return Err(where + " does not verify against the image's keys and kernel " + kver + ": " +
                   c.reason + " (" + RejectionHint(verified.error(), c.file.bytes, kver) + ")");
    if (entry.expect == PackageExpect::kRejected && c.verified)
        return Err(where + " verifies, but expect = \"rejected\"");
    return c;
}

}  // namespace peinit::image
