// peinit-image: builds initramfs images from images/<name>/image.toml and boots them in QEMU.
// Usage errors exit 2; build and validation errors exit 1; `boot` exits with QEMU's status.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "initramfs/image_builder.h"
#include "initramfs/image_definition.h"
#include "initramfs/process.h"
#include "peinit/core/boot_plan.h"

#ifndef PEINIT_SOURCE_DIR
#error "PEINIT_SOURCE_DIR must be defined by the build"
#endif
#ifndef PEINIT_IMAGE_BUILD_DIR
#error "PEINIT_IMAGE_BUILD_DIR must be defined by the build"
#endif

namespace peinit::image {
namespace {

constexpr const char* kMainUsage = R"(usage: peinit-image COMMAND [ARGS...]

Builds peinit initramfs images from image definitions (images/NAME/image.toml, format in
initramfs/IMAGE.md) and boots them in QEMU.

commands:
  build IMAGE -o OUT [options]    validate the definition and write the cpio image
  check IMAGE [options]           every validation of build, writing nothing
  plan IMAGE [options]            the module plan the image's PID 1 would run at boot
  boot IMAGE [options] [-- ARGS]  build the image and boot it in QEMU (TCG)
  list FILE                       list the entries of an image
  help [COMMAND]                  this text, or a command's

`peinit-image COMMAND --help` describes each command.
)";

constexpr const char* kBuildUsage =
    R"(usage: peinit-image build IMAGE -o OUT [--kernel-dir DIR] [--compression none|gzip|zstd]
                          [--binaries MANIFEST] [--sysroot DIR] [--timing]

IMAGE is an image directory (holding image.toml) or the .toml file itself.
Validates everything first (definition, units, hive, modules against the kernel's tree,
shared libraries) and writes nothing on error; OUT is replaced atomically.

  -o, --output OUT       the image file to write
  --kernel-dir DIR       kernel directory (kernel/build or kernel/debian-kernel output);
                         default: $PEINIT_KERNEL_DIR or $PEINIT_DEBIAN_KERNEL_DIR by the
                         image's kernel, else the output of running that script
  --compression X        override the definition's compression
  --binaries MANIFEST    programs to ship (default: the manifest the build generated)
  --sysroot DIR          where shared libraries are looked up (default /)
  --timing               print the time each build phase took

The output is byte-reproducible: entries are sorted and stamped with uid/gid 0 and
mtime $SOURCE_DATE_EPOCH (0 when unset).
)";

constexpr const char* kBootUsage =
    R"(usage: peinit-image boot IMAGE [--smp N] [--memory MIB] [--timeout S] [--kernel-dir DIR]
                         [--output OUT] [--disk FILE]... [-- EXTRA CMDLINE...]

Builds IMAGE (into the build directory, unless --output) and boots it:
  qemu-system-x86_64 -accel tcg -machine q35 -m MIB -smp N -nographic -no-reboot
      -serial mon:stdio -kernel KERNEL -initrd IMAGE
      -append "console=ttyS0 panic=-1 <image cmdline> <EXTRA>"
The guest console is this process's stdout; the exit status is QEMU's (124 on timeout).

  --smp N            virtual CPUs (default: the definition's [boot] smp, else 1)
  --memory MIB       guest memory (default: [boot] memory, else 512)
  --timeout S        kill QEMU after S seconds (default: none)
  --kernel-dir DIR   as for build
  --output OUT       where to write the image
  --disk FILE        attach FILE as a raw virtio disk (/dev/vda, /dev/vdb, ... in order),
                     e.g. a real root for root=UUID=...
)";

constexpr const char* kCheckUsage =
    R"(usage: peinit-image check IMAGE [--kernel-dir DIR] [--binaries MANIFEST] [--sysroot DIR]

