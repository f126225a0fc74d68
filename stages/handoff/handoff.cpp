#include "stages/handoff/handoff.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <unistd.h>

#include <string_view>
#include <utility>

#include "peinit/core/root_spec.h"
#include "peinit/sys/block_devices.h"
#include "peinit/sys/fs.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/log.h"
#include "stages/measure/measure.h"
#include "stages/root/root.h"
#include "stages/stage.h"

namespace peinit {

namespace {

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

// The error when the root did not appear: what was awaited, the block devices seen and the
// drivers coldplug matched and did not load (read once coldplug is over).
Error RootDidNotAppear(const BootContext& ctx, const RootOptions& o,
                       const std::vector<BlockDevice>& seen) {
    std::string devices;
    for (const auto& d : seen) devices += (devices.empty() ? "" : ", ") + d.Describe();
    std::string within =
        o.wait ? " within " + std::to_string(o.wait->count() / 1000) + " s" : "";
    std::string message = "root device " + o.spec.ToString() + " did not appear" + within +
                          " (block devices: " +
                          (devices.empty() ? "none" : devices) + ")";
    if (std::string drivers = UnloadedColdplugDrivers(ctx); !drivers.empty()) {
        message += "; drivers coldplug matched and did not load: " + drivers;
    } else {
        message += "; is its block driver in the boot-time module set?";
    }
    return Error(message, ENODEV);
}

}  // namespace

Result<std::vector<MountMove>> OpenMountMoves(const BootPaths& paths, const std::string& new_root) {
    std::vector<MountMove> moves;
    for (const char* mnt : kMovedMounts) {
        MountMove move{paths.Under(mnt).string(), mnt, {}};
        auto target = OpenMountPointInRoot(new_root, mnt);
        if (target) {
            move.target = std::move(*target);
        } else if (target.error().code() != ENOENT) {
            return Err(
                "refusing to move " + std::string(mnt) + " there: " + target.error().message(),
                target.error().code());
        } else if (std::string_view(mnt) == "/run") {
            return Err(
                "the new root has no /run: the demand-load helper handed over in /run/peinit "
                "(kernel.modprobe) would name a path any root process could create there",
                ENOENT);
        }
        moves.push_back(std::move(move));
    }
    return moves;
}

Result<void> MoveMounts(Kernel& kernel, std::vector<MountMove>& moves) {
    for (MountMove& m : moves) {
        const bool required = m.mount_point == "/run";
        if (m.target) {
            auto moved = kernel.MoveMount(m.from, m.target.get());
            m.target = OwnedFd();
            if (moved) continue;
            if (required) {
                return Err("handoff: cannot move " + m.mount_point +
                               " into the new root: " + moved.error().message(),
                           moved.error().code());
            }
            spdlog::warn("handoff: {}: the mount is dropped, not moved", moved.error().message());
        } else {
            // The real root has no such directory: the mount is dropped instead of moved.
            spdlog::warn("handoff: the new root has no {}: the mount is dropped, not moved",
                         m.mount_point);
        }
        (void)kernel.Umount(m.from, MNT_DETACH);
    }
    return Ok();
}

namespace {

Result<void> SwitchToRealRoot(BootContext& ctx) {
    // Found, and mounted when its file system was in the kernel, by the root stage's thread
    // (with the options it parsed); otherwise (no thread) here and now.
    std::shared_ptr<RootPreparation> ahead =
        ctx.background.Take<RootPreparation>(kRootPreparation);
    RootOptions o;
    if (ahead) {
        o = ahead->options();
    } else {
        o = PEINIT_TRY(ParseRootOptions(ctx.cmdline));
    }
    for (const auto& w : o.warnings) spdlog::warn("handoff: {}", w);
    if (getpid() != 1) return Err("handoff: not PID 1, refusing to switch root");
    PreparedRoot root = ahead ? ahead->Take() : PrepareRoot(ctx.paths, ctx.kernel, o);
    if (root.failed) return *root.failed;
    if (root.refused) return *root.refused;
    if (!root.device) return RootDidNotAppear(ctx, o, root.seen);
    std::string new_root = ctx.paths.Under(kNewRoot).string();
    if (!root.mounted) {
        if (auto made = ctx.kernel.MakeDir(new_root, 0755);
            !made && made.error().code() != EEXIST) {
            return made.error();
        }
        root.mounted = MountRoot(ctx.kernel, o, *root.device, new_root);
    }
    if (!*root.mounted) return root.mounted->error();

    auto ramfs = PEINIT_TRY(IsRamfsOrTmpfs(ctx.paths.root.string()));
    if (!ramfs) return Err("handoff: / is not an initramfs (ramfs/tmpfs), refusing to empty it");
    if (PEINIT_TRY(DeviceOf(new_root)) == PEINIT_TRY(DeviceOf(ctx.paths.root.string()))) {
        return Err("handoff: root=" + o.spec.ToString() + " is the initramfs itself");
    }
    const std::string& init = o.init;
    if (auto ok = CheckExecutableInRoot(new_root, init); !ok) {
        return Err("handoff: init=" + init + " on " + o.spec.ToString() + ": " +
                   ok.error().message());
    }

    // Where the mounts go, checked before anything is measured or moved (issue 24 point 6).
    auto moves = OpenMountMoves(ctx.paths, new_root);
    if (!moves) {
        return Err("handoff: root=" + o.spec.ToString() + ": " + moves.error().message(),
                   moves.error().code());
    }

    // Everything measured so far was the initramfs's; nothing after this is.
    MeasureLeaveInitrd(ctx);
    PEINIT_TRY(MoveMounts(ctx.kernel, *moves));
    if (ctx.packages_mounted_read_only) {
        // Its files are the initramfs's, emptied below; through the read-only bind they could
        // not be removed.
        if (auto u = ctx.kernel.Umount(ctx.paths.PackagesDir().string(), MNT_DETACH); !u) {
            spdlog::warn("handoff: {}: {}", ctx.paths.PackagesDir().string(), u.error().message());
        }
    }
    size_t left = RemoveTreeOnDevice(ctx.paths.root.string());
    if (left != 0) spdlog::warn("handoff: {} initramfs entries could not be removed", left);
    PEINIT_TRY(ctx.kernel.SwitchRoot(new_root));

    std::vector<std::string> argv = {init};
    argv.insert(argv.end(), ctx.cmdline.init_args.begin(), ctx.cmdline.init_args.end());
    // The real root's /dev/kmsg writers are rate-limited again, as the kernel had it (issue 24
    // point 6): "on" was for PID 1's own boot log only. The kernel takes the keyword with
    // exactly one character after it (the newline).
    if (!ctx.printk_devkmsg_before.empty()) {
        if (auto w = ctx.kernel.WriteSysctl("kernel/printk_devkmsg",
                                            ctx.printk_devkmsg_before + "\n");
            !w) {
            spdlog::warn("handoff: kernel.printk_devkmsg stays on: {}", w.error().message());
        }
    }
    spdlog::info("handoff: exec {} on {} (kernel.printk_devkmsg={})", init, o.spec.ToString(),
                 ctx.printk_devkmsg_before.empty() ? "on" : ctx.printk_devkmsg_before);
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
