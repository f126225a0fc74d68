// peinit-image: builds initramfs images from images/<name>/image.toml and boots them in QEMU.
// Usage errors exit 2; build and validation errors exit 1; `boot` exits with QEMU's status.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "initramfs/image_builder.h"
#include "initramfs/image_definition.h"
#include "initramfs/process.h"
#include "peinit/sys/boot_collect.h"
#include "peinit/sys/package.h"
#include "peinit/tools/host_args.h"
#include "peinit/core/boot_plan.h"

#ifndef PEINIT_SOURCE_DIR
#error "PEINIT_SOURCE_DIR must be defined by the build"
#endif
#ifndef PEINIT_IMAGE_BUILD_DIR
#error "PEINIT_IMAGE_BUILD_DIR must be defined by the build"
#endif

namespace peinit::image {
namespace {

// `boot` kills QEMU after this many seconds unless --timeout says otherwise (0: never).
constexpr int kDefaultBootTimeout = 600;

constexpr const char* kMainUsage = R"(usage: peinit-image COMMAND [ARGS...]

Builds peinit initramfs images from image definitions (images/NAME/image.toml, format in
initramfs/IMAGE.md) and boots them in QEMU.

commands:
  build IMAGE -o OUT [options]    validate the definition and write the cpio image
  check IMAGE [options]           every validation of build, writing nothing
  plan IMAGE [options]            the module plan the image's PID 1 would run at boot
  boot IMAGE [options] [-- ARGS]  build the image and boot it in QEMU (TCG)
  list FILE                       list the entries of every archive in an image
  help [COMMAND]                  this text, or a command's

`peinit-image COMMAND --help` describes each command; `peinit-image --version` prints the
version.

The programs an image ships (peinit as /init, peinitctl) come from a manifest: --binaries,
else $PEINIT_IMAGE_BINARIES, else the one installed beside this program
(PREFIX/share/peinit/binaries.manifest), else the build tree's.
)";

constexpr const char* kBuildUsage =
    R"(usage: peinit-image build IMAGE -o OUT [--kernel-dir DIR] [--kver KVER]
                          [--compression none|gzip|zstd] [--binaries MANIFEST]
                          [--sysroot DIR] [--key-dir DIR] [--host-root DIR] [--timing]

IMAGE is an image directory (holding image.toml) or the .toml file itself.
Validates everything first (definition, units, hive, modules against the kernel's tree,
shared libraries) and writes nothing on error; OUT is replaced atomically.

  -o, --output OUT       the image file to write
  --kernel-dir DIR       kernel directory (kernel/build or kernel/debian-kernel output);
                         default: $PEINIT_KERNEL_DIR or $PEINIT_DEBIAN_KERNEL_DIR by the
                         image's kernel, else the output of running that script. For
                         kernel = "RELEASE" or "running": a system root holding
                         boot/vmlinuz-KVER and lib/modules/KVER (default: --sysroot, /)
  --kver KVER            build for installed kernel KVER instead of the definition's
                         kernel = "RELEASE" or "running" (what a kernel hook passes)
  --compression X        override the definition's compression
  --binaries MANIFEST    programs to ship, "IMAGE_PATH HOST_PATH required|optional" per
                         line, HOST_PATH relative to the manifest's directory unless absolute
                         (default: $PEINIT_IMAGE_BINARIES, else PREFIX/share/peinit/
                         binaries.manifest beside an installed peinit-image, else the build's)
  --sysroot DIR          where shared libraries and installed kernels are looked up
                         (default /)
  --key-dir DIR          where the image signing key is kept when image.toml names no
                         signing_key; generated there on first use (directory 0700, key
                         0600), refused when group or others can access either. Default:
                         $PEINIT_CACHE/image-keys when PEINIT_CACHE is set, else
                         /etc/peinit/keys/private for an installed peinit-image run as root,
                         else ~/.cache/peinit/image-keys
  --host-root DIR        where modules_from = "host" reads this machine's
                         proc/self/mountinfo and sys/ (default /; for tests)
  --timing               print the time each build phase took

The output is byte-reproducible: entries are sorted and stamped with uid/gid 0 and
mtime $SOURCE_DATE_EPOCH (0 when unset).
)";

constexpr const char* kBootUsage =
    R"(usage: peinit-image boot IMAGE [--smp N] [--memory MIB] [--timeout S] [--kernel-dir DIR]
                         [--output OUT] [--disk FILE]... [--collect DIR] [--results FILE]
                         [--tpm] [-- EXTRA CMDLINE...]

Builds IMAGE and boots it:
  qemu-system-x86_64 -accel tcg -machine q35 -m MIB -smp N -nographic -no-reboot
      -serial mon:stdio -kernel KERNEL -initrd IMAGE
      -append "console=ttyS0 panic=-1 <image cmdline> <EXTRA>"
The guest console is this process's stdout; the exit status is QEMU's (124 on timeout).