Runs every validation of `build` (definition, units, hive, command line, modules against the
kernel's tree, programs, libraries, keys, packages, service programs) and writes nothing.
Every problem is printed as FILE:LINE: MESSAGE, all of them in one run, then the warnings.
Options as for build. Exit status: 0 valid, 1 problems, 2 usage error.
)";

constexpr const char* kPlanUsage =
    R"(usage: peinit-image plan IMAGE [--kernel-dir DIR] [--json | --compact]

Prints the module plan the image's PID 1 would run at boot: its units' modules, then
modules_load= of its cmdline, under the hive's Blacklist and modprobe.blacklist=, resolved
against the kernel's tree with extra_modules added, in the forms of `peinit plan` (detailed,
--json, or --compact: one line per load, "insmod PATH OPTIONS" / "builtin NAME").
What a deny list keeps out is a warning. Exit status: 0 every request resolves, 1 problems
(the definition's, or requests that cannot load), 2 usage error.
)";

constexpr const char* kListUsage = R"(usage: peinit-image list FILE

Prints every entry of an image: mode, uid/gid, size or device, path (and link target).
)";

int Usage(const char* text, const std::string& problem) {
    if (!problem.empty()) std::cerr << "peinit-image: " << problem << "\n";
    std::cerr << text;
    return 2;
}

bool IsHelp(const std::string& a) { return a == "--help" || a == "-h"; }

// Takes the value of "--opt VALUE" or "--opt=VALUE".
bool TakeValue(const std::vector<std::string>& args, size_t& i, const std::string& name,
               std::string& out, std::string& problem) {
    const std::string& a = args[i];
    if (a == name) {
        if (i + 1 >= args.size()) {
            problem = name + " needs a value";
            return true;
        }
        out = args[++i];
        return true;
    }
    if (a.rfind(name + "=", 0) == 0) {
        out = a.substr(name.size() + 1);
        return true;
    }
    return false;
}

bool ParseInt(const std::string& s, int lo, int hi, int& out) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < lo || v > hi) return false;
    out = static_cast<int>(v);
    return true;
}

std::string LastLine(const std::string& text) {
    std::string s = text;
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    auto nl = s.rfind('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
}

// --kernel-dir, else the environment, else the kernel script's last output line.
Result<std::string> ResolveKernelDir(KernelKind kind, const std::string& flag) {
    if (!flag.empty()) return flag;
    const char* var =
        kind == KernelKind::kPeinit ? "PEINIT_KERNEL_DIR" : "PEINIT_DEBIAN_KERNEL_DIR";
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') return std::string(v);
    std::string script = std::string(PEINIT_SOURCE_DIR) +
                         (kind == KernelKind::kPeinit ? "/kernel/build" : "/kernel/debian-kernel");
    if (::access(script.c_str(), X_OK) != 0)
        return Err(std::string("no kernel directory: pass --kernel-dir or set ") + var + " (" +
                   script + " does not exist)");
    std::cerr << "peinit-image: " << var << " not set; running " << script << "\n";
    auto res = PEINIT_TRY(RunCapture({script}, /*merge_stderr=*/false));
    if (res.status != 0) return Err(script + " failed with status " + std::to_string(res.status));
    std::string dir = LastLine(res.output);
    if (dir.empty()) return Err(script + " printed no directory");
    return dir;
}

std::string DefaultManifest() { return std::string(PEINIT_IMAGE_BUILD_DIR) + "/binaries.manifest"; }

struct BuildArgs {
    std::string image;
    std::string output;
    std::string kernel_dir;
    std::string compression;
    std::string manifest;
    std::string sysroot = "/";
    bool timing = false;
};

std::string Mib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    return buf;
}

