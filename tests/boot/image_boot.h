// Boot tests of whole peinit images: write an image definition, build it with the real
// `peinit-image build`, boot it under QEMU (qemu_runner.h) and look at what the guest printed.
// Shared by every image boot test (PID 1, modules, lockdown/policy, peinitctl).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qemu_runner.h"

namespace peinit::testing {

struct ImageBoot {
    // Name of the case: the image is built in boot-artifacts/<name>/ under the test's working
    // directory, next to the serial log.
    std::string name;
    // The image.toml text. "@SRC@" is replaced by the source tree, "@BUILD@" by the build tree
    // and "@CASE@" by tests/boot/images/<name> (so definitions can name units, hives and the
    // static probes built by CMake with absolute paths).
    std::string image_toml;
    // Instead of image_toml: an existing image directory (e.g. images/demo), built as it is.
    std::string image_dir;
    // "peinit" (PEINIT_KERNEL_DIR) or "debian" (PEINIT_DEBIAN_KERNEL_DIR): must match the
    // definition's `kernel`.
    std::string kernel = "peinit";
    // Instead of the environment's directory for `kernel`: this kernel directory (bzImage, kver,
    // modroot/lib/modules/KVER), e.g. a copy of it with compressed modules.
    std::string kernel_dir;
    std::string append;  // kernel command line after the image definition's own `cmdline`
    int smp = 2;
    std::vector<std::string> qemu_args;
    // QEMU monitor commands sent when the console shows a text (qemu_runner.h), e.g. to
    // hot-plug a device once a service asks for it.
    std::vector<MonitorStep> monitor;
    std::chrono::seconds timeout{240};
    // A private swtpm as the guest's TPM (QemuOptions::tpm).
    bool tpm = false;
};

struct ImageBootResult {
    std::string build_error;  // non-empty: the image did not build (output of peinit-image)
    QemuResult qemu;

    // Lines of the console output (the kernel's, PID 1's) that contain `needle`.
    std::vector<std::string> Grep(const std::string& needle) const;
    bool Has(const std::string& needle) const { return !Grep(needle).empty(); }
    // Lines of the results channel (what the probes wrote, qemu_runner.h) that contain `needle`.
    std::vector<std::string> Results(const std::string& needle) const;
    // The channel's "PROBE <name> ok|FAIL <detail>" lines: name -> rest ("ok", "FAIL ...").
    std::map<std::string, std::string> Probes() const;
};

// One command's output on the results channel, between the lines "KEY-BEGIN NAME" and
// "KEY-END NAME rc=N" (KEY names the test: MEASURE, FAULT, PEINITCTL, ...).
struct Section {
    std::vector<std::string> lines;
    int rc = -1;  // -1: the END line never came
    std::string Text() const;
    // The first line containing `needle` ("" when none).
    std::string Line(const std::string& needle) const;
    bool Has(const std::string& needle) const { return !Line(needle).empty(); }
};

// The sections marked with `key` in `lines`, by name. Lines outside every section go to
// `outside` when it is given.
std::map<std::string, Section> ResultSections(
    const std::vector<std::string>& lines, const std::string& key,
    const std::function<void(const std::string&)>& outside = {});

// The kernel directory for `kernel` from the environment; "" when unset.
std::string KernelDirFor(const std::string& kernel);

// For failure messages: how QEMU ended and the whole console, or the build error.
std::string Explain(const ImageBootResult& r);

// Builds and boots. Never throws.
ImageBootResult BuildAndBoot(const ImageBoot& boot);

// Small helpers shared by the boot tests.
std::string ReadFile(const std::string& path);  // "" when unreadable
// The release a kernel directory is for (its `kver` file).
std::string KernelRelease(const std::string& kernel_dir);
void ReplaceAll(std::string& s, const std::string& from, const std::string& to);
std::string ShellQuote(const std::string& s);
// Runs `command` with sh, appends its stdout and stderr to `log` and returns its exit status
// (-1 when it has none).
int Sh(const std::string& command, std::string& log);
// The path of module `name`'s .ko in a module tree (its modules.dep), "" when it has none.
std::string ModulePath(const std::string& moddir, const std::string& name);

// Ships the image definition in `image_dir` a package "boot" of `modules` (their .ko from
// kernel_dir's module tree) signed by a fresh key made under `work` with `pkg_tool`
// (peinit-pkg), that key's public half, and on_channel, as [[files]] appended to its image.toml.
// Returns "" or what went wrong (with the tool's output).
std::string AddSignedBootPackage(const std::string& image_dir, const std::string& work,
                                 const std::string& kernel_dir,
                                 const std::vector<std::string>& modules,
                                 const std::string& pkg_tool);

// A private scratch directory under /tmp (outside the git work tree: peinit-pkg keygen refuses
// one inside), removed with its contents.
struct ScratchDir {
    ScratchDir();
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    std::string path;
};

}  // namespace peinit::testing
