// The name a module image declares (peinit/sys/module_elf.h), and the check that binds a package
// member's file name to it.

#include "peinit/sys/module_elf.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "peinit/sys/package_format.h"
#include "tests/unit/fake_module_elf.h"

namespace peinit {
namespace {

using testing::FakeModuleElf;

std::span<const std::byte> Span(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

TEST(ModuleElf, ReadsTheNameBothPlacesAgreeOn) {
    auto image = FakeModuleElf("virtio-blk", "virtio_blk");
    auto name = ModuleNameOfImage(Span(image));
    ASSERT_TRUE(name) << name.error().message();
    EXPECT_EQ(*name, "virtio_blk");
    // .modinfo without name=: the struct module's name alone.
    auto bare = FakeModuleElf("ext4", "");
    EXPECT_EQ(ModuleNameOfImage(Span(bare)).value(), "ext4");
}

TEST(ModuleElf, NotElfIsNoNameAndBrokenModulesAreErrors) {
    const std::string text = "fake module payload";
    std::vector<std::byte> bytes(text.size());
    std::memcpy(bytes.data(), text.data(), text.size());
    auto none = ModuleNameOfImage(Span(bytes));
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);

    auto two = ModuleNameOfImage(Span(FakeModuleElf("ext4", "evil")));
    ASSERT_FALSE(two);
    EXPECT_EQ(two.error().message(),
              ".modinfo names module \"evil\" but .gnu.linkonce.this_module names \"ext4\"");
    auto exec = ModuleNameOfImage(Span(FakeModuleElf("ext4", "ext4", ET_EXEC)));
    ASSERT_FALSE(exec);
    EXPECT_EQ(exec.error().message(), "not a 64-bit kernel module (ELF type 2, expected "
                                      "relocatable)");
    auto nameless = ModuleNameOfImage(Span(FakeModuleElf("", "ext4")));
    ASSERT_FALSE(nameless);
    auto truncated = FakeModuleElf("ext4", "ext4");
    truncated.resize(100);  // the section headers are gone
    EXPECT_FALSE(ModuleNameOfImage(Span(truncated)));
}

TEST(ModuleElf, CheckBindsTheFileNameToTheModule) {
    EXPECT_TRUE(CheckModuleName(Span(FakeModuleElf("jbd2", "jbd2")), "jbd2", "modules/jbd2.ko"));
    auto swapped = CheckModuleName(Span(FakeModuleElf("evil", "evil")), "jbd2", "modules/jbd2.ko");
    ASSERT_FALSE(swapped);
    EXPECT_EQ(PackageRejectOf(swapped.error()), PackageReject::kModuleNameMismatch);
    EXPECT_EQ(swapped.error().message(),
              "module-name-mismatch: modules/jbd2.ko holds module \"evil\", not \"jbd2\"");
}

// A real module from Debian's kernel (the resolution fixture, when configured).
TEST(ModuleElf, RealDebianModule) {
    const std::string root = PEINIT_DEBIAN_KERNEL_DIR;
    if (root.empty()) GTEST_SKIP() << "no Debian kernel fixture configured";
    std::filesystem::path ko;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root + "/lib/modules")) {
        if (e.path().filename() == "virtio_blk.ko") ko = e.path();
    }
    ASSERT_FALSE(ko.empty());
    std::ifstream in(ko, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(data.size());
    std::memcpy(bytes.data(), data.data(), data.size());
    auto name = ModuleNameOfImage(Span(bytes));
    ASSERT_TRUE(name) << name.error().message();
    EXPECT_EQ(*name, "virtio_blk");
}

}  // namespace
}  // namespace peinit
