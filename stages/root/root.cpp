#include "stages/handoff/handoff.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "peinit/core/contain.h"
#include "peinit/core/root_spec.h"
#include "peinit/sys/block_devices.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/fs.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/log.h"
#include "stages/autoload/handover.h"
#include "stages/measure/measure.h"

namespace peinit {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kNewRoot = "/newroot";
constexpr milliseconds kPoll{50};
constexpr milliseconds kStillWaitingEvery{10000};

// The device root= names, once it is there: path and probed file system. A tag that two devices
// carry is refused, naming both: a stick with the root's LABEL= must not be booted
// because its name sorts first. A device another is built on (dm, MD) is not a candidate: the
// one on top carries the same tags and is the root.
Result<std::optional<BlockDevice>> FindRoot(const BootPaths& paths, const RootSpec& spec,
                                            std::vector<BlockDevice>* seen) {
    if (spec.IsPath()) {
        std::string path = paths.Under(spec.value).string();
        struct stat st;
        if (stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) {
            return std::optional<BlockDevice>{};
        }
        return std::optional(ProbeBlockDevice(spec.value.substr(spec.value.rfind('/') + 1), path));
    }
    auto devices = ProbeBlockDevices(paths.Under("/sys/class/block").string(),
                                     paths.Under("/dev").string());
    std::vector<BlockDevice> matches;
    for (const auto& d : devices) {
        if (!d.held && d.Matches(spec)) matches.push_back(d);
    }
    if (matches.size() > 1) {
        std::string which;
        for (const auto& d : matches) which += (which.empty() ? "" : ", ") + d.Describe();
        return Err("root " + spec.ToString() + " matches " + std::to_string(matches.size()) +
                       " devices: " + which +
                       ": refusing to guess which one to boot (give root= a tag only the root "
                       "carries, or its /dev path)",
                   EEXIST);
    }
    if (!matches.empty()) return std::optional(matches.front());
    if (seen) *seen = std::move(devices);
    return std::optional<BlockDevice>{};
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

}  // namespace

struct MountGate {
    // Run once the device is found, before waiting for the gate (the thread's other work).
    std::function<void()> found;
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;      // the module stage is over: the root may be mounted
    bool stop = false;      // the preparation is dropped: end the wait
    bool finished = false;  // the result is complete (the thread touches it no more)

    // Sets one of the flags above and wakes the waiters.
    void Set(bool MountGate::*flag) {
        std::lock_guard lock(mu);
        this->*flag = true;
        cv.notify_all();
    }
    // Sleeps `d` unless told to stop first; false when stopped.
    bool Sleep(std::chrono::milliseconds d) {
        std::unique_lock lock(mu);
        return !cv.wait_for(lock, d, [this] { return stop; });
    }
    // Until the gate opens; false when stopped.
    bool WaitOpen() {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return open || stop; });
        return !stop;
    }
    void WaitFinished() {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return finished; });
    }
};

