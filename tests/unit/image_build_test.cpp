// The image builder end to end against the Debian kernel fixture (kernel/debian-kernel):
// contents read back with libarchive, reproducibility, validation without partial output, and
// the command-line contract of peinit-image.

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "initramfs/image_builder.h"
#include "initramfs/image_definition.h"
#include "initramfs/image_tree.h"
#include "initramfs/image_units.h"
#include "image_tool.h"
#include "peinit/core/boot_plan.h"
#include "peinit/core/stored_plan.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/stored_plan_file.h"
#include "peinit/sys/package.h"
#include "peinit/sys/package_crypto.h"

namespace peinit::image {
namespace {

const std::string kFixtures = std::string(PEINIT_FIXTURES_DIR) + "/images";

std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (struct dirent* e = ::readdir(d))
            if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
                out.push_back(e->d_name);
        ::closedir(d);
    }
    return out;
}

bool Exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

class ImageBuildTest : public ::testing::Test {
  protected:
    void SetUp() override {
        kernel_dir_ = PEINIT_DEBIAN_KERNEL_DIR;
        if (kernel_dir_.empty() || !Exists(kernel_dir_ + "/kver"))
            GTEST_SKIP() << "no Debian kernel fixture (run kernel/debian-kernel; tests/run does)";
        char tmpl[] = "/tmp/image-build-test.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        out_ = tmpl;
        char keys_tmpl[] = "/tmp/image-build-test-keys.XXXXXX";
        ASSERT_NE(::mkdtemp(keys_tmpl), nullptr);
        keys_ = keys_tmpl;
        kver_ = ReadAll(kernel_dir_ + "/kver");
        while (!kver_.empty() && kver_.back() == '\n') kver_.pop_back();
    }
    void TearDown() override {
        if (!out_.empty()) std::system(("rm -rf " + out_).c_str());
        if (!keys_.empty()) std::system(("rm -rf " + keys_).c_str());
    }

    // /bin/ls stands in for peinit: a real dynamically linked program.
    BuildOptions Options(int64_t mtime = 0) {
        BuildOptions o;
        o.kernel_dir = kernel_dir_;
        o.binaries = {{"/init", "/bin/ls", true}};
        o.mtime = mtime;
        o.key_dir = keys_ + "/image-keys";
        return o;
    }
    ImageDefinition Load(const std::string& name) {
        auto def = LoadImageDefinition(kFixtures + "/" + name);
        EXPECT_TRUE(def) << def.error().message();
        return def ? *def : ImageDefinition{};
    }
    std::string ModDir() const { return "lib/modules/" + kver_; }

    std::string kernel_dir_, out_, kver_, keys_;
};

// Measured boot: PID 1 dlopens the TPM software stack, which no DT_NEEDED names; the image
// ships those libraries and their own closure, and a missing one is a warning, not an error.
TEST_F(ImageBuildTest, LibrariesPid1OpensWithDlopenShipWithTheirClosure) {
    ImageDefinition def = Load("small");
    BuildOptions opts = Options();
    opts.pid1_dlopened = kPid1DlopenedLibraries;
    opts.pid1_dlopened.push_back("libpeinit-no-such-library.so.9");
    auto c = ComposeImage(def, opts);
    ASSERT_TRUE(c) << c.error().message();
    for (const char* lib : {"/lib/x86_64-linux-gnu/libtss2-esys.so.0",
                            "/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0",
                            "/lib/x86_64-linux-gnu/libtss2-tctildr.so.0",
                            "/lib/x86_64-linux-gnu/libcrypto.so.3"}) {
        EXPECT_NE(std::find(c->libraries.begin(), c->libraries.end(), lib), c->libraries.end())
            << lib << " (libtss2-esys needs libcrypto)";
    }
    ASSERT_EQ(c->warnings.size(), 1u);
    EXPECT_NE(c->warnings[0].find("libpeinit-no-such-library.so.9"), std::string::npos)
        << c->warnings[0];
    // Without the list (a build of something other than peinit's PID 1) none of it ships.
    auto plain = ComposeImage(def, Options());
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->libraries.size(), 4u);
}

// The stored plan (issue 26): the build ships the boot's plan, made against the image's own
// module tree and signed with the image key; read back from the image's files as PID 1 reads them,
// it verifies and plans exactly what libkmod plans on that tree for the boot's input.
TEST_F(ImageBuildTest, StoredPlanVerifiesAndEqualsBootTimePlanning) {
    ImageDefinition def = Load("small");
    auto c = ComposeImage(def, Options());
    ASSERT_TRUE(c) << c.error().message();
    ASSERT_NE(c->tree.Find("etc/peinit/plan.toml"), nullptr);
    ASSERT_NE(c->tree.Find("etc/peinit/plan.toml.sig"), nullptr);
    const std::string root = out_ + "/root";
    for (const auto& [path, e] : c->tree.entries()) {
        if (e.type != EntryType::kFile || !(path.starts_with("lib/") || path.starts_with("etc/")))
            continue;
        std::string dst = root + "/" + path;
        std::system(("mkdir -p '" + dst.substr(0, dst.rfind('/')) + "'").c_str());
        std::ofstream(dst, std::ios::binary) << e.data;
    }
    auto stored = ReadStoredPlan(BootPaths{root}, kver_);
    ASSERT_TRUE(stored) << stored.error().message();
    EXPECT_EQ(stored->signer, c->signer);
    EXPECT_FALSE(ReadStoredPlan(BootPaths{root}, "6.1.0-99-other"));

    // The boot's side: the image's units, hive and command line through the one collector.
    UnitLoad units = LoadUnitDirs({root + "/etc/peinit/units"});
    ASSERT_TRUE(units.errors.empty());
    Hive hive = LoadHive(root + "/etc/peinit/hive.toml", {.check_trust = false});
    Cmdline cmd = ParseCmdline(def.cmdline);
    const PlanInput input =
        CollectBootPlanInput(units.units, ComputeEffectivePolicy(hive, cmd), cmd).input;
    ASSERT_FALSE(input.requests.empty());
    auto db = KmodDb::Open(root, kver_);
    ASSERT_TRUE(db) << db.error().message();
    auto from_kmod = BuildPlan(**db, input);
    ASSERT_TRUE(from_kmod) << from_kmod.error().message();
    StoredModuleDb stored_db(stored->plan.facts, root);
    auto from_stored = BuildPlan(stored_db, input);
    ASSERT_TRUE(from_stored) << from_stored.error().message();
    PlanView view{"test", root, kver_, root};
    EXPECT_EQ(RenderPlanJson(*from_stored, view), RenderPlanJson(*from_kmod, view));
    EXPECT_NE(from_stored->Find("bridge"), nullptr);
    EXPECT_NE(from_stored->Find("llc"), nullptr);
}

