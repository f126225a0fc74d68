// peinit-verify: checks a peinitctl attest bundle against a reference policy (R-34; man page
// peinit-verify(1), ATTESTATION.md).
//
// Exit codes: 0 posture verified; 1 deviations (or not measured); 2 usage error or unreadable
// input (bundle, reference).

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "peinit/core/args.h"
#include "peinit/tools/host_args.h"
#include "peinit/verify/verifier.h"

namespace {

using peinit::args::Arity;
using peinit::args::OptionSpec;

constexpr const char* kUsage =
    "usage: peinit-verify --bundle FILE --reference REF.toml [--nonce HEX]\n"
    "\n"
    "Checks an attestation bundle written by `peinitctl attest` on another machine: the TPM\n"
    "quote's signature by the enrolled attestation key, its nonce, its PCR digest against the\n"
    "bundle's PCR values, the event log replayed against those values, every record's digest\n"
    "against its content, and the log against the reference policy (signers, modules, lock,\n"
    "policy values, event order). Prints every deviation, one per line, then\n"
    "\"posture verified: ...\" or \"posture NOT verified: N deviations\".\n"
    "\n"
    "  --bundle FILE       the bundle (JSON), - for stdin\n"
    "  --reference FILE    the reference policy (TOML; peinit-verify(1) REFERENCE)\n"
    "  --nonce HEX         the challenge given to `peinitctl attest --nonce`: the quote must\n"
    "                      carry it (without it, freshness is not checked)\n"
    "\n"
    "Exit status: 0 verified, 1 deviations or not measured, 2 usage error or unreadable input.\n";

constexpr OptionSpec kOptions[] = {
    {"--bundle", Arity::kValue}, {"--reference", Arity::kValue}, {"--nonce", Arity::kValue}};

bool ReadAll(const std::string& path, std::string& out) {
    if (path == "-") {
        std::ostringstream s;
        s << std::cin.rdbuf();
        out = s.str();
        return true;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream s;
    s << in.rdbuf();
    out = s.str();
    return !in.bad();
}

int Main(int argc, char** argv) {
    constexpr const char* prog = "peinit-verify";
    if (argc == 2 && std::string_view(argv[1]) == "--version") {
        std::cout << peinit::args::VersionText(prog);
        return 0;
    }
    auto parsed = peinit::args::ParseHost({argv + 1, argv + argc}, kOptions);
    if (!parsed) return peinit::args::UsageError(prog, parsed.error().message(), kUsage);
    if (parsed->help) {
        std::cout << kUsage;
        return 0;
    }
    if (!parsed->operands.empty()) {
        return peinit::args::UsageError(prog, peinit::args::UnexpectedOperand(parsed->operands[0]),
                                        kUsage);
    }
    for (const char* required : {"--bundle", "--reference"}) {
        if (!parsed->Has(required)) {
            return peinit::args::UsageError(prog, peinit::args::Required(required), kUsage);
        }
    }
    std::optional<peinit::tpm::Bytes> challenge;
    if (auto nonce = parsed->Value("--nonce")) {
        challenge = peinit::verify::DecodeHex(*nonce);
        if (!challenge || challenge->empty()) {
            return peinit::args::UsageError(prog, "--nonce: \"" + *nonce + "\" is not hex", kUsage);
        }
    }
    std::string bundle_path = *parsed->Value("--bundle");
    std::string text;
    if (!ReadAll(bundle_path, text)) {
        std::cerr << prog << ": " << bundle_path << ": cannot read: " << std::strerror(errno)
                  << "\n";
        return 2;
    }
    auto bundle = peinit::verify::ParseBundle(text);
    if (!bundle) {
        std::cerr << prog << ": " << bundle_path
                  << ": not an attestation bundle: " << bundle.error().message() << "\n";
        return 2;
    }
    peinit::ConfigErrors errors;
    auto ref = peinit::verify::LoadReference(*parsed->Value("--reference"), errors);
    if (!ref) {
        for (const auto& e : errors) std::cerr << prog << ": " << e.ToString() << "\n";
        return 2;
    }
    peinit::verify::Report report = peinit::verify::Verify(*bundle, *ref, challenge);
    for (const auto& n : report.notes) std::cout << "note: " << n << "\n";
    for (const auto& d : report.deviations) std::cout << "DEVIATION: " << d.ToString() << "\n";
    std::cout << report.Summary() << "\n";
    return report.deviations.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return Main(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "peinit-verify: internal error: " << e.what() << "\n";
        return 2;
    }
}
