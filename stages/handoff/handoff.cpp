#include "stages/handoff/handoff.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "peinit/core/root_spec.h"
#include "peinit/sys/block_devices.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/fs.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/log.h"

namespace peinit {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kNewRoot = "/newroot";
constexpr milliseconds kPoll{50};
constexpr milliseconds kStillWaitingEvery{10000};

// The device root= names, once it is there: path and probed file system.
std::optional<BlockDevice> FindRoot(const BootContext& ctx, const RootSpec& spec,
                                    std::vector<BlockDevice>* seen) {
    if (spec.IsPath()) {
        std::string path = ctx.paths.Under(spec.value).string();
        struct stat st;
        if (stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return std::nullopt;
        return ProbeBlockDevice(spec.value.substr(spec.value.rfind('/') + 1), path);
    }
    auto devices = ProbeBlockDevices(ctx.paths.Under("/sys/class/block").string(),
                                     ctx.paths.Under("/dev").string());
    for (const auto& d : devices) {
        if (d.Matches(spec)) return d;
    }
    if (seen) *seen = std::move(devices);
    return std::nullopt;
}

// Why the root may not have appeared: the drivers coldplug matched for present hardware and did
// not load (refused by the policy or the blacklist, or failed).
std::string UnloadedColdplugDrivers(const BootContext& ctx) {
    std::string out;
    for (const auto& o : ctx.module_outcomes) {
        bool coldplug = false;
        for (const auto& r : o.origins) coldplug = coldplug || r.kind == RequestOrigin::Kind::kColdplug;
        if (!coldplug || o.Succeeded()) continue;
        out += (out.empty() ? "" : ", ") + o.module + " (" +
               (o.reason.empty() ? std::string(ToString(o.status)) : o.reason) + ")";
    }
    return out;
}

Result<BlockDevice> WaitForRoot(const BootContext& ctx, const RootOptions& o) {
    if (o.delay.count() > 0) {
        spdlog::info("handoff: rootdelay: waiting {} s before looking for the root",
                     o.delay.count() / 1000);
        std::this_thread::sleep_for(o.delay);
    }
    const auto start = Clock::now();
    auto next_note = start + kStillWaitingEvery;
    std::vector<BlockDevice> seen;
    for (;;) {
        if (auto dev = FindRoot(ctx, o.spec, &seen)) return *dev;
        auto now = Clock::now();
        if (o.wait && now - start >= *o.wait) break;
        if (now >= next_note) {
            spdlog::warn("handoff: still waiting for root {} ({} s)", o.spec.ToString(),
                         std::chrono::duration_cast<std::chrono::seconds>(now - start).count());
            next_note += kStillWaitingEvery;
        }
        std::this_thread::sleep_for(kPoll);
    }
    if (o.spec.IsPath()) {
        seen = ProbeBlockDevices(ctx.paths.Under("/sys/class/block").string(),
                                 ctx.paths.Under("/dev").string());
    }
    std::string devices;
    for (const auto& d : seen) devices += (devices.empty() ? "" : ", ") + d.Describe();
    std::string message = "root device " + o.spec.ToString() + " did not appear within " +
                          std::to_string(o.wait->count() / 1000) + " s (block devices: " +
                          (devices.empty() ? "none" : devices) + ")";
    if (std::string drivers = UnloadedColdplugDrivers(ctx); !drivers.empty()) {
        message += "; drivers coldplug matched and did not load: " + drivers;
    } else {
        message += "; is its block driver in the boot-time module set?";
    }
    return Err(message, ENODEV);
}

Result<std::string> MountRoot(BootContext& ctx, const RootOptions& o, const BlockDevice& dev,
                              const std::string& target) {
    auto parsed = ParseMountOptions(o.flags);
    if (!parsed) return parsed.error().Context("rootflags: ");
    const MountOptions& opts = *parsed;
    unsigned long flags = opts.flags & ~MS_RDONLY;
    if (o.read_only) flags |= MS_RDONLY;
    std::vector<std::string> types = o.fstypes;
    if (types.empty() && !dev.type.empty()) types.push_back(dev.type);
    if (types.empty()) {
        auto filesystems = ReadConfigFile(ctx.paths.Under("/proc/filesystems").string());
        if (!filesystems) return filesystems.error();
        types = BlockFilesystems(filesystems->text);
    }
    std::string tried;
    for (const auto& type : types) {
        auto mounted = ctx.kernel.Mount(dev.path, target, type, flags, opts.data);
        if (mounted) {
            spdlog::info("handoff: mounted {} ({}, {}) on {}", dev.path, type,
                         o.read_only ? "ro" : "rw", target);
            return type;
        }
        tried += (tried.empty() ? "" : ", ") + type + ": " + mounted.error().message();
    }
    std::string hint = dev.type.empty() ? "" : " (probed file system: " + dev.type + ")";
    return Err("cannot mount root " + o.spec.ToString() + " = " + dev.path + hint + " (" +
               (tried.empty() ? "no file system" : tried) + ")");
}

Result<void> SwitchToRealRoot(BootContext& ctx) {
    RootOptions o = PEINIT_TRY(ParseRootOptions(ctx.cmdline));
    for (const auto& w : o.warnings) spdlog::warn("handoff: {}", w);
    if (getpid() != 1) return Err("handoff: not PID 1, refusing to switch root");
    BlockDevice dev = PEINIT_TRY(WaitForRoot(ctx, o));
    spdlog::info("handoff: root {} is {}", o.spec.ToString(), dev.Describe());

    std::string new_root = ctx.paths.Under(kNewRoot).string();
    if (auto made = ctx.kernel.MakeDir(new_root, 0755); !made && made.error().code() != EEXIST) {
        return made.error();
    }
    PEINIT_TRY(MountRoot(ctx, o, dev, new_root));

    auto ramfs = PEINIT_TRY(IsRamfsOrTmpfs(ctx.paths.root.string()));
    if (!ramfs) return Err("handoff: / is not an initramfs (ramfs/tmpfs), refusing to empty it");
    if (PEINIT_TRY(DeviceOf(new_root)) == PEINIT_TRY(DeviceOf(ctx.paths.root.string()))) {
        return Err("handoff: root=" + o.spec.ToString() + " is the initramfs itself");
    }
    std::string init = ctx.cmdline.init.value_or("/sbin/init");
    if (auto ok = CheckExecutableInRoot(new_root, init); !ok) {
        return Err("handoff: init=" + init + " on " + o.spec.ToString() + ": " +
                   ok.error().message());
    }

    for (const char* mnt : {"/proc", "/sys", "/dev", "/run"}) {
        std::string from = ctx.paths.Under(mnt).string();
        std::string to = new_root + mnt;
        if (ctx.kernel.Mount(from, to, "", MS_MOVE, "")) continue;
        // The real root has no such directory: the mount is dropped instead of moved.
        spdlog::warn("handoff: the new root has no {}: the mount is dropped, not moved", mnt);
        (void)ctx.kernel.Umount(from, MNT_DETACH);
    }
    size_t left = RemoveTreeOnDevice(ctx.paths.root.string());
    if (left != 0) spdlog::warn("handoff: {} initramfs entries could not be removed", left);
    PEINIT_TRY(ctx.kernel.SwitchRoot(new_root));

    std::vector<std::string> argv = {init};
    argv.insert(argv.end(), ctx.cmdline.init_args.begin(), ctx.cmdline.init_args.end());
    spdlog::info("handoff: exec {} on {}", init, o.spec.ToString());
    ShutdownLogging();
    return ctx.kernel.Exec(argv, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=linux"});
}

}  // namespace

Result<void> RunHandoff(BootContext& ctx) {
    if (!ctx.cmdline.root) {
        spdlog::info("handoff: no root=, peinit stays PID 1 and runs the services");
        return Ok();
    }
    return SwitchToRealRoot(ctx);
}

}  // namespace peinit
