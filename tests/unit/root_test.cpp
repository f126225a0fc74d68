// The real root as the command line names it (peinit/core/root_spec.h), as libblkid and
// libmount read devices and options (peinit/sys/block_devices.h), the policy record the
// demand-load helper enforces (peinit/record/policy.h), and the handover stage's
// blacklist export and locked branch (stages/handover/handover.h).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "peinit/record/policy.h"
#include "peinit/core/root_spec.h"
#include "peinit/sys/block_devices.h"
#include "peinit/sys/fs.h"
#include "peinit/sys/linux_kernel.h"
#include "stages/handoff/handoff.h"
#include "stages/handover/handover.h"
#include "stages/root/root.h"
#include "stages/stage.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/unit/captured_log.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// The root stage's work, taken as the handoff takes it (ctx.background).
std::shared_ptr<RootPreparation> Ahead(BootContext& ctx) {
    return ctx.background.Take<RootPreparation>(kRootPreparation);
}

TEST(RootSpec, DevicePathsAndTags) {
    EXPECT_EQ(*ParseRootSpec("/dev/vda2"), (RootSpec{"", "/dev/vda2"}));
    EXPECT_EQ(*ParseRootSpec("UUID=5eb0c3f6-1c8a"), (RootSpec{"UUID", "5eb0c3f6-1c8a"}));
    EXPECT_EQ(*ParseRootSpec("partuuid=ABCD-01"), (RootSpec{"PARTUUID", "ABCD-01"}));
    EXPECT_EQ(*ParseRootSpec("LABEL=my root"), (RootSpec{"LABEL", "my root"}));
    EXPECT_EQ(*ParseRootSpec("PARTLABEL=system=a"), (RootSpec{"PARTLABEL", "system=a"}));
    EXPECT_EQ(ParseRootSpec("LABEL=x")->ToString(), "LABEL=x");
}

TEST(RootSpec, BadValuesSayWhatIsAccepted) {
    auto unknown = ParseRootSpec("ID=1234");
    ASSERT_FALSE(unknown);
    EXPECT_THAT(unknown.error().message(),
                HasSubstr("unknown tag ID (use a /dev path, UUID=, PARTUUID=, LABEL= or PARTLABEL=)"));
    EXPECT_THAT(ParseRootSpec("UUID=").error().message(), HasSubstr("the UUID is empty"));
    EXPECT_THAT(ParseRootSpec("PARTUUID=abcd/PARTNROFF=1").error().message(),
                HasSubstr("PARTNROFF= and other suffixes are not supported"));
    EXPECT_THAT(ParseRootSpec("fe01").error().message(), HasSubstr("is not supported"));
    EXPECT_FALSE(ParseRootSpec(""));
    EXPECT_FALSE(ParseRootSpec("/"));
}

TEST(RootSpec, TagValuesCompareLikeBlkid) {
    RootSpec uuid{"UUID", "5EB0C3F6-1c8a"};
    EXPECT_TRUE(RootTagValueMatches(uuid, "5eb0c3f6-1C8A"));
    EXPECT_FALSE(RootTagValueMatches(uuid, "5eb0c3f6-1c8b"));
    RootSpec label{"LABEL", "Root"};
    EXPECT_TRUE(RootTagValueMatches(label, "Root"));
    EXPECT_FALSE(RootTagValueMatches(label, "root"));  // labels are exact
}

TEST(RootOptions, DefaultsAreTheKernels) {
    auto o = ParseRootOptions(ParseCmdline("root=/dev/vda"));
    ASSERT_TRUE(o);
    EXPECT_TRUE(o->read_only);
    EXPECT_TRUE(o->fstypes.empty());
    EXPECT_EQ(o->flags, "");
    ASSERT_TRUE(o->wait);
    EXPECT_EQ(*o->wait, std::chrono::seconds(10));
    EXPECT_EQ(o->delay, std::chrono::milliseconds(0));
    EXPECT_FALSE(ParseRootOptions(ParseCmdline("quiet")));
}

TEST(RootOptions, EveryParameter) {
    auto o = ParseRootOptions(ParseCmdline(
        "ro root=LABEL=r rootfstype=ext4,xfs rootflags=noatime,data=ordered rw rootwait=30 "
        "rootdelay=2"));
    ASSERT_TRUE(o);
    EXPECT_EQ(o->spec, (RootSpec{"LABEL", "r"}));
    EXPECT_THAT(o->fstypes, ElementsAre("ext4", "xfs"));
    EXPECT_EQ(o->flags, "noatime,data=ordered");
    EXPECT_FALSE(o->read_only);  // the last of ro/rw wins
    EXPECT_EQ(*o->wait, std::chrono::seconds(30));
    EXPECT_EQ(o->delay, std::chrono::seconds(2));
    EXPECT_TRUE(o->warnings.empty());
}

TEST(RootOptions, RootwaitWithoutValueWaitsAsLongAsItTakes) {
    auto o = ParseRootOptions(ParseCmdline("root=/dev/vda rootwait"));
    ASSERT_TRUE(o);
    EXPECT_FALSE(o->wait);
    auto bad = ParseRootOptions(ParseCmdline("root=/dev/vda rootwait=soon rootdelay=x"));
    ASSERT_TRUE(bad);
    EXPECT_FALSE(bad->wait);
    EXPECT_THAT(bad->warnings, ElementsAre(HasSubstr("rootwait=soon: not a number of seconds"),
                                           HasSubstr("rootdelay=x: not a number of seconds")));
}

TEST(MountOptions, LibmountSplitsFlagsFromData) {
    auto o = ParseMountOptions("ro,noatime,nosuid,data=ordered,errors=remount-ro");
    ASSERT_TRUE(o) << o.error().message();
    EXPECT_EQ(o->flags, static_cast<unsigned long>(MS_RDONLY | MS_NOATIME | MS_NOSUID));
    EXPECT_EQ(o->data, "data=ordered,errors=remount-ro");
    auto user_only = ParseMountOptions("defaults,nofail,x-systemd.device-timeout=5");
    ASSERT_TRUE(user_only);
    EXPECT_EQ(user_only->data, "");
    EXPECT_EQ(ParseMountOptions("")->flags, 0u);
}

