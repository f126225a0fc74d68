// ImageTree: path rules, conflicts and the deterministic writer on a hand-made tree.

#include "initramfs/image_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace peinit::image {
namespace {

TEST(ImageTreeTest, NormalizePaths) {
    EXPECT_EQ(*NormalizeImagePath("/a//b/./c/"), "a/b/c");
    EXPECT_EQ(*NormalizeImagePath("init"), "init");
    EXPECT_EQ(NormalizeImagePath("/a/../b").error().message(),
              "image path \"/a/../b\" contains \"..\"");
    EXPECT_EQ(NormalizeImagePath("/").error().message(), "image path \"/\" names the root");
}

TEST(ImageTreeTest, ParentsAreImplicitAndExplicitModesWin) {
    ImageTree t;
    ASSERT_TRUE(t.AddFile("/usr/bin/tool", "x", 0755, "test"));
    ASSERT_NE(t.Find("usr"), nullptr);
    EXPECT_EQ(t.Find("usr")->type, EntryType::kDirectory);
    EXPECT_EQ(t.Find("/usr/bin")->mode, 0755u);
    ASSERT_TRUE(t.AddDirectory("usr/bin", 0700));
    EXPECT_EQ(t.Find("/usr/bin")->mode, 0700u);
}

TEST(ImageTreeTest, Conflicts) {
    ImageTree t;
    ASSERT_TRUE(t.AddFile("/init", "a", 0755, "first"));
    EXPECT_TRUE(t.AddFile("/init", "a", 0755, "same bytes"));  // identical: fine
    auto r = t.AddFile("/init", "b", 0755, "second");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "/init is provided twice: by first and by second");
    auto under = t.AddFile("/init/x", "c", 0644, "third");
    ASSERT_FALSE(under);
    EXPECT_EQ(under.error().message(), "/init/x: parent /init is a file (from first)");
    ASSERT_TRUE(t.AddCharDevice("dev/null", 0666, 1, 3));
    EXPECT_FALSE(t.AddCharDevice("dev/null", 0666, 1, 5));
}

TEST(ImageTreeTest, WriteAndReadBack) {
    ImageTree t;
    ASSERT_TRUE(t.AddFile("/b/file", "hello", 0640, "test"));
    ASSERT_TRUE(t.AddSymlink("/a/link", "../b/file"));
    ASSERT_TRUE(t.AddCharDevice("/dev/console", 0600, 5, 1));
    char tmpl[] = "/tmp/image-tree-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string out = std::string(tmpl) + "/t.cpio";
    ASSERT_TRUE(WriteCpio(t, out, {Compression::kNone, 7}));
    auto entries = ReadCpio(out);
    ASSERT_TRUE(entries) << entries.error().message();
    std::vector<std::string> paths;
    for (const auto& e : *entries) paths.push_back(e.path);
    EXPECT_EQ(paths,
              (std::vector<std::string>{"a", "a/link", "b", "b/file", "dev", "dev/console"}));
    EXPECT_EQ((*entries)[1].type, EntryType::kSymlink);
    EXPECT_EQ((*entries)[1].data, "../b/file");
    EXPECT_EQ((*entries)[3].data, "hello");
    EXPECT_EQ((*entries)[3].mode, 0640u);
    EXPECT_EQ((*entries)[3].ino, 4u);
    EXPECT_EQ((*entries)[3].mtime, 7);
    // newc with the TRAILER and nothing after it: no block padding.
    std::ifstream in(out, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string bytes = ss.str();
    auto trailer = bytes.rfind("TRAILER!!!");
    ASSERT_NE(trailer, std::string::npos);
    EXPECT_LE(bytes.size() - trailer, 16u) << "padded after the trailer";
    std::system((std::string("rm -rf ") + tmpl).c_str());
}

TEST(ImageTreeTest, WriteFailureLeavesNothing) {
    ImageTree t;
    ASSERT_TRUE(t.AddFile("/x", "y", 0644, "test"));
    auto r = WriteCpio(t, "/nonexistent-dir/out.cpio", {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(),
              "cannot create a temporary file in /nonexistent-dir: No such file or directory");
}

// Found by tests/fuzz (cpio): ReadCpio sized its buffer from the header before reading, so a
// 128-byte archive claiming a 4 GiB file made `peinit-image list` allocate (and zero) 4 GiB.
TEST(ImageTreeTest, ReadCpioDoesNotTrustTheHeaderSize) {
    char name[16];
    std::string header = "070701";
    for (unsigned v : {1u, 0100644u, 0u, 0u, 1u, 0u, 0xFFFFFFFFu, 0u, 0u, 0u, 0u, 2u, 0u}) {
        std::snprintf(name, sizeof name, "%08X", v);
        header += name;
    }
    char tmpl[] = "/tmp/image-tree-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string path = std::string(tmpl) + "/huge.cpio";
    std::ofstream(path, std::ios::binary) << header << std::string("a\0", 2) << "0123456789abcdef";
    auto entries = ReadCpio(path);
    ASSERT_FALSE(entries);
    // How much libarchive hands over before it gives up is its business; the size is ours.
    EXPECT_THAT(entries.error().message(),
                ::testing::MatchesRegex(path + " \\(archive at byte 0\\): a: only [0-9]+ of "
                                               "4294967295 bytes.*"));
    std::system((std::string("rm -rf ") + tmpl).c_str());
}

TEST(ImageTreeTest, SourceDateEpoch) {
    ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    EXPECT_EQ(*SourceDateEpoch(), 1700000000);
    ::setenv("SOURCE_DATE_EPOCH", "-5", 1);
    EXPECT_FALSE(SourceDateEpoch());
    ::unsetenv("SOURCE_DATE_EPOCH");
    EXPECT_EQ(*SourceDateEpoch(), 0);
}

}  // namespace
}  // namespace peinit::image

