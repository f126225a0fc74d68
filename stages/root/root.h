#pragma once

// The root stage: root= found, and mounted when it can be, on a thread of its own while the
// module stage loads (background work "root-preparation", stages/stage.h); the handoff
// (stages/handoff/handoff.h) takes the result.

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"
#include "peinit/core/root_spec.h"
#include "peinit/sys/block_devices.h"
#include "peinit/sys/fs.h"

namespace peinit {

class Kernel;

// Where the real root is mounted before the switch (under BootPaths::root).
inline constexpr const char* kNewRoot = "/newroot";

// The real root found (and perhaps mounted on /newroot) ahead of the switch.
struct PreparedRoot {
    std::optional<BlockDevice> device;  // nullopt: it did not appear in time
    std::vector<BlockDevice> seen;      // the block devices there were, when it did not
    std::optional<Error> refused;       // root= named more than one device
    // The preparation itself failed (something threw on the root stage's thread): the handoff
    // fails closed with it (the emergency path then locks as the policy asks).
    std::optional<Error> failed;
    // The mount's outcome (the file system type), nullopt when it was left for the handoff.
    std::optional<Result<std::string>> mounted;
};

// The file systems the root is mounted as: rootfstype=, else the type libblkid probed on `dev`
// empty when neither says (the mount then fails naming rootfstype=), never every file
// system the kernel has.
std::vector<std::string> RootTypes(const RootOptions& o, const BlockDevice& dev);

// Mounts `dev` on `target` as the root: rootflags= (read by libmount; only flags that say how
// the file system is mounted), ro unless rw, each of RootTypes in turn. The type that mounted.
Result<std::string> MountRoot(Kernel& kernel, const RootOptions& o, const BlockDevice& dev,
                              const std::string& target);

// Waits for root= (rootdelay=, then up to rootwait; polling every block device by tag, libblkid)
// and mounts it on /newroot (rootfstype= or the probed type, rootflags= read by libmount, ro
// unless rw). When `gate` is given, the device is looked for at once but the mount waits until
// the gate opens (RootPreparation::AllowMount), and then happens only when the kernel already
// has every file system it would try (/proc/filesystems), so that mounting loads no module;
// otherwise the mount is left to the caller. The gate's stop flag ends the wait early.
struct MountGate;
PreparedRoot PrepareRoot(const BootPaths& paths, Kernel& kernel, const RootOptions& o,
                         MountGate* gate = nullptr);

// PrepareRoot on a thread of its own, with a gate; the destructor stops the wait and joins.
// Whatever the thread throws is contained: Take returns it as `failed`.
class RootPreparation {
  public:
    RootPreparation(const BootPaths& paths, Kernel& kernel, RootOptions options);
    ~RootPreparation();
    RootPreparation(const RootPreparation&) = delete;
    RootPreparation& operator=(const RootPreparation&) = delete;
    // The boot-time modules are in (the module stage is over): the root may be mounted now.
    void AllowMount();
    // Opens the gate, waits for the result and returns it (once). The thread may still be
    // reading the real init ahead (the destructor joins it; an exec just ends it).
    PreparedRoot Take();
    // root= and friends as the root stage parsed them (the handoff uses them, not a second
    // parse). Never changed after construction, so readable while the thread runs.
    const RootOptions& options() const { return options_; }

  private:
    RootOptions options_;
    std::unique_ptr<MountGate> gate_;
    PreparedRoot result_;
    std::thread thread_;
};

// The stage before the module stage. With root= it starts RootPreparation (ctx.background,
// "root-preparation"; the module stage's end opens its gate, the handoff takes it): the root
// device is looked for while the modules load (its block driver among them), and mounted as
// soon as the module stage is over (it opens the gate) when its file system is in the kernel
// by then, while coldplug, the lock and the handover run. Nothing on the new root is read
// before the handoff, and a file system the kernel does not have yet is mounted by the handoff
// after the lock, as without this stage. Never fails: a bad root= is the handoff's to report.
Result<void> RunRoot(BootContext& ctx);

}  // namespace peinit