// A scratch directory under /tmp, removed afterwards.
struct Scratch {
    fs::path dir;
    Scratch() {
        char tmpl[] = "/tmp/peinit-root-XXXXXX";
        dir = mkdtemp(tmpl);
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

// libblkid reads what mke2fs wrote: type, UUID and label (a file stands in for the device).
TEST(BlockDevices, ProbesFileSystemTags) {
    Scratch s;
    std::string img = (s.dir / "fs.img").string();
    std::string cmd = "mke2fs -q -F -t ext4 -L peinit-test -U 0d4e9a2c-3b1f-4a6e-8c7d-5e4f3a2b1c0d " +
                      img + " 8M >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "mke2fs is not installed";
    BlockDevice d = ProbeBlockDevice("fs", img);
    EXPECT_EQ(d.type, "ext4");
    EXPECT_EQ(d.uuid, "0d4e9a2c-3b1f-4a6e-8c7d-5e4f3a2b1c0d");
    EXPECT_EQ(d.label, "peinit-test");
    EXPECT_TRUE(d.Matches({"UUID", "0D4E9A2C-3B1F-4A6E-8C7D-5E4F3A2B1C0D"}));
    EXPECT_TRUE(d.Matches({"LABEL", "peinit-test"}));
    EXPECT_FALSE(d.Matches({"PARTUUID", "0d4e9a2c-3b1f-4a6e-8c7d-5e4f3a2b1c0d"}));
    EXPECT_EQ(d.Describe(), "fs (ext4 UUID=0d4e9a2c-3b1f-4a6e-8c7d-5e4f3a2b1c0d LABEL=peinit-test)");
    BlockDevice missing = ProbeBlockDevice("nope", (s.dir / "nope").string());
    EXPECT_EQ(missing.Describe(), "nope (no file system)");
}

// A boot tree whose one block device, vdz, holds an ext4 file system (a file stands in for the
// device node) and whose /proc/filesystems lists `filesystems`.
struct RootTree {
    Scratch s;
    BootPaths paths;
    FakeKernel kernel;
    BootContext ctx{kernel};
    bool made = false;
    static constexpr const char* kUuid = "6a1d2c3b-4e5f-4a6b-9c8d-7e6f5a4b3c2d";

    explicit RootTree(const std::string& filesystems) {
        paths.root = s.dir;
        fs::create_directories(s.dir / "sys/class/block/vdz");
        fs::create_directories(s.dir / "dev");
        fs::create_directories(s.dir / "proc");
        std::ofstream(s.dir / "proc/filesystems") << filesystems;
        std::string cmd = "mke2fs -q -F -t ext4 -L peinit-root -U " + std::string(kUuid) + " " +
                          (s.dir / "dev/vdz").string() + " 8M >/dev/null 2>&1";
        made = std::system(cmd.c_str()) == 0;
        ctx.paths = paths;
    }
    void Cmdline(const std::string& text) { ctx.cmdline = ParseCmdline(text); }
    std::vector<KernelCall> Mounts() const { return kernel.Calls(KernelOp::kMount); }
};

// The root stage finds root=UUID= on a thread of its own while the modules load, and mounts it
// once the module stage is over when the kernel has its file system (no module can load for the
// mount); the handoff takes that over.
TEST(RootStage, MountsAheadWhenTheKernelHasTheFileSystem) {
    RootTree t("nodev\tsysfs\nnodev\ttmpfs\n\text4\n");
    if (!t.made) GTEST_SKIP() << "mke2fs is not installed";
    fs::create_directories(t.s.dir / "usr/bin");
    std::ofstream(t.s.dir / "usr/bin/peinitctl") << "peinitctl";
    t.Cmdline(std::string("root=UUID=") + RootTree::kUuid + " rw rootflags=noatime");
    ASSERT_TRUE(RunRoot(t.ctx));
    ASSERT_TRUE(t.ctx.background.Running(kRootPreparation));
    // Nothing is mounted while the module stage runs (the gate is shut)...
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());
    // ...and the mount follows as soon as it is over, without waiting for the handoff.
    t.ctx.background.Open(kRootPreparation);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (t.Mounts().empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(t.Mounts().size(), 1u);
    PreparedRoot root = Ahead(t.ctx)->Take();
    ASSERT_TRUE(root.device);
    EXPECT_EQ(root.device->name, "vdz");
    EXPECT_EQ(root.device->type, "ext4");
    ASSERT_TRUE(root.mounted);
    ASSERT_TRUE(*root.mounted) << root.mounted->error().message();
    EXPECT_EQ(**root.mounted, "ext4");
    auto mounts = t.Mounts();
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].name, (t.s.dir / "newroot").string());
    EXPECT_THAT(mounts[0].args, HasSubstr((t.s.dir / "dev/vdz").string() + " ext4 flags=" +
                                          std::to_string(MS_NOATIME)));
    // peinitctl is in /run for the real root (the handover leaves that copy to this thread).
    EXPECT_EQ(fs::status(t.s.dir / "run/peinit/bin/peinitctl").permissions() & fs::perms::all,
              fs::perms(0755));
}

