#include "peinit/sys/package_crypto.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <system_error>

namespace peinit {
namespace {

constexpr std::size_t kMaxKeyFileBytes = 16 * 1024;

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using UniqueBio = std::unique_ptr<BIO, BioFree>;
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using UniqueMdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The most recent OpenSSL error as text, and the queue cleared (so it does not leak into the
// next, unrelated failure).
std::string OpenSslError() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    return buf;
}

// Never prompt for a passphrase: the tool runs in scripts and peinit has no terminal.
int NoPassphrase(char*, int, int, void*) { return -1; }

// Reads a key file; `mode` (when not null) receives its permission bits.
Result<std::string> ReadSmallFile(const std::filesystem::path& path, mode_t* mode = nullptr) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return ErrnoErr(path.string());
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return ErrnoErr(path.string(), err);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Err(path.string() + ": not a regular file");
    }
    if (mode != nullptr) *mode = st.st_mode & 07777;
    std::string data;
    char buf[4096];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return ErrnoErr(path.string(), err);
        }
        if (n == 0) break;
        data.append(buf, static_cast<std::size_t>(n));
        if (data.size() > kMaxKeyFileBytes) {
            ::close(fd);
            return Err(path.string() + ": too large for a key file");
        }
    }
    ::close(fd);
    return data;
}

Result<PublicKey> PublicOf(EVP_PKEY* pkey) {
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) return Err("not an Ed25519 key");
    std::array<std::byte, 32> raw;
    std::size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &len) !=
            1 ||
        len != raw.size()) {
        return Err("cannot read the raw Ed25519 public key: " + OpenSslError());
    }
    return PublicKeyFromRaw(raw);
}

}  // namespace

Sha256Digest Sha256Of(std::span<const std::byte> data) {
    Sha256Digest out{};
    unsigned int len = 0;
    // EVP_Digest with SHA-256 only fails on allocation failure; an all-zero digest then never
    // matches a manifest entry, so the failure is still a rejection, never an acceptance.
    if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                   EVP_sha256(), nullptr) != 1) {
        ERR_clear_error();
        out.fill(std::byte{0});
    }
    return out;
}

PublicKey PublicKeyFromRaw(const std::array<std::byte, 32>& raw) {
    PublicKey key;
    key.raw = raw;
    key.fingerprint = HexEncode(Sha256Of(raw));
    return key;
}

// An Ed25519 SubjectPublicKeyInfo has one DER encoding (RFC 8410, section 10.1): this prefix,
// then the 32 key bytes.
constexpr unsigned char kEd25519SpkiPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

// The key of a single "PUBLIC KEY" PEM block holding an Ed25519 SubjectPublicKeyInfo, or nothing
// when the text is anything else. PID 1 reads its trusted keys this way: OpenSSL's generic key
// decoder (tried for every key type and encoding) costs tens of milliseconds in a boot that
// waits for it, and an Ed25519 key needs none of it.
std::optional<PublicKey> Ed25519FromPem(std::string_view pem) {
    UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* der = nullptr;
    long len = 0;
    if (!bio || PEM_read_bio(bio.get(), &name, &header, &der, &len) != 1) {
        ERR_clear_error();
        return std::nullopt;
    }
    std::optional<PublicKey> key;
    constexpr std::size_t kPrefix = sizeof(kEd25519SpkiPrefix);
    if (std::string_view(name) == PEM_STRING_PUBLIC && *header == '\0' &&
        len == static_cast<long>(kPrefix + 32) &&
        std::equal(kEd25519SpkiPrefix, kEd25519SpkiPrefix + kPrefix, der)) {
        std::array<std::byte, 32> raw;
        std::memcpy(raw.data(), der + kPrefix, raw.size());
        key = PublicKeyFromRaw(raw);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    return key;
}

Result<PublicKey> ParsePublicKeyPem(std::string_view pem) {
    if (pem.size() > kMaxKeyFileBytes) return Err("too large for a public key");
    if (auto key = Ed25519FromPem(pem)) return *key;
    // Anything else goes through the full decoder, for its error (another key type, bad PEM).
    UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return Err("out of memory");
    UniquePkey pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
    if (!pkey) return Err("not a PEM public key: " + OpenSslError());
    return PublicOf(pkey.get());
}

bool VerifyEd25519(const PublicKey& key, std::span<const std::byte> message,
                   const Ed25519Signature& signature) {
    UniquePkey pkey(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key.raw.data()),
        key.raw.size()));
    UniqueMdCtx ctx(EVP_MD_CTX_new());
    bool ok =
        pkey && ctx &&
        EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                         message.size()) == 1;
    ERR_clear_error();
    return ok;
}

