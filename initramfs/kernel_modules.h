#pragma once

// The target kernel as the builder sees it (a directory holding the kernel image and its
// modules tree) and the module closure shipped in the image.
//
// Two layouts are understood, the two our scripts produce:
//   kernel/build:          DIR/bzImage, DIR/kver, DIR/modroot/lib/modules/KVER/
//   kernel/debian-kernel:  DIR/boot/vmlinuz-KVER, DIR/kver, DIR/lib/modules/KVER/

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
};

// Opens and checks a kernel directory: it exists, names one kernel release, and that
// release's modules tree has depmod indexes (modules.dep.bin).
Result<KernelTree> OpenKernelTree(const std::string& dir);

// A module asked for, and who asked (for messages: "images/demo/image.toml:9").
struct ModuleRequest {
    std::string name;
    std::string origin;
};

struct ModuleFile {
    std::string name;      // module name as the kernel knows it ("af_packet")
    std::string rel_path;  // path relative to modules_dir ("kernel/net/packet/af_packet.ko")
};

struct ModuleClosure {
    std::vector<ModuleFile> files;      // sorted by rel_path
    std::vector<std::string> builtins;  // requested names the kernel has built in
};

// Resolves every request (names or aliases, via libkmod against the tree's own indexes and no
// host configuration) and returns the files of the requested modules, their dependencies
// and their soft dependencies. Unknown names are errors, all reported at once.
Result<ModuleClosure> ResolveModuleClosure(const KernelTree& kernel,
                                           const std::vector<ModuleRequest>& requests);

// Adds the closure's module files to the image under /lib/modules/KVER, with modules.order,
// modules.builtin(.modinfo) and depmod indexes generated for exactly this subset.
//
// The indexes come from `depmod -b STAGING KVER` run on a staging tree of symlinks: libkmod
// can read the binary index format but has no API to write it, and depmod from the same kmod
// package is the reference producer of what libkmod in the image will read. depmod runs with
// an empty configuration (-C on an empty directory) so host /etc/depmod.d cannot change the
// result, and modules.order fixes the order of modules.dep independently of readdir order.
Result<void> AddModulesToTree(ImageTree& tree, const KernelTree& kernel,
                              const ModuleClosure& closure);

}  // namespace peinit::image
