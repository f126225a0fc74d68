// peinitctl: status and runtime API of peinit (spec §7, R-20, R-21; man page peinitctl(8), JSON
// schema peinit/tools/STATUS-JSON.md).
//
// Exit codes: 0 everything as configured (lock locked: 0); 1 a problem (something failed, or the
// lock state differs from what the policy asked; lock: not locked); 2 usage error, or nothing
// could be read at all.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>
#include <functional>
#include <span>
#include <iostream>
#include <string>
#include <vector>

#include "peinit/core/args.h"
#include "peinit/core/status.h"
#include "peinit/sys/linux_kernel.h"
#include "peinit/sys/package_format.h"
#include "peinit/sys/status_sources.h"
#include "peinit/tpm/attest.h"
#include "peinit/tpm/event_log_read.h"

namespace {

using peinit::Status;
using peinit::args::Arity;
using peinit::args::OptionSpec;

constexpr const char* kUsage =
    "usage: peinitctl [COMMAND] [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  status [--json] [--root DIR]         lock state, policy and boot-time modules (the\n"
    "                                       default when no command is given)\n"
    "  lock [--fallback]                    lock module loading now (needs SeTcbPrivilege)\n"
    "  modules [--failed] [--json] [--root DIR]  the module stage, sorted by start time\n"
    "  blame [--json] [--root DIR]          the modules sorted by load time, longest first\n"
    "  timeline [--svg FILE] [--root DIR]   the module stage on a time axis\n"
    "  attest --nonce HEX [--pcrs LIST] [--out FILE] [--export-dir DIR]\n"
    "                                       a TPM quote of the measured boot for peinit-verify\n"
    "  attest --enroll                      the attestation key to enrol in a verifier\n"
    "\n"
    "`peinitctl COMMAND --help` describes each command; `peinitctl --version` prints the\n"
    "version. Exit status: 0 as configured, 1 a problem (failure, or a lock state other than\n"
    "the policy asked), 2 usage error or nothing readable.\n";

constexpr const char* kStatusUsage =
    "usage: peinitctl status [--json] [--root DIR]\n"
    "\n"
    "Shows, without privilege, whether module loading is locked and how (module_lockdown\n"
    "syscall or the kernel.modules_disabled fallback), who set the lock (pid, comm), its\n"
    "trigger and when, sig_enforce, the lockdown LSM level, kernel.modprobe, the effective\n"
    "policy (hive state, AutoLoadPolicy, allow-list, blacklist with sources) and every\n"
    "boot-time module's outcome and duration. Problems are listed first.\n"
    "\n"
    "  --json      machine-readable output, schema version 1 (peinitctl(8), STATUS-JSON.md)\n"
    "  --root DIR  read the record from DIR/run/peinit and the kernel facts from DIR/proc/sys,\n"
    "              DIR/sys and DIR/dev/kmsg instead of the running system\n"
    "\n"
    "Exit status: 0 as configured, 1 a problem, 2 usage error or nothing readable.\n";

constexpr const char* kLockUsage =
    "usage: peinitctl lock [--fallback]\n"
    "\n"
    "Locks kernel module loading until reboot: module_lockdown(LOCK) with trigger\n"
    "runtime-syscall, then reads the flag back. Needs SeTcbPrivilege (CAP_SYS_ADMIN).\n"
    "On a kernel without the syscall nothing is changed unless --fallback is given:\n"
    "\n"
    "  --fallback  on an unpatched kernel, set kernel.modules_disabled=1 and empty\n"
    "              kernel.modprobe instead (needs root)\n"
    "\n"
    "Exit status: 0 locked, 1 refused or failed (not locked), 2 usage error.\n";

constexpr const char* kModulesUsage =
    "usage: peinitctl modules [--failed] [--json] [--root DIR]\n"
    "\n"
    "The boot-time module stage as a table sorted by start time: start (ms from the start of\n"
    "the stage), module, outcome, duration (ms), the unit that asked for it, errno and reason.\n"
    "\n"
    "  --failed    only modules that did not load (failed, missing, skipped, blacklisted)\n"
    "  --json      machine-readable output (schema version 1)\n"
    "  --root DIR  read DIR/run/peinit/modules.json\n"
    "\n"
    "Exit status: 0 no module failed, 1 a module failed or is missing, 2 usage error or no\n"
    "record.\n";

constexpr const char* kBlameUsage =
    "usage: peinitctl blame [--json] [--root DIR]\n"
    "\n"
    "The boot-time modules whose load was attempted (loaded, already loaded, failed), sorted\n"
    "by how long each took to load, longest first, like `systemd-analyze blame`: duration (ms)\n"
    "and module, with the outcome and reason after a module that did not load.\n"
    "\n"
    "  --json      machine-readable output (schema version 1): the module objects of\n"
    "              `modules --json`, in this order\n"
    "  --root DIR  read DIR/run/peinit/modules.json\n"
    "\n"
    "Exit status: 0 no module failed, 1 a module failed or is missing, 2 usage error or no\n"
    "record.\n";

constexpr const char* kTimelineUsage =
    "usage: peinitctl timeline [--svg FILE] [--root DIR]\n"
    "\n"
    "The boot-time module stage on a time axis: one row per module, '.' while it waited after\n"
    "its dependencies were live, '#' while it loaded.\n"
    "\n"
    "  --svg FILE  write an SVG chart instead (like systemd-analyze plot): one bar per module\n"
    "              coloured by outcome, dependency waits, legend and time axis\n"
    "  --root DIR  read DIR/run/peinit/modules.json\n"
    "\n"
    "Exit status: 0 written, 1 the file could not be written, 2 usage error or no record.\n";

constexpr const char* kAttestUsage =
    "usage: peinitctl attest --nonce HEX [--pcrs LIST] [--out FILE] [--export-dir DIR]\n"
    "                        [--log FILE]\n"
    "       peinitctl attest --enroll\n"
    "\n"
    "Quotes the PCRs that peinit's records in the TPM event log extend (sha256 bank) with the\n"
    "verifier's nonce, signed by the attestation key (AK), and prints the attestation bundle\n"
    "(JSON: nonce, AK, PCR values, quote, the log) that peinit-verify(1) checks on another\n"
    "machine. No privilege beyond access to the TPM (/dev/tpmrm0) is needed. The AK is a\n"
    "primary key of the endorsement hierarchy from a fixed template: the same TPM gives the\n"
    "same key every time. $PEINIT_TPM_TCTI chooses another TPM (\"swtpm:port=2321\").\n"
    "\n"
    "  --nonce HEX       the verifier's challenge, 1-64 bytes in hex (the quote's extraData)\n"
    "  --pcrs LIST       the PCRs to quote, e.g. 13,11 (default: those of peinit's records)\n"
    "  --out FILE        write the bundle to FILE instead of stdout\n"
    "  --export-dir DIR  also write quote.msg, quote.sig, quote.pcrs and ak.pem for\n"
    "                    tpm2_checkquote -u ak.pem -m quote.msg -s quote.sig -f quote.pcrs\n"
    "                    -g sha256 -q NONCE\n"
    "  --log FILE        the event log (default /run/log/systemd/tpm2-measure.log)\n"
    "  --enroll          print the AK's public key (PEM) and TPM name as the [attestation_key]\n"
    "                    table of a peinit-verify reference, and nothing else\n"
    "\n"
    "Exit status: 0 bundle written, 1 the TPM or a file failed, 2 usage error, 3 not measured\n"
    "(no TPM, or no peinit record in the log): a bundle saying so is still written.\n";

struct Options {
    bool json = false;
    bool failed = false;
    bool fallback = false;
    std::string root = "/";
    std::string svg;
    // attest
    std::string nonce, pcrs, out, export_dir, log;
    bool enroll = false;
};

constexpr OptionSpec kJson{"--json"}, kFailed{"--failed"}, kFallback{"--fallback"},
    kRoot{"--root", Arity::kValue}, kSvg{"--svg", Arity::kValue},
    kNonce{"--nonce", Arity::kValue}, kPcrs{"--pcrs", Arity::kValue}, kOut{"--out", Arity::kValue},
    kExportDir{"--export-dir", Arity::kValue}, kLog{"--log", Arity::kValue}, kEnroll{"--enroll"};

Status LoadStatus(const Options& o) {
    peinit::LinuxKernel kernel;
    return peinit::BuildStatus(peinit::ReadStatusInputs(kernel, o.root));
}

int StatusCommand(const Options& o) {
    Status s = LoadStatus(o);
    std::cout << (o.json ? peinit::RenderStatusJson(s) : peinit::RenderStatusText(s));
    return s.ExitCode();
}

// The module table of `modules` and `blame`: exit 2 without a record, 1 when a module failed.
int ModuleListing(const char* command, const Options& o,
                  const std::function<std::string(const Status&)>& render) {
    Status s = LoadStatus(o);
    if (!s.modules_present && !o.json) {
        std::cerr << "peinitctl " << command << ": no module record under " << o.root
                  << "run/peinit (not booted by peinit?)\n";
        return 2;
    }
    std::cout << render(s);
    if (!s.modules_present) return 2;
    for (const auto& m : s.modules) {
        if (m.IsProblem()) return 1;
    }
    return s.modules_error.empty() ? 0 : 1;
}

int ModulesCommand(const Options& o) {
    return ModuleListing("modules", o, [&](const Status& s) {
        return o.json ? peinit::RenderModulesJson(s, o.failed)
                      : peinit::RenderModulesText(s, o.failed);
    });
}

int BlameCommand(const Options& o) {
    return ModuleListing("blame", o, [&](const Status& s) {
        return o.json ? peinit::RenderBlameJson(s) : peinit::RenderBlameText(s);
    });
}

int TimelineCommand(const Options& o) {
    Status s = LoadStatus(o);
    if (!s.modules_present) {
        std::cerr << "peinitctl timeline: no module record (not booted by peinit?)\n";
        return 2;
    }
    if (o.svg.empty()) {
        std::cout << peinit::RenderTimelineText(s);
        return 0;
    }
    std::string svg = peinit::RenderTimelineSvg(s);
    std::ostream* out = &std::cout;
    std::ofstream file;
    if (o.svg != "-") {
        file.open(o.svg, std::ios::binary | std::ios::trunc);
        if (!file) {
            std::cerr << "peinitctl timeline: cannot write " << o.svg << ": "
                      << std::strerror(errno) << "\n";
            return 1;
        }
        out = &file;
    }
    *out << svg;
    out->flush();
    if (!*out) {
        std::cerr << "peinitctl timeline: cannot write " << o.svg << "\n";
        return 1;
    }
    return 0;
}

struct Command {
    const char* name;
    const char* usage;
    std::vector<OptionSpec> options;
    int (*run)(const Options&);
};

int LockCommand(const Options& o) {
    peinit::LinuxKernel kernel;
    return peinit::RunRuntimeLock(kernel, o.fallback, std::cout, std::cerr);
}

constexpr int kExitNotMeasured = 3;

bool WriteFile(const std::string& path, const std::string& data, std::string& error) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = "cannot write " + path + ": " + std::strerror(errno);
        return false;
    }
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = "cannot write " + path + ": " + std::strerror(errno);
            close(fd);
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    if (close(fd) != 0) {
        error = "cannot write " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

std::optional<peinit::tpm::Bytes> ParseHex(std::string hex) {
    if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    peinit::tpm::Bytes out(hex.size() / 2);
    if (!peinit::HexDecode(hex, reinterpret_cast<std::byte*>(out.data()), out.size())) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::vector<int>> ParsePcrList(const std::string& text) {
    std::vector<int> pcrs;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t comma = text.find(',', pos);
        if (comma == std::string::npos) comma = text.size();
        std::string item = text.substr(pos, comma - pos);
        if (item.empty() || item.size() > 2 ||
            item.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        int p = std::stoi(item);
        if (p > 23) return std::nullopt;
        if (std::find(pcrs.begin(), pcrs.end(), p) == pcrs.end()) pcrs.push_back(p);
        pos = comma + 1;
    }
    std::sort(pcrs.begin(), pcrs.end());
    return pcrs;
}

// Writes the bundle to --out or stdout; false (message on stderr) when the file failed.
bool EmitBundle(const Options& o, const std::string& bundle) {
    if (o.out.empty()) {
        std::cout << bundle << std::flush;
        return true;
    }
    std::string error;
    if (!WriteFile(o.out, bundle, error)) {
        std::cerr << "peinitctl attest: " << error << "\n";
        return false;
    }
    return true;
}

int NotMeasured(const Options& o, const peinit::tpm::Bytes& nonce, const std::string& reason) {
    std::cerr << "peinitctl attest: not measured: " << reason << "\n";
    if (!EmitBundle(o, peinit::tpm::NotMeasuredBundleJson(nonce, reason))) return 1;
    return kExitNotMeasured;
}

// tpm2-tss logs its own errors to stderr unless told otherwise; peinitctl reports them once,
// in its own words (as systemd does, unless $TSS2_LOG asks for them).
peinit::Result<peinit::tpm::EsysContext> OpenTpm() {
    setenv("TSS2_LOG", "all+none", 0);
    return peinit::tpm::EsysContext::Open(peinit::tpm::TctiFromEnvironment());
}

int Enroll() {
    auto tpm = OpenTpm();
    if (!tpm) {
        std::cerr << "peinitctl attest --enroll: no TPM (" << tpm.error().message() << ")\n";
        return kExitNotMeasured;
    }
    auto ak = peinit::tpm::CreateAttestationKey(*tpm);
    if (!ak) {
        std::cerr << "peinitctl attest --enroll: " << ak.error().message() << "\n";
        return 1;
    }
    std::cout << "# The attestation key of this machine's TPM (peinitctl attest --enroll):\n"
                 "# the [attestation_key] table of a peinit-verify reference.\n"
                 "[attestation_key]\n"
              << "name = \"" << peinit::tpm::Hex(ak->name) << "\"\n"
              << "public_pem = \"\"\"\n" << ak->Pem() << "\"\"\"\n";
    return 0;
}

int AttestCommand(const Options& o) {
    if (o.enroll) return Enroll();
    constexpr const char* prog = "peinitctl attest";
    if (o.nonce.empty()) {
        return peinit::args::UsageError(prog, peinit::args::Required("--nonce"), kAttestUsage);
    }
    auto nonce = ParseHex(o.nonce);
    if (!nonce || nonce->size() > 64) {
        return peinit::args::UsageError(
            prog, "--nonce: \"" + o.nonce + "\" is not 1 to 64 bytes in hex", kAttestUsage);
    }
    std::optional<std::vector<int>> pcrs;
    if (!o.pcrs.empty()) {
        pcrs = ParsePcrList(o.pcrs);
        if (!pcrs) {
            return peinit::args::UsageError(
                prog, "--pcrs: \"" + o.pcrs + "\" is not a list of PCRs 0-23 (\"13,11\")",
                kAttestUsage);
        }
    }
    auto tpm = OpenTpm();
    if (!tpm) return NotMeasured(o, *nonce, "no TPM (" + tpm.error().message() + ")");

    // The log's writers append under an exclusive flock (systemd's protocol): holding a shared
    // one from the read to the quote keeps the log and the PCRs in step.
    std::string log_path = o.log.empty() ? peinit::tpm::kEventLogPath : o.log;
    std::string log_text;
    int fd = open(log_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        std::cerr << prog << ": cannot open " << log_path << ": " << std::strerror(errno) << "\n";
        return 1;
    }
    struct Closer {
        int fd;
        ~Closer() {
            if (fd >= 0) close(fd);
        }
    } closer{fd};
    if (fd >= 0) {
        while (flock(fd, LOCK_SH) != 0 && errno == EINTR) {
        }
        char buf[65536];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                std::cerr << prog << ": cannot read " << log_path << ": " << std::strerror(errno)
                          << "\n";
                return 1;
            }
            log_text.append(buf, static_cast<std::size_t>(n));
        }
    }
    if (!pcrs) {
        auto log = peinit::tpm::ParseEventLog(log_text);
        pcrs = peinit::tpm::PcrsOf(log, peinit::tpm::kPeinitContentType);
        if (pcrs->empty()) {
            return NotMeasured(o, *nonce,
                               fd < 0 ? "no event log at " + log_path
                                      : "no peinit record in " + log_path);
        }
    }
    auto quote = peinit::tpm::TakeQuote(*tpm, *pcrs, *nonce);
    if (!quote) {
        std::cerr << prog << ": " << quote.error().message() << "\n";
        return 1;
    }
    if (!o.export_dir.empty()) {
        if (mkdir(o.export_dir.c_str(), 0755) != 0 && errno != EEXIST) {
            std::cerr << prog << ": cannot create " << o.export_dir << ": " << std::strerror(errno)
                      << "\n";
            return 1;
        }
        auto str = [](const peinit::tpm::Bytes& b) { return std::string(b.begin(), b.end()); };
        std::string error;
        const std::string dir = o.export_dir + "/";
        if (!WriteFile(dir + "quote.msg", str(quote->message), error) ||
            !WriteFile(dir + "quote.sig", str(quote->signature), error) ||
            !WriteFile(dir + "quote.pcrs", str(peinit::tpm::CheckquotePcrsFile(quote->pcrs)), error) ||
            !WriteFile(dir + "ak.pem", quote->ak.Pem(), error) ||
            !WriteFile(dir + "nonce", peinit::tpm::Hex(*nonce) + "\n", error)) {
            std::cerr << prog << ": " << error << "\n";
            return 1;
        }
    }
    return EmitBundle(o, peinit::tpm::BundleJson(*quote, *nonce, log_text, log_path)) ? 0 : 1;
}