TEST_F(ImageBuildTest, ContentsReadBack) {
    ImageDefinition def = Load("small");
    std::string file = out_ + "/small.cpio.zst";
    auto built = BuildImage(def, Options(1234), Compression::kZstd, file);
    ASSERT_TRUE(built) << built.error().message();
    auto entries = ReadCpio(file);
    ASSERT_TRUE(entries) << entries.error().message();

    std::map<std::string, ListedEntry> by_path;
    std::set<uint64_t> inodes;
    std::string previous;
    for (const auto& e : *entries) {
        EXPECT_LT(previous, e.path) << "entries are sorted";
        previous = e.path;
        EXPECT_EQ(e.uid, 0);
        EXPECT_EQ(e.gid, 0);
        EXPECT_EQ(e.mtime, 1234);
        EXPECT_TRUE(inodes.insert(e.ino).second) << "inode reused: " << e.path;
        EXPECT_EQ(e.nlink, e.type == EntryType::kDirectory ? 2u : 1u) << e.path;
        // Every parent comes first, as the kernel's unpacker needs.
        if (auto slash = e.path.rfind('/'); slash != std::string::npos) {
            ASSERT_TRUE(by_path.count(e.path.substr(0, slash))) << e.path;
            EXPECT_EQ(by_path[e.path.substr(0, slash)].type, EntryType::kDirectory);
        }
        by_path[e.path] = e;
    }
    EXPECT_EQ(inodes.size(), entries->size());
    EXPECT_EQ(*inodes.begin(), 1u);
    EXPECT_EQ(*inodes.rbegin(), entries->size());

    auto expect = [&](const std::string& path, EntryType type, uint32_t mode) {
        ASSERT_TRUE(by_path.count(path)) << path << " missing";
        EXPECT_EQ(by_path[path].type, type) << path;
        EXPECT_EQ(by_path[path].mode, mode) << path;
    };
    expect("init", EntryType::kFile, 0755);
    expect("dev/console", EntryType::kCharDevice, 0600);
    EXPECT_EQ(by_path["dev/console"].rdev_major, 5u);
    EXPECT_EQ(by_path["dev/console"].rdev_minor, 1u);
    expect("dev/null", EntryType::kCharDevice, 0666);
    EXPECT_EQ(by_path["dev/null"].rdev_major, 1u);
    EXPECT_EQ(by_path["dev/null"].rdev_minor, 3u);
    for (const char* d :
         {"proc", "sys", "dev", "run", "etc/peinit", "etc/peinit/units", "etc/peinit/keys"})
        expect(d, EntryType::kDirectory, 0755);
    expect("tmp", EntryType::kDirectory, 01777);
    expect("etc/peinit/hive.toml", EntryType::kFile, 0644);
    expect("etc/peinit/units/net.toml", EntryType::kFile, 0644);
    expect("etc/peinit/units/legacy.conf", EntryType::kFile, 0644);
    EXPECT_EQ(by_path["etc/peinit/hive.toml"].data, ReadAll(kFixtures + "/small/hive.toml"));

    // The library closure of /bin/ls, with the host's bytes.
    for (const char* lib :
         {"lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6",
          "lib/x86_64-linux-gnu/libselinux.so.1", "lib/x86_64-linux-gnu/libpcre2-8.so.0"}) {
        expect(lib, EntryType::kFile, 0755);
        EXPECT_EQ(by_path[lib].data, ReadAll(std::string("/") + lib)) << lib;
    }
    EXPECT_EQ(built->libraries.size(), 4u);

    // Modules: bridge with its dependency chain, dummy, vfat (from the .conf list) and fat. No
    // loose .ko bytes: each path is an empty placeholder (libkmod needs the path), the bytes
    // are in the signed image package.
    const std::vector<std::string> kos = {
        "kernel/net/bridge/bridge.ko", "kernel/net/802/stp.ko", "kernel/net/llc/llc.ko",
        "kernel/drivers/net/dummy.ko", "kernel/fs/fat/vfat.ko", "kernel/fs/fat/fat.ko"};
    for (const auto& ko : kos) {
        std::string p = ModDir() + "/" + ko;
        expect(p, EntryType::kFile, 0644);
        EXPECT_EQ(by_path[p].data, "") << ko;
    }
    size_t placeholders = 0;
    for (const auto& [p, e] : by_path)
        if (p.size() > 3 && p.compare(p.size() - 3, 3, ".ko") == 0) {
            ++placeholders;
            EXPECT_EQ(e.size, 0u) << p << ": a loose module with bytes";
        }
    EXPECT_EQ(placeholders, built->modules.size());

    // The package verifies against the shipped key and the kernel release, and holds exactly
    // the kernel's bytes of every module of the closure.
    expect("usr/lib/peinit/packages/image.pkg", EntryType::kFile, 0644);
    expect("etc/peinit/keys/image.pub", EntryType::kFile, 0644);
    EXPECT_EQ(built->packages, std::vector<std::string>{"/usr/lib/peinit/packages/image.pkg"});
    auto pub = ParsePublicKeyPem(by_path["etc/peinit/keys/image.pub"].data);
    ASSERT_TRUE(pub) << pub.error().message();
    EXPECT_EQ(pub->fingerprint, built->signer);
    TrustStore trust;
    trust.Add(*pub);
    const std::string& pkg_data = by_path["usr/lib/peinit/packages/image.pkg"].data;
    std::vector<std::byte> pkg(pkg_data.size());
    std::memcpy(pkg.data(), pkg_data.data(), pkg_data.size());
    auto verified = VerifyPackage(pkg, trust, kver_);
    ASSERT_TRUE(verified) << verified.error().message();
    EXPECT_EQ(verified->files().size(), built->modules.size());
    for (const auto& ko : kos) {
        const VerifiedFile* f = nullptr;
        for (const auto& vf : verified->files())
            if (vf.path() == "modules/" + ko) f = &vf;
        ASSERT_NE(f, nullptr) << ko;
        std::string host = ReadAll(kernel_dir_ + "/" + ModDir() + "/" + ko);
        ASSERT_EQ(f->bytes().size(), host.size()) << ko;
        EXPECT_EQ(std::memcmp(f->bytes().data(), host.data(), host.size()), 0) << ko;
    }
    // The private key is in the key directory (0600), never in the image.
    struct stat key_st;
    ASSERT_EQ(::stat((keys_ + "/image-keys/image-signing.key").c_str(), &key_st), 0);
    EXPECT_EQ(key_st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((keys_ + "/image-keys").c_str(), &key_st), 0);
    EXPECT_EQ(key_st.st_mode & 0777, 0700u);
    for (const auto& [p, e] : by_path)
        EXPECT_EQ(e.data.find("PRIVATE KEY"), std::string::npos) << p;
    for (const char* idx : {"modules.dep", "modules.dep.bin", "modules.alias.bin",
                            "modules.symbols.bin", "modules.builtin", "modules.builtin.bin",
                            "modules.builtin.modinfo", "modules.order", "modules.softdep"})
        expect(ModDir() + "/" + idx, EntryType::kFile, 0644);
    EXPECT_NE(by_path[ModDir() + "/modules.dep"].data.find(
                  "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n"),
              std::string::npos)
        << by_path[ModDir() + "/modules.dep"].data;

    // The shipped indexes work: libkmod on the extracted tree resolves bridge's dependencies.
    std::string root = out_ + "/root";
    for (const auto& [p, e] : by_path) {
        std::string host = root + "/" + p;
        if (e.type == EntryType::kDirectory) {
            ::mkdir(root.c_str(), 0755);
            ASSERT_EQ(std::system(("mkdir -p '" + host + "'").c_str()), 0);
        } else if (e.type == EntryType::kFile && p.rfind("lib/modules/", 0) == 0) {
            std::ofstream(host, std::ios::binary) << e.data;
        }
    }
    auto kmod = Kmod::Open(root, kver_);
    ASSERT_TRUE(kmod) << kmod.error().message();
    auto bridge = (*kmod)->Lookup("bridge");
    ASSERT_TRUE(bridge);
    ASSERT_EQ(bridge->size(), 1u);
    auto deps = (*bridge)[0].Dependencies();
    ASSERT_TRUE(deps);
    std::set<std::string> dep_names;
    for (const auto& d : *deps) dep_names.insert(d.Name());
    EXPECT_EQ(dep_names, (std::set<std::string>{"stp", "llc"}));
    EXPECT_EQ((*kmod)->Lookup("ext4")->size(), 0u) << "only the shipped subset is indexed";
}