// The kernel directory, programs, sysroot and timestamp of a build. Problems finding the kernel
// or the programs join the definition's (`def.problems`), so that the build reports them with
// everything else; a kernel that cannot be found is not opened.
Result<void> ResolveBuildOptions(const BuildArgs& a, ImageDefinition& def, BuildOptions& opts) {
    if (def.kernel_known) {
        if (auto dir = ResolveKernelDir(def.kernel, a.kernel_dir)) {
            opts.kernel_dir = *dir;
        } else {
            def.problems.push_back(dir.error().message());
            def.kernel_known = false;
        }
    }
    if (auto b = LoadBinaryManifest(a.manifest.empty() ? DefaultManifest() : a.manifest))
        opts.binaries = std::move(*b);
    else
        def.problems.push_back(b.error().message());
    opts.sysroot = a.sysroot;
    opts.mtime = PEINIT_TRY(SourceDateEpoch());
    return Ok();
}

// Runs a build and prints its one-line summary to stderr.
Result<ImageDefinition> DoBuild(const BuildArgs& a, std::string* kernel_image) {
    auto start = std::chrono::steady_clock::now();
    // The definition's problems are reported together with the build's (ComposeImage).
    ImageDefinition def = PEINIT_TRY(ReadImageDefinition(a.image));
    Compression compression = def.compression;
    if (!a.compression.empty()) compression = PEINIT_TRY(ParseCompression(a.compression));
    BuildOptions opts;
    PEINIT_TRY(ResolveBuildOptions(a, def, opts));
    auto t0 = std::chrono::steady_clock::now();
    ImageContents c = PEINIT_TRY(BuildImage(def, opts, compression, a.output));
    auto end = std::chrono::steady_clock::now();
    struct stat st {};
    ::stat(a.output.c_str(), &st);
    double secs = std::chrono::duration<double>(end - t0).count();
    double total = std::chrono::duration<double>(end - start).count();
    char timing[96];
    std::snprintf(timing, sizeof timing, "built in %.3f s (%.3f s with kernel lookup)", secs,
                  total);
    std::cerr << "peinit-image: wrote " << a.output << ": " << c.tree.entries().size()
              << " entries, " << Mib(c.tree.PayloadBytes()) << " payload, "
              << Mib(static_cast<uint64_t>(st.st_size)) << " " << CompressionName(compression)
              << "; kernel " << c.kernel.kver << ", " << c.modules.size() << " modules in "
              << c.packages.size() << " signed packages (" << c.keys.size() << " trusted keys), "
              << c.libraries.size() << " libraries, " << c.units.size() << " unit files ("
              << c.services << " services); " << timing << "\n";
    for (const auto& w : c.warnings) std::cerr << "peinit-image: warning: " << w << "\n";
    if (a.timing) {
        for (const auto& [name, s] : c.timing) {
            char line[128];
            std::snprintf(line, sizeof line, "peinit-image: %8.3f s  %s\n", s, name.c_str());
            std::cerr << line;
        }
    }
    if (kernel_image != nullptr) {
        if (c.kernel.image.empty())
            return Err("kernel directory " + c.kernel.dir + " has no bzImage or boot/vmlinuz-" +
                       c.kernel.kver);
        *kernel_image = c.kernel.image;
    }
    return def;
}

// `check` and `plan`: IMAGE and the options they share with build.
int ParseImageArgs(const std::vector<std::string>& args, const char* usage, BuildArgs& a,
                   std::vector<std::string> flags, std::string& flag) {
    std::string problem;
    for (size_t i = 0; i < args.size() && problem.empty(); ++i) {
        const std::string& s = args[i];
        if (IsHelp(s)) {
            std::cout << usage;
            return 0;
        }
        if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
            if (!flag.empty()) problem = flag + " and " + s + " exclude each other";
            flag = s;
            continue;
        }
        if (TakeValue(args, i, "--kernel-dir", a.kernel_dir, problem) ||
            (usage == kCheckUsage && (TakeValue(args, i, "--binaries", a.manifest, problem) ||
                                      TakeValue(args, i, "--sysroot", a.sysroot, problem))))
            continue;
        if (!s.empty() && s[0] == '-')
            problem = "unknown option " + s;
        else if (a.image.empty())
            a.image = s;
        else
            problem = "unexpected argument " + s;
    }
    if (problem.empty() && a.image.empty()) problem = "missing IMAGE";
    if (!problem.empty()) return Usage(usage, problem);
    return -1;
}