const Command kCommands[] = {
    {"status", kStatusUsage, {kJson, kRoot}, StatusCommand},
    {"lock", kLockUsage, {kFallback}, LockCommand},
    {"modules", kModulesUsage, {kFailed, kJson, kRoot}, ModulesCommand},
    {"blame", kBlameUsage, {kJson, kRoot}, BlameCommand},
    {"timeline", kTimelineUsage, {kSvg, kRoot}, TimelineCommand},
    {"attest", kAttestUsage, {kNonce, kPcrs, kOut, kExportDir, kLog, kEnroll}, AttestCommand},
};

int RunCommand(const Command& c, std::span<char* const> argv) {
    std::string prog = std::string("peinitctl ") + c.name;
    auto parsed = peinit::args::Parse(argv, c.options);
    if (!parsed) return peinit::args::UsageError(prog, parsed.error().message(), c.usage);
    if (parsed->help) {
        std::cout << c.usage;
        return 0;
    }
    if (!parsed->operands.empty()) {
        return peinit::args::UsageError(
            prog, peinit::args::UnexpectedOperand(parsed->operands[0]), c.usage);
    }
    Options o;
    o.json = parsed->Has("--json");
    o.failed = parsed->Has("--failed");
    o.fallback = parsed->Has("--fallback");
    o.root = parsed->Value("--root").value_or("/");
    o.svg = parsed->Value("--svg").value_or("");
    o.nonce = parsed->Value("--nonce").value_or("");
    o.pcrs = parsed->Value("--pcrs").value_or("");
    o.out = parsed->Value("--out").value_or("");
    o.export_dir = parsed->Value("--export-dir").value_or("");
    o.log = parsed->Value("--log").value_or("");
    o.enroll = parsed->Has("--enroll");
    if (o.root.back() != '/') o.root += '/';
    return c.run(o);
}

int Main(int argc, char** argv) {
    // No command: `status`, as systemctl lists units.
    if (argc < 2) return RunCommand(kCommands[0], {});
    auto first = peinit::args::ReadFirstArgument(argv[1]);
    switch (first.kind) {
        case peinit::args::FirstArgument::kHelp:
            std::cout << kUsage;
            return 0;
        case peinit::args::FirstArgument::kVersion:
            std::cout << peinit::args::VersionText("peinitctl");
            return 0;
        case peinit::args::FirstArgument::kError:
            return peinit::args::UsageError("peinitctl", first.text, kUsage);
        case peinit::args::FirstArgument::kCommand:
            break;
    }
    for (const auto& c : kCommands) {
        if (first.text == c.name) return RunCommand(c, {argv + 2, argv + argc});
    }
    return peinit::args::UsageError("peinitctl", peinit::args::UnknownCommand(first.text), kUsage);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return Main(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "peinitctl: internal error: " << e.what() << "\n";
        return 2;
    } catch (...) {
        std::cerr << "peinitctl: internal error\n";
        return 2;
    }
}