// loose_modules: every module path holds the kernel's real bytes (for baselines such as
// `modprobe -a`); the signed package still holds them too.
TEST_F(ImageBuildTest, LooseModulesShipRealBytes) {
    ImageDefinition def = Load("small");
    def.loose_modules = true;
    std::string file = out_ + "/small-loose.cpio";
    auto built = BuildImage(def, Options(), Compression::kNone, file);
    ASSERT_TRUE(built) << built.error().message();
    auto entries = ReadCpio(file);
    ASSERT_TRUE(entries) << entries.error().message();
    size_t kos = 0;
    bool package = false;
    for (const auto& e : *entries) {
        if (e.path == "usr/lib/peinit/packages/image.pkg") package = true;
        if (e.path.size() < 3 || e.path.compare(e.path.size() - 3, 3, ".ko") != 0) continue;
        ++kos;
        ASSERT_EQ(e.path.rfind(ModDir() + "/", 0), 0u) << e.path;
        std::string host = ReadAll(kernel_dir_ + "/" + e.path);
        EXPECT_GT(host.size(), 0u) << e.path;
        EXPECT_TRUE(e.data == host) << e.path << ": not the kernel's bytes";
    }
    EXPECT_EQ(kos, built->modules.size());
    EXPECT_TRUE(package) << "the signed package is still shipped";
}

// A kernel module shipped as a [[files]] entry keeps its bytes: stripping would drop its
// appended signature. Programs are still stripped.
TEST_F(ImageBuildTest, FilesKeepModuleSignatures) {
    ImageDefinition def = Load("small");
    const std::string ko = kernel_dir_ + "/" + ModDir() + "/kernel/drivers/net/dummy.ko";
    const std::string host = ReadAll(ko);
    const std::string marker = "~Module signature appended~\n";
    ASSERT_GT(host.size(), marker.size());
    ASSERT_EQ(host.substr(host.size() - marker.size()), marker) << "fixture module is signed";
    def.files.push_back({ko, "/opt/dummy.ko", std::nullopt, 1});
    def.files.push_back({"/bin/true", "/opt/true", std::nullopt, 2});
    ASSERT_TRUE(def.strip);
    std::string file = out_ + "/small-files.cpio";
    auto built = BuildImage(def, Options(), Compression::kNone, file);
    ASSERT_TRUE(built) << built.error().message();
    auto entries = ReadCpio(file);
    ASSERT_TRUE(entries) << entries.error().message();
    bool saw_ko = false, saw_true = false;
    for (const auto& e : *entries) {
        if (e.path == "opt/dummy.ko") {
            saw_ko = true;
            EXPECT_TRUE(e.data == host) << "the module's bytes changed";
        } else if (e.path == "opt/true") {
            saw_true = true;
            EXPECT_LE(e.data.size(), ReadAll("/bin/true").size());
        }
    }
    EXPECT_TRUE(saw_ko);
    EXPECT_TRUE(saw_true);
}

