#pragma once

// The target kernel as the builder sees it (a directory holding the kernel image and its
// modules tree) and the module closure shipped in the image.
//
// Three layouts are understood, the two our scripts produce and an installed system's:
//   kernel/build:          DIR/bzImage, DIR/kver, DIR/modroot/lib/modules/KVER/
//   kernel/debian-kernel:  DIR/boot/vmlinuz-KVER, DIR/kver, DIR/lib/modules/KVER/
//   installed (by release): ROOT/boot/vmlinuz-KVER, ROOT/boot/config-KVER,
//                          ROOT/lib/modules/KVER/ (ROOT is / on a real machine)

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "initramfs/image_tree.h"
#include "peinit/core/result.h"

namespace peinit::image {

struct KernelTree {
    std::string dir;          // as given
    std::string kver;         // kernel release, e.g. "6.1.0-56-amd64"
    std::string module_root;  // the directory that holds lib/modules/KVER
    std::string modules_dir;  // module_root/lib/modules/KVER
    std::string image;        // bzImage / vmlinuz path; empty when the directory has none
    std::string config;       // DIR/boot/config-KVER; empty when the directory has none
};

// Opens and checks a kernel directory: it exists, names one kernel release, and that
// release's modules tree has depmod indexes (modules.dep.bin). With `kver` the release is
// given (an installed kernel: DIR is a system root such as "/"); a kver file in DIR naming
// another release is then an error. Paths are normalised ("/" + "lib/modules" is "/lib/modules").
Result<KernelTree> OpenKernelTree(const std::string& dir, const std::string& kver = "");

// The kernel's build configuration value of `option` ("CONFIG_RD_ZSTD") from kernel.config:
// "y", "m", a value, or "" when it is not set or there is no config file.
std::string KernelConfigValue(const KernelTree& kernel, const std::string& option);

// `dir` + "/" + `rel`, lexically normalised, without a trailing slash.
std::string JoinPath(const std::string& dir, const std::string& rel);

// A module the image must be able to load, and who asked for it ("images/demo/image.toml:9",
// "images/demo/units/net.toml:4"), for messages.
struct ModuleWant {
    std::string name;  // module name or alias
    std::string origin;
    std::string options;    // the unit's options (kept for the plan's messages)
    bool optional = false;  // a module the kernel does not have is left out silently
};

// Modules the hive or command line deny, for the build's warnings (they are still shipped when
// something needs them: policy is enforced by peinit at boot, where the command line can add
// to it, and the plan there needs the whole dependency graph to name the denied dependency).
struct ModuleDeny {
    std::string name;
    std::string source;  // "hive Blacklist", "modprobe.blacklist="
};

struct ModuleFile {
    std::string name;      // module name as the kernel knows it ("af_packet")
    std::string rel_path;  // path relative to modules_dir ("kernel/net/packet/af_packet.ko")
    // Why it is in the image: the origins of the wants naming it ("units/net.toml:4",
    // "host: root / on vda1 (ext4): virtio1 driver"), else "dependency of X" for the first
    // module (in plan order) that needs it.
    std::vector<std::string> chosen_by;
};

struct ModuleClosure {
    std::vector<ModuleFile> files;      // sorted by rel_path
    std::vector<std::string> builtins;  // wanted modules the kernel has built in
    std::vector<std::string> warnings;  // what peinit will refuse at boot under the deny list
};

// Resolves every want with the same planner peinit runs at boot (peinit/core/plan.h over
// peinit/sys/kmod.h, against the tree's own indexes and modprobe.d, never the host's) and
// returns the files of the wanted modules, their hard dependencies and their soft
// dependencies. A name the tree does not know is an error naming its origin; all errors are
// reported at once.
Result<ModuleClosure> ResolveModuleClosure(const KernelTree& kernel,
                                           const std::vector<ModuleWant>& wants,
                                           const std::vector<ModuleDeny>& deny = {});

// Adds the closure's depmod indexes to the image under /lib/modules/KVER: modules.order,
// modules.builtin(.modinfo) and the depmod indexes generated for exactly this subset. The .ko
// bytes are NOT added: they ship inside the image's signed package (image_packages.h). Each .ko
// path holds an empty placeholder, because libkmod drops a dependency whose file does not exist
// (kmod_module_parse_depline stat()s it); the module tree in the image serves resolution only.
//
// The indexes come from `depmod -b STAGING KVER` run on a staging tree of symlinks: libkmod
// can read the binary index format but has no API to write it, and depmod from the same kmod
// package is the reference producer of what libkmod in the image will read. depmod runs with
// an empty configuration (-C on an empty directory) so host /etc/depmod.d cannot change the
// result, and modules.order fixes the order of modules.dep independently of readdir order.
// With `loose_files` each path holds the module's real bytes instead (image.toml
// `loose_modules`).
// `in_tree`, when set, is called with the staging root once the indexes are made, beside the
// image's own modprobe.d files (etc/, lib/modprobe.d of `tree`): the module tree exactly as
// libkmod in the booted image reads it (the stored plan is made there).
Result<void> AddModuleIndexesToTree(
    ImageTree& tree, const KernelTree& kernel, const ModuleClosure& closure,
    bool loose_files = false,
    const std::function<Result<void>(const std::string& root)>& in_tree = {});

// An out-of-tree module for the image (`extra_modules`).
struct ExtraModule {
    std::string path;    // host .ko file
    std::string origin;  // "images/x/image.toml:7"
};

// The kernel's module tree plus out-of-tree modules: a staging directory holding symlinks to
// the kernel's module directories, the extra modules as extra/NAME.ko, and depmod indexes over
// all of it. `tree` describes it like any kernel directory (same kver and image); the staging
// directory is removed when this object is destroyed.
class StagedKernelTree {
  public:
    StagedKernelTree() = default;
    StagedKernelTree(const StagedKernelTree&) = delete;
    StagedKernelTree& operator=(const StagedKernelTree&) = delete;
    ~StagedKernelTree();
    KernelTree tree;
    std::string staging;
};

// Errors: a file that is not an ELF relocatable module, a name the kernel tree already has
// (an extra module cannot shadow an in-tree one), the same name twice, depmod failing.
Result<std::unique_ptr<StagedKernelTree>> StageExtraModules(const KernelTree& kernel,
                                                            const std::vector<ExtraModule>& extra);

}  // namespace peinit::image
