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

// The kernel reads the first allocated .gnu.linkonce.this_module and the first name=; a module
// that names itself twice, or hides its name where the kernel does not look, is refused so that
// peinit's reading and the kernel's cannot differ (issue 24 point 6).
TEST(ModuleElf, AmbiguousNamesAreRefused) {
    using testing::FakeModuleLayout;
    FakeModuleLayout second_name;
    second_name.extra_modinfo_name = "evil";
    FakeModuleLayout second_section;
    second_section.second_this_module_name = "evil";
    FakeModuleLayout not_allocated;
    not_allocated.this_module_allocated = false;
    auto two_names = ModuleNameOfImage(Span(FakeModuleElf("ext4", "ext4", ET_REL, second_name)));
    ASSERT_FALSE(two_names);
    EXPECT_EQ(two_names.error().message(), ".modinfo has two name= entries");

    auto two_sections =
        ModuleNameOfImage(Span(FakeModuleElf("ext4", "", ET_REL, second_section)));
    ASSERT_FALSE(two_sections);
    EXPECT_EQ(two_sections.error().message(),
              "two .gnu.linkonce.this_module sections (the kernel reads the first, other tools "
              "the last)");

    auto hidden = ModuleNameOfImage(Span(FakeModuleElf("ext4", "", ET_REL, not_allocated)));
    ASSERT_FALSE(hidden);
    EXPECT_EQ(hidden.error().message(),
              ".gnu.linkonce.this_module is not an allocated section with contents (the kernel "
              "would not read it)");
    // The same layout with one name each way is still a module.
    EXPECT_EQ(ModuleNameOfImage(Span(FakeModuleElf("ext4", "ext4", ET_REL, FakeModuleLayout{})))
                  .value(),
              "ext4");
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