// Issue 24 point 6: rootflags= sets how the root is mounted, never what mount(2) does: bind,
// move, remount and propagation flags are refused, naming them, and nothing is mounted.
TEST(RootStage, RootflagsThatChangeWhatMountDoesAreRefused) {
    RootTree t("\text4\n");
    if (!t.made) GTEST_SKIP() << "mke2fs is not installed";
    for (const std::string flags : {"bind", "remount,noatime", "rbind", "shared", "private"}) {
        t.Cmdline(std::string("root=UUID=") + RootTree::kUuid + " rootflags=" + flags);
        ASSERT_TRUE(RunRoot(t.ctx));
        PreparedRoot root = Ahead(t.ctx)->Take();
        ASSERT_TRUE(root.mounted) << flags;
        ASSERT_FALSE(*root.mounted) << flags;
        const std::string message = root.mounted->error().message();
        EXPECT_NE(message.find("rootflags=" + flags + ": "), std::string::npos) << message;
        EXPECT_NE(message.find("cannot be used to mount the root"), std::string::npos) << message;
    }
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());
    // The file system's own options and the mount's manner pass.
    t.Cmdline(std::string("root=UUID=") + RootTree::kUuid + " rootflags=nosuid,nodev,data=ordered");
    ASSERT_TRUE(RunRoot(t.ctx));
    PreparedRoot root = Ahead(t.ctx)->Take();
    ASSERT_TRUE(root.mounted && *root.mounted) << root.mounted->error().message();
    ASSERT_EQ(t.Mounts().size(), 1u);
    EXPECT_THAT(t.Mounts()[0].args, HasSubstr("flags=" + std::to_string(MS_RDONLY | MS_NOSUID |
                                                                        MS_NODEV)));
}

// A file system the kernel does not have yet would make mount(2) ask for its module before the
// lock: the root stage leaves that mount to the handoff, after the lock, as without it.
TEST(RootStage, LeavesTheMountToTheHandoffWhenTheFileSystemIsNotInTheKernel) {
    RootTree t("nodev\tsysfs\n\tvfat\n");
    if (!t.made) GTEST_SKIP() << "mke2fs is not installed";
    t.Cmdline(std::string("root=LABEL=peinit-root"));
    ASSERT_TRUE(RunRoot(t.ctx));
    ASSERT_TRUE(t.ctx.background.Running(kRootPreparation));
    PreparedRoot root = Ahead(t.ctx)->Take();
    ASSERT_TRUE(root.device);
    EXPECT_EQ(root.device->name, "vdz");
    EXPECT_FALSE(root.mounted);
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());
    // rootfstype= naming one the kernel lacks is left too, even though the probe found ext4.
    t.Cmdline(std::string("root=LABEL=peinit-root rootfstype=xfs"));
    ASSERT_TRUE(RunRoot(t.ctx));
    EXPECT_FALSE(Ahead(t.ctx)->Take().mounted);
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());
}

// A root that never appears: the wait is bounded by rootwait=, the devices seen are kept for
// the handoff's message, and an unbounded wait (rootwait) ends when the preparation is dropped
// (the boot went the emergency way).
TEST(RootStage, RootThatDoesNotAppearIsBoundedAndStoppable) {
    RootTree t("\text4\n");
    if (!t.made) GTEST_SKIP() << "mke2fs is not installed";
    t.Cmdline("root=PARTUUID=0000abcd-01 rootwait=1");
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(RunRoot(t.ctx));
    PreparedRoot root = Ahead(t.ctx)->Take();
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    EXPECT_FALSE(root.device);
    ASSERT_EQ(root.seen.size(), 1u);
    EXPECT_EQ(root.seen[0].name, "vdz");
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());

    t.Cmdline("root=PARTUUID=0000abcd-01 rootwait");
    ASSERT_TRUE(RunRoot(t.ctx));
    const auto dropped = std::chrono::steady_clock::now();
    Ahead(t.ctx).reset();
    EXPECT_LT(std::chrono::steady_clock::now() - dropped, std::chrono::seconds(2));
    // Without root= there is nothing to prepare.
    t.Cmdline("console=ttyS0");
    ASSERT_TRUE(RunRoot(t.ctx));
    EXPECT_FALSE(t.ctx.background.Running(kRootPreparation));
}

// a tag two devices carry is refused with both named (a stick with the root's LABEL= must
// not win by sorting first); nothing is mounted, and the handoff returns that error (the
// emergency path then locks as the policy asks). A device another is built on (its holders/ is
// not empty: dm, MD) carries the upper device's tags and is not a candidate.
TEST(RootStage, TagOnTwoDevicesIsRefusedNamingBoth) {
    RootTree t("\text4\n");
    if (!t.made) GTEST_SKIP() << "mke2fs is not installed";
    fs::create_directories(t.s.dir / "sys/class/block/sda1");
    ASSERT_EQ(std::system(("mke2fs -q -F -t ext4 -L peinit-root " + (t.s.dir / "dev/sda1").string() +
                           " 8M >/dev/null 2>&1")
                              .c_str()),
              0);
    t.Cmdline("root=LABEL=peinit-root rootwait=1");
    ASSERT_TRUE(RunRoot(t.ctx));
    PreparedRoot root = Ahead(t.ctx)->Take();
    ASSERT_TRUE(root.refused);
    EXPECT_FALSE(root.device);
    const std::string message = root.refused->message();
    EXPECT_NE(message.find("root LABEL=peinit-root matches 2 devices: sda1 (ext4 "), std::string::npos)
        << message;
    EXPECT_NE(message.find(", vdz (ext4 UUID=" + std::string(RootTree::kUuid)), std::string::npos)
        << message;
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());

    // sda1 under a device-mapper device: vdz is the only candidate.
    fs::create_directories(t.s.dir / "sys/class/block/sda1/holders/dm-0");
    ASSERT_TRUE(RunRoot(t.ctx));
    PreparedRoot held = Ahead(t.ctx)->Take();
    EXPECT_FALSE(held.refused);
    ASSERT_TRUE(held.device);
    EXPECT_EQ(held.device->name, "vdz");
}

// Issue 24 point 4: an exception on the root stage's thread (here: mount(2) throws) does not end
// PID 1 (an exception leaving a std::thread calls std::terminate); Take returns it as `failed`,
// which the handoff refuses the root with.
TEST(RootStage, ExceptionOnTheThreadIsContainedAndFailsTheRoot) {
    RootTree t("\text4\n");
    if (!t.made) GTEST_SKIP() << "mke2fs is not installed";
    t.kernel.ThrowOn(KernelOp::kMount, (t.s.dir / "newroot").string());
    t.Cmdline(std::string("root=UUID=") + RootTree::kUuid);
    ASSERT_TRUE(RunRoot(t.ctx));
    ASSERT_TRUE(t.ctx.background.Running(kRootPreparation));
    PreparedRoot root = Ahead(t.ctx)->Take();
    ASSERT_TRUE(root.failed);
    EXPECT_THAT(root.failed->message(),
                HasSubstr("root stage: unexpected exception: fake kernel: injected exception in "
                          "mount"));
    EXPECT_FALSE(root.device);
    EXPECT_FALSE(root.mounted);
}

