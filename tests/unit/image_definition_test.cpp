// image.toml parsing: every error names the file and line.

#include "initramfs/image_definition.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace peinit::image {
namespace {

class ImageDefinitionTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/image-def-test.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        ::mkdir((dir_ + "/units").c_str(), 0755);
        Write("hive.toml", "[Machine.System.Modules]\nLockAfterBoot = true\n");
        Write("hello.sh", "#!/bin/sh\necho hi\n");
        ::chmod((dir_ + "/hello.sh").c_str(), 0755);
    }
    void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

    void Write(const std::string& name, const std::string& text) {
        std::ofstream(dir_ + "/" + name) << text;
    }
    Result<ImageDefinition> Parse(const std::string& text) {
        return ParseImageDefinition(text, "img/image.toml", dir_);
    }
    std::string ErrorOf(const std::string& text) {
        auto r = Parse(text);
        EXPECT_FALSE(r.has_value()) << "expected an error for:\n" << text;
        return r ? "" : r.error().message();
    }

    std::string dir_;
};

TEST_F(ImageDefinitionTest, FullDefinition) {
    auto def = Parse(R"(description = "x"
kernel = "debian"
units = ["units"]
hive = "hive.toml"
cmdline = "quiet peinit.lock=1"
compression = "gzip"
modules = ["dummy", "net-pf-17"]
strip = false
loose_modules = true

[[files]]
src = "hello.sh"
dst = "/usr/bin/hello"

[[files]]
src = "hive.toml"
dst = "/etc/copy"
mode = 0o600

[boot]
memory = 256
smp = 2
qemu_args = ["-nic", "none"]
)");
    ASSERT_TRUE(def) << def.error().message();
    EXPECT_EQ(def->kernel, KernelKind::kDebian);
    ASSERT_EQ(def->unit_dirs.size(), 1u);
    EXPECT_EQ(def->unit_dirs[0].value, dir_ + "/units");
    EXPECT_EQ(def->unit_dirs[0].line, 3);
    ASSERT_TRUE(def->hive);
    EXPECT_EQ(def->hive->value, dir_ + "/hive.toml");
    EXPECT_EQ(def->cmdline, "quiet peinit.lock=1");
    EXPECT_EQ(def->cmdline_line, 5);
    EXPECT_EQ(def->compression, Compression::kGzip);
    ASSERT_EQ(def->modules.size(), 2u);
    EXPECT_EQ(def->modules[1].value, "net-pf-17");
    EXPECT_EQ(def->modules[1].line, 7);
    EXPECT_FALSE(def->strip);
    EXPECT_TRUE(def->loose_modules);
    ASSERT_EQ(def->files.size(), 2u);
    EXPECT_EQ(def->files[0].src, dir_ + "/hello.sh");
    EXPECT_EQ(def->files[0].dst, "/usr/bin/hello");
    EXPECT_FALSE(def->files[0].mode);
    EXPECT_EQ(def->files[1].mode, 0600u);
    EXPECT_EQ(def->boot.memory_mb, 256);
    EXPECT_EQ(def->boot.smp, 2);
    EXPECT_EQ(def->boot.qemu_args, (std::vector<std::string>{"-nic", "none"}));
}

TEST_F(ImageDefinitionTest, Defaults) {
    auto def = Parse("kernel = \"peinit\"\n");
    ASSERT_TRUE(def) << def.error().message();
    EXPECT_EQ(def->kernel, KernelKind::kPeinit);
    EXPECT_EQ(def->compression, Compression::kZstd);
    EXPECT_TRUE(def->strip);
    EXPECT_FALSE(def->loose_modules);
    EXPECT_FALSE(def->hive);
    EXPECT_EQ(def->boot.memory_mb, 512);
    EXPECT_EQ(def->boot.smp, 1);
}

TEST_F(ImageDefinitionTest, UnknownKey) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n\nmodlues = [\"dummy\"]\n"),
              "img/image.toml:3: unknown key \"modlues\"");
}

TEST_F(ImageDefinitionTest, MissingKernel) {
    EXPECT_EQ(ErrorOf("units = [\"units\"]\n"),
              "img/image.toml:1: missing required key \"kernel\" (\"peinit\", \"debian\", "
              "\"running\" or a kernel release)");
}

TEST_F(ImageDefinitionTest, BadKernel) {
    EXPECT_EQ(ErrorOf("\nkernel = \"ubuntu\"\n"),
              "img/image.toml:2: unknown kernel \"ubuntu\" (expected \"peinit\", \"debian\", "
              "\"running\" or an installed kernel's release such as \"6.1.0-57-amd64\")");
    EXPECT_EQ(ErrorOf("kernel = \"6.1.0 57\"\n"),
              "img/image.toml:1: unknown kernel \"6.1.0 57\" (expected \"peinit\", \"debian\", "
              "\"running\" or an installed kernel's release such as \"6.1.0-57-amd64\")");
}

