#include "initramfs/image_builder.h"
#include "peinit/core/text.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <span>
#include <sstream>

#include "initramfs/elf_closure.h"
#include "initramfs/host_modules.h"
#include "initramfs/image_units.h"
#include "initramfs/process.h"
#include "peinit/core/boot_plan.h"
#include "peinit/core/args.h"
#include "peinit/core/cmdline.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/kmod.h"
#include "peinit/core/module_policy.h"
#include "peinit/core/stored_plan.h"
#include "peinit/sys/package.h"

namespace peinit::image {

Result<std::vector<ShippedBinary>> LoadBinaryManifest(const std::string& path) {
    std::ifstream in(path);
    if (!in) return ErrnoErr(path);
    std::vector<ShippedBinary> out;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::stringstream ss(line);
        std::string image_path, host_path, req, extra;
        if (!(ss >> image_path)) continue;
        if (!(ss >> host_path >> req) || (ss >> extra) || image_path[0] != '/' ||
            (req != "required" && req != "optional"))
            return Err(path + ":" + std::to_string(n) +
                       ": expected \"IMAGE_PATH HOST_PATH required|optional\"");
        // A relative program path is relative to the manifest (the installed one, in
        // PREFIX/share/peinit, names ../../sbin/peinit).
        std::filesystem::path host(host_path);
        if (host.is_relative()) host = std::filesystem::path(path).parent_path() / host;
        out.push_back({image_path, host.lexically_normal().string(), req == "required"});
    }
    return out;
}

