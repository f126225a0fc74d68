#include "stages/root/root.h"

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
#include "stages/handover/handover.h"
#include "stages/stage.h"

namespace peinit {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

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

}  // namespace

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

Result<void> RunRoot(BootContext& ctx) {
    if (!ctx.cmdline.root) return Ok();
    auto o = ParseRootOptions(ctx.cmdline);
    if (!o) return Ok();  // the handoff reports it
    try {
        ctx.background.Start<RootPreparation>(
            std::string(kRootPreparation),
            std::make_shared<RootPreparation>(ctx.paths, ctx.kernel, std::move(*o)),
            [](RootPreparation& r) -> Result<void> {
                // Taken by nobody (the handoff takes it): only a failure is worth reporting.
                PreparedRoot root = r.Take();
                if (root.failed) return *root.failed;
                return Ok();
            },
            [](RootPreparation& r) { r.AllowMount(); });
    } catch (const std::system_error& e) {
        spdlog::warn("handoff: no thread to find the root ahead ({}): the handoff finds it",
                     e.what());
    }
    return Ok();
}

}  // namespace peinit