Result<std::string> VerifySignatureText(const TrustStore& trusted,
                                        std::span<const std::byte> message,
                                        std::string_view signature_text, std::string_view what) {
    PackageSignature sig = PEINIT_TRY(ParseSignature(signature_text));
    const PublicKey* key = trusted.Find(sig.key_fingerprint);
    if (key == nullptr) {
        return Reject(PackageReject::kUntrustedKey,
                      "signed by key " + sig.key_fingerprint + ", which is not trusted");
    }
    if (!VerifyEd25519(*key, message, sig.value)) {
        return Reject(PackageReject::kBadSignature, "the signature by " + sig.key_fingerprint +
                                                        " does not match " + std::string(what));
    }
    return sig.key_fingerprint;
}

Result<TrustStore> TrustStore::LoadDirectory(const std::filesystem::path& dir) {
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) return Err(dir.string() + ": " + ec.message(), ec.value());
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        if (it->path().extension() == ".pub") files.push_back(it->path());
    }
    if (ec) return Err(dir.string() + ": " + ec.message(), ec.value());
    std::sort(files.begin(), files.end());
    TrustStore store;
    for (const auto& file : files) PEINIT_TRY(store.AddFile(file));
    return store;
}

Result<void> TrustStore::AddFile(const std::filesystem::path& file) {
    std::string pem = PEINIT_TRY(ReadSmallFile(file));
    auto key = ParsePublicKeyPem(pem);
    if (!key) return Unexpected(key.error().Context(file.string() + ": "));
    Add(std::move(*key));
    return Ok();
}

void TrustStore::Add(PublicKey key) {
    if (Find(key.fingerprint) == nullptr) keys_.push_back(std::move(key));
}

const PublicKey* TrustStore::Find(std::string_view fingerprint) const {
    for (const auto& key : keys_) {
        if (key.fingerprint == fingerprint) return &key;
    }
    return nullptr;
}

Result<SigningKey> SigningKey::FromPkey(EVP_PKEY* owned) {
    std::shared_ptr<EVP_PKEY> pkey(owned, PkeyFree());
    PublicKey pub = PEINIT_TRY(PublicOf(pkey.get()));
    return SigningKey(std::move(pkey), std::move(pub));
}

Result<SigningKey> SigningKey::Generate() {
    EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (pkey == nullptr) return Err("Ed25519 key generation failed: " + OpenSslError());
    return FromPkey(pkey);
}

Result<SigningKey> SigningKey::FromPem(std::string_view pem) {
    if (pem.size() > kMaxKeyFileBytes) return Err("too large for a private key");
    UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return Err("out of memory");
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr);
    if (pkey == nullptr) return Err("not a PEM private key: " + OpenSslError());
    return FromPkey(pkey);
}

Result<SigningKey> SigningKey::LoadFile(const std::filesystem::path& path) {
    mode_t mode = 0;
    std::string pem = PEINIT_TRY(ReadSmallFile(path, &mode));
    auto key = FromPem(pem);
    // The usual mix-up: the .pub half where the private key belongs.
    auto pub = key ? Result<PublicKey>(Err("")) : ParsePublicKeyPem(pem);
    // Scrub our copy of the secret before it is freed.
    OPENSSL_cleanse(pem.data(), pem.size());
    if (!key) {
        if (pub) {
            return Err(path.string() + ": this is a public key (fingerprint " + pub->fingerprint +
                       "), not a private key: pass the private key it belongs to (peinit-pkg "
                       "keygen writes NAME.key beside NAME.pub)");
        }
        return Unexpected(key.error().Context(path.string() + ": "));
    }
    if ((mode & 077) != 0) {
        char text[16];
        std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode));
        return Err(path.string() + ": private key is accessible by group or others (mode " + text +
                   "); chmod 600 it");
    }
    PEINIT_TRY(CheckPrivateKeyPath(path));
    return key;
}