// R-36, issue 24 point 3: the file systems tried for the root are rootfstype=, else the probed
// type, never every file system the kernel has (the first driver to accept the device would win).
TEST(RootStage, FileSystemTypesComeFromRootfstypeOrProbing) {
    BlockDevice probed;
    probed.type = "ext4";
    BlockDevice unknown;  // no signature libblkid recognises
    auto options = [](const std::string& cmdline) { return *ParseRootOptions(ParseCmdline(cmdline)); };
    EXPECT_EQ(RootTypes(options("root=/dev/vda"), probed), std::vector<std::string>{"ext4"});
    EXPECT_EQ(RootTypes(options("root=/dev/vda rootfstype=xfs,btrfs"), probed),
              (std::vector<std::string>{"xfs", "btrfs"}));
    EXPECT_EQ(RootTypes(options("root=/dev/vda rootfstype=vfat"), unknown),
              std::vector<std::string>{"vfat"});
    EXPECT_THAT(RootTypes(options("root=/dev/vda"), unknown), ::testing::IsEmpty());
}

// The same through PrepareRoot: a block device whose file system cannot be probed (here a node
// whose device is absent, so nothing can be read) is not mounted at all, although the kernel
// lists three file systems; the error says that rootfstype= names one.
TEST(RootStage, UnknownFileSystemIsNotTriedWithEveryType) {
    RootTree t("\text4\n\tvfat\n\txfs\n");
    const fs::path node = t.s.dir / "dev/ram250";
    if (::mknod(node.c_str(), S_IFBLK | 0600, makedev(1, 250)) != 0) {
        GTEST_SKIP() << "cannot make a block device node (needs CAP_MKNOD)";
    }
    auto o = ParseRootOptions(ParseCmdline("root=/dev/ram250 rootwait=1"));
    ASSERT_TRUE(o);
    PreparedRoot root = PrepareRoot(t.paths, t.kernel, *o);
    ASSERT_TRUE(root.device);
    EXPECT_EQ(root.device->type, "");
    ASSERT_TRUE(root.mounted);
    ASSERT_FALSE(*root.mounted);
    EXPECT_THAT(root.mounted->error().message(),
                HasSubstr("probing found no file system on it (libblkid); rootfstype= names one"));
    EXPECT_THAT(t.Mounts(), ::testing::IsEmpty());
}