  --smp N            virtual CPUs (default: the definition's [boot] smp, else 1)
  --memory MIB       guest memory (default: [boot] memory, else 512)
  --timeout S        kill QEMU after S seconds, 0 for never (default: 600)
  --kernel-dir DIR   as for build
  -o, --output OUT   keep the image as OUT (default: a fresh directory under $TMPDIR or
                     /tmp, removed when QEMU exits)
  --disk FILE        attach FILE as a raw virtio disk (/dev/vda, /dev/vdb, ... in order),
                     e.g. a real root for root=UUID=...
  --collect DIR      get the boot's records out of the VM: the console is also logged to
                     DIR/console.log, the guest gets a second serial port and
                     peinit.collect=/dev/ttyS1, on which PID 1 writes /run/peinit and the
                     kernel log when it shuts down; they are extracted into DIR/run/peinit and
                     DIR/dev/kmsg for `peinitctl status|modules|blame|timeline --root DIR`.
                     DIR is created if missing (not its parents); an earlier collection in it
                     is replaced. No records (a timeout, a hand-over to a real root) is exit 1.
  --results FILE     a serial port for what programs in the guest report (the guest's
                     /dev/ttyS2), written to FILE (created or truncated): neither the kernel nor
                     PID 1 writes to it, so a test's or benchmark's lines arrive whole, never
                     cut by a kernel message as on the console
  --tpm              give the guest a TPM 2.0 (measured boot, ATTESTATION.md): a private
                     `swtpm socket --tpm2` with a fresh state in a temporary directory, started
                     before QEMU and stopped after it (swtpm must be installed)
)";

constexpr const char* kCheckUsage =
    R"(usage: peinit-image check IMAGE [--kernel-dir DIR] [--kver KVER] [--binaries MANIFEST]
                          [--sysroot DIR] [--key-dir DIR] [--host-root DIR]

Runs every validation of `build` (definition, units, hive, command line, modules against the
kernel's tree, programs, libraries, keys, packages, service programs) and writes nothing.
Every problem is printed as FILE:LINE: MESSAGE, all of them in one run, then the warnings.
Options as for build. Exit status: 0 valid, 1 problems, 2 usage error.
)";

constexpr const char* kPlanUsage =
    R"(usage: peinit-image plan IMAGE [--kernel-dir DIR] [--kver KVER] [--sysroot DIR]
                         [--host-root DIR] [--json | --compact]

Prints the module plan the image's PID 1 would run at boot: its units' modules, then
modules_load= of its cmdline, under the hive's Blacklist and modprobe.blacklist=, resolved
against the kernel's tree with extra_modules added, in the forms of `peinit plan` (detailed,
--json, or --compact: one line per load, "insmod PATH OPTIONS" / "builtin NAME").
The detailed form then lists the image's module set (every module the image ships, by
modules_from) with the rule that chose each one: FILE:LINE of the unit or image.toml entry
naming it, "host: ..." (this machine's root, console, keyboard), "generic: ..." or
"dependency of X". With modules_from = "host" the boot plan includes the generated unit
host-modules, which loads the host set before the lock.
What a deny list keeps out is a warning. Exit status: 0 every request resolves, 1 problems
(the definition's, or requests that cannot load), 2 usage error. Options as for build.
)";

constexpr const char* kListUsage = R"(usage: peinit-image list FILE

Prints every entry of an image: mode, uid/gid, size or device, path (and link target). An
image may be several cpio archives one after the other, each compressed or not (e.g. early
microcode before the main archive), as the kernel reads them: each archive starts with a line
"# archive N at byte OFFSET: COMPRESSION, ENTRIES entries".
)";

