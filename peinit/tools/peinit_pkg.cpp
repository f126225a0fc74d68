// peinit-pkg: makes, signs, verifies and lists signed module packages (peinit/sys/PACKAGE.md).
//
// Exit status: 0 success, 1 failure (verification failed, with the precise reason on stderr, or
// an I/O error), 2 usage error. Nothing throws out of main.

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include "peinit/sys/module_elf.h"
#include "peinit/sys/package.h"
#include "peinit/tools/host_args.h"

extern char** environ;

namespace peinit {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kMainHelp = R"(usage: peinit-pkg COMMAND [OPTIONS]

Signed module packages for peinit (format: peinit/sys/PACKAGE.md).

commands:
  keygen   make an Ed25519 signing key pair
  create   build a package from kernel modules
  sign     add or replace a package's signature
  verify   verify a package against trusted keys
  list     show a package's manifest and signer

`peinit-pkg COMMAND --help` describes each command; `peinit-pkg --version` prints the version.
exit status: 0 ok, 1 failed (reason on stderr), 2 usage error
)";

constexpr const char* kKeygenHelp = R"(usage: peinit-pkg keygen --out-dir DIR [--name NAME]

Writes DIR/NAME.key (PKCS#8 PEM private key, mode 0600) and DIR/NAME.pub (PEM public key, to
install in an image's trust directory); NAME defaults to "package-signing". Existing files are
never overwritten. DIR is created (mode 0700) when it does not exist, but its parent must: a
mistyped path is refused, not made. DIR must be outside any git work tree: private keys do not
belong in a repository (nor in an image: only the .pub goes there). Prints the key's fingerprint.
)";

constexpr const char* kCreateHelp =
    R"(usage: peinit-pkg create --name N --version V --kver KVER -o PKG
                         [--sign-key PRIV]
                         [--module-sign-key PEM --module-sign-cert X509 --sign-file PATH]
                         FILE.ko...

Builds package PKG holding each FILE.ko as modules/<basename>, for kernel release KVER.
Each FILE (.ko, or .ko.gz/.ko.xz/.ko.zst) must be an ELF kernel module named as its file
(foo-bar.ko holds foo_bar) and built for KVER (its vermagic); every input that is not is
named, and nothing is written.
  --sign-key PRIV       sign the manifest with this Ed25519 key (else the package is unsigned
                        until `peinit-pkg sign`)
  --module-sign-key, --module-sign-cert, --sign-file
                        first sign each module for the kernel by running the kernel build's
                        `scripts/sign-file sha256 PEM X509 FILE` (on a copy; inputs are not
                        modified); the package then holds and hashes the signed modules
Member timestamps are SOURCE_DATE_EPOCH (or 0), so the output is reproducible.
)";

constexpr const char* kSignHelp = R"(usage: peinit-pkg sign --key PRIV [-o OUT] PKG

Checks PKG's contents against its manifest, then adds or replaces its signature with key PRIV.
Writes OUT (default: PKG, replaced atomically).
)";

constexpr const char* kVerifyHelp =
    R"(usage: peinit-pkg verify (--trust DIR | --key PUB)... [--kver KVER] PKG...

