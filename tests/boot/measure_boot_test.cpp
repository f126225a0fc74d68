// Boot tests of measured boot (R-33, issue 25): the image of tests/boot/images/measure-locked
// with a signed package of its boot modules, booted on our kernel
// - with a private swtpm as the guest's TPM: the guest prints the user-space event log
//   (/run/log/systemd/tpm2-measure.log), PCR 13 as the kernel reads it from the TPM (sysfs
//   pcr-sha256), peinitctl status --json and /run/peinit/measurements.json on the results
//   channel; the host replays the log's digests and checks they give the PCR, that each digest
//   is SHA-256 of its event string, and the events: image, policy, each module, module-set,
//   lock (locked by syscall);
// - without a TPM: the boot locks as always and status says "not measured: no TPM".
// One gtest test = one boot = one ctest test.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "image_boot.h"
#include "initramfs/image_builder.h"
#include "initramfs/image_packages.h"
#include "realroot_disk.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/tpm/attest.h"
#include "peinit/tpm/tpm.h"
#include "tests/json_at.h"

namespace fs = std::filesystem;
using peinit::testing::ReadFile;
using peinit::testing::Section;
using peinit::testing::TestJson;

namespace {

struct Boot {
    std::map<std::string, Section> sections;
    std::string console;
    std::string kver;
    std::string signer;  // fingerprint of the key the boot package is signed with
};

// A fresh challenge per boot, as a verifier sends one (hex).
std::string RandomNonce() {
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    unsigned char bytes[16] = {};
    urandom.read(reinterpret_cast<char*>(bytes), sizeof bytes);
    std::string hex;
    for (unsigned char b : bytes) {
        static const char* digits = "0123456789abcdef";
        hex += digits[b >> 4];
        hex += digits[b & 15];
    }
    return hex;
}

void ReplaceInFile(const fs::path& file, const std::string& from, const std::string& to) {
    std::string text = ReadFile(file.string());
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << file;
    text.replace(at, from.size(), to);
    std::ofstream(file) << text;
}

Boot BootMeasureImage(const std::string& name, bool tpm, const std::string& nonce = "00",
                      bool lock_after_boot = true) {
    Boot out;
    const std::string kernel_dir = peinit::testing::KernelDirFor("peinit");
    if (kernel_dir.empty()) {
        ADD_FAILURE() << "PEINIT_KERNEL_DIR is empty: run kernel/build and configure with "
                         "-DPEINIT_KERNEL_DIR";
        return out;
    }
    out.kver = peinit::testing::KernelRelease(kernel_dir);
    peinit::testing::ScratchDir scratch;
    const fs::path work = scratch.path;
    const fs::path dir = work / "image";
    fs::copy(fs::path(PEINIT_SOURCE_DIR) / "tests/boot/images/measure-locked", dir,
             fs::copy_options::recursive);
    ReplaceInFile(dir / "units/boot.toml", "@NONCE@", nonce);
    if (!lock_after_boot) ReplaceInFile(dir / "hive.toml", "LockAfterBoot = true", "LockAfterBoot = false");
    const std::string added = peinit::testing::AddSignedBootPackage(
        dir.string(), work.string(), kernel_dir, {"loop", "bridge", "stp", "llc"},
        PEINIT_PKG_TOOL);
    EXPECT_EQ(added, "");
    auto key = peinit::ParsePublicKeyPem(ReadFile((work / "keys/package-signing.pub").string()));
    EXPECT_TRUE(key) << key.error().message();
    if (key) out.signer = key->fingerprint;

    peinit::testing::ImageBoot boot;
    boot.name = name;
    boot.image_dir = dir.string();
    boot.kernel_dir = kernel_dir;
    boot.tpm = tpm;
    boot.timeout = std::chrono::seconds(400);
    auto r = peinit::testing::BuildAndBoot(boot);
    out.console = peinit::testing::Explain(r) + "\n--- swtpm ---\n" + r.qemu.swtpm_log;
    EXPECT_TRUE(r.qemu.clean_exit()) << "the guest did not power off cleanly\n" << out.console;

    out.sections = peinit::testing::ResultSections(r.qemu.result_lines(), "MEASURE");
    return out;
}

// What the host's verifier makes of the quote the guest printed: the bundle and the reference
// (the AK the guest enrolled, the boot package's signer, the module set and the lock the image
// asks for) written to a scratch directory, then `peinit-verify`. `nonce` is the challenge the
// verifier expects. Output and exit code.
struct Verdict {
    int rc = -1;
    std::string output;
};

// The reference the image of BootMeasureImage asks for: the boot package's signer, exactly its
// four modules, locked by syscall.
std::string MeasureImageReference(const Boot& boot) {
    return "[modules]\nsigners = [\"" + boot.signer +
           "\"]\nallowed = [\"bridge\", \"llc\", \"loop\", \"stp\"]\nexact = true\n\n"
           "[lock]\nrequired = true\nmechanisms = [\"syscall\"]\n\n"
           "[policy]\nlock_after_boot = true\n";
}

// peinit-verify on the bundle the guest printed, against the AK the guest enrolled plus
// `reference` (default: MeasureImageReference).
Verdict VerifyOnHost(const Boot& boot, const std::string& nonce, const fs::path& dir,
                     const std::string& reference = "") {
    std::ofstream(dir / "bundle.json") << boot.sections.at("bundle").Text();
    std::ofstream(dir / "reference.toml")
        << boot.sections.at("enroll").Text() << "\n"
        << (reference.empty() ? MeasureImageReference(boot) : reference);
    Verdict v;
    v.rc = peinit::testing::Sh(
        peinit::testing::ShellQuote(PEINIT_VERIFY_TOOL) + " --bundle " +
            peinit::testing::ShellQuote((dir / "bundle.json").string()) + " --reference " +
            peinit::testing::ShellQuote((dir / "reference.toml").string()) + " --nonce " + nonce,
        v.output);
    return v;
}

std::string Unhex(const std::string& hex) {
    std::string out(hex.size() / 2, '\0');
    EXPECT_TRUE(peinit::HexDecode(hex, reinterpret_cast<std::byte*>(out.data()), out.size()))
        << hex;
    return out;
}

// tpm2-tools' own check of the same quote (a second, independent verifier): the files
// `tpm2_checkquote` reads, rebuilt from the bundle.
Verdict CheckquoteOnHost(const Boot& boot, const std::string& nonce, const fs::path& dir) {
    const std::string text = boot.sections.at("bundle").Text();
    TestJson bundle(text);
    std::ofstream(dir / "quote.msg", std::ios::binary) << Unhex(bundle.Str("quote.message"));
    std::ofstream(dir / "quote.sig", std::ios::binary) << Unhex(bundle.Str("quote.signature"));
    std::ofstream(dir / "ak.pem") << bundle.Str("ak.public_pem");
    EXPECT_TRUE(bundle.At("pcrs").IsObject()) << text;
    std::vector<std::pair<int, peinit::tpm::PcrValue>> pcrs;
    for (const std::string& index : bundle.At("pcrs").Keys()) {
        peinit::tpm::PcrValue pcr{};
        const std::string bytes = Unhex(bundle.Str("pcrs." + index));
        std::memcpy(pcr.data(), bytes.data(), std::min(bytes.size(), pcr.size()));
        pcrs.emplace_back(std::stoi(index), pcr);
    }
    const auto file = peinit::tpm::CheckquotePcrsFile(pcrs);
    std::ofstream(dir / "quote.pcrs", std::ios::binary)
        .write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
    Verdict v;
    const auto q = [&](const char* name) { return peinit::testing::ShellQuote((dir / name).string()); };
    v.rc = peinit::testing::Sh("tpm2_checkquote -u " + q("ak.pem") + " -m " + q("quote.msg") +
                                   " -s " + q("quote.sig") + " -f " + q("quote.pcrs") +
                                   " -g sha256 -q " + nonce,
                               v.output);
    return v;
}

// Replays the guest's user-space event log (the "log" section): each record is 0x1E, one JSON
// object and "\n" (the channel's lines are the records), in PCR 13, peinit's, with one SHA-256
// digest that is the hash of its event string. Returns the PCR value the records extend to from
// zero; `events` gets each record's parsed event string.
peinit::tpm::Digest ReplayLog(const Section& log, std::vector<TestJson>& events) {
    peinit::tpm::Digest pcr{};
    for (const std::string& line : log.lines) {
        if (line.empty() || line[0] != '\x1e') {
            ADD_FAILURE() << "not a JSON-SEQ record: " << line;
            continue;
        }
        TestJson record(line.substr(1));
        EXPECT_EQ(record.Int("pcr"), 13) << line;
        EXPECT_EQ(record.Str("content_type"), "peinit");
        const std::string s = record.Str("content.string");
        if (!record.At("digests").IsArray() || record.Size("digests") != 1u) {
            ADD_FAILURE() << "not one digest: " << line;
            continue;
        }
        EXPECT_EQ(record.Str("digests.0.hashAlg"), "sha256");
        EXPECT_EQ(record.Str("digests.0.digest"), peinit::tpm::Hex(peinit::tpm::Sha256(s)))
            << "digest != SHA-256(S)";
        pcr = peinit::tpm::ExtendDigest(pcr, peinit::tpm::Sha256(s));
        TestJson event(s);
        EXPECT_EQ(record.Str("content.eventType"), "peinit-" + event.Str("event"));
        EXPECT_EQ(event.Int("v"), 1);
        events.push_back(std::move(event));
    }
    return pcr;
}

// The PCR as the guest's kernel read it from the TPM (the "pcr" section: sysfs pcr-sha256),
// lower case; "" when the section is not one line.
std::string PcrRead(const Section& pcr) {
    if (pcr.lines.size() != 1u) return "";
    std::string read = pcr.lines[0];
    std::transform(read.begin(), read.end(), read.begin(), ::tolower);
    return read;
}

TEST(MeasureBoot, LockedBootReplaysToThePcr) {
    const std::string nonce = RandomNonce();
    Boot boot = BootMeasureImage("measure-locked", true, nonce);
    const Section& log = boot.sections["log"];
    ASSERT_EQ(log.rc, 0) << boot.console;

    std::vector<TestJson> events;
    const peinit::tpm::Digest pcr = ReplayLog(log, events);

    // The PCR as the guest's kernel read it from the TPM.
    const Section& pcr_section = boot.sections["pcr"];
    ASSERT_EQ(pcr_section.rc, 0) << boot.console;
    EXPECT_EQ(PcrRead(pcr_section), peinit::tpm::Hex(pcr)) << "the log does not replay to PCR 13\n" << log.Text();

    // image, policy, the modules (any order), module-set, lock.
    ASSERT_GE(events.size(), 4u) << log.Text();
    std::vector<std::string> names;
    for (const auto& e : events) names.push_back(e.Str("event"));
    EXPECT_EQ(names.front(), "image");
    EXPECT_EQ(names[1], "policy");
    EXPECT_EQ(names[names.size() - 2], "module-set");
    EXPECT_EQ(names.back(), "lock");
    EXPECT_EQ(events[0].Str("kernel_release"), boot.kver);
    EXPECT_EQ(events[0].Str("image_sha256").size(), 64u);
    EXPECT_EQ(events[1].Bool("lock_after_boot"), true);
    EXPECT_EQ(events[1].Str("autoload_policy"), "enabled");
    EXPECT_EQ(events[1].Str("hive_sha256").size(), 64u);
    std::set<std::string> modules;
    std::vector<std::string> lines;
    std::string signer;
    for (std::size_t i = 2; i + 2 < events.size(); ++i) {
        EXPECT_EQ(names[i], "module");
        const std::string m = events[i].Str("name");
        modules.insert(m);
        EXPECT_EQ(events[i].Str("package"), "boot.pkg") << m;
        if (signer.empty()) signer = events[i].Str("signer");
        EXPECT_EQ(events[i].Str("signer"), signer) << m;
        lines.push_back(m + " " + events[i].Str("sha256"));
    }
    EXPECT_EQ(signer.size(), 64u);
    EXPECT_EQ(modules, (std::set<std::string>{"loop", "bridge", "stp", "llc"})) << log.Text();
    std::sort(lines.begin(), lines.end());
    std::string set_text;
    for (const auto& l : lines) set_text += l + "\n";
    const TestJson& set = events[events.size() - 2];
    EXPECT_TRUE(set.At("count").IsInt());
    EXPECT_EQ(set.Int("count"), static_cast<int64_t>(lines.size()));
    EXPECT_EQ(set.Str("sha256"), peinit::tpm::Hex(peinit::tpm::Sha256(set_text)));
    const TestJson& lock = events.back();
    EXPECT_EQ(lock.Bool("requested"), true);
    EXPECT_EQ(lock.Bool("locked"), true);
    EXPECT_EQ(lock.Str("mechanism"), "syscall");
    EXPECT_EQ(lock.Str("trigger"), "registry");

    // peinitctl's view.
    TestJson status(boot.sections["status"].Text());
    EXPECT_EQ(status.Str("measurement.state"), "measured");
    EXPECT_EQ(status.Int("measurement.pcr"), 13);
    EXPECT_EQ(status.Int("measurement.events"), static_cast<int64_t>(events.size()));
    EXPECT_EQ(status.Str("measurement.module_set_sha256"), set.Str("sha256"));
    EXPECT_EQ(status.Bool("lock.locked"), true) << boot.sections["status"].Text();
}

// The posture verified on the host from what the guest printed: the quote over the verifier's
// nonce, signed by the AK the guest enrolled, its PCR 13 equal to the replayed log, and the log
// as the reference wants it: locked by syscall, exactly the image's modules, all from the
// image's signer. tpm2_checkquote agrees on the quote; a nonce from another challenge and a
// reference that does not allow one of the modules are deviations (R-34).
TEST(MeasureBoot, HostVerifierVerifiesTheGuestsQuote) {
    const std::string nonce = RandomNonce();
    Boot boot = BootMeasureImage("measure-verify", true, nonce);
    ASSERT_EQ(boot.sections["enroll"].rc, 0) << boot.console;
    ASSERT_EQ(boot.sections["bundle"].rc, 0) << boot.console;
    peinit::testing::ScratchDir scratch;

    Verdict good = VerifyOnHost(boot, nonce, fs::path(scratch.path));
    EXPECT_EQ(good.rc, 0) << good.output;
    EXPECT_NE(good.output.find("posture verified: locked by syscall, 4 modules, signed by " +
                               boot.signer.substr(0, 16)),
              std::string::npos)
        << good.output;

    Verdict independent = CheckquoteOnHost(boot, nonce, fs::path(scratch.path));
    EXPECT_EQ(independent.rc, 0) << independent.output;

    // The same quote offered for another challenge: replayed, refused.
    const std::string other = RandomNonce();
    Verdict replayed = VerifyOnHost(boot, other, fs::path(scratch.path));
    EXPECT_EQ(replayed.rc, 1) << replayed.output;
    EXPECT_NE(replayed.output.find("is not the challenge " + other), std::string::npos)
        << replayed.output;
    EXPECT_NE(CheckquoteOnHost(boot, other, fs::path(scratch.path)).rc, 0);

    // A reference that allows only three of the four modules: the fourth is a deviation.
    ReplaceInFile(fs::path(scratch.path) / "reference.toml", "\"loop\", ", "");
    Verdict stranger = {};
    stranger.rc = peinit::testing::Sh(
        peinit::testing::ShellQuote(PEINIT_VERIFY_TOOL) + " --bundle " +
            peinit::testing::ShellQuote((fs::path(scratch.path) / "bundle.json").string()) +
            " --reference " + peinit::testing::ShellQuote((fs::path(scratch.path) / "reference.toml").string()) +
            " --nonce " + nonce,
        stranger.output);
    EXPECT_EQ(stranger.rc, 1) << stranger.output;
    EXPECT_NE(stranger.output.find("module loop"), std::string::npos) << stranger.output;
    EXPECT_NE(stranger.output.find("posture NOT verified"), std::string::npos) << stranger.output;
}

// LockAfterBoot=false: the boot is measured truthfully, and a verifier whose reference requires
// the lock reports that it was not requested and not applied.
TEST(MeasureBoot, UnlockedBootIsADeviation) {
    const std::string nonce = RandomNonce();
    Boot boot = BootMeasureImage("measure-unlocked", true, nonce, /*lock_after_boot=*/false);
    ASSERT_EQ(boot.sections["bundle"].rc, 0) << boot.console;
    peinit::testing::ScratchDir scratch;
    Verdict v = VerifyOnHost(boot, nonce, fs::path(scratch.path));
    EXPECT_EQ(v.rc, 1) << v.output;
    EXPECT_NE(v.output.find("policy LockAfterBoot is false, the reference requires true"),
              std::string::npos)
        << v.output;
    EXPECT_NE(v.output.find("the lock was not requested"), std::string::npos) << v.output;
    EXPECT_NE(v.output.find("posture NOT verified"), std::string::npos) << v.output;
    // The quote itself is genuine: tpm2_checkquote accepts it.
    EXPECT_EQ(CheckquoteOnHost(boot, nonce, fs::path(scratch.path)).rc, 0);
}

TEST(MeasureBoot, NoTpmBootsLockedAndNotMeasured) {
    Boot boot = BootMeasureImage("measure-notpm", false);
    EXPECT_NE(boot.sections["log"].rc, 0) << "no log without a TPM\n" << boot.console;
    EXPECT_NE(boot.sections["pcr"].rc, 0);
    TestJson status(boot.sections["status"].Text());
    EXPECT_EQ(status.Str("measurement.state"), "not-measured") << boot.console;
    EXPECT_EQ(status.Str("measurement.reason"), "no TPM");
    EXPECT_EQ(status.Bool("lock.locked"), true) << boot.sections["status"].Text();
    EXPECT_NE(boot.console.find("measure: no TPM"), std::string::npos) << boot.console;
    // peinitctl attest says so plainly (exit 3), and so does the verifier on its bundle.
    EXPECT_EQ(boot.sections["bundle"].rc, 3) << boot.console;
    TestJson bundle(boot.sections["bundle"].Text());
    EXPECT_TRUE(bundle.At("measured").IsBool()) << boot.sections["bundle"].Text();
    EXPECT_EQ(bundle.Bool("measured"), false) << boot.sections["bundle"].Text();
}

// Debian's kernel (its TPM drivers are built in) and the real root, a Debian 12 with systemd
// whose tpm2-tss libraries are installed (peinit's package recommends them): what PID 1 measured
// in the initramfs (image, policy, the root's modules, the module set, the fallback lock) and
// `leave-initrd` at the handoff are still in the log and in PCR 13 when systemd has started; a
// unit there takes the quote with the peinitctl PID 1 handed over, and the host's verifier
// accepts it against the image's signing key and the policy the image asks for.
TEST(MeasureBoot, RealRootOnDebianKernelKeepsTheMeasurements) {
    const std::string tree = peinit::testing::RealRootTree();
    ASSERT_FALSE(tree.empty()) << "PEINIT_REALROOT_DIR is not set";
    ASSERT_FALSE(peinit::testing::KernelDirFor("debian").empty())
        << "PEINIT_DEBIAN_KERNEL_DIR is not set";
    peinit::testing::ScratchDir scratch;
    const fs::path work = scratch.path;
    const std::string nonce = RandomNonce();

    peinit::testing::Overlay overlay(work / "overlay");
    for (const std::string& lib : peinit::image::kPid1DlopenedLibraries) {
        const fs::path host = fs::path("/usr/lib/x86_64-linux-gnu") / lib;
        ASSERT_TRUE(fs::exists(host)) << host << ": tpm2-tss is not installed on the host";
        overlay.Copy(fs::canonical(host).string(), "/usr/lib/x86_64-linux-gnu/" + lib);
    }
    const std::string ctl = "/run/peinit/bin/peinitctl";
    overlay.Unit(
        "peinit-test.service",
        "ExecStartPre=/sbin/ldconfig\n"
        "ExecStart=/bin/sh -c 'echo MEASURE-BEGIN log; cat /run/log/systemd/tpm2-measure.log; "
        "echo MEASURE-END log rc=$?; echo MEASURE-BEGIN pcr; "
        "cat /sys/class/tpm/tpm0/pcr-sha256/13; echo MEASURE-END pcr rc=$?; "
        "echo MEASURE-BEGIN systemd; systemctl is-system-running; echo MEASURE-END systemd rc=0; "
        "echo MEASURE-BEGIN enroll; " + ctl + " attest --enroll; echo MEASURE-END enroll rc=$?; "
        "echo MEASURE-BEGIN bundle; " + ctl + " attest --nonce " + nonce +
            "; echo MEASURE-END bundle rc=$?'\n"
            "ExecStart=/bin/systemctl --no-block poweroff\n");
    const std::string disk = (work / "disk.img").string();
    const std::string uuid = "5eb0c3f6-1c8a-4f0e-9d52-00000000c0de";
    ASSERT_EQ(peinit::testing::MakeDisk(overlay, disk, "--uuid " + uuid), "");

    peinit::testing::ImageBoot image;
    image.name = "measure-realroot";
    image.kernel = "debian";
    image.image_toml = "kernel = \"debian\"\nunits = [\"@SRC@/tests/boot/images/realroot-debian/units\"]\n"
                       "hive = \"@SRC@/tests/boot/images/realroot-debian/hive.toml\"\n";
    image.append = "root=UUID=" + uuid + " rw systemd.show_status=error";
    // crc32c_intel (ext4's crc32c) needs SSE4.2.
    image.qemu_args = {"-cpu", "max", "-m", "1024", "-drive", "file=" + disk + ",if=virtio,format=raw"};
    image.tpm = true;
    image.timeout = std::chrono::seconds(500);
    auto r = peinit::testing::BuildAndBoot(image);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    Boot boot;
    boot.console = peinit::testing::Explain(r) + "\n--- swtpm ---\n" + r.qemu.swtpm_log;
    boot.sections = peinit::testing::ResultSections(r.qemu.result_lines(), "MEASURE");
    EXPECT_TRUE(r.Has("systemd[1]: systemd 252")) << boot.console;
    EXPECT_TRUE(r.qemu.clean_exit()) << boot.console;

    // The initramfs's measurements, read in the real root, replay to PCR 13.
    const Section& log = boot.sections["log"];
    ASSERT_EQ(log.rc, 0) << boot.console;
    std::vector<TestJson> events;
    const peinit::tpm::Digest pcr = ReplayLog(log, events);
    ASSERT_EQ(boot.sections["pcr"].rc, 0) << boot.console;
    EXPECT_EQ(PcrRead(boot.sections["pcr"]), peinit::tpm::Hex(pcr))
        << "the log does not replay to PCR 13\n" << log.Text();
    std::vector<std::string> names;
    std::set<std::string> modules;
    for (const auto& e : events) {
        names.push_back(e.Str("event"));
        if (names.back() == "module") modules.insert(e.Str("name"));
    }
    ASSERT_GE(names.size(), 5u) << log.Text();
    EXPECT_EQ(names.front(), "image");
    EXPECT_EQ(names[names.size() - 3], "module-set") << log.Text();
    EXPECT_EQ(names[names.size() - 2], "lock") << log.Text();
    EXPECT_EQ(names.back(), "leave-initrd") << log.Text();
    EXPECT_EQ(events[names.size() - 2].Str("mechanism"), "fallback");
    EXPECT_EQ(events[names.size() - 2].Bool("locked"), true);
    for (const char* m : {"virtio_blk", "ext4"}) EXPECT_TRUE(modules.count(m)) << m << "\n" << log.Text();

    // The quote taken in the real root, verified on the host.
    ASSERT_EQ(boot.sections["enroll"].rc, 0) << boot.console;
    ASSERT_EQ(boot.sections["bundle"].rc, 0) << boot.console;
    auto key = peinit::SigningKey::LoadFile(peinit::image::DefaultImageKeyDir() + "/image-signing.key");
    ASSERT_TRUE(key) << key.error().message();
    boot.signer = key->public_key().fingerprint;
    const std::string reference =
        "[modules]\nsigners = [\"" + boot.signer + "\"]\n\n[lock]\nrequired = true\n"
        "mechanisms = [\"fallback\"]\n\n[policy]\nlock_after_boot = true\n"
        "autoload_policy = \"disabled\"\n\n[log]\nrequire_leave_initrd = true\n";
    Verdict v = VerifyOnHost(boot, nonce, work, reference);
    EXPECT_EQ(v.rc, 0) << v.output << "\n" << boot.console;
    EXPECT_NE(v.output.find("posture verified: locked by fallback"), std::string::npos) << v.output;
    EXPECT_EQ(CheckquoteOnHost(boot, nonce, work).rc, 0);
}

// The kernel the boot tests run on has the TPM drivers built in (kernel/config/peinit.config).
TEST(MeasureBoot, KernelConfigHasTheTpmDrivers) {
    const std::string kernel_dir = peinit::testing::KernelDirFor("peinit");
    ASSERT_FALSE(kernel_dir.empty());
    const std::string config = ReadFile(kernel_dir + "/config");
    for (const char* option : {"CONFIG_TCG_TPM=y", "CONFIG_TCG_TIS=y", "CONFIG_SECURITYFS=y"}) {
        EXPECT_NE(config.find(std::string("\n") + option + "\n"), std::string::npos) << option;
    }
}

}  // namespace