TEST_F(ImageBuildTest, ByteReproducible) {
    ImageDefinition def = Load("small");
    for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
        SCOPED_TRACE(CompressionName(c));
        std::string a = out_ + "/a", b = out_ + "/b", other = out_ + "/other";
        ASSERT_TRUE(BuildImage(def, Options(1700000000), c, a));
        ::sleep(c == Compression::kGzip ? 1 : 0);  // a gzip header timestamp would differ now
        ASSERT_TRUE(BuildImage(def, Options(1700000000), c, b));
        ASSERT_TRUE(BuildImage(def, Options(1700000001), c, other));
        std::string bytes_a = ReadAll(a);
        EXPECT_FALSE(bytes_a.empty());
        EXPECT_TRUE(bytes_a == ReadAll(b)) << "same inputs, different bytes";
        EXPECT_FALSE(bytes_a == ReadAll(other)) << "SOURCE_DATE_EPOCH is not in the output";
        if (c == Compression::kGzip) {
            ASSERT_GE(bytes_a.size(), 10u);
            EXPECT_EQ(bytes_a.substr(0, 3), std::string("\x1f\x8b\x08", 3));
            EXPECT_EQ(bytes_a[3], 0) << "no FNAME/FCOMMENT flags";
            EXPECT_EQ(bytes_a.substr(4, 4), std::string(4, '\0')) << "no gzip timestamp";
        }
        if (c == Compression::kZstd) {
            EXPECT_EQ(bytes_a.substr(0, 4), "\x28\xb5\x2f\xfd");
        }
        if (c == Compression::kNone) {
            EXPECT_EQ(bytes_a.substr(0, 6), "070701");
        }
    }
}

std::vector<std::byte> Bytes(const std::string& s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

void WriteBytes(const std::string& path, const std::vector<std::byte>& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
}

// Pre-built packages: a valid one (vendor key from `keys`) and a deliberately tampered one
// (expect = "rejected") ship unchanged; the modules they provide are not packed again.
TEST_F(ImageBuildTest, PrebuiltPackagesAndKeys) {
    auto vendor = SigningKey::Generate();
    ASSERT_TRUE(vendor);
    std::ofstream(out_ + "/vendor.pub") << *vendor->PublicPem();
    auto make = [&](const std::string& name, const std::string& rel, const SigningKey& key) {
        PackageSpec spec{name, "1", kver_, {}};
        spec.files.push_back(
            {"modules/" + rel, Bytes(ReadAll(kernel_dir_ + "/" + ModDir() + "/" + rel))});
        auto pkg = CreatePackage(spec, &key);
        EXPECT_TRUE(pkg) << pkg.error().message();
        return pkg ? *pkg : std::vector<std::byte>{};
    };
    auto good = make("good", "kernel/drivers/net/dummy.ko", *vendor);
    WriteBytes(out_ + "/good.pkg", good);
    auto bad = make("bad", "kernel/fs/fat/vfat.ko", *vendor);
    std::string_view all(reinterpret_cast<const char*>(bad.data()), bad.size());
    size_t elf = all.find(
        "\x7f"
        "ELF");
    ASSERT_NE(elf, std::string_view::npos);
    bad[elf + 100] ^= std::byte{1};
    WriteBytes(out_ + "/bad.pkg", bad);

    std::string img = out_ + "/img";
    ASSERT_EQ(::mkdir(img.c_str(), 0755), 0);
    std::string head = "kernel = \"debian\"\nmodules = [\"dummy\", \"vfat\"]\nkeys = [\"" + out_ +
                       "/vendor.pub\"]\n";
    std::ofstream(img + "/image.toml")
        << head << "[[packages]]\npath = \"" << out_ << "/good.pkg\"\n[[packages]]\npath = \""
        << out_ << "/bad.pkg\"\nexpect = \"rejected\"\n";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto c = ComposeImage(*def, Options());
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->packages, (std::vector<std::string>{"/usr/lib/peinit/packages/good.pkg",
                                                     "/usr/lib/peinit/packages/bad.pkg",
                                                     "/usr/lib/peinit/packages/image.pkg"}));
    EXPECT_EQ(c->keys, (std::vector<std::string>{"/etc/peinit/keys/image.pub",
                                                 "/etc/peinit/keys/vendor.pub"}));
    EXPECT_EQ(c->tree.Find("usr/lib/peinit/packages/good.pkg")->data.size(), good.size());
    EXPECT_EQ(std::memcmp(c->tree.Find("usr/lib/peinit/packages/bad.pkg")->data.data(), bad.data(),
                          bad.size()),
              0);
    ASSERT_EQ(c->warnings.size(), 1u);
    EXPECT_NE(c->warnings[0].find("package bad.pkg ships deliberately unverifiable"),
              std::string::npos)
        << c->warnings[0];
    EXPECT_NE(c->warnings[0].find("hash-mismatch"), std::string::npos) << c->warnings[0];
    // image.pkg holds fat (vfat's dependency) but neither dummy nor vfat.
    const std::string& data = c->tree.Find("usr/lib/peinit/packages/image.pkg")->data;
    auto info = InspectPackage(Bytes(data));
    ASSERT_TRUE(info) << info.error().message();
    std::vector<std::string> paths;
    for (const auto& f : info->manifest.files) paths.push_back(f.path);
    EXPECT_EQ(paths, std::vector<std::string>{"modules/kernel/fs/fat/fat.ko"});

    // Mismatched expectations and untrusted packages fail the build, all of them at once, each
    // with what to do: an untrusted signer's key belongs in `keys` (named by its fingerprint);
    // only a damaged package may be meant as `expect = "rejected"`.
    auto other = SigningKey::Generate();
    ASSERT_TRUE(other);
    const std::string fp = other->public_key().fingerprint;
    WriteBytes(out_ + "/foreign.pkg", make("foreign", "kernel/drivers/net/dummy.ko", *other));
    std::ofstream(img + "/image.toml", std::ios::trunc)
        << head << "[[packages]]\npath = \"" << out_ << "/good.pkg\"\nexpect = \"rejected\"\n"
        << "[[packages]]\npath = \"" << out_ << "/foreign.pkg\"\n"
        << "[[packages]]\npath = \"" << out_ << "/bad.pkg\"\n";
    def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto r = ComposeImage(*def, Options());
    ASSERT_FALSE(r);
    std::vector<std::string> lines;
    std::stringstream ss(r.error().message());
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    ASSERT_EQ(lines.size(), 3u) << r.error().message();
    EXPECT_EQ(lines[0], img + "/image.toml:4: package " + out_ +
                            "/good.pkg verifies, but expect = \"rejected\"");
    EXPECT_EQ(lines[1], img + "/image.toml:7: package " + out_ +
                            "/foreign.pkg does not verify against the image's keys and kernel " +
                            kver_ + ": untrusted-key: signed by key " + fp +
                            ", which is not trusted (add the signer's public key, fingerprint " +
                            fp +
                            ", to \"keys\" (peinit-pkg keygen wrote it as NAME.pub beside the "
                            "NAME.key the package was signed with))");
    EXPECT_EQ(lines[1].find("expect"), std::string::npos) << "no expect = \"rejected\" advice";
    EXPECT_TRUE(lines[2].starts_with(img + "/image.toml:9: package " + out_ +
                                     "/bad.pkg does not verify against the image's keys and "
                                     "kernel " + kver_ + ": hash-mismatch: "))
        << lines[2];
    EXPECT_TRUE(lines[2].ends_with(
        " (if it is damaged on purpose, set expect = \"rejected\" to ship it deliberately)"))
        << lines[2];
}