namespace peinit::image {
namespace {

// An initramfs may be several archives one after the other (early microcode, then the main
// archive), each compressed or not, with NUL padding between: `peinit-image list` shows them all.
TEST(ImageTreeTest, ReadsConcatenatedArchives) {
    char tmpl[] = "/tmp/image-tree-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    ImageTree early, main;
    ASSERT_TRUE(early.AddFile("/kernel/x86/microcode/GenuineIntel.bin", "ucode", 0644, "test"));
    ASSERT_TRUE(main.AddFile("/init", "#!/bin/sh\n", 0755, "test"));
    ASSERT_TRUE(WriteCpio(early, dir + "/early.cpio", {Compression::kNone, 0}));
    ASSERT_TRUE(WriteCpio(main, dir + "/main.cpio.zst", {Compression::kZstd, 0}));
    ASSERT_TRUE(WriteCpio(main, dir + "/main.cpio.gz", {Compression::kGzip, 0}));
    auto read = [](const std::string& p) {
        std::ifstream in(p, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    std::string early_bytes = read(dir + "/early.cpio");
    std::string padding(512 - early_bytes.size() % 512, '\0');
    std::string image = early_bytes + padding + early_bytes + read(dir + "/main.cpio.zst");
    std::ofstream(dir + "/image", std::ios::binary) << image;

    auto archives = ReadCpioArchives(dir + "/image");
    ASSERT_TRUE(archives) << archives.error().message();
    ASSERT_EQ(archives->size(), 3u);
    const uint64_t second = early_bytes.size() + padding.size();
    EXPECT_EQ((*archives)[0].offset, 0u);
    EXPECT_EQ((*archives)[0].compression, "none");
    EXPECT_EQ((*archives)[1].offset, second);
    EXPECT_EQ((*archives)[1].compression, "none");
    EXPECT_EQ((*archives)[2].offset, second + early_bytes.size());
    EXPECT_EQ((*archives)[2].compression, "zstd");
    auto has = [](const ListedArchive& a, const std::string& path) {
        return std::any_of(a.entries.begin(), a.entries.end(),
                           [&](const ListedEntry& e) { return e.path == path; });
    };
    EXPECT_TRUE(has((*archives)[1], "kernel/x86/microcode/GenuineIntel.bin"));
    EXPECT_TRUE(has((*archives)[2], "init"));
    EXPECT_FALSE(has((*archives)[2], "kernel/x86/microcode/GenuineIntel.bin"));
    // ReadCpio: every entry of every archive.
    auto entries = ReadCpio(dir + "/image");
    ASSERT_TRUE(entries);
    EXPECT_EQ(entries->size(), (*archives)[0].entries.size() * 2 + (*archives)[2].entries.size());

    // Two gzip archives back to back: both, as the kernel reads them.
    std::ofstream(dir + "/gz", std::ios::binary)
        << early_bytes + read(dir + "/main.cpio.gz") + read(dir + "/main.cpio.gz");
    auto gz = ReadCpioArchives(dir + "/gz");
    ASSERT_TRUE(gz) << gz.error().message();
    ASSERT_EQ(gz->size(), 3u);
    EXPECT_EQ((*gz)[1].compression, "gzip");
    EXPECT_TRUE(has((*gz)[2], "init"));

    // Something that is neither: named with its offset.
    std::ofstream(dir + "/junk", std::ios::binary) << early_bytes + "junk";
    auto junk = ReadCpioArchives(dir + "/junk");
    ASSERT_FALSE(junk);
    EXPECT_EQ(junk.error().message(), dir + "/junk (archive at byte " +
                                          std::to_string(early_bytes.size()) +
                                          "): neither a cpio archive nor compressed");
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace peinit::image