namespace {

// Adds a program, without its debug information when `strip` (strip --strip-debug writes a
// deterministic copy; the ELF headers the library closure reads are unchanged). Relocatable
// objects (kernel modules) are never stripped: strip would drop a module's appended signature.
Result<void> AddProgram(ImageTree& tree, const std::string& image_path, const std::string& host,
                        uint32_t mode, bool strip) {
    if (!strip || !IsElfFile(host) || IsElfRelocatable(host))
        return tree.AddHostFile(image_path, host, mode);
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmp =
        std::string(tmpdir != nullptr && *tmpdir ? tmpdir : "/tmp") + "/peinit-image-strip.XXXXXX";
    int fd = ::mkstemp(tmp.data());
    if (fd < 0) return ErrnoErr("mkstemp " + tmp);
    ::close(fd);
    auto res = RunCapture({"strip", "--strip-debug", "-o", tmp, host}, /*merge_stderr=*/true);
    Result<void> added = Ok();
    if (!res)
        added = res.error().Context("cannot strip " + host + ": ");
    else if (res->status != 0)
        added = Err("strip --strip-debug " + host + " failed: " + res->output);
    else {
        std::string data;
        {
            std::ifstream in(tmp, std::ios::binary);
            std::stringstream ss;
            ss << in.rdbuf();
            data = ss.str();
        }
        if (data.empty())
            added = Err("strip produced nothing for " + host);
        else
            added = tree.AddFile(image_path, std::move(data), mode, host + " (stripped)");
    }
    ::unlink(tmp.c_str());
    return added;
}

std::string Octal(uint32_t mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", mode);
    return buf;
}

bool Exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// The skeleton every image has: mount points, and the two device nodes peinit needs for
// output before devtmpfs is mounted.
Result<void> AddSkeleton(ImageTree& tree) {
    for (const char* d : {"proc", "sys", "dev", "run", "etc", "etc/peinit", "etc/peinit/units",
                          "etc/peinit/keys", "usr/lib/peinit/packages"})
        PEINIT_TRY(tree.AddDirectory(d, 0755));
    PEINIT_TRY(tree.AddDirectory("tmp", 01777));
    PEINIT_TRY(tree.AddDirectory("root", 0700));
    PEINIT_TRY(tree.AddCharDevice("dev/console", 0600, 5, 1));
    PEINIT_TRY(tree.AddCharDevice("dev/null", 0666, 1, 3));
    return Ok();
}

// The module wants of units, hive (AutoLoadAllowed, optional) and command line (modules_load=)
// and the definition's `modules`, with the deny lists for the build's warnings. Problems of
// the hive and the command line are appended to `errors`.
struct ImageWants {
    std::vector<ModuleWant> wants;
    std::vector<ModuleDeny> deny;
};
ImageWants CollectWants(const ImageDefinition& def, const UnitScan& units,
                        std::vector<std::string>& errors) {
    ImageWants out;
    out.wants = units.modules;
    if (def.hive) {
        if (auto h = LoadImageHive(def.hive->value)) {
            for (const auto& b : h->Blacklist()) out.deny.push_back({b, "hive Blacklist"});
            // Modules the hive allows to be demand-loaded must be in the image to be loadable.
            for (const auto& a : h->AutoLoadAllowed())
                out.wants.push_back({a, def.hive->value + " (AutoLoadAllowed)", "", true});
        } else {
            errors.push_back(h.error().message());
        }
    }
    std::string cmdline_origin = def.file + ":" + std::to_string(def.cmdline_line);
    if (auto cl = CheckCmdline(def.cmdline, cmdline_origin)) {
        for (auto& m : cl->modules) out.wants.push_back(std::move(m));
        for (auto& d : cl->deny) out.deny.push_back(std::move(d));
    } else {
        errors.push_back(cl.error().message());
    }
    for (const auto& m : def.modules)
        out.wants.push_back({m.value, def.file + ":" + std::to_string(m.line), "", false});
    return out;
}

// The plan input the image's PID 1 will collect (CollectBootPlanInput) from the image's units,
// hive and `cmdline`. Problems of the hive and command line are appended to `errors`.
PlanInput ImagePlanInput(const ImageDefinition& def, const UnitSet& units,
                         std::vector<std::string>& errors) {
    Hive hive;
    if (def.hive) {
        if (auto h = LoadImageHive(def.hive->value))
            hive = std::move(*h);
        else
            errors.push_back(h.error().message());
    }
    Cmdline cmd = ParseCmdline(def.cmdline);
    for (const auto& d : cmd.diagnostics)
        errors.push_back(def.file + ":" + std::to_string(def.cmdline_line) + ": cmdline: " +
                         d.ToString());
    return CollectBootPlanInput(units, ComputeEffectivePolicy(hive, cmd), cmd).input;
}

std::string Where(const ImageDefinition& def, int line) {
    return def.file + (line > 0 ? ":" + std::to_string(line) : "");
}

// Opens the definition's kernel (and checks that a peinit/debian tree is of that kind).
Result<KernelTree> OpenDefinitionKernel(const ImageDefinition& def, const BuildOptions& opts) {
    const std::string kver = PEINIT_TRY(TargetRelease(def, opts));
    auto kernel = OpenKernelTree(opts.kernel_dir, kver);
    if (!kernel) {
        std::string what = kver.empty() ? std::string(KernelKindName(def.kernel)) : kver;
        return Err(Where(def, def.kernel_line) + ": kernel \"" + what + "\": " +
                   kernel.error().message());
    }
    if (def.kernel != KernelKind::kPeinit && def.kernel != KernelKind::kDebian) return kernel;
    // kernel/build names every release it makes *-peinit (CONFIG_LOCALVERSION): a tree of
    // another kind boots without the lock syscall, or with a kernel the image's other files
    // were not meant for.
    const bool peinit_release = kernel->kver.ends_with("-peinit");
    if (peinit_release != (def.kernel == KernelKind::kPeinit)) {
        return Err(Where(def, def.kernel_line) + ": kernel = \"" + KernelKindName(def.kernel) +
                   "\" but " + kernel->dir + " holds kernel " + kernel->kver +
                   (peinit_release ? ", a peinit kernel (kernel/build)"
                                   : ", not a peinit kernel (kernel/build's releases end in "
                                     "-peinit)") +
                   ": set kernel = \"" + (peinit_release ? "peinit" : "debian") +
                   "\" or give the right --kernel-dir");
    }
    return kernel;
}

std::string ModeError(const ImageDefinition& def, const Error& e) {
    return Where(def, def.modules_from_line) + ": modules_from = \"" +
           ModuleModeName(def.modules_from) + "\": " + e.message();
}

// The unit that loads the host set at boot (none for the other modes).
std::vector<GeneratedUnit> ModeUnits(ModuleMode mode, const ModeWants& wants) {
    if (mode != ModuleMode::kHost) return {};
    return {HostModulesUnit(wants)};
}

}  // namespace