TEST_F(ImageBuildTest, SigningKeyFromDefinition) {
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key);
    std::string img = out_ + "/img";
    ASSERT_EQ(::mkdir(img.c_str(), 0755), 0);
    std::ofstream(img + "/sign.key") << *key->PrivatePem();
    ::chmod((img + "/sign.key").c_str(), 0644);
    std::ofstream(img + "/image.toml")
        << "kernel = \"debian\"\nmodules = [\"dummy\"]\nsigning_key = \"sign.key\"\n";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto r = ComposeImage(*def, Options());
    ASSERT_FALSE(r) << "a key others can read is refused";
    EXPECT_NE(r.error().message().find("image.toml:3: signing_key: "), std::string::npos)
        << r.error().message();
    ::chmod((img + "/sign.key").c_str(), 0600);
    auto ok = ComposeImage(*def, Options());
    ASSERT_TRUE(ok) << ok.error().message();
    EXPECT_EQ(ok->signer, key->public_key().fingerprint);
    EXPECT_EQ(ok->signing_key, img + "/sign.key");
    struct stat st;
    EXPECT_NE(::stat((keys_ + "/image-keys").c_str(), &st), 0) << "no build-local key was made";
}

// Out-of-tree modules join the module tree (extra/) before resolution and depmod; one that
// would shadow an in-tree module is refused.
TEST_F(ImageBuildTest, ExtraModules) {
    std::string ko = out_ + "/peinit_extra_dummy.ko";
    std::ofstream(ko, std::ios::binary)
        << ReadAll(kernel_dir_ + "/" + ModDir() + "/kernel/drivers/net/dummy.ko");
    std::string img = out_ + "/img";
    ASSERT_EQ(::mkdir(img.c_str(), 0755), 0);
    std::ofstream(img + "/image.toml")
        << "kernel = \"debian\"\nmodules = [\"peinit_extra_dummy\"]\n"
        << "extra_modules = [\"" << ko << "\"]\n";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto c = ComposeImage(*def, Options());
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->modules, std::vector<std::string>{"peinit_extra_dummy"});
    ASSERT_NE(c->tree.Find(ModDir() + "/extra/peinit_extra_dummy.ko"), nullptr);
    EXPECT_NE(c->tree.Find(ModDir() + "/modules.dep")->data.find("extra/peinit_extra_dummy.ko:"),
              std::string::npos);
    auto info = InspectPackage(Bytes(c->tree.Find("usr/lib/peinit/packages/image.pkg")->data));
    ASSERT_TRUE(info);
    ASSERT_EQ(info->manifest.files.size(), 1u);
    EXPECT_EQ(info->manifest.files[0].path, "modules/extra/peinit_extra_dummy.ko");

    std::string shadow = out_ + "/dummy.ko";
    std::ofstream(shadow, std::ios::binary) << ReadAll(ko);
    std::ofstream(img + "/image.toml", std::ios::trunc)
        << "kernel = \"debian\"\nextra_modules = [\"" << shadow << "\"]\n";
    def = LoadImageDefinition(img);
    ASSERT_TRUE(def);
    auto r = ComposeImage(*def, Options());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), img + "/image.toml:2: extra module dummy (" + shadow +
                                       ") is already in kernel " + kver_ +
                                       "'s tree; an extra module cannot replace an in-tree one");
}

// A failed build reports `want`, writes nothing, and leaves an existing output alone.
void ExpectFailsCleanly(const ImageDefinition& def, const BuildOptions& opts,
                        const std::string& dir, const std::string& want) {
    std::string output = dir + "/image.cpio";
    auto fresh = BuildImage(def, opts, Compression::kZstd, output);
    ASSERT_FALSE(fresh);
    EXPECT_EQ(fresh.error().message(), want);
    EXPECT_TRUE(ListDir(dir).empty()) << "partial output left in " << dir;
    std::ofstream(output) << "previous image";
    auto again = BuildImage(def, opts, Compression::kZstd, output);
    ASSERT_FALSE(again);
    EXPECT_EQ(ReadAll(output), "previous image");
    EXPECT_EQ(ListDir(dir).size(), 1u);
    ::unlink(output.c_str());
}

TEST_F(ImageBuildTest, UnknownModuleFails) {
    ExpectFailsCleanly(Load("bad-module"), Options(), out_,
                       kFixtures +
                           "/bad-module/image.toml:4: unknown module \"no_such_module\": "
                           "not in kernel " +
                           kver_ + " (" + kernel_dir_ + "/lib/modules/" + kver_ + ")");
}

TEST_F(ImageBuildTest, UnitErrorFails) {
    ExpectFailsCleanly(Load("bad-unit"), Options(), out_,
                       kFixtures +
                           "/bad-unit/units/broken.toml:5: unknown key \"optinos\" in "
                           "[[module]]");
}

TEST_F(ImageBuildTest, BadHiveFails) {
    ExpectFailsCleanly(Load("bad-hive"), Options(), out_,
                       kFixtures +
                           "/bad-hive/hive.toml:3: AutoLoadPolicy: unknown value "
                           "\"sometimes\" (expected enabled, allow-list or disabled)");
}

