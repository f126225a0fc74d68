#include "stages/handoff/handoff.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <unistd.h>

#include "peinit/sys/config_files.h"
#include "peinit/sys/fs.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/log.h"

namespace peinit {

namespace {

constexpr int kRootWaitMs = 10000;
constexpr const char* kNewRoot = "/newroot";

std::optional<std::string> Param(const Cmdline& cmdline, std::string_view key) {
    std::optional<std::string> value;
    for (const auto& p : cmdline.params) {
        if (p.key == key && p.value) value = p.value;  // last one wins, as in the kernel
    }
    return value;
}

Result<void> MountRoot(BootContext& ctx, const std::string& device, const std::string& target) {
    unsigned long flags = ctx.cmdline.HasFlag("rw") ? 0 : MS_RDONLY;
    std::string data = Param(ctx.cmdline, "rootflags").value_or("");
    std::vector<std::string> types;
    if (auto fstype = Param(ctx.cmdline, "rootfstype")) {
        types.push_back(*fstype);
    } else {
        auto filesystems = ReadConfigFile(ctx.paths.Under("/proc/filesystems").string());
        if (!filesystems) return filesystems.error();
        types = BlockFilesystems(filesystems->text);
    }
    std::string tried;
    for (const auto& type : types) {
        auto mounted = ctx.kernel.Mount(device, target, type, flags, data);
        if (mounted) {
            spdlog::info("handoff: mounted {} ({}) on {}", device, type, target);
            return Ok();
        }
        tried += (tried.empty() ? "" : ", ") + type + ": " + mounted.error().message();
    }
    return Err("cannot mount root " + device + " (" + (tried.empty() ? "no file system" : tried) +
               ")");
}

Result<void> SwitchToRealRoot(BootContext& ctx, const std::string& device) {
    if (device.find('=') != std::string::npos) {
        return Err("root=" + device + " is not supported by this initramfs: use a device path");
    }
    if (getpid() != 1) return Err("handoff: not PID 1, refusing to switch root");
    std::string dev_path = ctx.paths.Under(device).string();
    if (!WaitForPath(dev_path, kRootWaitMs)) {
        return Err("root device " + device + " did not appear within " +
                   std::to_string(kRootWaitMs / 1000) + " s");
    }
    std::string new_root = ctx.paths.Under(kNewRoot).string();
    if (auto made = ctx.kernel.MakeDir(new_root, 0755); !made && made.error().code() != EEXIST) {
        return made.error();
    }
    PEINIT_TRY(MountRoot(ctx, dev_path, new_root));

    auto ramfs = PEINIT_TRY(IsRamfsOrTmpfs(ctx.paths.root.string()));
    if (!ramfs) return Err("handoff: / is not an initramfs (ramfs/tmpfs), refusing to empty it");
    if (PEINIT_TRY(DeviceOf(new_root)) == PEINIT_TRY(DeviceOf(ctx.paths.root.string()))) {
        return Err("handoff: root=" + device + " is the initramfs itself");
    }
    std::string init = ctx.cmdline.init.value_or("/sbin/init");
    if (!IsExecutableFile(new_root + init)) {
        return Err("handoff: " + init + " is not an executable file on " + device);
    }

    for (const char* mnt : {"/proc", "/sys", "/dev", "/run"}) {
        std::string from = ctx.paths.Under(mnt).string();
        std::string to = new_root + mnt;
        if (ctx.kernel.Mount(from, to, "", MS_MOVE, "")) continue;
        // The real root has no such directory: the mount is dropped instead of moved.
        (void)ctx.kernel.Umount(from, MNT_DETACH);
    }
    size_t left = RemoveTreeOnDevice(ctx.paths.root.string());
    if (left != 0) spdlog::warn("handoff: {} initramfs entries could not be removed", left);
    PEINIT_TRY(ctx.kernel.SwitchRoot(new_root));

    std::vector<std::string> argv = {init};
    argv.insert(argv.end(), ctx.cmdline.init_args.begin(), ctx.cmdline.init_args.end());
    spdlog::info("handoff: exec {} on {}", init, device);
    ShutdownLogging();
    return ctx.kernel.Exec(argv, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=linux"});
}

}  // namespace

Result<void> RunHandoff(BootContext& ctx) {
    if (!ctx.cmdline.root) {
        spdlog::info("handoff: no root=, peinit stays PID 1 and runs the services");
        return Ok();
    }
    return SwitchToRealRoot(ctx, *ctx.cmdline.root);
}

}  // namespace peinit
