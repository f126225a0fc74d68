// The shared-library closure, checked against what the dynamic loader itself resolves
// (LD_TRACE_LOADED_OBJECTS=1, used here only as an oracle).

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "initramfs/elf_closure.h"
#include "peinit/sys/elf_file.h"

namespace peinit::image {
namespace {

std::string RealPath(const std::string& p) {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) != nullptr ? std::string(buf) : "";
}

// name -> resolved path, as the loader prints it. The interpreter is listed under its path.
std::map<std::string, std::string> LoaderOracle(const std::string& program) {
    std::map<std::string, std::string> out;
    std::string cmd = "LD_TRACE_LOADED_OBJECTS=1 '" + program + "' 2>/dev/null";
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return out;
    char line[4096];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        std::string s(line);
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        size_t b = s.find_first_not_of(" \t");
        if (b == std::string::npos) continue;
        s = s.substr(b);
        if (s.rfind("linux-vdso", 0) == 0) continue;  // provided by the kernel, no file
        if (auto arrow = s.find(" => "); arrow != std::string::npos) {
            std::string name = s.substr(0, arrow);
            std::string rest = s.substr(arrow + 4);
            out[name] = rest.substr(0, rest.find(" ("));
        } else {
            std::string path = s.substr(0, s.find(" ("));
            out[path] = path;
        }
    }
    ::pclose(f);
    return out;
}

void ExpectMatchesLoader(const std::string& program) {
    SCOPED_TRACE(program);
    auto oracle = LoaderOracle(program);
    ASSERT_FALSE(oracle.empty()) << "the loader printed nothing for " << program;
    auto closure = ElfClosure({program});
    ASSERT_TRUE(closure) << closure.error().message();
    std::map<std::string, ResolvedObject> ours;
    for (const auto& o : *closure) ours.emplace(o.name, o);
    EXPECT_EQ(ours.size(), oracle.size());
    for (const auto& [name, path] : oracle) {
        auto it = ours.find(name);
        ASSERT_NE(it, ours.end()) << "the loader loads " << name << " => " << path
                                  << ", the closure lacks it";
        // Same file (ld.so.cache may name /usr/lib/... where we name /lib/... on merged /usr).
        EXPECT_EQ(RealPath(it->second.host_path), RealPath(path)) << name;
    }
    for (const auto& o : *closure) EXPECT_TRUE(oracle.count(o.name)) << "extra: " << o.name;
}

TEST(ImageElfTest, LsMatchesTheLoader) {
    ExpectMatchesLoader("/bin/ls");
    auto closure = ElfClosure({"/bin/ls"});
    ASSERT_TRUE(closure);
    std::map<std::string, std::string> paths;
    for (const auto& o : *closure) paths[o.name] = o.path;
    // Shipped where the loader inside the image (no ld.so.cache) looks first.
    EXPECT_EQ(paths["libc.so.6"], "/lib/x86_64-linux-gnu/libc.so.6");
    EXPECT_EQ(paths["libselinux.so.1"], "/lib/x86_64-linux-gnu/libselinux.so.1");
    EXPECT_EQ(paths["libpcre2-8.so.0"], "/lib/x86_64-linux-gnu/libpcre2-8.so.0");
    EXPECT_EQ(paths["/lib64/ld-linux-x86-64.so.2"], "/lib64/ld-linux-x86-64.so.2");
    // libc asks for ld-linux-x86-64.so.2 by soname: that is the interpreter, not a second copy.
    EXPECT_EQ(paths.count("ld-linux-x86-64.so.2"), 0u);
}

TEST(ImageElfTest, ToolsMatchTheLoader) {
    ExpectMatchesLoader(PEINIT_IMAGE_TOOL);  // libstdc++, libarchive, libkmod, libcrypto, ...
    if (::access("/usr/bin/qemu-system-x86_64", X_OK) == 0)
        ExpectMatchesLoader("/usr/bin/qemu-system-x86_64");  // ~80 libraries, deep chains
}

TEST(ImageElfTest, SeveralRootsShareLibraries) {
    auto closure = ElfClosure({"/bin/ls", "/bin/cat", "/bin/ls"});
    ASSERT_TRUE(closure) << closure.error().message();
    std::map<std::string, int> count;
    for (const auto& o : *closure) ++count[o.path];
    for (const auto& [path, n] : count) EXPECT_EQ(n, 1) << path;
    EXPECT_EQ(count.count("/lib/x86_64-linux-gnu/libc.so.6"), 1u);
}

TEST(ImageElfTest, ReadElfHeaders) {
    auto ls = ReadElf("/bin/ls");
    ASSERT_TRUE(ls) << ls.error().message();
    EXPECT_EQ(ls->elf_class, ELFCLASS64);
    EXPECT_EQ(ls->machine, EM_X86_64);
    EXPECT_EQ(ls->interp, "/lib64/ld-linux-x86-64.so.2");
    EXPECT_NE(std::find(ls->needed.begin(), ls->needed.end(), "libc.so.6"), ls->needed.end());
    auto libc = ReadElf("/lib/x86_64-linux-gnu/libc.so.6");
    ASSERT_TRUE(libc);
    EXPECT_EQ(libc->soname, "libc.so.6");
    EXPECT_TRUE(libc->interp.empty() || libc->interp == "/lib64/ld-linux-x86-64.so.2");
}

TEST(ImageElfTest, NotElf) {
    EXPECT_FALSE(IsElfFile("/etc/passwd"));
    auto r = ReadElf("/etc/passwd");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "/etc/passwd: not an ELF file");
    auto c = ElfClosure({"/etc/passwd"});
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message(), "/etc/passwd: not an ELF file");
}