// peinit.emergency is a typed command-line parameter: the builder accepts its values and names
// a typo with the definition's line.
TEST(ImageCmdline, EmergencyIsATypedParameter) {
    EXPECT_TRUE(CheckCmdline("quiet peinit.emergency=shell", "image.toml:5"));
    EXPECT_TRUE(CheckCmdline("peinit.emergency=poweroff", "image.toml:5"));
    auto bad = CheckCmdline("peinit.emergency=shel", "image.toml:5");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(),
              "image.toml:5: cmdline: peinit.emergency=shel: expected shell or poweroff");
}

TEST_F(ImageBuildTest, MissingKernelDirFails) {
    BuildOptions opts = Options();
    opts.kernel_dir = out_ + "/no-kernel";
    ImageDefinition def = Load("small");
    auto r = BuildImage(def, opts, Compression::kZstd, out_ + "/x.cpio");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), kFixtures +
                                       "/small/image.toml:2: kernel \"debian\": kernel "
                                       "directory " +
                                       out_ + "/no-kernel does not exist");
    EXPECT_TRUE(ListDir(out_).empty());
}

TEST_F(ImageBuildTest, MissingKernelReleaseFails) {
    // A kernel directory whose kver names a release without a modules tree.
    std::string k = out_ + "/kernel";
    ASSERT_EQ(::mkdir(k.c_str(), 0755), 0);
    std::ofstream(k + "/kver") << "6.1.0-nonexistent\n";
    std::string o = out_ + "/out";
    ASSERT_EQ(::mkdir(o.c_str(), 0755), 0);
    BuildOptions opts = Options();
    opts.kernel_dir = k;
    ImageDefinition def = Load("small");
    ExpectFailsCleanly(def, opts, o,
                       kFixtures +
                           "/small/image.toml:2: kernel \"debian\": kernel release "
                           "6.1.0-nonexistent has no modules tree: " +
                           k + "/lib/modules/6.1.0-nonexistent does not exist");
}

TEST_F(ImageBuildTest, MissingProgramFails) {
    BuildOptions opts = Options();
    opts.binaries.push_back({"/usr/bin/peinitctl", out_ + "/peinitctl", true});
    opts.binaries.push_back({"/usr/bin/optional", out_ + "/optional", false});
    std::string o = out_ + "/out";
    ASSERT_EQ(::mkdir(o.c_str(), 0755), 0);
    ExpectFailsCleanly(
        Load("small"), opts, o,
        out_ + "/peinitctl: not found (ships as /usr/bin/peinitctl; build it first)");
}

TEST_F(ImageBuildTest, ServiceProgramMustBeShipped) {
    std::string img = out_ + "/img";
    ASSERT_EQ(std::system(("mkdir -p " + img + "/units").c_str()), 0);
    std::ofstream(img + "/image.toml") << "kernel = \"debian\"\nunits = [\"units\"]\n";
    std::ofstream(img + "/units/svc.toml")
        << "description = \"x\"\n\n[[service]]\nname = \"hello\"\nexec = [\"/bin/echo\", \"hi\"]\n";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto r = ComposeImage(*def, Options());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), img +
                                       "/units/svc.toml:3: service \"hello\" runs /bin/echo, "
                                       "which is not in the image (ship it with [[files]])");
    // Shipped with [[files]], it is fine, and its libraries come along.
    std::ofstream(img + "/image.toml", std::ios::app)
        << "[[files]]\nsrc = \"/bin/echo\"\ndst = \"/bin/echo\"\n";
    def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto ok = ComposeImage(*def, Options());
    ASSERT_TRUE(ok) << ok.error().message();
    ASSERT_NE(ok->tree.Find("/bin/echo"), nullptr);
    EXPECT_EQ(ok->tree.Find("/bin/echo")->mode, 0755u);
}

// Issue 16: mistakes that would only show at boot are build errors: unit options naming a
// parameter the module does not declare (the kernel ignores it and loads the module), and a
// kernel = "peinit" image given another kernel's directory.
TEST_F(ImageBuildTest, UnknownModuleParameterAndWrongKernelKindFailTheBuild) {
    std::string img = out_ + "/img";
    ASSERT_EQ(std::system(("mkdir -p " + img + "/units").c_str()), 0);
    std::ofstream(img + "/image.toml") << "kernel = \"debian\"\nunits = [\"units\"]\n";
    std::ofstream(img + "/units/net.toml")
        << "description = \"x\"\n\n[[module]]\nname = \"dummy\"\n"
           "options = \"numdummies=2 numdumies=3\"\n";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto r = ComposeImage(*def, Options());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find(
                  img + "/units/net.toml:3: module dummy has no parameter \"numdumies\" "
                        "(options \"numdummies=2 numdumies=3\"; it has numdummies): the kernel "
                        "would ignore it"),
              std::string::npos)
        << r.error().message();
    std::ofstream(img + "/units/net.toml")
        << "description = \"x\"\n\n[[module]]\nname = \"dummy\"\noptions = \"numdummies=2\"\n";
    def = LoadImageDefinition(img);
    ASSERT_TRUE(def);
    auto ok = ComposeImage(*def, Options());
    ASSERT_TRUE(ok) << ok.error().message();

    std::ofstream(img + "/image.toml") << "kernel = \"peinit\"\nunits = [\"units\"]\n";
    def = LoadImageDefinition(img);
    ASSERT_TRUE(def);
    auto kind = ComposeImage(*def, Options());  // Options() gives Debian's kernel directory
    ASSERT_FALSE(kind);
    EXPECT_NE(kind.error().message().find(img + "/image.toml:1: kernel = \"peinit\" but " +
                                          kernel_dir_ + " holds kernel " + kver_ +
                                          ", not a peinit kernel"),
              std::string::npos)
        << kind.error().message();
}

TEST_F(ImageBuildTest, ConflictingPathsFail) {
    std::string img = out_ + "/img";
    ASSERT_EQ(std::system(("mkdir -p " + img).c_str()), 0);
    std::ofstream(img + "/image.toml")
        << "kernel = \"debian\"\n[[files]]\nsrc = \"/etc/hostname\"\ndst = \"/init\"\n";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto r = ComposeImage(*def, Options());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), img +
                                       "/image.toml:2: /init is provided twice: by /bin/ls "
                                       "(stripped) and by /etc/hostname");
}