Result<std::string> TargetRelease(const ImageDefinition& def, const BuildOptions& opts) {
    if (def.kernel == KernelKind::kPeinit || def.kernel == KernelKind::kDebian) {
        if (!opts.kver.empty())
            return Err(Where(def, def.kernel_line) + ": --kver " + opts.kver +
                       " needs kernel = \"RELEASE\" or \"running\"; kernel = \"" +
                       KernelKindName(def.kernel) +
                       "\" takes its release from the kernel directory");
        return std::string();
    }
    if (!opts.kver.empty()) {
        if (!IsKernelRelease(opts.kver))
            return Err("--kver \"" + opts.kver + "\" is not a kernel release");
        return opts.kver;
    }
    if (def.kernel == KernelKind::kRelease) return def.kernel_release;
    auto running = RunningKernelRelease();
    if (!running)
        return running.error().Context(Where(def, def.kernel_line) + ": kernel \"running\": ");
    return *running;
}

namespace {

// The kernel tree modules resolve against: the definition's kernel with its out-of-tree modules
// staged into it (`staged` keeps that copy alive).
struct ModulesTree {
    bool have_kernel = false;
    bool resolvable = false;  // complete: the module problems are worth reporting
    std::unique_ptr<StagedKernelTree> staged;
    KernelTree tree;
};

// Step 1: the kernel tree (c.kernel) and the tree its modules resolve against.
ModulesTree OpenModulesTree(const ImageDefinition& def, const BuildOptions& opts,
                            ImageContents& c, std::vector<std::string>& errors) {
    auto collect = [&](const Error& e) { errors.push_back(e.message()); };
    ModulesTree m;
    if (def.kernel_known) {
        if (auto kernel = OpenDefinitionKernel(def, opts)) {
            c.kernel = *kernel;
            m.have_kernel = true;
        } else {
            collect(kernel.error());
            // The tree exists but is of the wrong kind: its modules still resolve, so the
            // module problems are reported too.
            if (auto tree = OpenKernelTree(opts.kernel_dir); tree && !tree->kver.empty() &&
                (def.kernel == KernelKind::kPeinit || def.kernel == KernelKind::kDebian)) {
                c.kernel = *tree;
                m.have_kernel = true;
            }
        }
        if (m.have_kernel) {
            m.tree = c.kernel;
            m.resolvable = !def.Broken("extra_modules");
        }
    }
    if (m.have_kernel && !def.extra_modules.empty()) {
        std::vector<ExtraModule> extra;
        for (const auto& e : def.extra_modules)
            extra.push_back({e.value, def.file + ":" + std::to_string(e.line)});
        if (auto staged = StageExtraModules(c.kernel, extra)) {
            m.staged = std::move(*staged);
            m.tree = m.staged->tree;
        } else {
            collect(staged.error());
            m.resolvable = false;
        }
    }
    return m;
}

// Step 4: the programs, the definition's [[files]] and the shared-library closure of every ELF
// among them.
void AddProgramsAndLibraries(const ImageDefinition& def, const BuildOptions& opts,
                             ImageContents& c, std::vector<std::string>& errors,
                             const std::function<void(const char*)>& phase) {
    auto collect = [&](const Error& e) { errors.push_back(e.message()); };
    if (auto added = AddSkeleton(c.tree); !added) collect(added.error());
    std::vector<std::string> elf_roots;
    for (const auto& b : opts.binaries) {
        if (!Exists(b.host_path)) {
            if (b.required)
                errors.push_back(b.host_path + ": not found (ships as " + b.image_path +
                                 "; build it first)");
            continue;
        }
        if (auto added = AddProgram(c.tree, b.image_path, b.host_path, 0755, def.strip); !added) {
            collect(added.error());
            continue;
        }
        c.binaries.push_back(b.image_path);
        if (IsElfFile(b.host_path)) elf_roots.push_back(b.host_path);
    }
    for (const auto& f : def.files) {
        uint32_t mode = 0644;
        if (f.mode) {
            mode = *f.mode;
        } else {
            // Only the executable bit survives git, so that is all we take from the source.
            struct stat st;
            if (::stat(f.src.c_str(), &st) == 0 && (st.st_mode & 0111) != 0) mode = 0755;
        }
        if (auto added = AddProgram(c.tree, f.dst, f.src, mode, def.strip); !added) {
            errors.push_back(def.file + ":" + std::to_string(f.line) + ": " +
                             added.error().message());
            continue;
        }
        if (IsElfFile(f.src)) elf_roots.push_back(f.src);
    }

    phase("programs (strip)");
    ClosureOptions copts;
    copts.sysroot = opts.sysroot;
    // PID 1 loads the TPM software stack with dlopen when the machine has a TPM (measured boot,
    // peinit/tpm/tss2.h): those libraries, the device TCTI that tctildr opens, and their own
    // closure ship with it. Without them on the build host the image boots unmeasured.
    std::vector<std::string> missing_tpm_libs;
    const bool ships_pid1 = !opts.binaries.empty() && opts.binaries.front().image_path == "/init" &&
                            !elf_roots.empty() && elf_roots.front() == opts.binaries.front().host_path;
    if (ships_pid1 && !opts.pid1_dlopened.empty()) {
        copts.dlopened = opts.pid1_dlopened;
        copts.missing_dlopened = &missing_tpm_libs;
    }
    if (auto libs = ElfClosure(elf_roots, copts)) {
        if (!missing_tpm_libs.empty()) {
            std::string names;
            for (const auto& n : missing_tpm_libs) names += (names.empty() ? "" : ", ") + n;
            c.warnings.push_back("libraries PID 1 opens for measured boot not found on this "
                                 "machine (" + names + "): the image boots unmeasured");
        }
        for (const auto& lib : *libs) {
            if (auto added = c.tree.AddHostFile(lib.path, lib.host_path, 0755); !added) {
                collect(added.error());
                continue;
            }
            c.libraries.push_back(lib.path);
        }
    } else {
        collect(libs.error().Context("shared libraries: "));
    }

}

// Step 6, keys and packages: the image key signs the image's package; pre-built packages are
// checked against the image's trust store (image key + `keys`) and shipped as they are.
struct ImageKeys {
    Result<ImageSigningKey> signing;
    std::set<std::string> provided;  // modules a pre-built package provides (or claims to)
};

ImageKeys AddKeysAndPackages(const ImageDefinition& def, const BuildOptions& opts,
                             bool have_kernel, ImageContents& c,
                             std::vector<std::string>& errors) {
    auto collect = [&](const Error& e) { errors.push_back(e.message()); };
    const std::string key_dir = opts.key_dir.empty() ? DefaultImageKeyDir() : opts.key_dir;
    ImageKeys k{LoadImageSigningKey(def, key_dir), {}};
    const auto& signing = k.signing;
    bool trust_complete = signing.has_value() && !def.Broken("keys");
    TrustStore trusted;
    const std::string keys_dir = std::string(kImageKeysDir).substr(1);
    if (signing) {
        c.signing_key = signing->origin;
        c.signer = signing->key.public_key().fingerprint;
        trusted.Add(signing->key.public_key());
        std::string dst = keys_dir + "/" + kImageKeyFile;
        auto pem = signing->key.PublicPem();
        if (!pem)
            collect(pem.error());
        else if (auto added = c.tree.AddFile(dst, *pem, 0644,
                                             "the image signing key (" + signing->origin + ")");
                 !added)
            collect(added.error());
        else
            c.keys.push_back("/" + dst);
    } else {
        collect(signing.error());
    }
    for (const auto& key : def.keys) {
        std::string where = def.file + ":" + std::to_string(key.line) + ": key " + key.value + ": ";
        std::ifstream in(key.value);
        std::stringstream ss;
        ss << in.rdbuf();
        auto pub = ParsePublicKeyPem(ss.str());
        if (!pub) {
            errors.push_back(where + pub.error().message());
            trust_complete = false;
            continue;
        }
        trusted.Add(*pub);
        std::string dst = keys_dir + "/" + key.value.substr(key.value.rfind('/') + 1);
        if (auto added = c.tree.AddHostFile(dst, key.value, 0644); !added)
            errors.push_back(where + added.error().message());
        else
            c.keys.push_back("/" + dst);
    }
    const std::string pkg_dir = std::string(kImagePackagesDir).substr(1);
    // With a key missing from the trust store, "untrusted" would be a consequence, not news.
    for (const auto& p : def.packages) {
        if (!have_kernel || !trust_complete) break;
        auto checked = CheckExtraPackage(p, def.file, trusted, c.kernel.kver);
        if (!checked) {
            errors.push_back(checked.error().message());
            continue;
        }
        std::string dst = pkg_dir + "/" + checked->file.file_name;
        std::string data(reinterpret_cast<const char*>(checked->file.bytes.data()),
                         checked->file.bytes.size());
        if (auto added = c.tree.AddFile(dst, std::move(data), 0644, p.path); !added) {
            errors.push_back(def.file + ":" + std::to_string(p.line) + ": " +
                             added.error().message());
            continue;
        }
        c.packages.push_back("/" + dst);
        k.provided.insert(checked->file.modules.begin(), checked->file.modules.end());
        if (!checked->verified)
            c.warnings.push_back(
                "package " + checked->file.file_name +
                " ships deliberately unverifiable (expect = \"rejected\"): " + checked->reason);
    }
    return k;
}

}  // namespace

