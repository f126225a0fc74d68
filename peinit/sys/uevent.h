#pragma once

// Kernel uevents (R-29): what PID 1 listens to, once it stays PID 1 (no `root=`), to give
// devices that appear after coldplug their drivers. The kernel broadcasts one datagram per
// event on NETLINK_KOBJECT_UEVENT, multicast group 1, without udevd in between:
//     "add@/devices/pci0000:00/0000:00:1c.0/0000:01:00.0\0ACTION=add\0DEVPATH=...\0
//      SUBSYSTEM=pci\0MODALIAS=pci:v00001AF4d00001044...\0SEQNUM=1234\0"
// Every event carries SEQNUM, the kernel's running count (also in /sys/kernel/uevent_seqnum),
// so an event can be placed before or after a sysfs enumeration.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/sys/udev.h"

namespace peinit {

struct Uevent {
    std::string action;     // "add", "remove", "bind", ...
    std::string devpath;    // "/devices/...", relative to /sys
    std::string subsystem;  // "pci", "virtio", ...
    std::string modalias;   // "" when the device has none
    uint64_t seqnum = 0;
};

// Parses one datagram as the kernel sends it ("ACTION@DEVPATH" then NUL-separated KEY=VALUE
// pairs). nullopt for anything else: udevd's "libudev" messages, a header that does not match
// its ACTION=/DEVPATH= pairs, an event without SEQNUM.
std::optional<Uevent> ParseUevent(std::string_view datagram);

// The devices among `events` that may need a driver: ACTION=add with a MODALIAS and a SEQNUM
// above `after_seqnum` (the events up to it were emitted before coldplug enumerated the devices,
// so coldplug has seen those devices), each device once, as /sys paths, in event order.
std::vector<DeviceModalias> HotAddedDevices(const std::vector<Uevent>& events,
                                            uint64_t after_seqnum);

// /sys/kernel/uevent_seqnum under `sysfs`: the SEQNUM of the last event the kernel emitted.
Result<uint64_t> ReadUeventSeqnum(const std::string& sysfs = "/sys");

// The devices of an enumeration made when the uevent count was `seqnum` (`scanned`), with those
// added by `events` since (HotAddedDevices), each device once, sorted by syspath: what is
// present now, without walking sysfs again.
std::vector<DeviceModalias> DevicesSince(std::vector<DeviceModalias> scanned,
                                         const std::vector<Uevent>& events, uint64_t seqnum);

// EnumerateModaliases made ahead of need on a thread of its own, with the uevent count read
// right before it: every device of an event up to that count is in the enumeration, later ones
// come from the uevent queue (DevicesSince). The module stage starts one when its loads begin,
// so that coldplug's walk of sysfs overlaps them; the thread runs at the lowest priority
// (nice 19), on what CPU time the loads leave, until Take waits for it (nice 0 again).
class DeviceScan {
  public:
    struct Found {
        Result<uint64_t> seqnum = uint64_t{0};
        Result<std::vector<DeviceModalias>> devices = std::vector<DeviceModalias>{};
        std::chrono::milliseconds took{0};
    };
    // How the devices are found: EnumerateModaliases (tests pass another).
    using Enumerate = std::function<Result<std::vector<DeviceModalias>>(const std::string& sysfs)>;
    // nullptr when no thread could be started. Whatever the thread throws is contained: Take
    // returns it as the enumeration's error (coldplug then enumerates again itself).
    static std::unique_ptr<DeviceScan> Start(std::string sysfs = "/sys",
                                             Enumerate enumerate = nullptr);
    ~DeviceScan();
    DeviceScan(const DeviceScan&) = delete;
    DeviceScan& operator=(const DeviceScan&) = delete;
    // Waits for the enumeration (once).
    Found Take();

  private:
    DeviceScan() = default;
    Found found_;
    std::atomic<pid_t> tid_{0};
    std::thread thread_;
};

// The kernel's uevent broadcast, group 1, non-blocking and close-on-exec (the real init of a
// `root=` boot never inherits it). A socket filter keeps only "add@" events that are not
// modules' own ("add@/module/NAME"), so the module stage's loads do not fill the queue before
// PID 1 reads it; the receive buffer is raised (SO_RCVBUFFORCE) for the same reason. Only
// datagrams from the kernel (netlink port 0) are accepted.
class UeventSocket {
  public:
    static Result<UeventSocket> Open();
    UeventSocket(UeventSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    UeventSocket(const UeventSocket&) = delete;
    UeventSocket& operator=(const UeventSocket&) = delete;
    UeventSocket& operator=(UeventSocket&&) = delete;
    ~UeventSocket();

    int fd() const { return fd_; }
    // Every event queued now, oldest first. `overflowed` is set when the kernel reported that
    // it dropped events (ENOBUFS): the caller must then look at sysfs again.
    std::vector<Uevent> Drain(bool& overflowed);

  private:
    explicit UeventSocket(int fd) : fd_(fd) {}
    int fd_;
};

// Devices added after a point in time: what coldplug's settle loop waits for (R-37; the seam
// its tests fake).
class DeviceEvents {
  public:
    virtual ~DeviceEvents() = default;
    // The devices with a MODALIAS added since the last call (the first call: since the source's
    // starting point), waiting up to `wait` for the first of them (0: only what has arrived);
    // empty when none came in that time.
    virtual std::vector<DeviceModalias> Added(std::chrono::milliseconds wait) = 0;
};

// DeviceEvents from the kernel's uevents: the "add" events with a MODALIAS numbered above
// `after_seqnum` and above every event an earlier call returned (HotAddedDevices). When the
// kernel dropped events (the queue overflowed), every device in `sysfs` instead: the caller
// tells the ones it has handled from the new ones.
class UeventDeviceEvents final : public DeviceEvents {
  public:
    UeventDeviceEvents(UeventSocket& socket, uint64_t after_seqnum, std::string sysfs = "/sys")
        : socket_(socket), last_seqnum_(after_seqnum), sysfs_(std::move(sysfs)) {}
    std::vector<DeviceModalias> Added(std::chrono::milliseconds wait) override;
    // The SEQNUM of the last event read (the starting point when none was).
    uint64_t last_seqnum() const { return last_seqnum_; }

  private:
    UeventSocket& socket_;
    uint64_t last_seqnum_;
    std::string sysfs_;
};

}  // namespace peinit