int CmdCheck(const std::vector<std::string>& args) {
    BuildArgs a;
    std::string flag;
    if (int rc = ParseImageArgs(args, kCheckUsage, a, {}, flag); rc >= 0) return rc;
    auto checked = [&]() -> Result<ImageContents> {
        ImageDefinition def = PEINIT_TRY(ReadImageDefinition(a.image));
        BuildOptions opts;
        PEINIT_TRY(ResolveBuildOptions(a, def, opts));
        return ComposeImage(def, opts);
    }();
    if (!checked) {
        std::cerr << "peinit-image: " << checked.error().message() << "\n";
        return 1;
    }
    for (const auto& w : checked->warnings) std::cerr << "peinit-image: warning: " << w << "\n";
    std::cerr << "peinit-image: " << a.image << ": ok (kernel " << checked->kernel.kver << ", "
              << checked->modules.size() << " modules, " << checked->units.size()
              << " unit files, " << checked->services << " services)\n";
    return 0;
}

int CmdPlan(const std::vector<std::string>& args) {
    BuildArgs a;
    std::string form;
    if (int rc = ParseImageArgs(args, kPlanUsage, a, {"--json", "--compact"}, form); rc >= 0)
        return rc;
    auto planned = [&]() -> Result<ImagePlan> {
        ImageDefinition def = PEINIT_TRY(ReadImageDefinition(a.image));
        std::string kernel_dir;
        if (def.kernel_known) {
            if (auto dir = ResolveKernelDir(def.kernel, a.kernel_dir))
                kernel_dir = *dir;
            else
                def.problems.push_back(dir.error().message());
        }
        return PlanImage(def, kernel_dir);
    }();
    if (!planned) {
        std::cerr << "peinit-image: " << planned.error().message() << "\n";
        return 1;
    }
    PlanView view{"peinit-image plan", a.image, planned->kernel.kver, planned->tree_root};
    std::cout << (form == "--json"      ? RenderPlanJson(planned->plan, view)
                  : form == "--compact" ? RenderPlanCompact(planned->plan, view)
                                        : RenderPlanText(planned->plan, view));
    return planned->plan.ok() ? 0 : 1;
}

int CmdBuild(const std::vector<std::string>& args) {
    BuildArgs a;
    std::string problem;
    for (size_t i = 0; i < args.size() && problem.empty(); ++i) {
        const std::string& s = args[i];
        if (IsHelp(s)) {
            std::cout << kBuildUsage;
            return 0;
        }
        if (s == "--timing") {
            a.timing = true;
            continue;
        }
        if (TakeValue(args, i, "-o", a.output, problem) ||
            TakeValue(args, i, "--output", a.output, problem) ||
            TakeValue(args, i, "--kernel-dir", a.kernel_dir, problem) ||
            TakeValue(args, i, "--compression", a.compression, problem) ||
            TakeValue(args, i, "--binaries", a.manifest, problem) ||
            TakeValue(args, i, "--sysroot", a.sysroot, problem))
            continue;
        if (!s.empty() && s[0] == '-')
            problem = "unknown option " + s;
        else if (a.image.empty())
            a.image = s;
        else
            problem = "unexpected argument " + s;
    }
    if (problem.empty() && a.image.empty()) problem = "missing IMAGE";
    if (problem.empty() && a.output.empty()) problem = "missing -o OUT";
    if (problem.empty() && !a.compression.empty() && !ParseCompression(a.compression))
        problem = ParseCompression(a.compression).error().message();
    if (!problem.empty()) return Usage(kBuildUsage, problem);
    auto r = DoBuild(a, nullptr);
    if (!r) {
        std::cerr << "peinit-image: " << r.error().message() << "\n";
        return 1;
    }
    return 0;
}

