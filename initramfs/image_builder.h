#pragma once

// The image builder: turns an image definition plus a kernel tree into an ImageTree (every
// check happens here, before anything is written) and then into a cpio file.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "initramfs/image_definition.h"
#include "initramfs/image_packages.h"
#include "initramfs/image_tree.h"
#include "initramfs/kernel_modules.h"
#include "peinit/record/image.h"
#include "peinit/core/plan.h"
#include "peinit/core/result.h"

namespace peinit::image {

// One program shipped in every image (peinit as /init, peinitctl, ...).
struct ShippedBinary {
    std::string image_path;  // "/init"
    std::string host_path;   // the built file
    bool required = true;    // optional ones are skipped when the file does not exist
};

// Reads the binaries manifest CMake generates (initramfs/CMakeLists.txt,
// PEINIT_IMAGE_BINARIES): one "IMAGE_PATH HOST_PATH required|optional" per line, '#' comments;
// a relative HOST_PATH is relative to the manifest's directory.
Result<std::vector<ShippedBinary>> LoadBinaryManifest(const std::string& path);

struct BuildOptions {
    // The kernel directory; for kernel = RELEASE or "running", the system root holding
    // boot/vmlinuz-KVER and lib/modules/KVER ("/" on a real machine).
    std::string kernel_dir;
    // The release for kernel = RELEASE or "running" (`--kver`); empty: the definition's
    // release, or uname -r for "running". Refused for kernel = "peinit" / "debian".
    std::string kver;
    // Where modules_from = "host" reads the running machine (ROOT/proc/self/mountinfo,
    // ROOT/sys); "/" but for tests.
    std::string host_root = "/";
    std::vector<ShippedBinary> binaries;
    std::string sysroot = "/";  // where shared libraries are looked up
    int64_t mtime = 0;          // SOURCE_DATE_EPOCH
    // Where the build-local image signing key lives when the definition names no signing_key
    // (image_packages.h); empty: DefaultImageKeyDir().
    std::string key_dir;
    // Libraries the first shipped binary (PID 1, /init) opens with dlopen(3), shipped with their
    // closure when the build machine has them (a warning names the missing ones): peinit-image
    // gives kPid1DlopenedLibraries, the TPM software stack of measured boot.
    std::vector<std::string> pid1_dlopened;
};

// What peinit's PID 1 loads with dlopen when the machine has a TPM (peinit/tpm/tss2.h), and
// the device TCTI tctildr opens for "device:/dev/tpmrm0".
inline const std::vector<std::string> kPid1DlopenedLibraries = {
    "libtss2-esys.so.0",    "libtss2-mu.so.0",  "libtss2-rc.so.0",
    "libtss2-tctildr.so.0", "libtss2-sys.so.1", "libtss2-tcti-device.so.0"};

// What went into an image, for the build summary and tests.
struct ImageContents {
    ImageTree tree;
    KernelTree kernel;
    std::vector<std::string> binaries;   // image paths
    std::vector<std::string> libraries;  // image paths
    std::vector<std::string> modules;    // module names (the closure; none ships loose)
    std::vector<std::string> packages;   // image paths of every shipped package
    std::vector<std::string> keys;       // image paths of the trusted keys
    std::string signing_key;             // where the image's signing key came from
    std::string signer;                  // its fingerprint
    std::vector<std::string> builtin_modules;
    std::vector<std::string> units;  // image paths
    size_t services = 0;
    std::vector<std::string> warnings;  // not errors, but worth telling the user
    ImageInfo info;                     // the provenance record shipped as /etc/peinit/image.json
    std::vector<ModuleFile> module_set;  // the closure, with the rule that chose each module
    // Wall time of each build phase in seconds, in order (for `build --timing`).
    std::vector<std::pair<std::string, double>> timing;
};

// Validates everything and assembles the tree. Nothing is written.
Result<ImageContents> ComposeImage(const ImageDefinition& def, const BuildOptions& opts);

// ComposeImage, then writes `output` atomically with the given compression.
Result<ImageContents> BuildImage(const ImageDefinition& def, const BuildOptions& opts,
                                 Compression compression, const std::string& output);

// The module plan the image's PID 1 would run at boot (the module stage's input: units, hive
// Blacklist, `cmdline`), resolved against the kernel's tree with `extra_modules` staged in.
// Errors: the definition's, the units', hive's and command line's problems, a kernel tree that
// cannot be opened; what the plan itself cannot satisfy is in the plan (Plan::errors).
struct ImagePlan {
    Plan plan;
    KernelTree kernel;
    std::string tree_root;  // holds lib/modules (the staging directory with extra_modules)
    // Every module the image ships (the build's module set), with the rule that chose it, and
    // the module-set warnings (host devices the kernel has no driver for, ...).
    std::vector<ModuleFile> module_set;
    std::vector<std::string> warnings;
};
Result<ImagePlan> PlanImage(const ImageDefinition& def, const BuildOptions& opts);

// The release the definition's kernel names under `opts` (--kver, kernel = RELEASE, uname -r
// for "running"); "" for kernel = "peinit" / "debian", whose directory names its release.
Result<std::string> TargetRelease(const ImageDefinition& def, const BuildOptions& opts);

// Fixed image locations (shared with peinit at boot).
inline constexpr const char* kImageUnitsDir = "/etc/peinit/units";
inline constexpr const char* kImageHivePath = "/etc/peinit/hive.toml";
inline constexpr const char* kImageKeysDir = "/etc/peinit/keys";

}  // namespace peinit::image