// Symlinks inside the new root resolve inside it, the way the real init will see them.
TEST(ExecutableInRoot, MergedUsrSymlinkChain) {
    Scratch s;
    fs::path root = s.dir / "root";
    fs::create_directories(root / "usr/sbin");
    fs::create_directories(root / "usr/lib/systemd");
    fs::create_symlink("usr/sbin", root / "sbin");
    fs::create_symlink("usr/lib", root / "lib");
    // Absolute: from the initramfs it would point at the initramfs's own /lib.
    fs::create_symlink("/lib/systemd/systemd", root / "usr/sbin/init");
    std::ofstream(root / "usr/lib/systemd/systemd") << "#!/bin/true\n";
    EXPECT_FALSE(CheckExecutableInRoot(root.string(), "/sbin/init"));  // not executable yet
    fs::permissions(root / "usr/lib/systemd/systemd", fs::perms(0755));
    auto ok = CheckExecutableInRoot(root.string(), "/sbin/init");
    EXPECT_TRUE(ok) << ok.error().message();
    // `..` cannot leave the root either.
    fs::create_symlink("../../../../../../bin/true", root / "usr/sbin/escape");
    EXPECT_FALSE(CheckExecutableInRoot(root.string(), "/sbin/escape"));
    auto missing = CheckExecutableInRoot(root.string(), "/sbin/nothing");
    ASSERT_FALSE(missing);
    EXPECT_THAT(missing.error().message(), HasSubstr("does not resolve inside the new root"));
    EXPECT_FALSE(CheckExecutableInRoot(root.string(), "/usr/sbin"));  // a directory
    // The real init is read ahead (into the page cache) as the root stage's thread does it:
    // opened through the same resolution (the file the chain ends at inside the root, never
    // one outside it), then ReadAhead on the descriptor, which takes regular files only.
    const int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
    auto init = OpenInRoot(root.string(), "/sbin/init", flags);
    ASSERT_TRUE(init) << init.error().message();
    auto ahead = ReadAhead(*init);
    EXPECT_TRUE(ahead) << ahead.error().message();
    close(*init);
    EXPECT_FALSE(OpenInRoot(root.string(), "/sbin/escape", flags));
    auto absent = OpenInRoot(root.string(), "/sbin/nothing", flags);
    ASSERT_FALSE(absent);
    EXPECT_THAT(absent.error().message(), HasSubstr("/sbin/nothing does not resolve inside"));
    auto dir = OpenInRoot(root.string(), "/usr/sbin", O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(dir) << dir.error().message();
    auto not_file = ReadAhead(*dir);
    close(*dir);
    ASSERT_FALSE(not_file);
    EXPECT_THAT(not_file.error().message(), HasSubstr("not a regular file"));
}

// The handoff's mount moves (issue 24 point 6): an initramfs whose /run /proc /sys /dev are to be
// moved into a new root; each test shapes the new root.
struct MoveRoots {
    Scratch s;
    BootPaths paths;
    fs::path new_root;
    FakeKernel kernel;
    testing::CapturedLog log{"handoff-move-test"};
    MoveRoots() {
        paths.root = s.dir / "initramfs";
        new_root = s.dir / "initramfs/newroot";
        for (const char* d : {"run", "proc", "sys", "dev"}) {
            fs::create_directories(paths.root / d);
            fs::create_directories(new_root / d);
        }
    }
    // Replaces the new root's `name` with a symbolic link to `target`.
    void Link(const std::string& name, const std::string& target) {
        fs::remove(new_root / name);
        fs::create_symlink(target, new_root / name);
    }
    // The move_mount calls as "FROM -> TARGET", both relative to the scratch directory.
    std::vector<std::string> Moves() const {
        std::vector<std::string> out;
        for (const auto& c : kernel.Calls(KernelOp::kMoveMount)) {
            out.push_back(fs::path(c.args).lexically_relative(s.dir).string() + " -> " +
                          fs::path(c.name).lexically_relative(s.dir).string());
        }
        return out;
    }
};

TEST(MountMoves, RealDirectoriesAreMovedOntoRunFirst) {
    MoveRoots t;
    auto moves = OpenMountMoves(t.paths, t.new_root.string());
    ASSERT_TRUE(moves) << moves.error().message();
    auto moved = MoveMounts(t.kernel, *moves);
    ASSERT_TRUE(moved) << moved.error().message();
    EXPECT_THAT(t.Moves(), ElementsAre("initramfs/run -> initramfs/newroot/run",
                                       "initramfs/proc -> initramfs/newroot/proc",
                                       "initramfs/sys -> initramfs/newroot/sys",
                                       "initramfs/dev -> initramfs/newroot/dev"));
    EXPECT_TRUE(t.kernel.Calls(KernelOp::kMount).empty());  // no path-based MS_MOVE any more
    EXPECT_TRUE(t.kernel.Calls(KernelOp::kUmount).empty());
}

// A symbolic link is never followed: not one that leaves the new root (from the initramfs, an
// absolute link names the initramfs's own directories), not one that stays inside it (the real
// root's disk can re-point it later), not a `..` chain. Refused before anything is moved.
TEST(MountMoves, SymbolicLinksAreRefusedBeforeAnythingMoves) {
    for (auto [name, target] : std::vector<std::pair<std::string, std::string>>{
             {"run", "/elsewhere"},         // absolute: the initramfs's /elsewhere when followed
             {"run", "../../outside"},      // relative, out of the new root
             {"dev", "run"},                // inside the new root, still a link
             {"proc", "/newroot/proc"}}) {  // absolute, inside the new root
        SCOPED_TRACE(name + " -> " + target);
        MoveRoots t;
        fs::create_directories(t.s.dir / "outside");
        fs::create_directories(t.paths.root / "elsewhere");
        t.Link(name, target);
        auto moves = OpenMountMoves(t.paths, t.new_root.string());
        ASSERT_FALSE(moves);
        EXPECT_EQ(moves.error().code(), ELOOP);
        EXPECT_THAT(moves.error().message(),
                    HasSubstr("refusing to move /" + name + " there: /" + name +
                              " on the new root is or passes through a symbolic link (-> " +
                              target + "); a mount is moved only onto a real directory"));
    }
}

TEST(MountMoves, NotADirectoryIsRefused) {
    MoveRoots t;
    fs::remove(t.new_root / "sys");
    std::ofstream(t.new_root / "sys") << "a file\n";
    auto moves = OpenMountMoves(t.paths, t.new_root.string());
    ASSERT_FALSE(moves);
    EXPECT_EQ(moves.error().code(), ENOTDIR);
    EXPECT_THAT(moves.error().message(),
                HasSubstr("refusing to move /sys there: /sys on the new root is not a directory"));
}

// Without /run the sealed kernel.modprobe (/run/peinit/bin/peinit-modprobe) would name a path a
// root process could create on the real root: the handoff fails. A missing /proc, /sys or /dev
// only drops that mount, as before.
TEST(MountMoves, MissingRunFailsOtherMissingMountsAreDropped) {
    {
        MoveRoots t;
        fs::remove(t.new_root / "run");
        auto moves = OpenMountMoves(t.paths, t.new_root.string());
        ASSERT_FALSE(moves);
        EXPECT_EQ(moves.error().code(), ENOENT);
        EXPECT_THAT(moves.error().message(),
                    HasSubstr("the new root has no /run: the demand-load helper handed over in "
                              "/run/peinit (kernel.modprobe) would name a path any root process "
                              "could create there"));
    }
    MoveRoots t;
    fs::remove(t.new_root / "proc");
    auto moves = OpenMountMoves(t.paths, t.new_root.string());
    ASSERT_TRUE(moves) << moves.error().message();
    ASSERT_TRUE(MoveMounts(t.kernel, *moves));
    EXPECT_THAT(t.Moves(), ElementsAre("initramfs/run -> initramfs/newroot/run",
                                       "initramfs/sys -> initramfs/newroot/sys",
                                       "initramfs/dev -> initramfs/newroot/dev"));
    auto detached = t.kernel.Calls(KernelOp::kUmount);
    ASSERT_EQ(detached.size(), 1u);
    EXPECT_EQ(detached[0].name, (t.paths.root / "proc").string());
    EXPECT_EQ(detached[0].args, "flags=" + std::to_string(MNT_DETACH));
    EXPECT_THAT(t.log.str(),
                HasSubstr("handoff: the new root has no /proc: the mount is dropped, not moved"));
}

// A failed move of /run fails the handoff (it is moved first: nothing else has moved); another
// mount's failed move drops that mount and the handoff goes on.
TEST(MountMoves, FailedMoveOfRunFailsOthersAreDropped) {
    {
        MoveRoots t;
        t.kernel.SetOpError(KernelOp::kMoveMount, (t.new_root / "run").string(), EINVAL);
        auto moves = OpenMountMoves(t.paths, t.new_root.string());
        ASSERT_TRUE(moves) << moves.error().message();
        auto moved = MoveMounts(t.kernel, *moves);
        ASSERT_FALSE(moved);
        EXPECT_EQ(moved.error().code(), EINVAL);
        EXPECT_THAT(moved.error().message(),
                    HasSubstr("handoff: cannot move /run into the new root"));
        EXPECT_EQ(t.kernel.Calls(KernelOp::kMoveMount).size(), 1u);
        EXPECT_TRUE(t.kernel.Calls(KernelOp::kUmount).empty());
    }
    MoveRoots t;
    t.kernel.SetOpError(KernelOp::kMoveMount, (t.new_root / "sys").string(), EINVAL);
    auto moves = OpenMountMoves(t.paths, t.new_root.string());
    ASSERT_TRUE(moves) << moves.error().message();
    ASSERT_TRUE(MoveMounts(t.kernel, *moves));
    EXPECT_EQ(t.kernel.Calls(KernelOp::kMoveMount).size(), 4u);
    auto detached = t.kernel.Calls(KernelOp::kUmount);
    ASSERT_EQ(detached.size(), 1u);
    EXPECT_EQ(detached[0].name, (t.paths.root / "sys").string());
    EXPECT_THAT(t.log.str(), HasSubstr("the mount is dropped, not moved"));
}

// The real move_mount(2) path: an O_PATH descriptor of the checked directory is a valid target
// (run as root only: moving a mount needs CAP_SYS_ADMIN in a mount namespace of our own).
TEST(MountMoves, LinuxKernelMovesOntoTheOpenedDirectory) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (a private mount namespace)";
    Scratch s;
    fs::create_directories(s.dir / "from");
    fs::create_directories(s.dir / "newroot/run");
    std::ofstream(s.dir / "newroot/run/marker") << "";
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // Child: a private mount namespace, a tmpfs at from/, moved onto newroot/run by fd.
        if (unshare(CLONE_NEWNS) != 0) _exit(10);
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(11);
        if (mount("tmpfs", (s.dir / "from").c_str(), "tmpfs", 0, nullptr) != 0) _exit(12);
        std::ofstream((s.dir / "from/moved").string()) << "";
        auto target = OpenMountPointInRoot((s.dir / "newroot").string(), "/run");
        if (!target) _exit(13);
        LinuxKernel k;
        if (!k.MoveMount((s.dir / "from").string(), target->get())) _exit(14);
        // newroot/run now shows the tmpfs (its file), and from/ is empty again.
        if (!fs::exists(s.dir / "newroot/run/moved") || fs::exists(s.dir / "newroot/run/marker"))
            _exit(15);
        if (fs::exists(s.dir / "from/moved")) _exit(16);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "step that failed: 10 unshare, 11 private, 12 tmpfs, "
                                         "13 open, 14 move_mount, 15 not moved there, 16 not gone";
}