// --- the tool --------------------------------------------------------------------------------

// Issue 16 acceptance: one image definition with twelve independent mistakes, across the
// definition (bad value, unknown key, three in one [[files]] entry, a syntax error in [boot]),
// the units (one broken unit), the hive, the command line, the module set (one unknown module
// from the definition, one from a valid unit) and the keys. One `peinit-image build` names every
// one of them, each with file:line, and writes nothing.
TEST_F(ImageBuildTest, EveryMistakeOfOneImageInOneRun) {
    std::string img = out_ + "/img";
    ASSERT_EQ(::mkdir(img.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((img + "/units").c_str(), 0755), 0);
    std::ofstream(img + "/image.toml") << R"(kernel = "debian"
units = ["units"]
modules = ["dummy", "vxlna"]
compression = "lz4"
keys = ["notakey.pub"]
cmdline = "quiet peinit.emergency=shel"
colour = "blue"
hive = "hive.toml"

[[files]]
src = "missing.sh"
dst = "bin/x"
mode = "9"

[boot]
memory = 512 MiB
)";
    std::ofstream(img + "/units/net.toml") << "[[module]]\nnmae = \"dummy\"\n";
    std::ofstream(img + "/units/base.toml") << "[[module]]\nname = \"nosuchmod\"\n";
    std::ofstream(img + "/notakey.pub") << "not a key\n";
    std::ofstream(img + "/hive.toml") << "['Machine\\System\\Modules']\nLockAfterBoot = \"yes\"\n";
    std::string manifest = out_ + "/binaries.manifest";
    std::ofstream(manifest) << "/init /bin/ls required\n";
    ToolRun r = Tool("build '" + img + "' --kernel-dir '" + kernel_dir_ + "' --binaries '" +
                         manifest + "' -o '" + out_ + "/x.cpio'",
                     "PEINIT_CACHE=" + keys_);
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_FALSE(Exists(out_ + "/x.cpio")) << "a failing build writes nothing";
    const std::string def = img + "/image.toml:";
    const std::string tree = kernel_dir_ + "/lib/modules/" + kver_;
    std::vector<std::string> expected = {
        "peinit-image: " + def + "4: unknown compression \"lz4\" (expected none, gzip or zstd)",
        def + "7: unknown key \"colour\"",
        def + "11: \"files.src\": " + img + "/missing.sh does not exist",
        def + "12: \"files.dst\" \"bin/x\" must be an absolute path",
        def + "13: \"files.mode\" \"9\" is not an octal mode",
        def + "16: Error while parsing key-value pair: expected a comment or whitespace, saw 'M'",
        img + "/units/net.toml:1: [[module]] has no \"name\"",
        img + "/units/net.toml:2: unknown key \"nmae\" in [[module]]",
        img + "/hive.toml:2: LockAfterBoot: unknown value \"yes\" (expected \"true\" or \"false\")",
        def + "6: cmdline: peinit.emergency=shel: expected shell or poweroff",
        img + "/units/base.toml:1: unknown module \"nosuchmod\": not in kernel " + kver_ + " (" +
            tree + ")",
        def + "3: unknown module \"vxlna\": not in kernel " + kver_ + " (" + tree + ")",
        def + "5: key " + img + "/notakey.pub: not a PEM public key: " +
            "error:1E08010C:DECODER routines::unsupported",
    };
    std::vector<std::string> lines;
    std::stringstream ss(r.output);
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    EXPECT_EQ(lines, expected) << r.output;
}