// An installed kernel by release (issue 22), or the running one; the release is kept for the
// builder, which finds ROOT/boot/vmlinuz-KVER and ROOT/lib/modules/KVER.
TEST_F(ImageDefinitionTest, KernelByRelease) {
    auto def = Parse("kernel = \"6.1.0-57-amd64\"\n");
    ASSERT_TRUE(def) << def.error().message();
    EXPECT_EQ(def->kernel, KernelKind::kRelease);
    EXPECT_EQ(def->kernel_release, "6.1.0-57-amd64");
    EXPECT_EQ(def->kernel_line, 1);
    auto running = Parse("kernel = \"running\"\n");
    ASSERT_TRUE(running) << running.error().message();
    EXPECT_EQ(running->kernel, KernelKind::kRunning);
    EXPECT_TRUE(running->kernel_release.empty());
    auto debian = Parse("kernel = \"debian\"\n");
    ASSERT_TRUE(debian);
    EXPECT_EQ(debian->kernel, KernelKind::kDebian);
}

TEST_F(ImageDefinitionTest, ModulesFrom) {
    auto def = Parse("kernel = \"debian\"\n");
    ASSERT_TRUE(def);
    EXPECT_EQ(def->modules_from, ModuleMode::kUnits);
    for (auto [text, mode] : {std::pair{"units", ModuleMode::kUnits},
                              std::pair{"host", ModuleMode::kHost},
                              std::pair{"generic", ModuleMode::kGeneric}}) {
        auto d = Parse(std::string("kernel = \"debian\"\nmodules_from = \"") + text + "\"\n");
        ASSERT_TRUE(d) << d.error().message();
        EXPECT_EQ(d->modules_from, mode) << text;
        EXPECT_EQ(d->modules_from_line, 2);
    }
    EXPECT_EQ(ErrorOf("kernel = \"debian\"\nmodules_from = \"all\"\n"),
              "img/image.toml:2: unknown modules_from \"all\" (expected \"units\", \"host\" or "
              "\"generic\")");
    EXPECT_EQ(ErrorOf("kernel = \"debian\"\nmodules_from = 1\n"),
              "img/image.toml:2: \"modules_from\" must be a string");
}

TEST_F(ImageDefinitionTest, BadCompression) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\ncompression = \"xz\"\n"),
              "img/image.toml:2: unknown compression \"xz\" (expected none, gzip or zstd)");
}

TEST_F(ImageDefinitionTest, WrongTypes) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nmodules = \"dummy\"\n"),
              "img/image.toml:2: \"modules\" must be an array of strings");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nmodules = [\n  \"a\",\n  3,\n]\n"),
              "img/image.toml:4: \"modules\" entries must be strings");
    EXPECT_EQ(ErrorOf("kernel = 1\n"), "img/image.toml:1: \"kernel\" must be a string");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nstrip = \"yes\"\n"),
              "img/image.toml:2: \"strip\" must be a boolean");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nloose_modules = 1\n"),
              "img/image.toml:2: \"loose_modules\" must be a boolean");
}

TEST_F(ImageDefinitionTest, MissingPaths) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nunits = [\"nope\"]\n"),
              "img/image.toml:2: \"units\": " + dir_ + "/nope does not exist");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nhive = \"units\"\n"),
              "img/image.toml:2: \"hive\": " + dir_ + "/units is not a regular file");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nunits = [\"hive.toml\"]\n"),
              "img/image.toml:2: \"units\": " + dir_ + "/hive.toml is not a directory");
}

TEST_F(ImageDefinitionTest, FilesErrors) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"hello.sh\"\ndst = \"usr/bin/x\"\n"),
              "img/image.toml:4: \"files.dst\" \"usr/bin/x\" must be an absolute path");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"hello.sh\"\n"),
              "img/image.toml:2: [[files]] entry without \"dst\"");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"hello.sh\"\ndst = \"/x\"\n"
                      "mode = \"9\"\n"),
              "img/image.toml:5: \"files.mode\" \"9\" is not an octal mode");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"hello.sh\"\ndst = \"/x\"\n"
                      "owner = 0\n"),
              "img/image.toml:5: unknown key \"owner\" in [[files]] (expected src, dst, mode)");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"missing\"\ndst = \"/x\"\n"),
              "img/image.toml:3: \"files.src\": " + dir_ + "/missing does not exist");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"hello.sh\"\ndst = \"/a/../b\"\n"),
              "img/image.toml:4: \"files.dst\": image path \"/a/../b\" contains \"..\"");
    // Every bad field of one entry at once, each at its line.
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[files]]\nsrc = \"missing\"\ndst = \"rel\"\n"
                      "mode = \"9\"\nowner = 0\n[[files]]\nmode = 0o644\n"),
              "img/image.toml:3: \"files.src\": " + dir_ + "/missing does not exist\n"
              "img/image.toml:4: \"files.dst\" \"rel\" must be an absolute path\n"
              "img/image.toml:5: \"files.mode\" \"9\" is not an octal mode\n"
              "img/image.toml:6: unknown key \"owner\" in [[files]] (expected src, dst, mode)\n"
              "img/image.toml:7: [[files]] entry without \"src\"\n"
              "img/image.toml:7: [[files]] entry without \"dst\"");
}

