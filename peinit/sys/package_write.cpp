#include <algorithm>

#include "peinit/sys/package.h"
#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_internal.h"

// Creating and signing packages (peinit-pkg, peinit-image). Kept apart from the reader so that
// binaries that only verify (PID 1, peinitctl) do not link libarchive's writers.

namespace peinit {

using detail::AsBytes;
using detail::AsText;
using detail::CheckPayload;
using detail::Layout;
using detail::SplitLayout;

namespace {

Result<ArchiveMember> MakeSignatureMember(std::span<const std::byte> manifest,
                                          const SigningKey& key) {
    std::string text = PEINIT_TRY(SignManifest(manifest, key));
    return ArchiveMember{std::string(kSignatureMember), AsBytes(text)};
}

}  // namespace

Result<std::string> SignManifest(std::span<const std::byte> manifest, const SigningKey& key) {
    PackageSignature sig;
    sig.key_fingerprint = key.public_key().fingerprint;
    sig.value = PEINIT_TRY(key.Sign(manifest));
    return SerializeSignature(sig);
}

Result<std::vector<std::byte>> CreatePackage(const PackageSpec& spec, const SigningKey* key,
                                             std::int64_t mtime) {
    std::vector<const PackageInput*> inputs;
    for (const auto& f : spec.files) inputs.push_back(&f);
    std::sort(inputs.begin(), inputs.end(),
              [](const PackageInput* a, const PackageInput* b) { return a->path < b->path; });

    Manifest manifest;
    manifest.name = spec.name;
    manifest.version = spec.version;
    manifest.kernel_release = spec.kernel_release;
    for (const PackageInput* in : inputs) {
        PEINIT_TRY(ValidatePayloadPath(in->path));
        if (!manifest.files.empty() && manifest.files.back().path == in->path) {
            return Reject(PackageReject::kDuplicatePath, in->path + " given twice");
        }
        if (in->bytes.size() > kMaxPayloadFileBytes) {
            return Reject(
                PackageReject::kTooLarge,
                in->path + " is larger than " + std::to_string(kMaxPayloadFileBytes) + " bytes");
        }
        manifest.files.push_back({in->path, in->bytes.size(), Sha256Of(in->bytes)});
    }
    std::string manifest_text = SerializeManifest(manifest);
    // Round-trip through the verifier's parser: whatever it would reject, we refuse to write.
    PEINIT_TRY(ParseManifest(manifest_text));

    std::vector<ArchiveMember> members;
    members.push_back({std::string(kManifestMember), AsBytes(manifest_text)});
    if (key != nullptr) {
        members.push_back(PEINIT_TRY(MakeSignatureMember(members[0].data, *key)));
    }
    for (const PackageInput* in : inputs) members.push_back({in->path, in->bytes});
    return WriteArchive(members, mtime);
}

Result<std::vector<std::byte>> SignPackage(std::span<const std::byte> package,
                                           const SigningKey& key, std::int64_t mtime) {
    std::vector<ArchiveEntry> members = PEINIT_TRY(ReadArchive(package));
    Layout layout = PEINIT_TRY(SplitLayout(members));
    // An existing signature, valid or not, is replaced.
    Manifest manifest = PEINIT_TRY(ParseManifest(AsText(layout.manifest->data)));
    PEINIT_TRY(CheckPayload(manifest, layout.payload));

    ArchiveMember signature = PEINIT_TRY(MakeSignatureMember(layout.manifest->data, key));
    std::vector<ArchiveEntry> out;
    out.push_back(*layout.manifest);
    out.push_back({signature.path, signature.data});
    out.insert(out.end(), layout.payload.begin(), layout.payload.end());
    return WriteArchive(out, mtime);
}

}  // namespace peinit
