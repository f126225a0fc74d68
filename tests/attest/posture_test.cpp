// The log against the reference policy (peinit/verify/posture.h) and the reference's parser
// (peinit/verify/reference.h), on crafted logs.

#include "peinit/verify/posture.h"

#include <gtest/gtest.h>

#include "log_builder.h"
#include "peinit/verify/verifier.h"

namespace peinit::verify {
namespace {

using testing::BootLog;
using testing::BootSpec;
using testing::JsonString;
using testing::kSigner;
using testing::PeinitRecord;
using testing::Record;
using testing::Sha256Hex;

const std::string kAkName = "000b" + Sha256Hex("ak");

std::string ReferenceText(const std::string& extra = "") {
    return "[attestation_key]\n"
           "name = \"" +
           kAkName +
           "\"\n"
           "public_pem = \"\"\"\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC "
           "KEY-----\n\"\"\"\n"
           "[modules]\n"
           "signers = [\"" +
           kSigner +
           "\"]\n"
           "allowed = [\"virtio_blk\", \"ext4\"]\n"
           "[lock]\n"
           "required = true\n"
           "mechanisms = [\"syscall\"]\n"
           "[policy]\n"
           "lock_after_boot = true\n"
           "autoload_policy = \"disabled\"\n"
           "signing_policy = \"enforce\"\n" +
           extra;
}

Reference Ref(const std::string& extra = "") {
    ConfigErrors errors;
    auto ref = ParseReference("ref.toml", ReferenceText(extra), errors);
    EXPECT_TRUE(errors.empty()) << errors[0].ToString();
    return ref.value_or(Reference{});
}

std::vector<std::string> Check(const std::string& log_text, const Reference& ref,
                               Posture* out = nullptr) {
    Posture posture;
    std::vector<std::string> got;
    for (const auto& d : CheckPosture(tpm::ParseEventLog(log_text), ref, posture)) {
        got.push_back(d.ToString());
    }
    if (out != nullptr) *out = posture;
    return got;
}

TEST(Posture, AGoodBootHasNoDeviation) {
    Posture posture;
    EXPECT_EQ(Check(BootLog(), Ref(), &posture), std::vector<std::string>{});
    EXPECT_TRUE(posture.locked);
    EXPECT_EQ(posture.mechanism, "syscall");
    EXPECT_EQ(posture.modules, 2);
    EXPECT_EQ(posture.signers, std::vector<std::string>{kSigner});
}

TEST(Posture, ModuleOutsideTheReference) {
    BootSpec b;
    b.modules = {"virtio_blk", "ext4", "evil"};
    EXPECT_EQ(Check(BootLog(b), Ref()),
              std::vector<std::string>{"record 6: module evil is not allowed by the reference"});
}

TEST(Posture, ExactModulesNamesTheMissingOne) {
    BootSpec b;
    b.modules = {"ext4"};
    EXPECT_EQ(Check(BootLog(b), Ref()), std::vector<std::string>{});
    EXPECT_EQ(Check(BootLog(b), Ref("")), std::vector<std::string>{});
    ConfigErrors errors;
    std::string text = ReferenceText();
    text.replace(text.find("[lock]"), 0, "exact = true\n");
    auto ref = ParseReference("ref.toml", text, errors);
    ASSERT_TRUE(ref) << errors[0].ToString();
    EXPECT_EQ(Check(BootLog(b), *ref),
              std::vector<std::string>{
                  "module virtio_blk that the reference requires was not loaded before the lock"});
}

TEST(Posture, UnknownSigner) {
    std::string log = BootLog();
    std::string other = Sha256Hex("other key");
    std::string tampered = PeinitRecord("module", {{"name", "\"ext4\""},
                                                   {"sha256", JsonString(Sha256Hex("ext4.ko"))},
                                                   {"package", "\"boot\""},
                                                   {"signer", JsonString(other)}});
    BootSpec b;
    b.modules = {"virtio_blk"};
    std::string text = BootLog(b);
    // Insert the module signed by another key after virtio_blk (record 5).
    std::size_t at = 0;
    for (int i = 0; i < 4; ++i) at = text.find('\x1e', at + 1);
    text.insert(at, tampered);
    auto got = Check(text, Ref());
    ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
    EXPECT_EQ(got[0],
              "record 5: module ext4 signed by " + other + ", not a signer the reference trusts");
    EXPECT_EQ(got[1], "record 6: module set counts 1 modules, the log has 2 module records");
    EXPECT_NE(got[2].find("record 6: module set digest"), std::string::npos) << got[2];
}

TEST(Posture, LockNotRequested) {
    BootSpec b;
    b.lock = false;
    EXPECT_EQ(Check(BootLog(b), Ref()),
              (std::vector<std::string>{
                  "record 3: policy LockAfterBoot is false, the reference requires true",
                  "record 7: the lock was not requested (LockAfterBoot=false): module loading "
                  "stayed open; the reference requires the lock"}));
}

TEST(Posture, FallbackMechanismWhenOnlySyscallIsAllowed) {
    BootSpec b;
    b.mechanism = "fallback";
    EXPECT_EQ(
        Check(BootLog(b), Ref()),
        std::vector<std::string>{"record 7: locked by \"fallback\", the reference allows syscall"});
    std::string text = ReferenceText();
    text.replace(text.find("mechanisms = [\"syscall\"]"), 24,
                 "mechanisms = [\"syscall\", \"fallback\"]");
    ConfigErrors errors;
    auto ref = ParseReference("ref.toml", text, errors);
    ASSERT_TRUE(ref);
    EXPECT_EQ(Check(BootLog(b), *ref), std::vector<std::string>{});
}

TEST(Posture, LockRequestedButNotApplied) {
    std::string text = BootLog();
    std::string good = testing::LockRecord("true", "true");
    std::string bad = testing::LockRecord("true", "false");
    text.replace(text.find(good), good.size(), bad);
    EXPECT_EQ(Check(text, Ref()),
              std::vector<std::string>{"record 7: the lock was requested but not applied "
                                       "(locked=false, mechanism \"syscall\")"});
}

TEST(Posture, RecordsAfterLeaveInitrdDoNotCount) {
    BootSpec b;
    b.lock = false;
    std::string text = BootLog(b);
    // Root after boot extends a forged lock record: it replays, but comes after leave-initrd.
    text += testing::LockRecord("true", "true");
    Posture posture;
    auto got = Check(text, Ref(), &posture);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].substr(0, 36), "record 3: policy LockAfterBoot is fa");
    EXPECT_EQ(got[1].substr(0, 40), "record 7: the lock was not requested (Lo");
    EXPECT_EQ(got[2],
              "record 10: peinit-lock after leave-initrd (record 8): measured after the "
              "handover, not part of the boot's posture; ignored");
    EXPECT_FALSE(posture.locked);
}