TEST_F(ImageDefinitionTest, BootErrors) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[boot]\nsmp = 0\n"),
              "img/image.toml:3: \"boot.smp\" must be 1..64");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[boot]\nmemory = 16\n"),
              "img/image.toml:3: \"boot.memory\" must be 64..65536 (MiB)");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[boot]\ncpus = 2\n"),
              "img/image.toml:3: unknown key \"cpus\" in [boot] (expected memory, smp, qemu_args)");
}

TEST_F(ImageDefinitionTest, PackagesKeysExtraModulesSigningKey) {
    Write("a.pkg", "x");
    Write("b.pkg", "x");
    Write("v.pub", "x");
    Write("m.ko", "x");
    Write("s.key", "x");
    auto def = ParseImageDefinition(
        "kernel = \"peinit\"\nsigning_key = \"s.key\"\nkeys = [\"v.pub\"]\n"
        "extra_modules = [\"m.ko\"]\n"
        "[[packages]]\npath = \"a.pkg\"\n[[packages]]\npath = \"b.pkg\"\nexpect = \"rejected\"\n",
        "img/image.toml", dir_);
    ASSERT_TRUE(def) << def.error().message();
    ASSERT_EQ(def->packages.size(), 2u);
    EXPECT_EQ(def->packages[0].path, dir_ + "/a.pkg");
    EXPECT_EQ(def->packages[0].expect, PackageExpect::kValid);
    EXPECT_EQ(def->packages[1].expect, PackageExpect::kRejected);
    EXPECT_EQ(def->packages[1].line, 7);
    ASSERT_EQ(def->keys.size(), 1u);
    EXPECT_EQ(def->keys[0].value, dir_ + "/v.pub");
    ASSERT_EQ(def->extra_modules.size(), 1u);
    EXPECT_EQ(def->extra_modules[0].value, dir_ + "/m.ko");
    ASSERT_TRUE(def->signing_key);
    EXPECT_EQ(def->signing_key->value, dir_ + "/s.key");
    // The short form: a list of paths (expect = "valid").
    auto short_form = ParseImageDefinition("kernel = \"peinit\"\npackages = [\"a.pkg\"]\n",
                                           "img/image.toml", dir_);
    ASSERT_TRUE(short_form) << short_form.error().message();
    EXPECT_EQ(short_form->packages.size(), 1u);
}

TEST_F(ImageDefinitionTest, PackageErrors) {
    Write("a.pkg", "x");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\npackages = [\"net.tar\"]\n"),
              "img/image.toml:2: \"packages\": net.tar must end in .pkg");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\npackages = [\"nope.pkg\"]\n"),
              "img/image.toml:2: \"packages\": " + dir_ + "/nope.pkg does not exist");
    EXPECT_EQ(
        ErrorOf("kernel = \"peinit\"\n[[packages]]\npath = \"a.pkg\"\nexpect = \"maybe\"\n"),
        "img/image.toml:4: \"packages.expect\" must be \"valid\" or \"rejected\", not \"maybe\"");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\n[[packages]]\nfile = \"a.pkg\"\n"),
              "img/image.toml:3: unknown key \"file\" in [[packages]] (expected path, expect)");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nkeys = [\"k.pem\"]\n"),
              "img/image.toml:2: \"keys\": k.pem must end in .pub");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nextra_modules = [\"x.ko\"]\n"),
              "img/image.toml:2: \"extra_modules\": " + dir_ + "/x.ko does not exist");
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nsigning_key = 3\n"),
              "img/image.toml:2: \"signing_key\" must be a string");
}

TEST_F(ImageDefinitionTest, TomlSyntaxError) {
    std::string e = ErrorOf("kernel = \"peinit\"\nmodules = [\"a\"\n");
    EXPECT_EQ(e.rfind("img/image.toml:", 0), 0u) << e;
    EXPECT_NE(e.find(":2: "), std::string::npos) << e;
}

TEST_F(ImageDefinitionTest, AllErrorsAtOnce) {
    EXPECT_EQ(ErrorOf("kernel = \"peinit\"\nfoo = 1\ncompression = \"lz4\"\n"),
              "img/image.toml:2: unknown key \"foo\"\n"
              "img/image.toml:3: unknown compression \"lz4\" (expected none, gzip or zstd)");
}

TEST_F(ImageDefinitionTest, LoadFromDirectory) {
    Write("image.toml", "kernel = \"debian\"\nunits = [\"units\"]\n");
    auto def = LoadImageDefinition(dir_);
    ASSERT_TRUE(def) << def.error().message();
    EXPECT_EQ(def->file, dir_ + "/image.toml");
    EXPECT_EQ(def->name, dir_.substr(dir_.rfind('/') + 1));
    auto missing = LoadImageDefinition(dir_ + "/units");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message(), dir_ + "/units/image.toml: No such file or directory");
}

TEST_F(ImageDefinitionTest, RepositoryImagesParse) {
    for (const char* name : {"demo", "debian"}) {
        auto def = LoadImageDefinition(std::string(PEINIT_SOURCE_DIR) + "/images/" + name);
        EXPECT_TRUE(def) << name << ": " << def.error().message();
    }
}

}  // namespace
}  // namespace peinit::image
