#pragma once

// The cryptography of signed module packages, on OpenSSL EVP: SHA-256, Ed25519 keys, the trust
// store of baked-in public keys, signing and verification. Nothing here throws; OpenSSL errors
// become Errors.

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/sys/package_format.h"

typedef struct evp_pkey_st EVP_PKEY;  // NOLINT: OpenSSL's own spelling

namespace peinit {

Sha256Digest Sha256Of(std::span<const std::byte> data);

// An Ed25519 public key and its fingerprint (lowercase hex SHA-256 of the raw 32-byte key; the
// same value MANIFEST.sig names the signer by).
struct PublicKey {
    std::array<std::byte, 32> raw{};
    std::string fingerprint;
};

// Parses a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) that must hold an Ed25519 key.
Result<PublicKey> ParsePublicKeyPem(std::string_view pem);
PublicKey PublicKeyFromRaw(const std::array<std::byte, 32>& raw);

// True when `signature` is a valid Ed25519 signature of `message` by `key`.
bool VerifyEd25519(const PublicKey& key, std::span<const std::byte> message,
                   const Ed25519Signature& signature);

class TrustStore;

// Checks a signature in MANIFEST.sig's format (peinit/sys/PACKAGE.md) over `message`: well-formed
// (malformed-signature), by a key in `trusted` (untrusted-key), Ed25519 valid over exactly these
// bytes (bad-signature, naming `what`). The one signature check of packages and of the image's
// stored plan (peinit/core/stored_plan.h). Returns the signer's fingerprint.
Result<std::string> VerifySignatureText(const TrustStore& trusted,
                                        std::span<const std::byte> message,
                                        std::string_view signature_text, std::string_view what);

// The public keys a verifier trusts, looked up by fingerprint. In an image these are the keys
// baked into it at build time (e.g. /etc/peinit/keys/*.pub).
class TrustStore {
  public:
    // Loads every "*.pub" in `dir` (PEM Ed25519 public keys), in name order. Any file that is
    // not a valid Ed25519 public key is an error naming the file: a damaged trust directory is
    // reported, not silently shrunk. Other files in the directory are ignored.
    static Result<TrustStore> LoadDirectory(const std::filesystem::path& dir);

    // Adds a key; adding the same key twice keeps one copy.
    void Add(PublicKey key);
    // Adds the PEM Ed25519 public key in `file`; an error names the file.
    Result<void> AddFile(const std::filesystem::path& file);

    // The key with this fingerprint, or nullptr when it is not trusted.
    const PublicKey* Find(std::string_view fingerprint) const;

    const std::vector<PublicKey>& keys() const { return keys_; }
    bool empty() const { return keys_.empty(); }

  private:
    std::vector<PublicKey> keys_;
};

// An Ed25519 private key, for the package tool and tests (peinit itself never holds one).
class SigningKey {
  public:
    static Result<SigningKey> Generate();
    // Parses a PEM private key (PKCS#8, as Generate/PrivatePem write) holding an Ed25519 key.
    static Result<SigningKey> FromPem(std::string_view pem);
    // Reads a private key file, refusing one that group or others can read or write (as ssh
    // does: a key others can read is not secret any more) or that fails CheckPrivateKeyPath. A
    // public key given instead is named as such, with its fingerprint.
    static Result<SigningKey> LoadFile(const std::filesystem::path& path);

    Result<std::string> PrivatePem() const;
    Result<std::string> PublicPem() const;
    const PublicKey& public_key() const { return public_; }

    Result<Ed25519Signature> Sign(std::span<const std::byte> message) const;

  private:
    SigningKey(std::shared_ptr<EVP_PKEY> pkey, PublicKey pub)
        : pkey_(std::move(pkey)), public_(std::move(pub)) {}
    static Result<SigningKey> FromPkey(EVP_PKEY* owned);

    std::shared_ptr<EVP_PKEY> pkey_;
    PublicKey public_;
};

// A private key file as LoadFile reads it: not a symbolic link, owned by the caller's effective
// uid, and in directories that only root or the caller can change (group- or world-writable only
// with the sticky bit, as /tmp), as ssh checks a key's path. The error names the file, the
// directory and why.
Result<void> CheckPrivateKeyPath(const std::filesystem::path& path);

// The git work tree holding `dir` (a .git entry in it or an ancestor), if any.
std::optional<std::filesystem::path> EnclosingGitWorkTree(const std::filesystem::path& dir);

// A directory that holds (or will hold) private keys: refused inside a git work tree, and,
// when it exists, unless it is a directory owned by the caller's effective uid that group and
// others cannot enter (as ssh does for ~/.ssh). The error names the directory and the fix.
Result<void> CheckPrivateKeyDir(const std::filesystem::path& dir);

}  // namespace peinit
