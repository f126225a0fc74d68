#include "peinit/sys/package_format.h"

#include <algorithm>
#include <charconv>

#include "peinit/core/module_file.h"

namespace peinit {
namespace {

constexpr std::string_view kFormatKey = "peinit-package-format";

struct ReasonName {
    PackageReject reason;
    std::string_view slug;
};

constexpr ReasonName kReasonNames[] = {
    {PackageReject::kEmpty, "empty"},
    {PackageReject::kTooLarge, "too-large"},
    {PackageReject::kNotAPackage, "not-a-package"},
    {PackageReject::kTruncated, "truncated"},
    {PackageReject::kTrailingData, "trailing-data"},
    {PackageReject::kBadLayout, "bad-layout"},
    {PackageReject::kNotRegularFile, "not-regular-file"},
    {PackageReject::kBadPath, "bad-path"},
    {PackageReject::kDuplicatePath, "duplicate-path"},
    {PackageReject::kUnsigned, "unsigned"},
    {PackageReject::kMalformedSignature, "malformed-signature"},
    {PackageReject::kUntrustedKey, "untrusted-key"},
    {PackageReject::kBadSignature, "bad-signature"},
    {PackageReject::kMalformedManifest, "malformed-manifest"},
    {PackageReject::kUnknownFormatVersion, "unknown-format-version"},
    {PackageReject::kUnknownField, "unknown-field"},
    {PackageReject::kWrongKernelRelease, "wrong-kernel-release"},
    {PackageReject::kExtraFile, "extra-file"},
    {PackageReject::kMissingFile, "missing-file"},
    {PackageReject::kSizeMismatch, "size-mismatch"},
    {PackageReject::kHashMismatch, "hash-mismatch"},
    {PackageReject::kModuleNameMismatch, "module-name-mismatch"},
};

bool IsFieldChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '+' || c == '-' || c == '~';
}

// Path components are stricter than field values: no '~' (nothing needs it in module paths).
bool IsPathChar(char c) { return c != '~' && IsFieldChar(c); }

// Splits on single spaces; empty tokens (double spaces, leading/trailing space) are kept as
// empty strings so the caller rejects them.
std::vector<std::string_view> SplitSpaces(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        std::size_t pos = line.find(' ', start);
        if (pos == std::string_view::npos) {
            out.push_back(line.substr(start));
            return out;
        }
        out.push_back(line.substr(start, pos - start));
        start = pos + 1;
    }
}

// Decimal without sign or leading zeros (one spelling per number).
std::optional<std::uint64_t> ParseDecimal(std::string_view s) {
    if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
    return value;
}

Result<std::string> ParseField(std::string_view key, std::string_view value, int line) {
    if (value.empty() || value.size() > kMaxFieldBytes ||
        !std::all_of(value.begin(), value.end(), IsFieldChar)) {
        return Reject(PackageReject::kMalformedManifest,
                      "line " + std::to_string(line) + ": invalid " + std::string(key) + " (1-" +
                          std::to_string(kMaxFieldBytes) + " characters of [A-Za-z0-9._+~-])");
    }
    return std::string(value);
}

}  // namespace

std::string_view PackageRejectSlug(PackageReject reason) {
    for (const auto& entry : kReasonNames) {
        if (entry.reason == reason) return entry.slug;
    }
    return "unknown";
}

Unexpected Reject(PackageReject reason, std::string detail) {
    return Err(std::string(PackageRejectSlug(reason)) + ": " + detail);
}

std::optional<PackageReject> PackageRejectOf(const Error& error) {
    const std::string& msg = error.message();
    for (const auto& entry : kReasonNames) {
        if (msg.size() > entry.slug.size() + 1 &&
            msg.compare(0, entry.slug.size(), entry.slug) == 0 && msg[entry.slug.size()] == ':') {
            return entry.reason;
        }
    }
    return std::nullopt;
}

std::string HexEncode(const std::byte* data, std::size_t size) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) {
        auto b = std::to_integer<unsigned>(data[i]);
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 0xf]);
    }
    return out;
}

bool HexDecode(std::string_view hex, std::byte* out, std::size_t out_size) {
    if (hex.size() != out_size * 2) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < out_size; ++i) {
        int hi = nibble(hex[2 * i]);
        int lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::byte>((hi << 4) | lo);
    }
    return true;
}