// `peinit-image plan IMAGE`: the plan the image's PID 1 would run, from its units (in their
// order), cmdline and hive, against the kernel tree with extra_modules staged in; one line per
// load with --compact; a hive-blacklisted module is a warning (exit 0), the same as in build.
TEST_F(ImageBuildTest, ToolPlanShowsTheBootPlanWithExtraModules) {
    std::string ko = out_ + "/peinit_extra_dummy.ko";
    std::ofstream(ko, std::ios::binary)
        << ReadAll(kernel_dir_ + "/" + ModDir() + "/kernel/drivers/net/dummy.ko");
    std::string img = out_ + "/img";
    ASSERT_EQ(::mkdir(img.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((img + "/units").c_str(), 0755), 0);
    std::ofstream(img + "/image.toml")
        << "kernel = \"debian\"\nunits = [\"units\"]\nhive = \"hive.toml\"\n"
        << "cmdline = \"modules_load=loop\"\nextra_modules = [\"" << ko << "\"]\n";
    std::ofstream(img + "/units/net.toml")
        << "[[module]]\nname = \"peinit_extra_dummy\"\noptions = \"numdummies=2\"\n"
        << "[[module]]\nname = \"vfat\"\n";
    std::ofstream(img + "/hive.toml") << "['Machine\\System\\Modules']\nBlacklist = [\"vfat\"]\n";
    ToolRun r = Tool("plan '" + img + "' --kernel-dir '" + kernel_dir_ + "' --compact");
    EXPECT_EQ(r.status, 0) << r.output;
    const std::string mods = "/lib/modules/" + kver_ + "/";
    EXPECT_NE(r.output.find("insmod " + mods + "extra/peinit_extra_dummy.ko numdummies=2\n"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("insmod " + mods + "kernel/drivers/block/loop.ko\n"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("# blacklisted vfat: hive Machine\\System\\Modules\\Blacklist\n"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("# warning: vfat: blacklisted (hive Machine\\System\\Modules\\"
                            "Blacklist), requested by unit net\n"),
              std::string::npos)
        << r.output;
    EXPECT_EQ(r.output.find("# error"), std::string::npos) << r.output;
    // The detailed form is peinit plan's.
    ToolRun full = Tool("plan '" + img + "' --kernel-dir '" + kernel_dir_ + "'");
    EXPECT_EQ(full.status, 0) << full.output;
    EXPECT_NE(full.output.find("peinit-image plan: root " + img + ", kernel " + kver_),
              std::string::npos)
        << full.output;
    EXPECT_NE(full.output.find("   wanted by:  unit net\n"), std::string::npos)
        << full.output;
    // The same blacklisted module is a warning in build too, with the same words.
    std::ofstream(img + "/image.toml", std::ios::app) << "";
    auto def = LoadImageDefinition(img);
    ASSERT_TRUE(def) << def.error().message();
    auto c = ComposeImage(*def, Options());
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_NE(std::find(c->warnings.begin(), c->warnings.end(),
                        "at boot: vfat: blacklisted (hive Blacklist), requested by " + img +
                            "/units/net.toml:4"),
              c->warnings.end());
    // A module nothing provides is an error: exit 1.
    std::ofstream(img + "/units/more.conf") << "nosuchmod\n";
    ToolRun missing = Tool("plan '" + img + "' --kernel-dir '" + kernel_dir_ + "' --compact");
    EXPECT_EQ(missing.status, 1) << missing.output;
    EXPECT_NE(missing.output.find("# error: nosuchmod: missing"), std::string::npos)
        << missing.output;
}

// `peinit-image check IMAGE`: build's validations, nothing written, exit 0/1.
TEST_F(ImageBuildTest, ToolCheckValidatesWithoutWriting) {
    std::string manifest = out_ + "/binaries.manifest";
    std::ofstream(manifest) << "/init /bin/ls required\n";
    std::string args = "check '" + kFixtures + "/small' --kernel-dir '" + kernel_dir_ +
                       "' --binaries '" + manifest + "'";
    ToolRun ok = Tool(args, "PEINIT_CACHE=" + keys_);
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_NE(ok.output.find(kFixtures + "/small: ok (kernel " + kver_), std::string::npos)
        << ok.output;
    ToolRun bad = Tool("check '" + kFixtures + "/bad-module' --kernel-dir '" + kernel_dir_ +
                           "' --binaries '" + manifest + "'",
                       "PEINIT_CACHE=" + keys_);
    EXPECT_EQ(bad.status, 1) << bad.output;
    EXPECT_NE(bad.output.find("unknown module"), std::string::npos) << bad.output;
    EXPECT_EQ(Tool("check").status, 2);
    EXPECT_EQ(Tool("plan x --json --compact").status, 2);
}

TEST(ImageToolTest, UsageErrorsExitTwo) {
    EXPECT_EQ(Tool("").status, 2);
    EXPECT_EQ(Tool("frobnicate").status, 2);
    EXPECT_EQ(Tool("build").status, 2);
    EXPECT_EQ(Tool("build images/demo").status, 2);  // no -o
    EXPECT_EQ(Tool("build images/demo -o x --compression lz4").status, 2);
    EXPECT_EQ(Tool("build images/demo -o x --bogus").status, 2);
    EXPECT_EQ(Tool("boot").status, 2);
    EXPECT_EQ(Tool("boot images/demo --smp 0").status, 2);
    EXPECT_EQ(Tool("boot images/demo --timeout soon").status, 2);
    EXPECT_EQ(Tool("boot images/demo --smp").status, 2);
    EXPECT_EQ(Tool("list").status, 2);
    ToolRun r = Tool("build images/demo");
    EXPECT_NE(r.output.find("peinit-image build: option --output is required"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("usage: peinit-image build"), std::string::npos) << r.output;
    EXPECT_EQ(Tool("boot images/demo --timeout -1").status, 2);
}

TEST(ImageToolTest, HelpExitsZero) {
    for (const char* args :
         {"--help", "help", "build --help", "boot --help", "list --help", "help boot",
          "check --help", "plan --help", "help plan"}) {
        ToolRun r = Tool(args);
        EXPECT_EQ(r.status, 0) << args;
        EXPECT_NE(r.output.find("usage: peinit-image"), std::string::npos) << args;
    }
}

TEST_F(ImageBuildTest, ToolBuildsWithSourceDateEpoch) {
    std::string manifest = out_ + "/binaries.manifest";
    std::ofstream(manifest) << "# test\n/init /bin/ls required\n";
    std::string common = "build '" + kFixtures + "/small' --kernel-dir '" + kernel_dir_ +
                         "' --binaries '" + manifest + "' --compression gzip -o ";
    ToolRun a =
        Tool(common + "'" + out_ + "/a.cpio.gz'", "SOURCE_DATE_EPOCH=42 PEINIT_CACHE=" + keys_);
    ASSERT_EQ(a.status, 0) << a.output;
    EXPECT_NE(a.output.find("wrote " + out_ + "/a.cpio.gz"), std::string::npos) << a.output;
    ToolRun b =
        Tool(common + "'" + out_ + "/b.cpio.gz'", "SOURCE_DATE_EPOCH=42 PEINIT_CACHE=" + keys_);
    ASSERT_EQ(b.status, 0) << b.output;
    EXPECT_TRUE(ReadAll(out_ + "/a.cpio.gz") == ReadAll(out_ + "/b.cpio.gz"));
    auto entries = ReadCpio(out_ + "/a.cpio.gz");
    ASSERT_TRUE(entries);
    for (const auto& e : *entries) EXPECT_EQ(e.mtime, 42) << e.path;

    ToolRun bad = Tool(common + "'" + out_ + "/c.cpio.gz'",
                       "SOURCE_DATE_EPOCH=yesterday PEINIT_CACHE=" + keys_);
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.output.find("SOURCE_DATE_EPOCH=\"yesterday\""), std::string::npos);

    ToolRun invalid = Tool("build '" + kFixtures + "/bad-module' --kernel-dir '" + kernel_dir_ +
                               "' --binaries '" + manifest + "' -o '" + out_ + "/d.cpio'",
                           "PEINIT_CACHE=" + keys_);
    EXPECT_EQ(invalid.status, 1);
    EXPECT_NE(invalid.output.find("image.toml:4: unknown module \"no_such_module\""),
              std::string::npos)
        << invalid.output;
    EXPECT_FALSE(Exists(out_ + "/d.cpio"));

    ToolRun list = Tool("list '" + out_ + "/a.cpio.gz'");
    EXPECT_EQ(list.status, 0);
    EXPECT_NE(list.output.find("c0600 0/0     5,1     /dev/console\n"), std::string::npos)
        << list.output;
    EXPECT_NE(list.output.find(" /init\n"), std::string::npos);
}

}  // namespace
}  // namespace peinit::image