using args::Arity;

// Parses a command's arguments (peinit/core/args.h syntax); nullopt after --help or a usage
// error, with `exit` set to the status to return.
std::optional<args::Parsed> ParseCommand(const std::string& command,
                                         const std::vector<std::string>& argv,
                                         std::span<const args::OptionSpec> spec,
                                         const char* usage, int& exit) {
    std::vector<char*> ptrs;
    for (const auto& a : argv) ptrs.push_back(const_cast<char*>(a.c_str()));
    auto parsed = args::ParseHost(ptrs, spec);
    if (!parsed) {
        exit = args::UsageError("peinit-image " + command, parsed.error().message(), usage);
        return std::nullopt;
    }
    if (parsed->help) {
        std::cout << usage;
        exit = 0;
        return std::nullopt;
    }
    return std::move(*parsed);
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

// --kernel-dir, else (an installed kernel by release) the system root, else the environment,
// else the kernel script's last output line.
Result<std::string> ResolveKernelDir(KernelKind kind, const std::string& flag,
                                     const std::string& sysroot) {
    if (!flag.empty()) return flag;
    if (kind == KernelKind::kRelease || kind == KernelKind::kRunning)
        return sysroot.empty() ? std::string("/") : sysroot;
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

// PREFIX/share/peinit/binaries.manifest beside an installed peinit-image; "" when this
// program runs from a build tree.
std::string InstalledManifest() {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    auto installed = self.parent_path().parent_path() / "share/peinit/binaries.manifest";
    if (!ec && std::filesystem::exists(installed, ec)) return installed.string();
    return "";
}

// The manifest of programs to ship when --binaries is not given (kMainUsage).
std::string DefaultManifest() {
    if (const char* env = std::getenv("PEINIT_IMAGE_BINARIES"); env != nullptr && *env != '\0')
        return env;
    if (std::string installed = InstalledManifest(); !installed.empty()) return installed;
    return std::string(PEINIT_IMAGE_BUILD_DIR) + "/binaries.manifest";
}

// The machine's key directory, for an installed peinit-image run by root (a system's image
// generator); closed to group and others like the key in it.
constexpr const char* kSystemKeyDir = "/etc/peinit/keys/private";

// Where the image signing key is kept when the definition names none (kBuildUsage --key-dir).
std::string DefaultKeyDir() {
    if (const char* c = std::getenv("PEINIT_CACHE"); c != nullptr && *c != '\0')
        return DefaultImageKeyDir();
    if (::geteuid() == 0 && !InstalledManifest().empty()) return kSystemKeyDir;
    return DefaultImageKeyDir();
}

struct BuildArgs {
    std::string image;
    std::string output;
    std::string kernel_dir;
    std::string compression;
    std::string manifest;
    std::string sysroot = "/";
    std::string kver;
    std::string key_dir;
    std::string host_root = "/";
    bool timing = false;
};

// The options build, check and plan share (besides --binaries, which plan has not).
void ReadSharedOptions(const args::Parsed& parsed, BuildArgs& a) {
    a.kernel_dir = parsed.Value("--kernel-dir").value_or("");
    a.manifest = parsed.Value("--binaries").value_or("");
    a.sysroot = parsed.Value("--sysroot").value_or("/");
    a.kver = parsed.Value("--kver").value_or("");
    a.key_dir = parsed.Value("--key-dir").value_or("");
    a.host_root = parsed.Value("--host-root").value_or("/");
}

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
        if (auto dir = ResolveKernelDir(def.kernel, a.kernel_dir, a.sysroot)) {
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
    opts.kver = a.kver;
    opts.host_root = a.host_root;
    opts.key_dir = a.key_dir.empty() ? DefaultKeyDir() : a.key_dir;
    opts.pid1_dlopened = kPid1DlopenedLibraries;
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
    const std::string manifest = a.manifest.empty() ? DefaultManifest() : a.manifest;
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
              << c.services << " services), programs from " << manifest << "; " << timing
              << "\n";
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
std::optional<args::Parsed> ParseImageCommand(const std::string& command,
                                              const std::vector<std::string>& argv,
                                              std::span<const args::OptionSpec> spec,
                                              const char* usage, BuildArgs& a, int& exit) {
    auto parsed = ParseCommand(command, argv, spec, usage, exit);
    if (!parsed) return std::nullopt;
    auto fail = [&](const std::string& problem) {
        exit = args::UsageError("peinit-image " + command, problem, usage);
        return std::nullopt;
    };
    if (parsed->operands.empty()) return fail("missing IMAGE");
    if (parsed->operands.size() > 1) return fail(args::UnexpectedOperand(parsed->operands[1]));
    if (parsed->Has("--json") && parsed->Has("--compact")) {
        return fail("--json and --compact exclude each other");
    }
    a.image = parsed->operands[0];
    ReadSharedOptions(*parsed, a);
    return parsed;
}

// The image's module set, one module a line with the rules that chose it.
std::string RenderModuleSet(const std::vector<ModuleFile>& modules) {
    std::size_t width = 0;
    for (const auto& m : modules) width = std::max(width, m.name.size());
    std::string out = "\nmodule set (" + std::to_string(modules.size()) +
                      " modules shipped in the image package, and the rule that chose each):\n";
    for (const auto& m : modules) {
        // One line per rule, each with the module's name (grep finds every rule).
        for (std::size_t i = 0; i < std::max<std::size_t>(m.chosen_by.size(), 1); ++i)
            out += "  " + m.name + std::string(width - m.name.size() + 2, ' ') +
                   (m.chosen_by.empty() ? std::string("?") : m.chosen_by[i]) + "\n";
    }
    return out;
}

int CmdCheck(const std::vector<std::string>& argv) {
    static constexpr args::OptionSpec kSpec[] = {
        {"--kernel-dir", Arity::kValue}, {"--binaries", Arity::kValue},
        {"--sysroot", Arity::kValue},    {"--kver", Arity::kValue},
        {"--key-dir", Arity::kValue},    {"--host-root", Arity::kValue}};
    BuildArgs a;
    int exit = 0;
    if (!ParseImageCommand("check", argv, kSpec, kCheckUsage, a, exit)) return exit;
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

int CmdPlan(const std::vector<std::string>& argv) {
    static constexpr args::OptionSpec kSpec[] = {
        {"--kernel-dir", Arity::kValue}, {"--kver", Arity::kValue},
        {"--sysroot", Arity::kValue},    {"--host-root", Arity::kValue},
        {"--json"},                      {"--compact"}};
    BuildArgs a;
    int exit = 0;
    auto parsed = ParseImageCommand("plan", argv, kSpec, kPlanUsage, a, exit);
    if (!parsed) return exit;
    auto planned = [&]() -> Result<ImagePlan> {
        ImageDefinition def = PEINIT_TRY(ReadImageDefinition(a.image));
        BuildOptions opts;
        if (def.kernel_known) {
            if (auto dir = ResolveKernelDir(def.kernel, a.kernel_dir, a.sysroot))
                opts.kernel_dir = *dir;
            else
                def.problems.push_back(dir.error().message());
        }
        opts.kver = a.kver;
        opts.host_root = a.host_root;
        return PlanImage(def, opts);
    }();
    if (!planned) {
        std::cerr << "peinit-image: " << planned.error().message() << "\n";
        return 1;
    }
    PlanView view{"peinit-image plan", a.image, planned->kernel.kver, planned->tree_root};
    std::cout << (parsed->Has("--json")      ? RenderPlanJson(planned->plan, view)
                  : parsed->Has("--compact") ? RenderPlanCompact(planned->plan, view)
                                             : RenderPlanText(planned->plan, view));
    if (!parsed->Has("--json") && !parsed->Has("--compact"))
        std::cout << RenderModuleSet(planned->module_set);
    for (const auto& w : planned->warnings) std::cerr << "peinit-image: warning: " << w << "\n";
    return planned->plan.ok() ? 0 : 1;
}

int CmdBuild(const std::vector<std::string>& argv) {
    static constexpr args::OptionSpec kSpec[] = {
        {"--output", Arity::kValue, 'o'}, {"--kernel-dir", Arity::kValue},
        {"--compression", Arity::kValue}, {"--binaries", Arity::kValue},
        {"--sysroot", Arity::kValue},     {"--kver", Arity::kValue},
        {"--key-dir", Arity::kValue},     {"--host-root", Arity::kValue},
        {"--timing"},
    };
    int exit = 0;
    auto parsed = ParseCommand("build", argv, kSpec, kBuildUsage, exit);
    if (!parsed) return exit;
    auto usage = [](const std::string& problem) {
        return args::UsageError("peinit-image build", problem, kBuildUsage);
    };
    if (parsed->operands.empty()) return usage("missing IMAGE");
    if (parsed->operands.size() > 1) return usage(args::UnexpectedOperand(parsed->operands[1]));
    if (!parsed->Has("--output")) return usage(args::Required("--output"));
    BuildArgs a;
    a.image = parsed->operands[0];
    a.output = *parsed->Value("--output");
    ReadSharedOptions(*parsed, a);
    a.compression = parsed->Value("--compression").value_or("");
    a.timing = parsed->Has("--timing");
    if (!a.compression.empty()) {
        if (auto c = ParseCompression(a.compression); !c) return usage(c.error().message());
    }
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
std::string QemuValue(std::string s) {
    for (size_t i = 0; (i = s.find(',', i)) != std::string::npos; i += 2) s.insert(i, ",");
    return s;
}

// `boot --collect DIR`: the guest device PID 1 writes its records to (peinit.collect=), and the
// file in DIR that QEMU's second serial port writes, extracted once QEMU is gone.
constexpr const char* kCollectDevice = "/dev/ttyS1";
constexpr const char* kCollectStream = "records.tar";

// Creates DIR (its parent must exist) or reuses it, without the files of an earlier collection.
Result<void> PrepareCollectDir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoErr("mkdir");
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return ErrnoErr("stat");
    if (!S_ISDIR(st.st_mode)) return Err("not a directory");
    std::error_code ec;
    for (const char* old : {"run/peinit", "dev/kmsg", "console.log", kCollectStream}) {
        std::filesystem::remove_all(std::filesystem::path(dir) / old, ec);
        if (ec) return Err(std::string(old) + ": " + ec.message());
    }
    return Ok();
}

Result<void> ExtractCollected(const std::string& dir, const std::string& stream) {
    auto bytes = ReadFileOnce(stream, kMaxPackageBytes);
    if (!bytes && bytes.error().code() != ENOENT) return bytes.error();
    if (!bytes || bytes->empty()) {  // no file: QEMU never opened the port
        return Err("the guest wrote no records to " + std::string(kCollectDevice) +
                   " (it did not shut down through peinit: a timeout, a crash, or a hand-over "
                   "to a real root); the console log is in " + dir + "/console.log");
    }
    auto written = ExtractCollection(*bytes, dir, stream);
    if (!written) return Err(written.error().message() + " (kept for inspection)");
    std::filesystem::remove(stream);
    std::cerr << "peinit-image: collected " << written->size() << " files and the console log into "
              << dir << " (peinitctl status --root " << dir << ")\n";
    return Ok();
}

// Removes a directory tree when it goes out of scope (the default output of `boot`).
struct ScratchDir {
    std::string path;
    ~ScratchDir() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
};

// `boot --tpm`: a private swtpm (TPM 2.0 emulator) for one boot, its state in a temporary
// directory; stopped and removed when the object goes.
class SwtpmProcess {
  public:
    ~SwtpmProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        std::error_code ec;
        if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
    }
    // Starts it; returns the control socket QEMU's -tpmdev emulator connects to.
    Result<std::string> Start() {
        const char* tmp = std::getenv("TMPDIR");
        std::string dir = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/peinit-swtpm.XXXXXX";
        if (::mkdtemp(dir.data()) == nullptr) return Error::FromErrno("mkdtemp " + dir);
        dir_ = dir;
        const std::string state = dir + "/state", socket = dir + "/swtpm.sock";
        std::filesystem::create_directory(state);
        const std::string program = FindProgram("swtpm");
        if (program.empty()) return Err("swtpm not found in PATH (Debian: apt install swtpm)");
        std::vector<std::string> argv = {program, "socket", "--tpm2", "--tpmstate", "dir=" + state,
                                         "--ctrl", "type=unixio,path=" + socket, "--terminate"};
        pid_ = ::fork();
        if (pid_ < 0) return Error::FromErrno("fork");
        if (pid_ == 0) {
            std::vector<char*> args;
            for (auto& a : argv) args.push_back(a.data());
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            _exit(127);
        }
        for (int i = 0; i < 1000; ++i) {  // up to 20 s for the socket
            if (::access(socket.c_str(), F_OK) == 0) return socket;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return Err("swtpm exited before it was ready (" + program + ")");
            }
            ::usleep(20 * 1000);
        }
        return Err("swtpm did not create " + socket + " within 20 s");
    }

  private:
    pid_t pid_ = -1;
    std::string dir_;
};

// What `boot` hands QEMU (TCG; the serial ports in a fixed order: the console, then with
// --collect the stream port, then the results port, before the definition's own arguments).
struct BootQemu {
    std::string kernel, initrd, cmdline;
    int memory_mb = 0, smp = 0;
    std::string console_log, collect_stream;  // --collect: both set
    std::string results;                      // --results FILE
    std::vector<std::string> qemu_args;       // the definition's [boot] qemu_args
    std::vector<std::string> disks;           // --disk, virtio, raw
    std::string tpm_socket;                   // --tpm: swtpm's control socket
};

std::vector<std::string> QemuArgv(const BootQemu& b) {
    std::vector<std::string> qemu = {"qemu-system-x86_64", "-accel", "tcg", "-machine", "q35",
                                     "-m", std::to_string(b.memory_mb),
                                     "-smp", std::to_string(b.smp),
                                     "-nographic", "-no-reboot",
                                     "-kernel", b.kernel, "-initrd", b.initrd,
                                     "-append", b.cmdline};
    if (b.collect_stream.empty()) {
        qemu.insert(qemu.end(), {"-serial", "mon:stdio"});
    } else {
        qemu.insert(qemu.end(), {"-chardev", "stdio,id=console,mux=on,signal=on,logfile=" +
                                                 QemuValue(b.console_log),
                                 "-serial", "chardev:console", "-mon",
                                 "chardev=console,mode=readline", "-serial",
                                 "file:" + QemuValue(b.collect_stream)});
    }
    if (!b.results.empty()) {
        // The third legacy port (0x3e8, IRQ 4): ttyS2 in both kernels, whether or not --collect
        // took ttyS1.
        qemu.insert(qemu.end(), {"-chardev", "file,id=results,path=" + QemuValue(b.results),
                                 "-device", "isa-serial,chardev=results,index=2"});
    }
    qemu.insert(qemu.end(), b.qemu_args.begin(), b.qemu_args.end());
    for (const auto& d : b.disks) {
        qemu.insert(qemu.end(), {"-drive", "file=" + QemuValue(d) + ",if=virtio,format=raw"});
    }
    if (!b.tpm_socket.empty()) {
        qemu.insert(qemu.end(), {"-chardev", "socket,id=chrtpm,path=" + QemuValue(b.tpm_socket),
                                 "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device",
                                 "tpm-tis,tpmdev=tpm0"});
    }
    return qemu;
}

int CmdBoot(const std::vector<std::string>& argv) {
    static constexpr args::OptionSpec kSpec[] = {
        {"--smp", Arity::kValue},        {"--memory", Arity::kValue},
        {"--timeout", Arity::kValue},    {"--kernel-dir", Arity::kValue},
        {"--output", Arity::kValue, 'o'}, {"--disk", Arity::kList},
        {"--collect", Arity::kValue},
        {"--results", Arity::kValue},
        {"--tpm", Arity::kFlag},
    };
    // Everything after "--" goes to the kernel command line.
    auto dashes = std::find(argv.begin(), argv.end(), "--");
    std::vector<std::string> extra(dashes == argv.end() ? dashes : dashes + 1, argv.end());
    int exit = 0;
    auto parsed = ParseCommand("boot", {argv.begin(), dashes}, kSpec, kBootUsage, exit);
    if (!parsed) return exit;
    auto usage = [](const std::string& problem) {
        return args::UsageError("peinit-image boot", problem, kBootUsage);
    };
    if (parsed->operands.empty()) return usage("missing IMAGE");
    if (parsed->operands.size() > 1) {
        return usage(args::UnexpectedOperand(parsed->operands[1]) +
                     " (kernel arguments go after --)");
    }
    BuildArgs a;
    a.image = parsed->operands[0];
    a.kernel_dir = parsed->Value("--kernel-dir").value_or("");
    a.output = parsed->Value("--output").value_or("");
    int smp_n = 0, mem_n = 0, timeout_n = kDefaultBootTimeout;
    if (auto v = parsed->Value("--smp"); v && !ParseInt(*v, 1, 64, smp_n))
        return usage("--smp must be 1..64");
    if (auto v = parsed->Value("--memory"); v && !ParseInt(*v, 64, 65536, mem_n))
        return usage("--memory must be 64..65536 (MiB)");
    if (auto v = parsed->Value("--timeout"); v && !ParseInt(*v, 0, 86400, timeout_n))
        return usage("--timeout must be 0..86400 seconds");
    const std::string collect = parsed->Value("--collect").value_or("");
    const std::string results = parsed->Value("--results").value_or("");
    std::vector<std::string> disks = parsed->Values("--disk");
    for (const auto& disk : disks) {
        if (::access(disk.c_str(), R_OK) != 0) {
            return usage("--disk " + disk + ": " + std::strerror(errno));
        }
    }

    // Peek at the definition for the default output name.
    auto peek = LoadImageDefinition(a.image);
    if (!peek) {
        std::cerr << "peinit-image: " << peek.error().message() << "\n";
        return 1;
    }
    ScratchDir scratch;
    if (a.output.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        std::string dir = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/peinit-image-boot.XXXXXX";
        if (::mkdtemp(dir.data()) == nullptr) {
            std::cerr << "peinit-image: " << Error::FromErrno("mkdtemp " + dir).message() << "\n";
            return 1;
        }
        scratch.path = dir;
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
    if (!collect.empty()) cmdline += std::string(" peinit.collect=") + kCollectDevice;
    for (const auto& e : extra) cmdline += " " + e;
    // The console (ttyS0) on stdio, multiplexed with the monitor; with --collect also logged to
    // DIR/console.log, and a second port (ttyS1) written to the stream file.
    BootQemu b;
    b.kernel = kernel_image;
    b.initrd = a.output;
    b.cmdline = cmdline;
    b.memory_mb = mem_n != 0 ? mem_n : def->boot.memory_mb;
    b.smp = smp_n != 0 ? smp_n : def->boot.smp;
    b.results = results;
    b.qemu_args = def->boot.qemu_args;
    b.disks = disks;
    std::string stream;
    if (!collect.empty()) {
        auto prepared = PrepareCollectDir(collect);
        if (!prepared) {
            std::cerr << "peinit-image: --collect " << collect << ": "
                      << prepared.error().message() << "\n";
            return 1;
        }
        stream = collect + "/" + kCollectStream;
        b.console_log = collect + "/console.log";
        b.collect_stream = stream;
    }
    SwtpmProcess swtpm;
    if (parsed->Has("--tpm")) {
        auto socket = swtpm.Start();
        if (!socket) {
            std::cerr << "peinit-image: --tpm: " << socket.error().message() << "\n";
            return 1;
        }
        b.tpm_socket = *socket;
    }
    const std::vector<std::string> qemu = QemuArgv(b);
    std::string shown;
    for (const auto& q : qemu) shown += (shown.empty() ? "" : " ") + QuoteForDisplay(q);
    std::cerr << "peinit-image: " << shown << "\n";
    std::cerr.flush();
    auto status = RunInherit(qemu, timeout_n);
    if (!status) {
        std::cerr << "peinit-image: " << status.error().message() << "\n";
        return 1;
    }
    if (*status == 124) {
        std::cerr << "peinit-image: QEMU killed after " << timeout_n
                  << " s (--timeout S to wait longer, 0 for no limit)\n";
    }
    if (!collect.empty()) {
        if (auto got = ExtractCollected(collect, stream); !got) {
            std::cerr << "peinit-image: --collect: " << got.error().message() << "\n";
            return *status != 0 ? *status : 1;
        }
    }
    return *status;
}

int CmdList(const std::vector<std::string>& argv) {
    int exit = 0;
    auto parsed = ParseCommand("list", argv, {}, kListUsage, exit);
    if (!parsed) return exit;
    if (parsed->operands.size() != 1) {
        return args::UsageError("peinit-image list",
                                parsed->operands.empty()
                                    ? std::string("missing FILE")
                                    : args::UnexpectedOperand(parsed->operands[1]),
                                kListUsage);
    }
    auto archives = ReadCpioArchives(parsed->operands[0]);
    if (!archives) {
        std::cerr << "peinit-image: " << archives.error().message() << "\n";
        return 1;
    }
    for (std::size_t i = 0; i < archives->size(); ++i) {
        const ListedArchive& archive = (*archives)[i];
        std::cout << "# archive " << i + 1 << " at byte " << archive.offset << ": "
                  << archive.compression << ", " << archive.entries.size() << " entries\n";
        for (const auto& e : archive.entries) {
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
    }
    return 0;
}

struct Command {
    const char* name;
    const char* usage;
    int (*run)(const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"build", kBuildUsage, CmdBuild},
    {"check", kCheckUsage, CmdCheck},
    {"plan", kPlanUsage, CmdPlan},
    {"boot", kBootUsage, CmdBoot},
    {"list", kListUsage, CmdList},
};

int Main(int argc, char** argv) {
    if (argc < 2) return args::UsageError("peinit-image", "no command given", kMainUsage);
    std::vector<std::string> rest(argv + 2, argv + argc);
    auto first = args::ReadFirstArgument(argv[1]);
    switch (first.kind) {
        case args::FirstArgument::kHelp:
            // `help COMMAND` is that command's --help.
            if (!rest.empty()) {
                for (const auto& c : kCommands) {
                    if (rest[0] == c.name) return c.run({"--help"});
                }
                return args::UsageError("peinit-image", args::UnknownCommand(rest[0]), kMainUsage);
            }
            std::cout << kMainUsage;
            return 0;
        case args::FirstArgument::kVersion:
            std::cout << args::VersionText("peinit-image");
            return 0;
        case args::FirstArgument::kError:
            return args::UsageError("peinit-image", first.text, kMainUsage);
        case args::FirstArgument::kCommand:
            break;
    }
    for (const auto& c : kCommands) {
        if (first.text == c.name) return c.run(rest);
    }
    return args::UsageError("peinit-image", args::UnknownCommand(first.text), kMainUsage);
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
