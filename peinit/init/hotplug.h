#pragma once

// Hot-add while peinit stays PID 1: when there is no `root=`, devices that appear after
// coldplug get their drivers under the same policy as coldplug (DecideDemandLoad: the blacklist
// in every mode, then AutoLoadPolicy) and from the same verified signed packages, until module
// loading is locked. PID 1 reads the kernel's uevents (peinit/sys/uevent.h) in its event loop and
// hands every batch of added devices with a MODALIAS to a Hotplug.
//
// For each device, in order:
//   1. the kernel's lock state is read right before anything is attempted (module_lockdown
//      QUERY; on a kernel without the syscall, kernel.modules_disabled): locked, or unreadable
//      (fail closed), means nothing is attempted for it: no resolution, no load;
//   2. AutoLoadPolicy=disabled: nothing is attempted (refused by the policy);
//   3. otherwise its drivers are loaded by the one per-device path coldplug uses too
//      (LoadDeviceDrivers, peinit/modload/device_load.h): the MODALIAS resolved with libkmod, the
//      modules not yet live decided and loaded by ModloadSession::DemandResolved (allow-list:
//      only AutoLoadAllowed; enabled: anything not blacklisted), dependencies first.
// The session (libkmod context, packages) is opened on the first device that needs it and kept
// while events keep coming (loading a bus driver adds the devices on that bus: a PCI virtio
// device is followed by its virtio device), then closed by Idle() so that PID 1 keeps neither.
//
// Every device and every module outcome is recorded in /run/peinit/hotplug.json (version 1; the
// last kMaxRecorded of each) for `peinitctl status`; the log has one line per load, refusal and
// failure, and one summary per batch:
//   hotplug done devices=N loaded=L refused=R failed=F locked=K ms=T

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/sys/udev.h"

namespace peinit {

class ModloadSession;

// What happened to one hot-added device.
struct HotplugDevice {
    std::string syspath;
    std::string modalias;
    // "loaded" (every driver it resolved to is live now), "present" (they already were),
    // "no-driver" (nothing in the module tree matches), "refused" (the policy refused at least
    // one), "failed" (a load failed, or the tree could not be read), "locked" (module loading is
    // locked: nothing attempted), "disabled" (AutoLoadPolicy=disabled: nothing attempted).
    std::string result;
    std::vector<std::string> modules;  // what the MODALIAS resolved to (empty when not resolved)
    std::string detail;                // the reason, for everything but loaded/present
    int64_t boot_offset_ms = 0;
};

class Hotplug {
  public:
    static constexpr size_t kMaxRecorded = 256;

    // `ctx` gives the kernel, paths, policy and command line; it must outlive this object.
    explicit Hotplug(BootContext& ctx);
    ~Hotplug();
    Hotplug(const Hotplug&) = delete;
    Hotplug& operator=(const Hotplug&) = delete;

    // Takes over the boot's session (the module stage's and coldplug's libkmod context and
    // verified packages) for the devices added during the boot, instead of opening another.
    // Ignored when a session is open.
    void Adopt(std::shared_ptr<ModloadSession> session);
    // Handles one batch of added devices (steps above), then rewrites the record.
    void Handle(const std::vector<DeviceModalias>& devices);
    // Closes the module-loading session, if open.
    void Idle();
    bool session_open() const { return session_ != nullptr; }
    // Every session opened so far (tests: one per burst of events, none while locked).
    int sessions_opened() const { return sessions_opened_; }
    const std::deque<HotplugDevice>& devices() const { return devices_; }
    const std::deque<ModuleOutcome>& outcomes() const { return outcomes_; }

  private:
    // Whether the kernel refuses module loads now; an error when it cannot say.
    Result<bool> Locked();
    ModloadSession* Session();
    void WriteRecord() const;

    BootContext& ctx_;
    std::shared_ptr<ModloadSession> session_;
    int sessions_opened_ = 0;
    std::deque<HotplugDevice> devices_;
    std::deque<ModuleOutcome> outcomes_;
};

}  // namespace peinit