EffectivePolicy SamplePolicy() {
    EffectivePolicy p;
    p.lock_after_boot = {true, PolicySource::kHive};
    p.autoload = {AutoLoadPolicy::kAllowList, PolicySource::kHive};
    p.autoload_allowed = {"af_packet", "dummy"};
    p.blacklist = {{"bad_drv", PolicySource::kHive}, {"floppy", PolicySource::kCmdline}};
    p.signing = {SigningPolicy::kEnforce, PolicySource::kCmdline};
    p.modprobe.value = "/usr/lib/peinit/helper";
    p.workers.value = 3;
    p.ignored = {"peinit.lock=0 ignored"};
    return p;
}

TEST(PolicyRecord, RoundTrips) {
    PolicyRecord r{SamplePolicy(), HiveState::kLoaded, "/etc/peinit/hive.toml", {"a:1: x"},
                   "/run/peinit/modload"};
    auto back = PolicyRecord::FromJson(r.ToJson(), "policy.json");
    ASSERT_TRUE(back) << back.error().message();
    const EffectivePolicy& p = back->policy;
    EXPECT_TRUE(p.lock_after_boot.value);
    EXPECT_EQ(p.autoload.value, AutoLoadPolicy::kAllowList);
    EXPECT_EQ(p.autoload.source, PolicySource::kHive);
    EXPECT_THAT(p.autoload_allowed, ElementsAre("af_packet", "dummy"));
    ASSERT_EQ(p.blacklist.size(), 2u);
    EXPECT_EQ(p.blacklist[1], (BlacklistEntry{"floppy", PolicySource::kCmdline}));
    EXPECT_EQ(p.signing.value, SigningPolicy::kEnforce);
    EXPECT_EQ(p.modprobe.value, "/usr/lib/peinit/helper");
    EXPECT_EQ(p.workers.value, 3);
    EXPECT_EQ(back->hive_state, HiveState::kLoaded);
    EXPECT_THAT(back->hive_errors, ElementsAre("a:1: x"));
    EXPECT_EQ(back->modload_root, "/run/peinit/modload");
}

TEST(PolicyRecord, MalformedIsAnErrorNamingTheField) {
    PolicyRecord r{SamplePolicy(), HiveState::kLoaded, "/h", {}, "/"};
    std::string good = r.ToJson();
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        auto at = s.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) s.replace(at, from.size(), to);
        return PolicyRecord::FromJson(s, "policy.json");
    };
    EXPECT_THAT(with("\"allow-list\"", "\"everything\"").error().message(),
                HasSubstr("autoload.value: unknown value \"everything\""));
    EXPECT_THAT(with("\"version\" : 1", "\"version\" : 7").error().message(),
                HasSubstr("policy.json: version 7 is newer than this reader's 1"));
    EXPECT_THAT(with("\"/h\"", "7").error().message(),
                HasSubstr("policy.json: hive.path: must be a string, not integer"));
    EXPECT_THAT(with("\"modload_root\"", "\"other\"").error().message(),
                HasSubstr("policy.json: no \"modload_root\""));
    EXPECT_THAT(with("\"bad_drv\"", "\"../x\"").error().message(), HasSubstr("blacklist"));
    EXPECT_THAT(PolicyRecord::FromJson("{\n", "policy.json").error().message(),
                HasSubstr("policy.json:2: not JSON"));
    EXPECT_FALSE(PolicyRecord::FromJson("", "policy.json"));
}

