// ImageTree: path rules, conflicts and the deterministic writer on a hand-made tree.

#include "initramfs/image_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
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
                ::testing::MatchesRegex(path + ": a: only [0-9]+ of 4294967295 bytes.*"));
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