TEST(ImageElfTest, StaticBinaryHasNoClosure) {
    // Debian's ldconfig is linked statically.
    auto info = ReadElf("/sbin/ldconfig");
    ASSERT_TRUE(info) << info.error().message();
    if (!info->interp.empty()) GTEST_SKIP() << "/sbin/ldconfig is dynamic here";
    auto c = ElfClosure({"/sbin/ldconfig"});
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_TRUE(c->empty());
}

TEST(ImageElfTest, MissingLibraryNamesWhoNeedsIt) {
    // A sysroot with the loader and libc but not libselinux.
    char tmpl[] = "/tmp/image-elf-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string root = tmpl;
    ASSERT_EQ(std::system(("mkdir -p " + root + "/lib64 " + root +
                           "/lib/x86_64-linux-gnu && "
                           "cp -L /lib64/ld-linux-x86-64.so.2 " +
                           root +
                           "/lib64/ && "
                           "cp -L /lib/x86_64-linux-gnu/libc.so.6 " +
                           root + "/lib/x86_64-linux-gnu/")
                              .c_str()),
              0);
    ClosureOptions opts;
    opts.sysroot = root;
    auto c = ElfClosure({"/bin/ls"}, opts);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message(),
              "libselinux.so.1 (needed by /bin/ls) not found in "
              "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib:/usr/lib");
    // With the library present, every object resolves inside the sysroot.
    ASSERT_EQ(std::system(("cp -L /lib/x86_64-linux-gnu/libselinux.so.1 "
                           "/lib/x86_64-linux-gnu/libpcre2-8.so.0 " +
                           root + "/lib/x86_64-linux-gnu/")
                              .c_str()),
              0);
    c = ElfClosure({"/bin/ls"}, opts);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->size(), 4u);
    for (const auto& o : *c) EXPECT_EQ(o.host_path.rfind(root + "/", 0), 0u) << o.host_path;
    std::system(("rm -rf " + root).c_str());
}

// A scratch copy of a real binary to break on purpose.
class BrokenElf : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/image-elf-broken.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/ls";
        std::filesystem::copy_file("/bin/ls", path_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    void Patch(uint64_t offset, const void* bytes, size_t n) {
        int fd = ::open(path_.c_str(), O_WRONLY);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
        ::close(fd);
    }
    // ReadElf and the closure both fail with "PATH: malformed ELF: <what>".
    std::string ExpectMalformed() {
        auto info = ReadElf(path_);
        EXPECT_FALSE(info);
        if (info) return "";
        const std::string message = info.error().message();
        EXPECT_EQ(message.rfind(path_ + ": malformed ELF: ", 0), 0u) << message;
        auto closure = ElfClosure({path_});
        EXPECT_FALSE(closure);
        if (!closure) {
            EXPECT_EQ(closure.error().message(), message);
        }
        return message;
    }
    std::string dir_, path_;
};

TEST_F(BrokenElf, Truncated) {
    // The ELF header survives, the program headers it points to do not.
    std::filesystem::resize_file(path_, 200);
    std::string message = ExpectMalformed();
    EXPECT_NE(message.find("program header"), std::string::npos) << message;
    // Shorter than the ELF header itself: libelf refuses it outright, with its reason.
    std::filesystem::resize_file(path_, 40);
    message = ExpectMalformed();
    EXPECT_GT(message.size(), (path_ + ": malformed ELF: ").size()) << message;
}

TEST_F(BrokenElf, SectionHeadersBeyondTheEnd) {
    const uint64_t shoff = uint64_t{1} << 40;
    Patch(offsetof(Elf64_Ehdr, e_shoff), &shoff, sizeof shoff);
    std::string message = ExpectMalformed();
    EXPECT_NE(message.find("section header"), std::string::npos) << message;
}

TEST_F(BrokenElf, DynamicStringOffsetBeyondItsTable) {
    // Where the first DT_NEEDED's string offset is, found with libelf on the intact copy.
    uint64_t at = 0;
    {
        auto f = ElfFile::Open(path_);
        ASSERT_TRUE(f);
        for (Elf_Scn* scn = elf_nextscn(f->get(), nullptr); scn && at == 0;
             scn = elf_nextscn(f->get(), scn)) {
            auto shdr = f->SectionHeader(scn);
            ASSERT_TRUE(shdr);
            if (shdr->sh_type != SHT_DYNAMIC) continue;
            Elf_Data* data = elf_getdata(scn, nullptr);
            GElf_Dyn dyn;
            for (int i = 0; gelf_getdyn(data, i, &dyn) != nullptr; ++i) {
                if (dyn.d_tag != DT_NEEDED) continue;
                at = shdr->sh_offset + i * sizeof(Elf64_Dyn) + offsetof(Elf64_Dyn, d_un);
                break;
            }
        }
    }
    ASSERT_NE(at, 0u);
    const uint64_t offset = 0x7fffffff;
    Patch(at, &offset, sizeof offset);
    std::string message = ExpectMalformed();
    EXPECT_NE(message.find("string offset 2147483647"), std::string::npos) << message;
}

TEST(ImageElfTest, DefaultSearchDirs) {
    auto dirs = DefaultSearchDirs(EM_X86_64);
    ASSERT_TRUE(dirs);
    EXPECT_EQ(*dirs, (std::vector<std::string>{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                               "/lib", "/usr/lib"}));
    EXPECT_FALSE(DefaultSearchDirs(EM_SPARC));
}

}  // namespace
}  // namespace peinit::image