Result<void> ValidateMemberPath(std::string_view path) {
    auto bad = [&](const char* why) {
        return Reject(PackageReject::kBadPath, "\"" + std::string(path) + "\": " + why);
    };
    if (path.empty()) return bad("empty path");
    if (path.size() > kMaxPathBytes) return bad("path too long");
    if (path.front() == '/') return bad("absolute path");
    std::size_t start = 0;
    while (true) {
        std::size_t slash = path.find('/', start);
        std::string_view comp = path.substr(
            start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (comp == "..") return bad("path traversal (\"..\")");
        if (comp == ".") return bad("\".\" component");
        if (comp.empty()) return bad("empty path component");
        if (!std::all_of(comp.begin(), comp.end(), IsPathChar)) {
            return bad("character outside [A-Za-z0-9._+-]");
        }
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return Ok();
}

Result<void> ValidatePayloadPath(std::string_view path) {
    PEINIT_TRY(ValidateMemberPath(path));
    auto base = path.substr(path.rfind('/') + 1);
    if (!path.starts_with(kPayloadPrefix) || path.size() <= kPayloadPrefix.size() ||
        !ModuleCompressionOf(base)) {
        return Reject(PackageReject::kBadPath,
                      "\"" + std::string(path) +
                          "\": payload must be modules/<...>.ko (or .ko.gz, .ko.xz, .ko.zst)");
    }
    return Ok();
}

std::string ModuleNameOfPath(std::string_view path) {
    std::string name(StripModuleSuffix(path.substr(path.rfind('/') + 1)));
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

std::string SerializeManifest(const Manifest& manifest) {
    std::string out;
    out += std::string(kFormatKey) + " " + std::to_string(kPackageFormatVersion) + "\n";
    out += "name " + manifest.name + "\n";
    out += "version " + manifest.version + "\n";
    out += "kernel-release " + manifest.kernel_release + "\n";
    for (const auto& f : manifest.files) {
        out += "file " + f.path + " " + std::to_string(f.size) + " " + HexEncode(f.sha256) + "\n";
    }
    return out;
}

Result<Manifest> ParseManifest(std::string_view text) {
    auto malformed = [](int line, const std::string& why) {
        return Reject(PackageReject::kMalformedManifest,
                      "line " + std::to_string(line) + ": " + why);
    };
    if (text.size() > kMaxManifestBytes) {
        return Reject(PackageReject::kTooLarge, "MANIFEST is " + std::to_string(text.size()) +
                                                    " bytes (limit " +
                                                    std::to_string(kMaxManifestBytes) + ")");
    }
    if (text.empty()) return Reject(PackageReject::kMalformedManifest, "MANIFEST is empty");
    if (text.back() != '\n') {
        return Reject(PackageReject::kMalformedManifest, "MANIFEST does not end with a newline");
    }
    for (char c : text) {
        if (c != '\n' && (c < 0x20 || c > 0x7e)) {
            return Reject(PackageReject::kMalformedManifest,
                          "MANIFEST contains a byte outside printable ASCII");
        }
    }

    Manifest m;
    // Which of the single-valued fields come next: 0 = format, 1 = name, 2 = version,
    // 3 = kernel-release, 4 = files.
    int expect = 0;
    int line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        auto tokens = SplitSpaces(line);
        std::string_view key = tokens[0];
        if (key.empty()) return malformed(line_no, "empty line or leading space");

        if (expect == 0) {
            if (key != kFormatKey) return malformed(line_no, "expected \"peinit-package-format\"");
            if (tokens.size() != 2) return malformed(line_no, "expected one value");
            auto version = ParseDecimal(tokens[1]);
            if (!version) return malformed(line_no, "format version is not a number");
            if (*version != static_cast<std::uint64_t>(kPackageFormatVersion)) {
                return Reject(PackageReject::kUnknownFormatVersion,
                              "format version " + std::string(tokens[1]) + " (this peinit reads " +
                                  std::to_string(kPackageFormatVersion) + ")");
            }
            expect = 1;
            continue;
        }

        int slot;
        if (key == "name") {
            slot = 1;
        } else if (key == "version") {
            slot = 2;
        } else if (key == "kernel-release") {
            slot = 3;
        } else if (key == "file") {
            slot = 4;
        } else if (key == kFormatKey) {
            return malformed(line_no, "format version given twice");
        } else {
            return Reject(PackageReject::kUnknownField, "line " + std::to_string(line_no) +
                                                            ": unknown field \"" +
                                                            std::string(key.substr(0, 64)) + "\"");
        }
        if (slot != expect && !(slot == 4 && expect == 4)) {
            return malformed(line_no, "field \"" + std::string(key) +
                                          "\" out of order or repeated (order: name, version, "
                                          "kernel-release, file...)");
        }
        if (slot < 4) {
            if (tokens.size() != 2) return malformed(line_no, "expected one value");
            std::string value = PEINIT_TRY(ParseField(key, tokens[1], line_no));
            (slot == 1 ? m.name : slot == 2 ? m.version : m.kernel_release) = std::move(value);
            ++expect;
            continue;
        }

        if (tokens.size() != 4) return malformed(line_no, "expected: file PATH SIZE SHA256");
        if (m.files.size() >= kMaxPackageFiles) {
            return Reject(PackageReject::kTooLarge,
                          "more than " + std::to_string(kMaxPackageFiles) + " files");
        }
        ManifestFile f;
        f.path = std::string(tokens[1]);
        if (auto ok = ValidatePayloadPath(f.path); !ok) return Unexpected(ok.error());
        auto size = ParseDecimal(tokens[2]);
        if (!size) return malformed(line_no, "size is not a canonical decimal number");
        if (*size > kMaxPayloadFileBytes) {
            return Reject(PackageReject::kTooLarge, f.path + ": " + std::to_string(*size) +
                                                        " bytes (limit " +
                                                        std::to_string(kMaxPayloadFileBytes) + ")");
        }
        f.size = *size;
        if (!HexDecode(tokens[3], f.sha256.data(), f.sha256.size())) {
            return malformed(line_no, "SHA-256 must be 64 lowercase hex digits");
        }
        if (!m.files.empty()) {
            const std::string& prev = m.files.back().path;
            if (prev == f.path) {
                return Reject(PackageReject::kDuplicatePath, "MANIFEST lists " + f.path + " twice");
            }
            if (prev > f.path) return malformed(line_no, "files are not sorted by path");
        }
        m.files.push_back(std::move(f));
    }
    if (expect < 4) return Reject(PackageReject::kMalformedManifest, "MANIFEST is incomplete");
    if (m.files.empty()) return Reject(PackageReject::kEmpty, "MANIFEST lists no files");
    // Every field was parsed strictly, so this only fails on spelling we did not catch above;
    // it guarantees one signed text per content.
    if (SerializeManifest(m) != text) {
        return Reject(PackageReject::kMalformedManifest, "MANIFEST is not in canonical form");
    }
    return m;
}

std::string SerializeSignature(const PackageSignature& signature) {
    return "algorithm ed25519\nkey-sha256 " + signature.key_fingerprint + "\nsignature " +
           HexEncode(signature.value) + "\n";
}

Result<PackageSignature> ParseSignature(std::string_view text) {
    auto malformed = [](const std::string& why) {
        return Reject(PackageReject::kMalformedSignature, "MANIFEST.sig: " + why);
    };
    if (text.size() > kMaxSignatureBytes) return malformed("too large");
    constexpr std::string_view kAlg = "algorithm ed25519\n";
    constexpr std::string_view kKey = "key-sha256 ";
    constexpr std::string_view kSig = "\nsignature ";
    // The one valid layout: fixed text with two fixed-width hex fields.
    const std::size_t expected_size = kAlg.size() + kKey.size() + 64 + kSig.size() + 128 + 1;
    if (text.size() != expected_size || text.substr(0, kAlg.size()) != kAlg ||
        text.substr(kAlg.size(), kKey.size()) != kKey ||
        text.substr(kAlg.size() + kKey.size() + 64, kSig.size()) != kSig || text.back() != '\n') {
        return malformed("expected \"algorithm ed25519\", \"key-sha256 HEX\", \"signature HEX\"");
    }
    PackageSignature sig;
    std::string_view fp = text.substr(kAlg.size() + kKey.size(), 64);
    Sha256Digest fp_bytes;
    if (!HexDecode(fp, fp_bytes.data(), fp_bytes.size())) {
        return malformed("key-sha256 must be 64 lowercase hex digits");
    }
    sig.key_fingerprint = std::string(fp);
    std::string_view value = text.substr(kAlg.size() + kKey.size() + 64 + kSig.size(), 128);
    if (!HexDecode(value, sig.value.data(), sig.value.size())) {
        return malformed("signature must be 128 lowercase hex digits");
    }
    return sig;
}

}  // namespace peinit