TEST(Handover, BlacklistExportStopsAliasesAndExplicitLoads) {
    EffectivePolicy p = SamplePolicy();
    std::string text = BlacklistExport(p);
    EXPECT_THAT(text, HasSubstr("\nblacklist bad_drv\ninstall bad_drv /bin/false\n"));
    EXPECT_THAT(text, HasSubstr("\nblacklist floppy\ninstall floppy /bin/false\n"));
    EXPECT_THAT(text, HasSubstr("A direct finit_module(2) (insmod) is not covered"));
    EXPECT_THAT(BlacklistExport(EffectivePolicy{}), Not(HasSubstr("\nblacklist ")));
}

// Locked before the switch: the real root gets no helper (kernel.modprobe emptied, nothing
// copied), the blacklist is exported either way.
TEST(Handover, LockedRootGetsNoHelper) {
    Scratch s;
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.paths.root = s.dir;
    ctx.cmdline = ParseCmdline("root=/dev/vda");
    ctx.policy = SamplePolicy();
    ctx.lock.locked = true;
    ASSERT_TRUE(kernel.WriteSysctl("kernel/modprobe", "/sbin/peinit-modprobe"));
    auto r = RunHandover(ctx);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "");
    EXPECT_FALSE(fs::exists(s.dir / "run/peinit/modload"));
    EXPECT_TRUE(fs::exists(s.dir / "run/modprobe.d/peinit-blacklist.conf"));
}

// the real root's kernel.modprobe is sealed once it is final, after the last write.
TEST(Handover, SealsTheRealRootsHelperAfterSettingIt) {
    Scratch s;
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.paths.root = s.dir;
    ctx.cmdline = ParseCmdline("root=/dev/vda");
    ctx.policy = SamplePolicy();
    ctx.lock.locked = true;
    fs::create_directories(s.dir / "run/peinit");
    ASSERT_TRUE(kernel.WriteSysctl("kernel/modprobe", "/sbin/peinit-modprobe"));
    auto r = RunHandover(ctx);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(kernel.IsModprobeSealed());
    auto calls = kernel.Calls();
    auto last_write = std::find_if(calls.rbegin(), calls.rend(), [](const KernelCall& c) {
        return c.op == KernelOp::kWriteSysctl && c.name == "kernel/modprobe";
    });
    auto seal = std::find_if(calls.begin(), calls.end(), [](const KernelCall& c) {
        return c.op == KernelOp::kModuleLockdown &&
               c.args.starts_with("op=" + std::to_string(MODULE_LOCKDOWN_SEAL_MODPROBE) + " ");
    });
    ASSERT_NE(last_write, calls.rend());
    ASSERT_NE(seal, calls.end());
    EXPECT_GT(seal - calls.begin(), calls.rend() - last_write - 1);
    EXPECT_FALSE(kernel.WriteSysctl("kernel/modprobe", "/tmp/evil"));
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "");
    EXPECT_THAT(testing::ReadFileOrEmpty(s.dir / "run/peinit/autoload.json"),
                HasSubstr("modprobe-sealed"));

    // A kernel without the seal: the handover still succeeds, the record says "none".
    Scratch s2;
    FakeKernel stock;
    stock.SetNoAutoloadGates(true);
    BootContext c2(stock);
    c2.paths.root = s2.dir;
    c2.cmdline = ParseCmdline("root=/dev/vda");
    c2.policy = SamplePolicy();
    c2.lock.locked = true;
    fs::create_directories(s2.dir / "run/peinit");
    ASSERT_TRUE(RunHandover(c2));
    EXPECT_FALSE(stock.IsModprobeSealed());
    EXPECT_THAT(testing::ReadFileOrEmpty(s2.dir / "run/peinit/autoload.json"),
                HasSubstr("\"none\""));
}

// A real-root boot at the handover: a scratch root, the fake kernel, root=/dev/vda and the
// sample policy (allow-list with the registry's helper), not locked.
struct HandoverBoot {
    Scratch s;
    FakeKernel kernel;
    BootContext ctx{kernel};
    HandoverBoot() {
        ctx.paths.root = s.dir;
        ctx.cmdline = ParseCmdline("root=/dev/vda");
        ctx.policy = SamplePolicy();
        fs::create_directories(s.dir / "run/peinit");
    }
};

// Issue 24 point 4: an exception inside the handover (here: the write of the real root's helper
// path throws) skips neither the fail-closed reset nor the seal: kernel.modprobe ends up empty
// and sealed, and the failure is reported (stage error and autoload record).
TEST(Handover, ExceptionSettingTheHelperFailsClosed) {
    HandoverBoot b;
    auto& [s, kernel, ctx] = b;
    ASSERT_TRUE(kernel.WriteSysctl("kernel/modprobe", "/sbin/peinit-modprobe"));
    kernel.ThrowOn(KernelOp::kWriteSysctl, "kernel/modprobe");
    Result<void> r = Ok();
    ASSERT_NO_THROW(r = RunHandover(ctx));
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(),
                HasSubstr("handover: kernel.modprobe: unexpected exception: fake kernel: injected "
                          "exception in"));
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "");
    EXPECT_TRUE(kernel.IsModprobeSealed());
    EXPECT_FALSE(kernel.WriteSysctl("kernel/modprobe", "/tmp/evil"));
    const std::string record = testing::ReadFileOrEmpty(s.dir / "run/peinit/autoload.json");
    EXPECT_THAT(record, HasSubstr("unexpected exception"));
    EXPECT_THAT(record, HasSubstr("modprobe-sealed"));
}

