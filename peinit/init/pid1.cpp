#include "peinit/init/pid1.h"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <optional>
#include <sstream>
#include <string>

#include "peinit/core/status.h"
#include "peinit/init/hotplug.h"
#include "peinit/init/services.h"
#include "peinit/modload/session.h"
#include "peinit/sys/boot_collect.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/linux_kernel.h"
#include "peinit/sys/log.h"
#include "peinit/sys/memory.h"
#include "peinit/sys/record.h"
#include "peinit/sys/signals.h"
#include "peinit/sys/status_sources.h"
#include "peinit/sys/uevent.h"
#include "peinit/tpm/tpm.h"
#include "peinit/tpm/tss2.h"
#include "stages/lockdown/lockdown.h"
#include "stages/stage.h"

namespace peinit {

namespace {

[[noreturn]] void Halt() {
    // reboot(2) failed or returned: PID 1 must still never exit (that would panic the kernel).
    while (true) pause();
}

// peinit.collect=DEVICE: the boot records and the kernel log, written to DEVICE as the last thing
// before the machine goes down (peinit/sys/boot_collect.h).
void CollectRecords(const BootContext& ctx) noexcept {
    if (!ctx.cmdline.collect) return;
    try {
        const std::string device = ctx.paths.Under(*ctx.cmdline.collect).string();
        auto members = CollectBootRecords(ctx.paths.root);
        auto wrote =
            members ? WriteCollection(device, *members) : Result<std::size_t>(members.error());
        if (wrote) {
            spdlog::info("collect: {} files ({} bytes) written to {}", members->size(), *wrote,
                         device);
        } else {
            spdlog::error("collect: {}", wrote.error().message());
        }
    } catch (const std::exception& e) {
        spdlog::error("collect: {}", e.what());
    }
}

// Terminates everything, syncs, writes the records out when asked (`ctx`: null when there is no
// boot context) and powers off or reboots. Never returns.
[[noreturn]] void Shutdown(Kernel& kernel, SignalQueue* signals, int cmd, const char* why,
                           const BootContext* ctx) {
    spdlog::info("shutdown: {} ({})", cmd == RB_AUTOBOOT ? "reboot" : "poweroff", why);
    kill(-1, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline) {
        ReapChildren();
        if (kill(-1, 0) != 0 && errno == ESRCH) break;  // nobody left
        if (signals != nullptr) {
            (void)signals->Next(100);
        } else {
            usleep(100 * 1000);
        }
    }
    kill(-1, SIGKILL);
    ReapChildren();
    sync();
    if (ctx != nullptr) CollectRecords(*ctx);
    spdlog::info("shutdown: {} now", cmd == RB_AUTOBOOT ? "reboot" : "poweroff");
    spdlog::default_logger()->flush();
    auto r = kernel.Reboot(cmd);
    spdlog::critical("shutdown: reboot(2) failed: {}", r ? "returned" : r.error().message());
    Halt();
}

// Says what happened where a user looks: records the emergency in /run/peinit/boot.json (read
// by `peinitctl status`, e.g. from the emergency shell) and prints that same status on the
// console, kernel facts included (lock state read back from the kernel), with the error first.
// The status is built from the record just rendered, not re-read, so it is complete even when
// /run could not be written (early-mounts failed).
void ExplainEmergency(BootContext& ctx, const Error& error) {
    BootRecord record;
    record.stage = ctx.failed_stage;
    record.error = error.message();
    record.boot_offset_ms = BootOffsetMs();
    record.wall_time = WallTimeUtc();
    std::string json = record.ToJson();
    std::string path = ctx.paths.Under(BootRecord::kPath).string();
    if (auto wrote = WriteFileAtomically(path, json); !wrote) {
        spdlog::critical("emergency: cannot write {}: {}", path, wrote.error().message());
    }
    StatusInputs inputs = ReadStatusInputs(ctx.kernel, ctx.paths.root);
    inputs.boot = RecordText{path, json, ""};
    std::istringstream text(RenderStatusText(BuildStatus(inputs)));
    spdlog::critical("emergency: status (as peinitctl status shows it):");
    for (std::string line; std::getline(text, line);) {
        spdlog::critical("emergency: status: {}", line);
    }
}

// The one emergency path: a fatal boot error. Fail closed, tell the console, then power off
// (or run the image's emergency shell first when the command line asks for it).
[[noreturn]] void Emergency(BootContext& ctx, SignalQueue* signals, const Error& error) {
    // Before /dev/kmsg was opened (early mounts failed) the records only reach the console.
    FallBackToConsole();
    spdlog::critical("emergency: {}", error.message());
    // Fail closed: lock when the policy asks for it, or when the policy was never read.
    if (!ctx.config_loaded || ctx.policy.lock_after_boot.value) {
        if (ctx.lock.locked) {
            spdlog::critical("emergency: module loading is locked");
        } else if (auto locked = EngageLock(ctx); !locked) {
            spdlog::critical("emergency: lock failed: {}", locked.error().message());
        }
    }
    ExplainEmergency(ctx, error);
    if (ctx.cmdline.emergency == EmergencyAction::kShell && !EmergencyShellAllowed(ctx)) {
        spdlog::critical("emergency: peinit.emergency=shell refused: module loading must be "
                         "locked and is not");
    }
    if (EmergencyShellAllowed(ctx)) {
        struct stat st;
        std::string shell = ctx.paths.Under("/bin/sh").string();
        if (stat(shell.c_str(), &st) == 0) {
            spdlog::critical("emergency: starting {} on the console", shell);
            auto pid = ctx.kernel.Spawn({shell}, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, {});
            while (pid) {
                bool done = false;
                for (const ChildExit& e : ReapChildren()) done = done || e.pid == *pid;
                if (done) break;
                if (signals != nullptr) {
                    (void)signals->Next(1000);
                } else {
                    sleep(1);
                }
            }
        } else {
            spdlog::critical("emergency: no shell in this image");
        }
    }
    spdlog::critical("emergency: powering off");
    Shutdown(ctx.kernel, signals, RB_POWER_OFF, "emergency", &ctx);
}

// How long a hot-add session stays open without events (a bus driver's load adds the devices
// on that bus right after it: they reuse the session).
constexpr int kHotplugIdleMs = 2000;

// Reads every queued uevent and hands the added devices to `hotplug`. `session` is the boot's
// module-loading session, lent for the first batch (null later). When the kernel dropped
// events (the queue overflowed), every device in sysfs is looked at again instead.
void HandleUevents(UeventSocket& uevents, Hotplug& hotplug, BootContext& ctx,
                   std::shared_ptr<ModloadSession> session) {
    bool overflowed = false;
    std::vector<Uevent> events = uevents.Drain(overflowed);
    // First the devices coldplug saw but left when it reached its settle bound.
    std::vector<DeviceModalias> devices = std::move(ctx.coldplug_left);
    ctx.coldplug_left.clear();
    for (auto& d : HotAddedDevices(events, ctx.coldplug_seqnum)) devices.push_back(std::move(d));
    if (overflowed) {
        spdlog::warn("hotplug: the kernel dropped uevents (queue full); looking at every device");
        if (auto all = EnumerateModaliases(ctx.paths.Under("/sys").string())) {
            devices = std::move(*all);
        } else {
            spdlog::error("hotplug: {}", all.error().message());
        }
    }
    if (devices.empty()) return;
    if (session) hotplug.Adopt(std::move(session));
    hotplug.Handle(devices);
}

[[noreturn]] void Run() {
    // When main() was reached (after exec, the dynamic loader and static initialisers), on
    // CLOCK_MONOTONIC: close to the kernel log's clock, not the same (tens of ms apart under
    // emulation), so a duration against "Run /init" is an estimate.
    timespec since_boot{};
    (void)clock_gettime(CLOCK_MONOTONIC, &since_boot);
    umask(022);
    setsid();
    InitLogging();
    spdlog::info("peinit starting as PID 1 (main at {}.{:06} s)", since_boot.tv_sec,
                 since_boot.tv_nsec / 1000);

    // Before any thread exists, so that every thread inherits the blocked mask.
    auto signals = SignalQueue::Open();
    if (!signals) spdlog::critical("signals: {}", signals.error().message());
    SignalQueue* queue = signals ? &*signals : nullptr;

    static LinuxKernel kernel;
    // Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an immediate reboot.
    (void)kernel.Reboot(RB_DISABLE_CAD);
    static BootContext ctx(kernel);
    // Measured boot (R-33): the config stage measures when this TPM is there; nothing of the
    // TPM software stack is loaded otherwise.
    ctx.tpm = std::make_shared<tpm::SystemTpm>(tpm::TctiFromEnvironment());
    // Before anything opens a package (no other process exists yet): their directory becomes
    // read-only, so that the boot maps them in place instead of copying them.
    if (auto ro = MountPackagesReadOnly(kernel, ctx.paths.PackagesDir().string()); !ro) {
        spdlog::warn("packages: {}: they are copied before they are checked", ro.error().message());
    } else {
        ctx.packages_mounted_read_only = *ro;
    }
    // The packages are read, checked and hashed on a thread of their own while the stages before
    // the module stage run (their signals are blocked already, so the thread's are too).
    if (auto release = RunningKernelRelease()) {
        ctx.background.Start<PackagePrefetch>(
            std::string(kPackagePrefetch),
            PackagePrefetch::Start(ctx.paths.PackagesDir(), ctx.paths.TrustedKeysDir(), *release),
            [](PackagePrefetch& p) -> Result<void> {
                // Not taken (the module stage did not run): whatever it read is dropped.
                if (!p.Take()) return Err("no package set was read ahead");
                return Ok();
            });
    }

    // Opened before the stages so that no device falls between coldplug's enumeration and the
    // event loop: the kernel queues every "add@" event from now on (peinit/sys/uevent.h).
    // Close-on-exec: a `root=` boot's real init never sees it.
    auto uevents = UeventSocket::Open();
    if (!uevents) {
        spdlog::warn("hotplug: {}: devices added after coldplug get no driver",
                     uevents.error().message());
    } else {
        ctx.uevents = &*uevents;
    }

    if (auto booted = RunStages(BootStages(), ctx, BootBackground()); !booted) {
        Emergency(ctx, queue, booted.error());
    }
    // Still PID 1 (no `root=`): devices added since coldplug enumerated (among them those
    // that coldplug's own loads created) get their drivers now, with the boot's session, before
    // the services start; later ones as they come (R-29).
    static Hotplug hotplug(ctx);
    if (uevents) {
        HandleUevents(*uevents, hotplug, ctx, std::move(ctx.modload));
        hotplug.Idle();
    }
    // The boot's modules are in: PID 1 keeps no package bytes and no libkmod context.
    ctx.modload.reset();
    spdlog::info("boot complete");

    auto passwd = ReadConfigFile(ctx.paths.Under("/etc/passwd").string());
    auto group = ReadConfigFile(ctx.paths.Under("/etc/group").string());
    ServiceRunner services(kernel, ctx.units, passwd ? passwd->text : "",
                           ctx.paths.Under("/run/peinit/services.json").string(),
                           group ? group->text : "");
    services.StartReady();
    // PID 1 is now the supervisor it stays: it hands the freed heap back to the kernel and lets
    // go of the library pages the stages ran (peinit/sys/memory.h).
    malloc_trim(0);
    const long before = ResidentKib();
    if (auto dropped = DropCleanFileMappings(); !dropped) {
        spdlog::warn("memory: {}", dropped.error().message());
    }
    spdlog::info("supervising rss_kib={} (library pages released: {} KiB)", ResidentKib(),
                 before - ResidentKib());
    bool announced = false;
    while (true) {
        if (!announced && services.AllDone()) {
            spdlog::info("services done count={}", services.size());
            announced = true;
        }
        std::optional<int> sig;
        if (queue == nullptr) {
            // Without a signalfd, still reap once a second so orphans never pile up.
            sleep(1);
            sig = SIGCHLD;
            if (uevents) HandleUevents(*uevents, hotplug, ctx, nullptr);
        } else {
            // The signals and the uevents; while a hot-add session is open, wake up after
            // kHotplugIdleMs without events to close it.
            pollfd fds[2] = {{queue->fd(), POLLIN, 0}, {uevents ? uevents->fd() : -1, POLLIN, 0}};
            int ready = poll(fds, 2, hotplug.session_open() ? kHotplugIdleMs : -1);
            if (ready == 0) {
                hotplug.Idle();
                malloc_trim(0);
                spdlog::info("hotplug: idle rss_kib={}", ResidentKib());
                continue;
            }
            if (ready > 0 && fds[1].revents != 0) {  // POLLERR too: the queue overflowed
                HandleUevents(*uevents, hotplug, ctx, nullptr);
            }
            if (ready > 0 && fds[0].revents != 0) {
                if (auto next = queue->Next(0); next && *next) sig = **next;
            }
        }
        if (!sig) continue;
        switch (*sig) {
            case SIGCHLD:
                for (const ChildExit& e : ReapChildren()) {
                    switch (services.OnExit(e.pid, e.status)) {
                        case ServiceSpec::ExitAction::kPoweroff:
                            Shutdown(kernel, queue, RB_POWER_OFF, "service exit_action", &ctx);
                        case ServiceSpec::ExitAction::kReboot:
                            Shutdown(kernel, queue, RB_AUTOBOOT, "service exit_action", &ctx);
                        case ServiceSpec::ExitAction::kNone:
                            break;
                    }
                }
                break;
            case SIGTERM:
                Shutdown(kernel, queue, RB_POWER_OFF, "SIGTERM", &ctx);
            case SIGPWR:
                Shutdown(kernel, queue, RB_POWER_OFF, "SIGPWR", &ctx);
            case SIGUSR2:
                Shutdown(kernel, queue, RB_POWER_OFF, "SIGUSR2", &ctx);
            case SIGINT:
                Shutdown(kernel, queue, RB_AUTOBOOT, "SIGINT", &ctx);
            case SIGUSR1:
                Shutdown(kernel, queue, RB_AUTOBOOT, "SIGUSR1", &ctx);
            default:
                spdlog::info("signal {} ignored", *sig);
        }
    }
}

}  // namespace

bool EmergencyShellAllowed(const BootContext& ctx) {
    if (ctx.cmdline.emergency != EmergencyAction::kShell) return false;
    const bool lock_required = !ctx.config_loaded || ctx.policy.lock_after_boot.value;
    return ctx.lock.locked || !lock_required;
}

void RunPid1() noexcept {
    try {
        Run();
    } catch (const std::exception& e) {
        // Nothing below throws by design; if something does, PID 1 still must not exit.
        spdlog::critical("emergency: unexpected exception: {}", e.what());
    } catch (...) {
        spdlog::critical("emergency: unexpected exception");
    }
    FallBackToConsole();
    static LinuxKernel kernel;
    Shutdown(kernel, nullptr, RB_POWER_OFF, "emergency", nullptr);
}

}  // namespace peinit
