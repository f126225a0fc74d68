// PID 1's post-boot trimming (peinit/sys/memory.h) on this test process: clean file pages are
// released from the address space and come back intact; private pages are never touched.

#include "peinit/sys/memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace peinit {
namespace {

// Rss of the mapping that starts at `addr`, from /proc/self/smaps (-1 when not found).
long MappingRssKib(const void* addr) {
    char start[32];
    std::snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(addr));
    std::ifstream in("/proc/self/smaps");
    bool in_mapping = false;
    for (std::string line; std::getline(in, line);) {
        if (line.find('-') != std::string::npos && line.find(' ') > line.find('-') &&
            std::isxdigit(static_cast<unsigned char>(line[0])) && line.find(":") > 20) {
            in_mapping = line.starts_with(start);
            continue;
        }
        if (in_mapping && line.starts_with("Rss:")) return std::strtol(line.c_str() + 4, nullptr, 10);
    }
    return -1;
}

class MemoryTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/peinit-memory-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        std::string data(kSize, '\0');
        for (std::size_t i = 0; i < kSize; ++i) data[i] = static_cast<char>('a' + i % 26);
        std::ofstream(dir_ / "f", std::ios::binary) << data;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    void* Map(int prot) {
        int fd = ::open((dir_ / "f").c_str(), O_RDONLY | O_CLOEXEC);
        EXPECT_GE(fd, 0);
        void* p = ::mmap(nullptr, kSize, prot, MAP_PRIVATE, fd, 0);
        ::close(fd);
        EXPECT_NE(p, MAP_FAILED);
        return p;
    }
    static constexpr std::size_t kSize = 64 * 4096;
    std::filesystem::path dir_;
};

TEST_F(MemoryTest, CleanFilePagesAreReleasedAndComeBackIntact) {
    auto* clean = static_cast<const char*>(Map(PROT_READ));
    long sum = 0;
    for (std::size_t i = 0; i < kSize; i += 4096) sum += clean[i];
    ASSERT_GE(MappingRssKib(clean), static_cast<long>(kSize / 1024));

    // A private writable mapping with one page of its own: left alone, content kept.
    auto* dirty = static_cast<char*>(Map(PROT_READ | PROT_WRITE));
    dirty[0] = 'Z';
    const long dirty_rss = MappingRssKib(dirty);

    auto dropped = DropCleanFileMappings();
    ASSERT_TRUE(dropped) << dropped.error().message();
    EXPECT_GE(dropped->mappings, 1u);
    EXPECT_GE(dropped->kib, kSize / 1024);
    EXPECT_EQ(MappingRssKib(clean), 0);
    EXPECT_EQ(MappingRssKib(dirty), dirty_rss);
    EXPECT_EQ(dirty[0], 'Z');
    // The released pages read back from the file, unchanged.
    long again = 0;
    for (std::size_t i = 0; i < kSize; i += 4096) again += clean[i];
    EXPECT_EQ(again, sum);
    EXPECT_EQ(clean[27], 'b');
    EXPECT_GT(ResidentKib(), 0);
    ::munmap(const_cast<char*>(clean), kSize);
    ::munmap(dirty, kSize);
}

}  // namespace
}  // namespace peinit