Verifies each PKG exactly as peinit does at boot: container, signature by a trusted key,
manifest, kernel release (when --kver is given) and every file's SHA-256.
  --trust DIR   trust every DIR/*.pub (an image's trust directory); repeatable
  --key PUB     trust the PEM public key in file PUB; repeatable
Prints "PKG: OK: ..." on stdout for each package that passes and "PKG: reason" on stderr for
each that does not. Exit 0 when every package passes, 1 when any fails.
)";

constexpr const char* kListHelp = R"(usage: peinit-pkg list PKG

Shows the manifest (name, version, kernel release, files with size and SHA-256) and the
fingerprint of the key that signed it. The payload is checked against the manifest; the
signature is NOT checked against any trust store (use `verify` for that).
)";

int Usage(const std::string& command, const std::string& message, const char* help) {
    return args::UsageError("peinit-pkg " + command, message, help);
}

int Fail(const std::string& message) {
    std::fprintf(stderr, "peinit-pkg: %s\n", message.c_str());
    return kExitFailed;
}

// Parses a subcommand's arguments (peinit/core/args.h syntax); nullopt after --help or a usage
// error, with `exit` set to the status to return.
std::optional<args::Parsed> ParseCommand(const std::string& command, std::span<char* const> argv,
                                         std::span<const args::OptionSpec> spec,
                                         const char* help, int& exit) {
    auto parsed = args::ParseHost(argv, spec);
    if (!parsed) {
        exit = Usage(command, parsed.error().message(), help);
        return std::nullopt;
    }
    if (parsed->help) {
        std::fputs(help, stdout);
        exit = kExitOk;
        return std::nullopt;
    }
    return std::move(*parsed);
}

Result<std::int64_t> SourceDateEpoch() {
    const char* env = std::getenv("SOURCE_DATE_EPOCH");
    if (env == nullptr || *env == '\0') return std::int64_t{0};
    char* end = nullptr;
    errno = 0;
    long long value = std::strtoll(env, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0) {
        return Err(std::string("SOURCE_DATE_EPOCH is not a non-negative integer: ") + env);
    }
    return static_cast<std::int64_t>(value);
}

// Writes `data` to `path` via a temporary file in the same directory and rename(2), so a
// reader never sees a half-written package.
Result<void> WriteFileAtomic(const fs::path& path, std::span<const std::byte> data, mode_t mode) {
    fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    std::string tmpl = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return ErrnoErr("create temporary file in " + dir.string());
    auto fail = [&](const std::string& what) {
        int err = errno;
        ::close(fd);
        ::unlink(tmpl.c_str());
        return ErrnoErr(what, err);
    };
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail("write " + tmpl);
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, mode) != 0) return fail("chmod " + tmpl);
    if (::fsync(fd) != 0) return fail("fsync " + tmpl);
    if (::close(fd) != 0) {
        int err = errno;
        ::unlink(tmpl.c_str());
        return ErrnoErr("close " + tmpl, err);
    }
    if (::rename(tmpl.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmpl.c_str());
        return ErrnoErr("rename to " + path.string(), err);
    }
    return Ok();
}

// Creates `path` exclusively (never replacing or following an existing file) with `mode`.
Result<void> WriteNewFile(const fs::path& path, std::string_view data, mode_t mode) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return ErrnoErr(path.string());
    // The umask may have cleared bits of a public file; a private key is never wider than asked.
    if (::fchmod(fd, mode) != 0) {
        int err = errno;
        ::close(fd);
        return ErrnoErr("chmod " + path.string(), err);
    }
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = errno;
            ::close(fd);
            return ErrnoErr("write " + path.string(), err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) return ErrnoErr(path.string());
    return Ok();
}

using args::Arity;

int Keygen(std::span<char* const> argv) {
    static constexpr args::OptionSpec kSpec[] = {{"--out-dir", Arity::kValue},
                                                 {"--name", Arity::kValue}};
    int exit = kExitOk;
    auto args = ParseCommand("keygen", argv, kSpec, kKeygenHelp, exit);
    if (!args) return exit;
    auto out_dir = args->Value("--out-dir");
    if (!out_dir) return Usage("keygen", args::Required("--out-dir"), kKeygenHelp);
    if (!args->operands.empty()) {
        return Usage("keygen", args::UnexpectedOperand(args->operands[0]), kKeygenHelp);
    }
    std::string name = args->Value("--name").value_or("package-signing");
    if (name.find('/') != std::string::npos || name[0] == '.') {
        return Usage("keygen", "--name must be a plain file name", kKeygenHelp);
    }
    if (auto repo = EnclosingGitWorkTree(*out_dir)) {
        return Fail(*out_dir + " is inside the git work tree " + repo->string() +
                    "; private keys must not be written into a repository");
    }
    // The directory itself may be new; a missing parent is a mistyped path, not made.
    std::error_code ec;
    if (!fs::is_directory(*out_dir, ec)) {
        fs::path dir = fs::absolute(*out_dir, ec).lexically_normal();
        if (dir.filename().empty()) dir = dir.parent_path();  // "DIR/"
        fs::path parent = dir.parent_path();
        if (!fs::is_directory(parent, ec)) {
            return Fail(*out_dir + ": parent directory " + parent.string() +
                        " does not exist (not creating it)");
        }
        if (::mkdir(out_dir->c_str(), 0700) != 0) {
            return Fail(Error::FromErrno("create " + *out_dir).message());
        }
    }

    auto key = SigningKey::Generate();
    if (!key) return Fail(key.error().message());
    auto priv = key->PrivatePem();
    auto pub = key->PublicPem();
    if (!priv || !pub) return Fail(!priv ? priv.error().message() : pub.error().message());
    fs::path key_path = fs::path(*out_dir) / (name + ".key");
    fs::path pub_path = fs::path(*out_dir) / (name + ".pub");
    if (fs::exists(key_path, ec) || fs::exists(pub_path, ec)) {
        return Fail(key_path.string() + " or " + pub_path.string() + " exists; not replacing");
    }
    if (auto r = WriteNewFile(key_path, *priv, 0600); !r) return Fail(r.error().message());
    if (auto r = WriteNewFile(pub_path, *pub, 0644); !r) return Fail(r.error().message());
    std::printf(
        "private key: %s (keep it off repositories and images)\npublic key:  %s\n"
        "fingerprint: %s\n",
        key_path.c_str(), pub_path.c_str(), key->public_key().fingerprint.c_str());
    return kExitOk;
}

// Runs `argv` (no shell) and waits; error unless it exits 0.
Result<void> Run(const std::vector<std::string>& argv) {
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    pid_t pid;
    int rc = ::posix_spawn(&pid, cargv[0], nullptr, nullptr, cargv.data(), environ);
    if (rc != 0) return ErrnoErr("run " + argv[0], rc);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return ErrnoErr("wait for " + argv[0]);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return Err(argv[0] + " failed (" +
                   (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status))) +
                   ")");
    }
    return Ok();
}

// Signs a module for the kernel (appended PKCS#7 signature) with the kernel build's sign-file,
// on a private copy, and returns the signed bytes.
Result<std::vector<std::byte>> KernelSignModule(const std::string& sign_file,
                                                const std::string& key, const std::string& cert,
                                                const fs::path& module) {
    char tmpl[] = "/tmp/peinit-pkg-XXXXXX";
    const char* tmp_root = std::getenv("TMPDIR");
    std::string dir_tmpl =
        tmp_root && *tmp_root ? std::string(tmp_root) + "/peinit-pkg-XXXXXX" : std::string(tmpl);
    if (::mkdtemp(dir_tmpl.data()) == nullptr) return ErrnoErr("mkdtemp");
    fs::path dir = dir_tmpl;
    fs::path out = dir / module.filename();
    auto result = [&]() -> Result<std::vector<std::byte>> {
        PEINIT_TRY(Run({sign_file, "sha256", key, cert, module.string(), out.string()}));
        return ReadFileOnce(out, kMaxPayloadFileBytes);
    }();
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (!result) return Unexpected(result.error().Context(module.string() + ": "));
    return result;
}

// The first of `names` that `args` lacks, as a usage message ("" when all are there).
std::string MissingOption(const args::Parsed& args, std::initializer_list<const char*> names) {
    for (const char* name : names) {
        if (!args.Has(name)) return args::Required(name);
    }
    return "";
}

int Create(std::span<char* const> argv) {
    static constexpr args::OptionSpec kSpec[] = {
        {"--name", Arity::kValue},          {"--version", Arity::kValue},
        {"--kver", Arity::kValue},          {"--output", Arity::kValue, 'o'},
        {"--sign-key", Arity::kValue},      {"--module-sign-key", Arity::kValue},
        {"--module-sign-cert", Arity::kValue}, {"--sign-file", Arity::kValue},
    };
    int exit = kExitOk;
    auto args = ParseCommand("create", argv, kSpec, kCreateHelp, exit);
    if (!args) return exit;
    if (auto missing = MissingOption(*args, {"--name", "--version", "--kver", "--output"});
        !missing.empty()) {
        return Usage("create", missing, kCreateHelp);
    }
    auto name = args->Value("--name");
    auto version = args->Value("--version");
    auto kver = args->Value("--kver");
    auto out = args->Value("--output");
    if (args->operands.empty()) return Usage("create", "no FILE.ko given", kCreateHelp);
    auto mod_key = args->Value("--module-sign-key");
    auto mod_cert = args->Value("--module-sign-cert");
    auto sign_file = args->Value("--sign-file");
    int module_signing = !!mod_key + !!mod_cert + !!sign_file;
    if (module_signing != 0 && module_signing != 3) {
        return Usage("create", "--module-sign-key, --module-sign-cert and --sign-file go together",
                     kCreateHelp);
    }
    auto epoch = SourceDateEpoch();
    if (!epoch) return Fail(epoch.error().message());

    std::optional<SigningKey> key;
    if (auto key_path = args->Value("--sign-key")) {
        auto loaded = SigningKey::LoadFile(*key_path);
        if (!loaded) return Fail(loaded.error().message());
        key.emplace(std::move(*loaded));
    }

    PackageSpec spec{*name, *version, *kver, {}};
    // Every input is checked before anything is signed or written, all of them in one run.
    std::vector<std::string> problems;
    for (const auto& file : args->operands) {
        auto data = ReadFileOnce(file, kMaxPayloadFileBytes);
        if (!data) {
            problems.push_back(data.error().message());
        } else if (auto ok = CheckModuleFile(file, *data, *kver); !ok) {
            problems.push_back(ok.error().message());
        }
    }
    if (!problems.empty()) {
        for (const auto& p : problems) std::fprintf(stderr, "peinit-pkg: %s\n", p.c_str());
        return Fail(std::to_string(problems.size()) + " input file(s) cannot go into a package");
    }
    for (const auto& file : args->operands) {
        fs::path path = file;
        auto data = module_signing ? KernelSignModule(*sign_file, *mod_key, *mod_cert, path)
                                   : ReadFileOnce(path, kMaxPayloadFileBytes);
        if (!data) return Fail(data.error().message());
        spec.files.push_back(
            {std::string(kPayloadPrefix) + path.filename().string(), std::move(*data)});
    }
    auto package = CreatePackage(spec, key ? &*key : nullptr, *epoch);
    if (!package) return Fail(package.error().message());
    if (auto r = WriteFileAtomic(*out, *package, 0644); !r) return Fail(r.error().message());
    std::printf("%s: %s %s for %s, %zu file(s), %s\n", out->c_str(), name->c_str(),
                version->c_str(), kver->c_str(), spec.files.size(),
                key ? ("signed by " + key->public_key().fingerprint).c_str() : "unsigned");
    return kExitOk;
}

int Sign(std::span<char* const> argv) {
    static constexpr args::OptionSpec kSpec[] = {{"--key", Arity::kValue},
                                                 {"--output", Arity::kValue, 'o'}};
    int exit = kExitOk;
    auto args = ParseCommand("sign", argv, kSpec, kSignHelp, exit);
    if (!args) return exit;
    auto key_path = args->Value("--key");
    if (!key_path) return Usage("sign", args::Required("--key"), kSignHelp);
    if (args->operands.size() != 1) return Usage("sign", "exactly one PKG expected", kSignHelp);
    const std::string& in = args->operands[0];
    std::string out = args->Value("--output").value_or(in);
    auto epoch = SourceDateEpoch();
    if (!epoch) return Fail(epoch.error().message());

    auto key = SigningKey::LoadFile(*key_path);
    if (!key) return Fail(key.error().message());
    auto bytes = ReadFileOnce(in);
    if (!bytes) return Fail(bytes.error().message());
    auto signed_pkg = SignPackage(*bytes, *key, *epoch);
    if (!signed_pkg) return Fail(in + ": " + signed_pkg.error().message());
    if (auto r = WriteFileAtomic(out, *signed_pkg, 0644); !r) return Fail(r.error().message());
    std::printf("%s: signed by %s\n", out.c_str(), key->public_key().fingerprint.c_str());
    return kExitOk;
}

int Verify(std::span<char* const> argv) {
    static constexpr args::OptionSpec kSpec[] = {{"--trust", Arity::kList},
                                                 {"--key", Arity::kList},
                                                 {"--kver", Arity::kValue}};
    int exit = kExitOk;
    auto args = ParseCommand("verify", argv, kSpec, kVerifyHelp, exit);
    if (!args) return exit;
    if (!args->Has("--trust") && !args->Has("--key")) {
        return Usage("verify", "no trusted key: give --trust DIR or --key PUB", kVerifyHelp);
    }
    if (args->operands.empty()) return Usage("verify", "no PKG given", kVerifyHelp);

    TrustStore trusted;
    for (const auto& dir : args->Values("--trust")) {
        auto loaded = TrustStore::LoadDirectory(dir);
        if (!loaded) return Fail("trust store: " + loaded.error().message());
        for (const auto& key : loaded->keys()) trusted.Add(key);
    }
    for (const auto& file : args->Values("--key")) {
        if (auto r = trusted.AddFile(file); !r) return Fail("trusted key: " + r.error().message());
    }
    int status = kExitOk;
    for (const auto& path : args->operands) {
        auto bytes = ReadFileOnce(path);
        auto pkg = bytes ? VerifyPackage(*bytes, trusted, args->Value("--kver"))
                         : Result<VerifiedPackage>(bytes.error());
        if (!pkg) {
            status = Fail(bytes ? path + ": " + pkg.error().message() : pkg.error().message());
            continue;
        }
        std::printf("%s: OK: %s %s for %s, %zu file(s), signed by %s\n", path.c_str(),
                    pkg->name().c_str(), pkg->version().c_str(), pkg->kernel_release().c_str(),
                    pkg->files().size(), pkg->signer().c_str());
    }
    return status;
}

int List(std::span<char* const> argv) {
    int exit = kExitOk;
    auto args = ParseCommand("list", argv, {}, kListHelp, exit);
    if (!args) return exit;
    if (args->operands.size() != 1) return Usage("list", "exactly one PKG expected", kListHelp);
    const std::string& path = args->operands[0];
    auto bytes = ReadFileOnce(path);
    if (!bytes) return Fail(bytes.error().message());
    auto info = InspectPackage(*bytes);
    if (!info) return Fail(path + ": " + info.error().message());
    const Manifest& m = info->manifest;
    std::printf("name: %s\nversion: %s\nkernel-release: %s\nsigner: %s\nfiles:\n", m.name.c_str(),
                m.version.c_str(), m.kernel_release.c_str(),
                info->signature ? (info->signature->key_fingerprint + " (not verified)").c_str()
                                : "(unsigned)");
    for (const auto& f : m.files) {
        std::printf("  %s %llu %s\n", f.path.c_str(), static_cast<unsigned long long>(f.size),
                    HexEncode(f.sha256).c_str());
    }
    return kExitOk;
}

int Main(int argc, char** argv) {
    if (argc < 2) return args::UsageError("peinit-pkg", "no command given", kMainHelp);
    auto first = args::ReadFirstArgument(argv[1]);
    std::span<char* const> rest(argv + 2, argv + argc);
    switch (first.kind) {
        case args::FirstArgument::kHelp:
            std::fputs(kMainHelp, stdout);
            return kExitOk;
        case args::FirstArgument::kVersion:
            std::fputs(args::VersionText("peinit-pkg").c_str(), stdout);
            return kExitOk;
        case args::FirstArgument::kError:
            return args::UsageError("peinit-pkg", first.text, kMainHelp);
        case args::FirstArgument::kCommand:
            break;
    }
    if (first.text == "keygen") return Keygen(rest);
    if (first.text == "create") return Create(rest);
    if (first.text == "sign") return Sign(rest);
    if (first.text == "verify") return Verify(rest);
    if (first.text == "list") return List(rest);
    return args::UsageError("peinit-pkg", args::UnknownCommand(first.text), kMainHelp);
}

}  // namespace
}  // namespace peinit

int main(int argc, char** argv) {
    try {
        return peinit::Main(argc, argv);
    } catch (const std::exception& e) {
        // Only std::bad_alloc and friends can get here; our APIs return errors.
        std::fprintf(stderr, "peinit-pkg: %s\n", e.what());
        return 1;
    }
}