Result<void> CheckPrivateKeyPath(const std::filesystem::path& path) {
    const uid_t me = ::geteuid();
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return ErrnoErr(path.string());
    if (S_ISLNK(st.st_mode)) {
        return Err(path.string() + ": private key is a symbolic link; name the key file itself "
                   "(a link can be pointed elsewhere by whoever owns its directory)");
    }
    if (st.st_uid != me) {
        return Err(path.string() + ": private key is owned by uid " + std::to_string(st.st_uid) +
                   ", not by uid " + std::to_string(me) + " (who uses it)");
    }
    // Every directory above it, as ssh checks: whoever may rename entries in one of them can
    // swap the key. Writable by group or others is fine only with the sticky bit (/tmp).
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::canonical(
        std::filesystem::absolute(path, ec).parent_path(), ec);
    if (ec) return Err(path.parent_path().string() + ": " + ec.message());
    for (;;) {
        if (::stat(dir.c_str(), &st) != 0) return ErrnoErr(dir.string());
        if (st.st_uid != 0 && st.st_uid != me) {
            return Err(path.string() + ": directory " + dir.string() + " is owned by uid " +
                       std::to_string(st.st_uid) +
                       ", who could replace the private key in it");
        }
        if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
            char text[8];
            std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(st.st_mode & 07777));
            return Err(path.string() + ": directory " + dir.string() +
                       " is writable by group or others (mode " + text +
                       "), who could replace the private key in it");
        }
        if (dir == dir.root_path()) break;
        dir = dir.parent_path();
    }
    return Ok();
}

Result<std::string> SigningKey::PrivatePem() const {
    UniqueBio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr,
                                         nullptr) != 1) {
        return Err("cannot encode the private key: " + OpenSslError());
    }
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

Result<std::string> SigningKey::PublicPem() const {
    UniqueBio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_.get()) != 1) {
        return Err("cannot encode the public key: " + OpenSslError());
    }
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

Result<Ed25519Signature> SigningKey::Sign(std::span<const std::byte> message) const {
    UniqueMdCtx ctx(EVP_MD_CTX_new());
    Ed25519Signature sig{};
    std::size_t len = sig.size();
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1 ||
        len != sig.size()) {
        return Err("Ed25519 signing failed: " + OpenSslError());
    }
    return sig;
}

std::optional<std::filesystem::path> EnclosingGitWorkTree(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::absolute(dir, ec), ec);
    if (ec) return std::nullopt;
    while (true) {
        if (fs::exists(p / ".git", ec)) return p;
        if (!p.has_parent_path() || p.parent_path() == p) return std::nullopt;
        p = p.parent_path();
    }
}

Result<void> CheckPrivateKeyDir(const std::filesystem::path& dir) {
    if (auto repo = EnclosingGitWorkTree(dir)) {
        return Err(dir.string() + " is inside the git work tree " + repo->string() +
                   "; private keys must not be written into a repository");
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) return Ok();  // created 0700 by its first use
        return ErrnoErr(dir.string());
    }
    if (!S_ISDIR(st.st_mode)) return Err(dir.string() + ": not a directory");
    if (st.st_uid != ::geteuid()) {
        return Err(dir.string() + ": owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                   std::to_string(::geteuid()) +
                   " (who uses it): a key directory someone else controls can swap the key");
    }
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Err(dir.string() + ": key directory is accessible by group or others (mode " +
                   mode + "); chmod 700 it");
    }
    return Ok();
}

}  // namespace peinit