namespace {

bool Stopped(MountGate* gate) {
    if (gate == nullptr) return false;
    std::lock_guard lock(gate->mu);
    return gate->stop;
}

void Sleep(std::chrono::milliseconds d, MountGate* gate) {
    if (gate != nullptr) {
        (void)gate->Sleep(d);
    } else {
        std::this_thread::sleep_for(d);
    }
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

// The block file systems the kernel has now (/proc/filesystems).
Result<std::vector<std::string>> KernelFilesystems(const BootPaths& paths) {
    auto filesystems = ReadConfigFile(paths.Under("/proc/filesystems").string());
    if (!filesystems) return filesystems.error();
    return BlockFilesystems(filesystems->text);
}


// The mount(2) flags rootflags= may set: how the file system is mounted. Not what changes the
// call's meaning (bind, move, remount) or the mount's propagation (shared, slave, private,
// unbindable, rec): those would mount something other than the root device, or the root in a
// way the switch to it does not expect.
constexpr unsigned long kRootFlagsAllowed = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC |
                                             MS_SYNCHRONOUS | MS_DIRSYNC | MS_MANDLOCK |
                                             MS_NOATIME | MS_NODIRATIME | MS_RELATIME |
                                             MS_STRICTATIME | MS_LAZYTIME | MS_SILENT | MS_I_VERSION;

Result<MountOptions> RootMountOptions(const std::string& rootflags) {
    auto parsed = ParseMountOptions(rootflags);
    if (!parsed) return parsed.error().Context("rootflags: ");
    static const std::pair<unsigned long, const char*> kRefused[] = {
        {MS_BIND, "bind"},     {MS_MOVE, "move"},     {MS_REMOUNT, "remount"},
        {MS_REC, "rec"},       {MS_SHARED, "shared"}, {MS_SLAVE, "slave"},
        {MS_PRIVATE, "private"}, {MS_UNBINDABLE, "unbindable"}};
    std::string refused;
    for (const auto& [flag, name] : kRefused) {
        if (parsed->flags & flag) refused += (refused.empty() ? "" : ", ") + std::string(name);
    }
    if (!refused.empty() || (parsed->flags & ~kRootFlagsAllowed) != 0) {
        return Err("rootflags=" + rootflags + ": " + (refused.empty() ? "a flag" : refused) +
                   " cannot be used to mount the root (allowed: ro, rw, nosuid, nodev, noexec, "
                   "sync, dirsync, noatime, nodiratime, relatime, strictatime, lazytime and "
                   "the file system's own options)");
    }
    return parsed;
}

Result<std::string> MountRoot(Kernel& kernel, const RootOptions& o,
                              const BlockDevice& dev, const std::string& target) {
    const MountOptions opts = PEINIT_TRY(RootMountOptions(o.flags));
    unsigned long flags = opts.flags & ~MS_RDONLY;
    if (o.read_only) flags |= MS_RDONLY;
    const std::vector<std::string> types = RootTypes(o, dev);
    if (types.empty()) {
        return Err("cannot mount root " + o.spec.ToString() + " = " + dev.path +
                   ": probing found no file system on it (libblkid); rootfstype= names one");
    }
    std::string tried;
    for (const auto& type : types) {
        auto mounted = kernel.Mount(dev.path, target, type, flags, opts.data);
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

}  // namespace

// Not every file system the kernel has, as the kernel's own mount_block_root tries: a device
// whose file system no probe recognises is not mounted with whichever driver accepts it.
std::vector<std::string> RootTypes(const RootOptions& o, const BlockDevice& dev) {
    if (!o.fstypes.empty()) return o.fstypes;
    if (!dev.type.empty()) return {dev.type};
    return {};
}

PreparedRoot PrepareRoot(const BootPaths& paths, Kernel& kernel, const RootOptions& o,
                         MountGate* gate) {
    PreparedRoot out;
    if (o.delay.count() > 0) {
        spdlog::info("handoff: rootdelay: waiting {} s before looking for the root",
                     o.delay.count() / 1000);
        Sleep(o.delay, gate);
    }
    const auto start = Clock::now();
    auto next_note = start + kStillWaitingEvery;
    while (!Stopped(gate)) {
        auto found = FindRoot(paths, o.spec, &out.seen);
        if (!found) {
            out.refused = found.error();
            return out;
        }
        if ((out.device = *found)) break;
        auto now = Clock::now();
        if (o.wait && now - start >= *o.wait) break;
        if (now >= next_note) {
            spdlog::warn("handoff: still waiting for root {} ({} s)", o.spec.ToString(),
                         std::chrono::duration_cast<std::chrono::seconds>(now - start).count());
            next_note += kStillWaitingEvery;
        }
        Sleep(kPoll, gate);
    }
    if (!out.device) {
        if (o.spec.IsPath()) {
            out.seen = ProbeBlockDevices(paths.Under("/sys/class/block").string(),
                                         paths.Under("/dev").string());
        }
        return out;
    }
    spdlog::info("handoff: root {} is {}", o.spec.ToString(), out.device->Describe());
    const std::string new_root = paths.Under(kNewRoot).string();
    if (gate != nullptr) {
        if (gate->found) gate->found();
        if (!gate->WaitOpen()) return out;
        // The boot-time drivers are in now: a second device with the root's tag that appeared
        // after the first was found (its disk probed later) is refused all the same.
        if (!o.spec.IsPath()) {
            if (auto again = FindRoot(paths, o.spec, nullptr); !again) {
                out.refused = again.error();
                out.device.reset();
                return out;
            }
        }
        // Mounting loads no module when the kernel has every file system it would try.
        auto in_kernel = KernelFilesystems(paths);
        auto has = [&](const std::string& t) {
            return std::find(in_kernel->begin(), in_kernel->end(), t) != in_kernel->end();
        };
        const auto types = in_kernel ? RootTypes(o, *out.device) : std::vector<std::string>{};
        if (types.empty() || !std::all_of(types.begin(), types.end(), has)) {
            spdlog::info("handoff: the root's file system is not in the kernel yet: it is "
                         "mounted at the handoff");
            return out;
        }
    }
    if (auto made = kernel.MakeDir(new_root, 0755); !made && made.error().code() != EEXIST) {
        out.mounted = made.error();
        return out;
    }
    out.mounted = MountRoot(kernel, o, *out.device, new_root);
    return out;
}

RootPreparation::RootPreparation(const BootPaths& paths, Kernel& kernel, RootOptions options)
    : options_(std::move(options)), gate_(std::make_unique<MountGate>()) {
    thread_ = std::thread([this, paths, &kernel] {
        int init_fd = -1;
        try {
            // What the real root needs from the initramfs besides its device: peinitctl in /run
            // (the handover leaves that copy to this thread), done once the device is there,
            // while the mount still waits for the module stage.
            gate_->found = [&paths = std::as_const(paths)] {
                if (auto copied = Contain("", [&] { return CopyPeinitctl(paths); }); !copied) {
                    spdlog::error("handover: {}, ignoring", copied.error().message());
                }
            };
            result_ = PrepareRoot(paths, kernel, options_, gate_.get());
            // The real init's pages are read from the disk while the lock, the handover and the
            // switch run, rather than when it is executed: opened here (a descriptor survives
            // the moves of the switch), read after Take has the result (an exec that comes
            // first only ends the reading).
            if (result_.mounted && *result_.mounted) {
                auto fd = OpenInRoot(paths.Under(kNewRoot).string(), options_.init,
                                     O_RDONLY | O_NOCTTY | O_NONBLOCK);
                if (fd) init_fd = *fd;
            }
        } catch (...) {
            // Contained (issue 24 point 4): an exception on a std::thread would end PID 1. The
            // handoff refuses the root with it; Take is not left waiting.
            PreparedRoot failed;
            failed.failed = Error(UnexpectedException("root stage"));
            result_ = std::move(failed);
        }
        gate_->Set(&MountGate::finished);
        if (init_fd >= 0) {
            (void)ReadAhead(init_fd);
            ::close(init_fd);
        }
    });
}

RootPreparation::~RootPreparation() {
    gate_->Set(&MountGate::stop);
    if (thread_.joinable()) thread_.join();
}

void RootPreparation::AllowMount() { gate_->Set(&MountGate::open); }

PreparedRoot RootPreparation::Take() {
    gate_->Set(&MountGate::open);
    gate_->WaitFinished();
    return std::move(result_);
}

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

Result<void> RunRoot(BootContext& ctx) {
    if (!ctx.cmdline.root) return Ok();
    auto o = ParseRootOptions(ctx.cmdline);
    if (!o) return Ok();  // the handoff reports it
    try {
        ctx.root = std::make_shared<RootPreparation>(ctx.paths, ctx.kernel, std::move(*o));
    } catch (const std::system_error& e) {
        spdlog::warn("handoff: no thread to find the root ahead ({}): the handoff finds it",
                     e.what());
    }
    return Ok();
}

namespace {

Result<void> SwitchToRealRoot(BootContext& ctx) {
    RootOptions o = PEINIT_TRY(ParseRootOptions(ctx.cmdline));
    for (const auto& w : o.warnings) spdlog::warn("handoff: {}", w);
    if (getpid() != 1) return Err("handoff: not PID 1, refusing to switch root");
    // Found, and mounted when its file system was in the kernel, by the root stage's thread;
    // otherwise (no thread) here and now.
    std::shared_ptr<RootPreparation> ahead = std::move(ctx.root);
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