Result<ImageContents> ComposeImage(const ImageDefinition& def, const BuildOptions& opts) {
    ImageContents c;
    auto last = std::chrono::steady_clock::now();
    auto phase = [&](const char* name) {
        auto now = std::chrono::steady_clock::now();
        c.timing.emplace_back(name, std::chrono::duration<double>(now - last).count());
        last = now;
    };
    // Every stage runs and reports unless its input is broken (then its findings would be
    // consequences): the definition's problems, then each stage's, all in one run. Nothing is
    // assembled for output once there is an error.
    std::vector<std::string> errors = def.problems;
    auto collect = [&](const Error& e) { errors.push_back(e.message()); };

    // 1. The kernel tree (with the definition's out-of-tree modules staged into it).
    const ModulesTree modules = OpenModulesTree(def, opts, c, errors);

    // The modules_from set ("host": with the unit that loads it at boot).
    ModeWants mode;
    if (modules.resolvable) {
        if (auto m = ModeModuleWants(def.modules_from, modules.tree, opts.host_root)) {
            mode = std::move(*m);
            c.warnings.insert(c.warnings.end(), mode.warnings.begin(), mode.warnings.end());
        } else {
            errors.push_back(ModeError(def, m.error()));
        }
    }

    phase("kernel tree");
    // 2. Units, hive and command line, validated with the parsers peinit uses at boot.
    UnitScan units = ScanUnits(def.unit_dirs, errors, ModeUnits(def.modules_from, mode));
    ImageWants image_wants = CollectWants(def, units, errors);
    std::vector<ModuleWant> wants = std::move(image_wants.wants);
    std::vector<ModuleDeny> deny = std::move(image_wants.deny);

    phase("units, hive, cmdline");
    // 3. Modules: the boot set plus the definition's extras and the modules_from set, with
    //    every dependency.
    wants.insert(wants.end(), mode.wants.begin(), mode.wants.end());
    ModuleClosure closure;
    if (modules.resolvable) {
        if (auto r = ResolveModuleClosure(modules.tree, wants, deny))
            closure = std::move(*r);
        else
            collect(r.error());
    }

    phase("module plan");
    // 4. Programs, [[files]] and the shared-library closure of every ELF among them.
    AddProgramsAndLibraries(def, opts, c, errors, phase);
    phase("library closure");
    // 5. Every service must be able to start: its program is in the image (unless [[files]]
    //    has problems: the program may be what a broken entry would have shipped).
    c.services = units.services.size();
    for (const auto& svc : units.services) {
        if (def.Broken("files")) break;
        const Entry* e = c.tree.Find(svc.path);
        if (e == nullptr || (e->type != EntryType::kFile && e->type != EntryType::kSymlink))
            errors.push_back(svc.origin + ": service \"" + svc.service + "\" runs " + svc.path +
                             ", which is not in the image (ship it with [[files]])");
        else if (e->type == EntryType::kFile && (e->mode & 0111) == 0)
            errors.push_back(svc.origin + ": service \"" + svc.service + "\" runs " + svc.path +
                             ", which is not executable in the image (mode " + Octal(e->mode) +
                             ")");
    }

    // 6. Keys and packages.
    ImageKeys keys = AddKeysAndPackages(def, opts, modules.have_kernel, c, errors);
    const auto& signing = keys.signing;
    const std::set<std::string>& provided = keys.provided;
    const std::string pkg_dir = std::string(kImagePackagesDir).substr(1);
    phase("keys, packages (check)");
    if (!errors.empty()) return Err(Join(errors, "\n"));

    // The provenance record (peinit/record/image.h).
    c.info.generator = "peinit-image " + args::Version();
    c.info.kernel_release = c.kernel.kver;
    c.info.module_mode = ModuleModeName(def.modules_from);
    c.info.key_fingerprint = c.signer;
    c.info.built = IsoUtc(opts.mtime);
    PEINIT_TRY(c.tree.AddFile(std::string(kImageInfoPath).substr(1), c.info.ToJson(), 0644,
                              "the image's provenance record"));

    // 7. Assembly (every check passed): units, hive, module indexes, the image's own package.
    for (const auto& u : units.files) {
        std::string dst = std::string(kImageUnitsDir) + "/" + u.name;
        if (u.host_path.empty())
            PEINIT_TRY(c.tree.AddFile(dst, u.generated_text, 0644, "generated for modules_from"));
        else
            PEINIT_TRY(c.tree.AddHostFile(dst, u.host_path, 0644));
        c.units.push_back(dst);
    }
    if (def.hive) PEINIT_TRY(c.tree.AddHostFile(kImageHivePath, def.hive->value, 0644));
    // The stored plan (peinit/core/stored_plan.h): the boot's plan input planned against the
    // image's own module tree, every answer recorded, signed with the image key.
    std::vector<std::string> reported;  // the hive's and cmdline's problems are reported above
    const PlanInput boot_input = ImagePlanInput(def, units.set, reported);
    RecordedPlan recorded;
    PEINIT_TRY(AddModuleIndexesToTree(
        c.tree, modules.tree, closure, def.loose_modules,
        [&](const std::string& root) -> Result<void> {
            auto db = PEINIT_TRY(KmodDb::Open(root, c.kernel.kver));
            recorded = PEINIT_TRY(RecordPlan(*db, boot_input, root, c.kernel.kver));
            return Ok();
        }));
    const std::string plan_text = recorded.stored.ToToml();
    const std::string plan_sig = PEINIT_TRY(
        SignManifest(std::as_bytes(std::span(plan_text.data(), plan_text.size())), signing->key));
    PEINIT_TRY(c.tree.AddFile(std::string(kStoredPlanPath).substr(1), plan_text, 0644,
                              "the image's stored plan"));
    PEINIT_TRY(c.tree.AddFile(std::string(kStoredPlanSignaturePath).substr(1), plan_sig, 0644,
                              "the stored plan's signature"));
    for (const auto& m : closure.files) c.modules.push_back(m.name);
    phase("units, hive, module indexes (depmod)");
    // Every module of the closure that no pre-built package provides goes into the image's own
    // package(s): nothing is shipped as a loose .ko.
    std::vector<PackModule> to_pack;
    for (const auto& m : closure.files) {
        if (provided.count(NormalizeModuleName(m.name)) != 0) continue;
        to_pack.push_back({m.rel_path, modules.tree.modules_dir + "/" + m.rel_path});
    }
    auto packed = PackImageModules(def.name, c.kernel.kver, to_pack, signing->key, opts.mtime);
    if (!packed) return packed.error();
    for (auto& f : *packed) {
        std::string dst = pkg_dir + "/" + f.file_name;
        std::string data(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
        PEINIT_TRY(c.tree.AddFile(dst, std::move(data), 0644, "the image's module package"));
        c.packages.push_back("/" + dst);
    }
    phase("packages (pack + sign)");
    c.builtin_modules = closure.builtins;
    c.module_set = closure.files;
    for (const auto& w : closure.warnings) c.warnings.push_back("at boot: " + w);
    return c;
}

Result<ImagePlan> PlanImage(const ImageDefinition& def, const BuildOptions& opts) {
    std::vector<std::string> errors = def.problems;
    ImagePlan out;
    if (def.kernel_known) {
        if (auto k = OpenDefinitionKernel(def, opts))
            out.kernel = *k;
        else
            errors.push_back(k.error().message());
    }
    std::unique_ptr<StagedKernelTree> staged;
    KernelTree tree = out.kernel;
    ModeWants mode;
    if (errors.empty()) {
        if (!def.extra_modules.empty()) {
            std::vector<ExtraModule> extra;
            for (const auto& m : def.extra_modules)
                extra.push_back({m.value, def.file + ":" + std::to_string(m.line)});
            staged = PEINIT_TRY(StageExtraModules(out.kernel, extra));
            tree = staged->tree;
        }
        if (auto m = ModeModuleWants(def.modules_from, tree, opts.host_root))
            mode = std::move(*m);
        else
            errors.push_back(ModeError(def, m.error()));
    }
    // The units as peinit reads them at boot: linked, in load order (with the generated one).
    UnitScan units = ScanUnits(def.unit_dirs, errors, ModeUnits(def.modules_from, mode));
    PlanInput input = ImagePlanInput(def, units.set, errors);
    if (!errors.empty()) return Err(Join(errors, "\n"));
    auto db = PEINIT_TRY(KmodDb::Open(tree.module_root, tree.kver));
    out.plan = PEINIT_TRY(BuildPlan(*db, input));
    out.tree_root = tree.module_root;  // paths are shown relative to it, as in the image

    // The image's module set, as the build computes it, with the rule behind each module.
    std::vector<std::string> ignored;  // the hive's and cmdline's problems are reported above
    ImageWants wants = CollectWants(def, units, ignored);
    wants.wants.insert(wants.wants.end(), mode.wants.begin(), mode.wants.end());
    out.warnings = mode.warnings;
    // What the build would refuse (a module nothing provides) is in the plan's errors too.
    if (auto closure = ResolveModuleClosure(tree, wants.wants))
        out.module_set = std::move(closure->files);
    else
        out.warnings.push_back("module set: " + closure.error().message());
    return out;
}

Result<ImageContents> BuildImage(const ImageDefinition& def, const BuildOptions& opts,
                                 Compression compression, const std::string& output) {
    ImageContents c = PEINIT_TRY(ComposeImage(def, opts));
    // An installed kernel's configuration says which initramfs compressions it can unpack; an
    // image it cannot unpack would only fail at boot ("junk in compressed archive").
    const char* option = compression == Compression::kZstd   ? "CONFIG_RD_ZSTD"
                         : compression == Compression::kGzip ? "CONFIG_RD_GZIP"
                                                             : nullptr;
    if (option != nullptr && !c.kernel.config.empty() &&
        KernelConfigValue(c.kernel, option) != "y")
        return Err(c.kernel.config + ": kernel " + c.kernel.kver + " cannot unpack a " +
                   CompressionName(compression) + " initramfs (" + option +
                   " is not set); use compression = \"none\" or one it has");
    WriteOptions w;
    w.compression = compression;
    w.mtime = opts.mtime;
    auto start = std::chrono::steady_clock::now();
    PEINIT_TRY(WriteCpio(c.tree, output, w));
    c.timing.emplace_back(
        std::string("write (") + CompressionName(compression) + ")",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return c;
}

}  // namespace peinit::image
