#include "stages/early_mounts/early_mounts.h"

#include <spdlog/spdlog.h>
#include <sys/mount.h>

#include "peinit/sys/kernel.h"
#include "peinit/sys/log.h"

namespace peinit {

namespace {

struct EarlyMount {
    const char* source;
    const char* target;
    const char* fstype;
    unsigned long flags;
    const char* data;
    // A kernel without this file system (ENODEV) or its mount point (ENOENT) is fine; the
    // mount point is the kernel's own (never created).
    bool optional = false;
};

constexpr EarlyMount kEarlyMounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""},
    // So that the lockdown LSM's level (/sys/kernel/security/lockdown) is really read by status
    // and the real root finds it mounted (moved along with /sys).
    {"securityfs", "/sys/kernel/security", "securityfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "",
     true},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
    // peinit's records, and the sealed tree's mount point (peinit/core/sealed_tree.h): a mount
    // point cannot be renamed (EBUSY), so no root process can move the sealed tree aside and put
    // a writable /run/peinit/ro in its place.
    {"tmpfs", "/run/peinit", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
};

}  // namespace

Result<void> RunEarlyMounts(BootContext& ctx) {
    for (const EarlyMount& m : kEarlyMounts) {
        std::string target = ctx.paths.Under(m.target).string();
        if (!m.optional) {
            if (auto made = ctx.kernel.MakeDir(target, 0755);
                !made && made.error().code() != EEXIST) {
                return made.error();
            }
        }
        auto mounted = ctx.kernel.Mount(m.source, target, m.fstype, m.flags, m.data);
        if (mounted || mounted.error().code() == EBUSY) continue;
        if (m.optional &&
            (mounted.error().code() == ENODEV || mounted.error().code() == ENOENT)) {
            spdlog::debug("early mounts: no {} in this kernel", m.fstype);
            continue;
        }
        return mounted.error();
    }
    // The kernel rate-limits /dev/kmsg writers (printk.devkmsg=ratelimit) and would drop most of
    // the boot log; best effort, since `printk.devkmsg=` on the command line locks the setting.
    if (auto before = ctx.kernel.ReadSysctl("kernel/printk_devkmsg")) {
        ctx.printk_devkmsg_before = *before;
    }
    (void)ctx.kernel.WriteSysctl("kernel/printk_devkmsg", "on\n");
    // Until now records were buffered; from here every line reaches the kernel log, which the
    // kernel echoes to the console itself (the buffered ones too, each once: peinit/sys/log.h).
    return AttachKmsg(ctx.paths.Under("/dev/kmsg").string());
}

}  // namespace peinit
