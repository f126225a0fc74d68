// Getting a boot's records out of a VM (peinit/sys/boot_collect.h, issue 16 point 6): the tar
// stream PID 1 writes at shutdown, through a real tty, extracted on the host and read by
// `peinitctl status --root` (ReadStatusInputs), lock state from the record.

#include "peinit/sys/boot_collect.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "peinit/core/status.h"
#include "tests/fakes/fake_kernel.h"
#include "peinit/sys/status_sources.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(PEINIT_SOURCE_DIR) / "tests/fixtures/peinitctl/locked";

struct Scratch {
    Scratch() {
        char tmpl[] = "/tmp/peinit-collect-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~Scratch() { fs::remove_all(path); }
    fs::path path;
};

std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> Paths(const std::vector<ArchiveMember>& members) {
    std::vector<std::string> out;
    for (const auto& m : members) out.push_back(m.path);
    return out;
}

TEST(BootCollect, CollectsTheRecordsAndTheKernelLog) {
    auto members = CollectBootRecords(kFixture);
    ASSERT_TRUE(members) << members.error().message();
    EXPECT_EQ(Paths(*members),
              (std::vector<std::string>{"run/peinit/lockdown.json", "run/peinit/modules.json",
                                        "run/peinit/policy.json", "dev/kmsg"}));
    EXPECT_EQ(members->back().data.size(), fs::file_size(kFixture / "dev/kmsg"));
    // No kernel log (unreadable): the records alone.
    Scratch root;
    fs::create_directories(root.path / "run/peinit/bin");  // directories are left out
    std::ofstream(root.path / "run/peinit/boot.json") << "{}";
    members = CollectBootRecords(root.path);
    ASSERT_TRUE(members);
    EXPECT_EQ(Paths(*members), std::vector<std::string>{"run/peinit/boot.json"});
    // No /run/peinit at all is an error naming it.
    auto none = CollectBootRecords(root.path / "nothing");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().message().rfind((root.path / "nothing/run/peinit").string() + ": ", 0),
              0u)
        << none.error().message();
}

// Through a pseudo-terminal, as through the VM's serial port: without raw mode the tty would
// turn every "\n" of the JSON into "\r\n" and the stream would not read back.
TEST(BootCollect, ThroughATtyIntoStatusRoot) {
    int master = -1, slave = -1;
    ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    char name[256];
    ASSERT_EQ(::ttyname_r(slave, name, sizeof name), 0);
    std::string received;
    std::thread reader([&] {
        char buf[4096];
        for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) received.append(buf, n);
    });
    auto members = CollectBootRecords(kFixture);
    ASSERT_TRUE(members);
    auto wrote = WriteCollection(name, *members);
    ::close(slave);  // the last slave descriptor: the reader sees EIO once it has read it all
    reader.join();
    ::close(master);
    ASSERT_TRUE(wrote) << wrote.error().message();
    ASSERT_EQ(received.size(), *wrote);

    Scratch dir;
    auto written = ExtractCollection(std::as_bytes(std::span(received)), dir.path, "ttyS1.tar");
    ASSERT_TRUE(written) << written.error().message();
    EXPECT_EQ(written->size(), 4u);
    for (const char* file : {"run/peinit/lockdown.json", "run/peinit/modules.json",
                             "run/peinit/policy.json", "dev/kmsg"}) {
        EXPECT_EQ(Read(dir.path / file), Read(kFixture / file)) << file;
    }

    // `peinitctl status --root DIR`: no kernel fact in DIR, so the lock comes from the record
    // (and who set it from the collected kernel log); the modules from modules.json.
    FakeKernel kernel;
    Status s = BuildStatus(ReadStatusInputs(kernel, dir.path));
    EXPECT_TRUE(kernel.Calls().empty());
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_EQ(s.locked, true);
    EXPECT_EQ(s.locked_from, "record");
    EXPECT_EQ(s.mechanism, "syscall");
    EXPECT_EQ(s.set_by_from, "kernel-log");
    EXPECT_EQ(s.modules.size(), 5u);
    EXPECT_NE(RenderStatusText(s).find("locked (module_lockdown syscall), as recorded at boot in "
                                       "lockdown.json"),
              std::string::npos)
        << RenderStatusText(s);
}

// Issue 24 point 6: peinit.collect= writes only to a character device (the serial port of
// `peinit-image boot --collect`); a regular file or a block device (a disk the records would
// overwrite) is refused and left as it was.
TEST(BootCollect, WritesOnlyToACharacterDevice) {
    Scratch dir;
    auto members = CollectBootRecords(kFixture);
    ASSERT_TRUE(members);
    const fs::path file = dir.path / "disk.img";
    std::ofstream(file) << "a disk's first bytes";
    auto wrote = WriteCollection(file.string(), *members);
    ASSERT_FALSE(wrote);
    EXPECT_EQ(wrote.error().message(),
              file.string() + " is not a character device (a serial port): the records are not "
                              "written over it");
    EXPECT_EQ(fs::file_size(file), std::string("a disk's first bytes").size());
    auto null = WriteCollection("/dev/null", *members);
    ASSERT_TRUE(null) << null.error().message();
    EXPECT_GT(*null, 0u);
    auto missing = WriteCollection((dir.path / "no/such").string(), *members);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message(),
              "open " + (dir.path / "no/such").string() + ": No such file or directory");
}

TEST(BootCollect, ExtractTakesOnlyRecordsAndTheKernelLog) {
    Scratch dir;
    auto foreign = WriteArchive(std::vector<ArchiveMember>{
        {"run/peinit/policy.json", {}}, {"console.log", {std::byte{'x'}}}});
    ASSERT_TRUE(foreign);
    auto r = ExtractCollection(*foreign, dir.path, "out/records.tar");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(),
              "out/records.tar: unexpected member \"console.log\" (only run/peinit/NAME and "
              "dev/kmsg)");
    EXPECT_FALSE(fs::exists(dir.path / "console.log"));
    EXPECT_FALSE(fs::exists(dir.path / "run")) << "nothing is written from a rejected stream";
    auto nested = WriteArchive(std::vector<ArchiveMember>{{"run/peinit/bin/peinitctl", {}}});
    ASSERT_TRUE(nested);
    EXPECT_FALSE(ExtractCollection(*nested, dir.path, "x"));

    const std::string garbage = "peinit: not a tar stream\r\n";
    r = ExtractCollection(std::as_bytes(std::span(garbage)), dir.path, "out/records.tar");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message().rfind("out/records.tar: not a boot record collection: ", 0), 0u)
        << r.error().message();
}

}  // namespace
}  // namespace peinit