TEST(Posture, OrderAndDuplicates) {
    std::string image = PeinitRecord(
        "image",
        {{"image_sha256", "\"x\""}, {"kernel_release", "\"k\""}, {"key_fingerprint", "\"f\""}});
    std::string text = BootLog();
    // A module after the lock, and a second image record.
    std::size_t leave = text.find(PeinitRecord("leave-initrd", {}));
    text.insert(leave, PeinitRecord("module", {{"name", "\"ext4\""},
                                               {"sha256", "\"s\""},
                                               {"package", "\"p\""},
                                               {"signer", JsonString(kSigner)}}) +
                           image);
    auto got = Check(text, Ref());
    std::string all;
    for (const auto& g : got) all += g + "\n";
    EXPECT_NE(all.find("record 8: peinit-module out of order: after peinit-lock"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("record 9: a second peinit-image (the first is record 2)"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("record 9: peinit-image out of order"), std::string::npos) << all;
    EXPECT_NE(all.find("record 8: module ext4 loaded twice (also record 5)"), std::string::npos)
        << all;
}

TEST(Posture, MissingEventsAndLeaveInitrdWhenRequired) {
    EXPECT_EQ(Check(Record(11, "systemd", "phase", "enter-initrd"), Ref()),
              (std::vector<std::string>{"no peinit-image record", "no peinit-policy record",
                                        "no peinit-module-set record", "no peinit-lock record"}));
    BootSpec b;
    b.leave = false;
    EXPECT_EQ(Check(BootLog(b), Ref()), std::vector<std::string>{});
    EXPECT_EQ(Check(BootLog(b), Ref("[log]\nrequire_leave_initrd = true\n")),
              std::vector<std::string>{
                  "no peinit-leave-initrd record: the reference requires the handover measured"});
}

TEST(Posture, BadContentIsNamed) {
    std::string text = BootLog() + Record(13, "peinit", "peinit-lock", "not json") +
                       Record(13, "peinit", "peinit-lock", "{\"event\":\"lock\",\"v\":2}") +
                       Record(13, "peinit", "peinit-x", "{\"event\":\"x\",\"v\":1}") +
                       Record(13, "peinit", "peinit-image", "{\"event\":\"lock\",\"v\":1}");
    auto got = Check(text, Ref());
    std::string all;
    for (const auto& g : got) all += g + "\n";
    EXPECT_NE(all.find("record 10: content string is not JSON"), std::string::npos) << all;
    EXPECT_NE(all.find("record 11: content version 2 is not 1"), std::string::npos) << all;
    EXPECT_NE(all.find("record 12: unknown peinit event \"x\""), std::string::npos) << all;
    EXPECT_NE(all.find("record 13: eventType \"peinit-image\" does not match the event \"lock\""),
              std::string::npos)
        << all;
}

TEST(Posture, MistypedFieldIsNamed) {
    std::string text = BootLog();
    std::string good = testing::LockRecord("true", "true");
    std::string bad = testing::LockRecord("true", "\"true\"");
    text.replace(text.find(good), good.size(), bad);
    auto got = Check(text, Ref());
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got[0], "record 7: peinit-lock: locked: must be a boolean, not string");
}

TEST(Posture, PolicyValuesDifferingFromTheReference) {
    std::string text = ReferenceText();
    text.replace(text.find("\"disabled\""), 10, "\"allow-list\"");
    ConfigErrors errors;
    auto ref = ParseReference("ref.toml", text, errors);
    ASSERT_TRUE(ref);
    EXPECT_EQ(Check(BootLog(), *ref),
              std::vector<std::string>{"record 3: policy AutoLoadPolicy is \"disabled\", the "
                                       "reference requires \"allow-list\""});
}

TEST(Posture, ModuleSetDigestIsOverSortedLines) {
    EXPECT_EQ(ModuleSetDigest({"b x\n", "a y\n"}), Sha256Hex("a y\nb x\n"));
}

TEST(Reference, ErrorsNameFileAndLine) {
    ConfigErrors errors;
    auto ref = ParseReference("ref.toml",
                              "[attestation_key]\n"
                              "name = \"000bxyz\"\n"
                              "[modules]\n"
                              "signers = [\"abc\"]\n"
                              "colour = 3\n"
                              "[lock]\n"
                              "mechanisms = [\"magic\"]\n"
                              "[extra]\n",
                              errors);
    EXPECT_FALSE(ref);
    std::vector<std::string> got;
    for (const auto& e : errors) got.push_back(e.ToString());
    EXPECT_EQ(got,
              (std::vector<std::string>{
                  "ref.toml:8: unknown key \"extra\" in the reference",
                  "ref.toml:2: attestation_key.name must be a SHA-256 TPM name: \"000b\" and "
                  "64 lowercase hex digits",
                  "ref.toml:1: [attestation_key] lacks the required key \"public_pem\"",
                  "ref.toml:5: unknown key \"colour\" in [modules]",
                  "ref.toml:4: modules.signers: \"abc\" is not a key fingerprint (64 "
                  "lowercase hex digits)",
                  "ref.toml:7: lock.mechanisms: unknown mechanism \"magic\" (syscall, fallback)"}));
}

TEST(Reference, SyntaxErrorHasItsLine) {
    ConfigErrors errors;
    EXPECT_FALSE(ParseReference("ref.toml", "[modules]\nsigners = [\n", errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0].path, "ref.toml");
    EXPECT_GT(errors[0].line, 0);
}

TEST(Bundle, ParseErrorsNameTheField) {
    EXPECT_EQ(ParseBundle("[]").error().message(), "not a JSON object");
    EXPECT_EQ(ParseBundle("{\"kind\":\"x\"}").error().message(),
              "kind: not \"peinit-attestation\" (not a peinitctl attest bundle)");
    EXPECT_EQ(ParseBundle("{\"kind\":\"peinit-attestation\",\"version\":1,\"measured\":true,"
                          "\"nonce\":\"00\",\"ak\":{\"public_pem\":\"p\",\"name\":\"zz\"}}")
                  .error()
                  .message(),
              "ak.name: not hex");
    auto b = ParseBundle(
        "{\"kind\":\"peinit-attestation\",\"version\":1,\"measured\":false,"
        "\"nonce\":\"0a\",\"reason\":\"no TPM (x)\"}");
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_FALSE(b->measured);
    Report r = Verify(*b, Ref(), std::nullopt);
    EXPECT_EQ(r.Summary(), "posture NOT verified: not measured");
    ASSERT_EQ(r.deviations.size(), 1u);
    EXPECT_EQ(r.deviations[0].ToString(), "not measured: no TPM (x)");
}

TEST(Bundle, Base64RoundTrip) {
    std::string data = "\x1e{}\n\xff\x00z";
    data.push_back('\0');
    for (std::size_t n = 0; n <= data.size(); ++n) {
        std::string part = data.substr(0, n);
        auto enc = tpm::Base64Encode(reinterpret_cast<const uint8_t*>(part.data()), part.size());
        EXPECT_EQ(DecodeBase64(enc).value_or("<bad>"), part);
    }
    EXPECT_FALSE(DecodeBase64("abc"));
    EXPECT_FALSE(DecodeBase64("a=bc"));
    EXPECT_FALSE(DecodeBase64("ab!c"));
}

}  // namespace
}  // namespace peinit::verify