// The seal itself throws: the helper the real root was given is taken back (an unsealed path it
// could rewrite must not name a helper), and the empty path is sealed on a second attempt.
TEST(Handover, ExceptionSealingEmptiesTheHelperAndSealsAgain) {
    HandoverBoot b;
    auto& [s, kernel, ctx] = b;
    kernel.ThrowOn(KernelOp::kModuleLockdown, std::to_string(MODULE_LOCKDOWN_SEAL_MODPROBE));
    Result<void> r = Ok();
    ASSERT_NO_THROW(r = RunHandover(ctx));
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("handover: seal: unexpected exception"));
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "");
    EXPECT_TRUE(kernel.IsModprobeSealed());
    // The registry's helper was set first, then emptied: the last write is the empty one.
    auto writes = kernel.Calls(KernelOp::kWriteSysctl);
    std::vector<std::string> values;
    for (const auto& w : writes) {
        if (w.name == "kernel/modprobe") values.push_back(w.args);
    }
    ASSERT_FALSE(values.empty());
    EXPECT_EQ(values.front(), "/usr/lib/peinit/helper");
    EXPECT_EQ(values.back(), "");
}

// Issue 24 point 1: peinit's own helper reaches the real root on the sealed tree, which /run
// carries into it: nothing is copied (no program, no library directory, no module tree), the
// path the autoload stage set is read back and sealed, and the status record names the tree.
TEST(Handover, HandsOverTheSealedHelperWithoutCopying) {
    HandoverBoot b;
    auto& [s, kernel, ctx] = b;
    ctx.policy.modprobe.value.reset();  // peinit's own helper
    ctx.sealed_root = s.dir / "run/peinit/ro";
    ASSERT_TRUE(kernel.WriteSysctl("kernel/modprobe", "/run/peinit/ro/bin/peinit-modprobe"));
    auto r = RunHandover(ctx);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "/run/peinit/ro/bin/peinit-modprobe");
    EXPECT_TRUE(kernel.IsModprobeSealed());
    EXPECT_FALSE(fs::exists(s.dir / "run/peinit/lib"));
    EXPECT_FALSE(fs::exists(s.dir / "run/peinit/modload"));
    EXPECT_FALSE(fs::exists(s.dir / "run/peinit/bin/peinit-modprobe"));
    auto record = PolicyRecord::FromJson(
        testing::ReadFileOrEmpty(s.dir / "run/peinit/policy.json"), "policy.json");
    ASSERT_TRUE(record) << record.error().message();
    EXPECT_EQ(record->modload_root, "/run/peinit/ro");
}

// The sealed tree was not built (the autoload stage failed closed): the real root gets no helper.
TEST(Handover, WithoutTheSealedTreeTheRealRootGetsNoHelper) {
    HandoverBoot b;
    auto& [s, kernel, ctx] = b;
    ctx.policy.modprobe.value.reset();
    auto r = RunHandover(ctx);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("the sealed tree /run/peinit/ro was not built"));
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "");
    EXPECT_TRUE(kernel.IsModprobeSealed());
}

// Without root= peinit stays PID 1: its helper stays, only the export is written.
TEST(Handover, ServiceModeKeepsTheHelper) {
    Scratch s;
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.paths.root = s.dir;
    ctx.policy = SamplePolicy();
    ASSERT_TRUE(kernel.WriteSysctl("kernel/modprobe", "/sbin/peinit-modprobe"));
    ASSERT_TRUE(RunHandover(ctx));
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modprobe"), "/sbin/peinit-modprobe");
    EXPECT_TRUE(fs::exists(s.dir / "run/modprobe.d/peinit-blacklist.conf"));
    EXPECT_FALSE(fs::exists(s.dir / "run/peinit/bin"));
}

// the real init starts clean. PID 1 has signals blocked (signalfd), some ignored, and
// descriptors open (kmsg, the signalfd); LinuxKernel::Exec must not pass any of that on.
// Issue 24 point 6: Exec's fallback where close_range is missing marks every descriptor from 3
// on close-on-exec, so none leaks into the real init.
TEST(CleanExec, FallbackMarksEveryDescriptorCloseOnExec) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const int before = ::fcntl(fds[0], F_GETFD);
    ASSERT_EQ(before & FD_CLOEXEC, 0);
    ASSERT_TRUE(MarkCloseOnExecFrom(3));
    EXPECT_NE(::fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
    EXPECT_NE(::fcntl(fds[1], F_GETFD) & FD_CLOEXEC, 0);
    EXPECT_EQ(::fcntl(0, F_GETFD) & FD_CLOEXEC, 0) << "stdin is left as it is";
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST(CleanExec, EmptyMaskDefaultDispositionsOnlyStdio) {
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, nullptr);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        int leaked = open("/dev/null", O_RDONLY);  // no O_CLOEXEC: would be inherited
        (void)leaked;
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        LinuxKernel kernel;
        (void)kernel.Exec({"/bin/sh", "-c",
                           "grep -E '^Sig(Blk|Ign)' /proc/self/status; "
                           // ls lists the shell's descriptors plus its own one (3).
                           "echo fds; exec ls /proc/self/fd"},
                          {"PATH=/usr/bin:/bin"});
        _exit(127);
    }
    close(out[1]);
    std::string text;
    char buf[512];
    for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    close(out[0]);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
    EXPECT_THAT(text, HasSubstr("SigBlk:\t0000000000000000"));
    EXPECT_THAT(text, HasSubstr("SigIgn:\t0000000000000000"));
    EXPECT_THAT(text, ::testing::EndsWith("fds\n0\n1\n2\n3\n"));
}

// A failed exec leaves the caller as it was (PID 1 goes on to its emergency path).
TEST(CleanExec, FailureRestoresMaskAndIgnoredSignals) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    ASSERT_EQ(sigprocmask(SIG_BLOCK, &block, &old), 0);
    auto old_handler = signal(SIGWINCH, SIG_IGN);
    LinuxKernel kernel;
    auto r = kernel.Exec({"/nonexistent/init"}, {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ENOENT);
    sigset_t now;
    sigprocmask(SIG_SETMASK, nullptr, &now);
    EXPECT_TRUE(sigismember(&now, SIGUSR2));
    struct sigaction sa {};
    sigaction(SIGWINCH, nullptr, &sa);
    EXPECT_EQ(sa.sa_handler, SIG_IGN);
    signal(SIGWINCH, old_handler);
    sigprocmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace
}  // namespace peinit