std::string QuoteForDisplay(const std::string& s) {
    if (s.find_first_of(" \t\"'$\\") == std::string::npos && !s.empty()) return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// QEMU's option syntax: a comma inside a value is written twice.
void ReplaceAllCommas(std::string& s) {
    for (size_t i = 0; (i = s.find(',', i)) != std::string::npos; i += 2) s.insert(i, ",");
}

int CmdBoot(const std::vector<std::string>& args) {
    BuildArgs a;
    std::string smp, memory, timeout, problem, disk;
    std::vector<std::string> extra, disks;
    for (size_t i = 0; i < args.size() && problem.empty(); ++i) {
        const std::string& s = args[i];
        if (s == "--") {
            extra.assign(args.begin() + static_cast<long>(i) + 1, args.end());
            break;
        }
        if (IsHelp(s)) {
            std::cout << kBootUsage;
            return 0;
        }
        if (TakeValue(args, i, "--smp", smp, problem) ||
            TakeValue(args, i, "--memory", memory, problem) ||
            TakeValue(args, i, "--timeout", timeout, problem) ||
            TakeValue(args, i, "--kernel-dir", a.kernel_dir, problem) ||
            TakeValue(args, i, "--output", a.output, problem) ||
            TakeValue(args, i, "-o", a.output, problem))
            continue;
        if (TakeValue(args, i, "--disk", disk, problem)) {
            if (problem.empty() && ::access(disk.c_str(), R_OK) != 0) {
                problem = "--disk " + disk + ": " + std::strerror(errno);
            }
            disks.push_back(disk);
            continue;
        }
        if (!s.empty() && s[0] == '-')
            problem = "unknown option " + s;
        else if (a.image.empty())
            a.image = s;
        else
            problem = "unexpected argument " + s + " (kernel arguments go after --)";
    }
    int smp_n = 0, mem_n = 0, timeout_n = 0;
    if (problem.empty() && a.image.empty()) problem = "missing IMAGE";
    if (problem.empty() && !smp.empty() && !ParseInt(smp, 1, 64, smp_n))
        problem = "--smp must be 1..64";
    if (problem.empty() && !memory.empty() && !ParseInt(memory, 64, 65536, mem_n))
        problem = "--memory must be 64..65536 (MiB)";
    if (problem.empty() && !timeout.empty() && !ParseInt(timeout, 1, 86400, timeout_n))
        problem = "--timeout must be 1..86400 seconds";
    if (!problem.empty()) return Usage(kBootUsage, problem);

    // Peek at the definition for the default output name.
    auto peek = LoadImageDefinition(a.image);
    if (!peek) {
        std::cerr << "peinit-image: " << peek.error().message() << "\n";
        return 1;
    }
    if (a.output.empty()) {
        std::string dir = std::string(PEINIT_IMAGE_BUILD_DIR) + "/images";
        ::mkdir(dir.c_str(), 0755);
        a.output = dir + "/" + peek->name + ".cpio" + CompressionSuffix(peek->compression);
    }
    std::string kernel_image;
    auto def = DoBuild(a, &kernel_image);
    if (!def) {
        std::cerr << "peinit-image: " << def.error().message() << "\n";
        return 1;
    }
    std::string cmdline = "console=ttyS0 panic=-1";
    if (!def->cmdline.empty()) cmdline += " " + def->cmdline;
    for (const auto& e : extra) cmdline += " " + e;
    std::vector<std::string> qemu = {"qemu-system-x86_64",
                                     "-accel",
                                     "tcg",
                                     "-machine",
                                     "q35",
                                     "-m",
                                     std::to_string(mem_n != 0 ? mem_n : def->boot.memory_mb),
                                     "-smp",
                                     std::to_string(smp_n != 0 ? smp_n : def->boot.smp),
                                     "-nographic",
                                     "-no-reboot",
                                     "-serial",
                                     "mon:stdio",
                                     "-kernel",
                                     kernel_image,
                                     "-initrd",
                                     a.output,
                                     "-append",
                                     cmdline};
    for (const auto& q : def->boot.qemu_args) qemu.push_back(q);
    for (const auto& d : disks) {
        std::string file = d;
        ReplaceAllCommas(file);
        qemu.insert(qemu.end(), {"-drive", "file=" + file + ",if=virtio,format=raw"});
    }
    std::string shown;
    for (const auto& q : qemu) shown += (shown.empty() ? "" : " ") + QuoteForDisplay(q);
    std::cerr << "peinit-image: " << shown << "\n";
    std::cerr.flush();
    auto status = RunInherit(qemu, timeout_n);
    if (!status) {
        std::cerr << "peinit-image: " << status.error().message() << "\n";
        return 1;
    }
    if (*status == 124) std::cerr << "peinit-image: QEMU killed after " << timeout_n << " s\n";
    return *status;
}

int CmdList(const std::vector<std::string>& args) {
    if (args.size() == 1 && IsHelp(args[0])) {
        std::cout << kListUsage;
        return 0;
    }
    if (args.size() != 1)
        return Usage(kListUsage, args.empty() ? "missing FILE" : "too many arguments");
    auto entries = ReadCpio(args[0]);
    if (!entries) {
        std::cerr << "peinit-image: " << entries.error().message() << "\n";
        return 1;
    }
    for (const auto& e : *entries) {
        char type = '-';
        if (e.type == EntryType::kDirectory) type = 'd';
        if (e.type == EntryType::kSymlink) type = 'l';
        if (e.type == EntryType::kCharDevice) type = 'c';
        char line[128];
        if (e.type == EntryType::kCharDevice)
            std::snprintf(line, sizeof line, "%c%04o %lld/%lld %5u,%-5u ", type, e.mode,
                          static_cast<long long>(e.uid), static_cast<long long>(e.gid),
                          e.rdev_major, e.rdev_minor);
        else
            std::snprintf(line, sizeof line, "%c%04o %lld/%lld %11llu ", type, e.mode,
                          static_cast<long long>(e.uid), static_cast<long long>(e.gid),
                          static_cast<unsigned long long>(e.size));
        std::cout << line << "/" << e.path;
        if (e.type == EntryType::kSymlink) std::cout << " -> " << e.data;
        std::cout << "\n";
    }
    return 0;
}

int Main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) return Usage(kMainUsage, "missing COMMAND");
    std::string cmd = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (IsHelp(cmd)) {
        std::cout << kMainUsage;
        return 0;
    }
    if (cmd == "help") {
        if (rest.empty())
            std::cout << kMainUsage;
        else if (rest[0] == "build")
            std::cout << kBuildUsage;
        else if (rest[0] == "boot")
            std::cout << kBootUsage;
        else if (rest[0] == "check")
            std::cout << kCheckUsage;
        else if (rest[0] == "plan")
            std::cout << kPlanUsage;
        else if (rest[0] == "list")
            std::cout << kListUsage;
        else
            return Usage(kMainUsage, "unknown command " + rest[0]);
        return 0;
    }
    if (cmd == "build") return CmdBuild(rest);
    if (cmd == "boot") return CmdBoot(rest);
    if (cmd == "check") return CmdCheck(rest);
    if (cmd == "plan") return CmdPlan(rest);
    if (cmd == "list") return CmdList(rest);
    return Usage(kMainUsage, "unknown command " + cmd);
}

}  // namespace
}  // namespace peinit::image

int main(int argc, char** argv) {
    try {
        return peinit::image::Main(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "peinit-image: internal error: " << e.what() << "\n";
        return 1;
    } catch (...) {
        std::cerr << "peinit-image: internal error\n";
        return 1;
    }
}
