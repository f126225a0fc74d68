#include "peinit/init/hotplug.h"

#include <linux/module_lockdown.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

#include "peinit/modload/device_load.h"
#include "peinit/core/sealed_tree.h"
#include "peinit/modload/session.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/module_lock.h"
#include "peinit/record/stages.h"
#include "peinit/sys/record.h"

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
template <typename T>
void PushBounded(std::deque<T>& list, T item) {
    list.push_back(std::move(item));
    while (list.size() > Hotplug::kMaxRecorded) list.pop_front();
}

}  // namespace

Hotplug::Hotplug(BootContext& ctx) : ctx_(ctx) {}

Hotplug::~Hotplug() = default;

Result<bool> Hotplug::Locked() { return ModuleLoadingLocked(ctx_.kernel); }

ModloadSession* Hotplug::Session() {
    if (session_) return session_.get();
    const BootPaths tree{ctx_.sealed_root};
    session_ = std::make_shared<ModloadSession>(ctx_.kernel, tree, ctx_.kernel_release,
                                                ctx_.policy, ctx_.cmdline);
    // The trust store is read once (from the sealed tree) and kept for every later session.
    if (!ctx_.trust) {
        if (auto loaded = TrustStore::LoadDirectory(tree.TrustedKeysDir())) {
            ctx_.trust = std::make_shared<const TrustStore>(std::move(*loaded));
        } else {
            spdlog::error("hotplug: trust store: {}: every package is refused",
                          loaded.error().message());
        }
    }
    if (ctx_.trust) session_->UseTrustStore(ctx_.trust);
    ++sessions_opened_;
    return session_.get();
}

void Hotplug::Adopt(std::shared_ptr<ModloadSession> session) {
    if (!session_ && session && session->kernel_release() == ctx_.kernel_release) {
        session_ = std::move(session);
    }
}

void Hotplug::Idle() {
    if (!session_) return;
    session_.reset();
    spdlog::debug("hotplug: idle, module-loading session closed");
}

void Hotplug::Handle(const std::vector<DeviceModalias>& devices) {
    if (devices.empty()) return;
    const auto origin = Clock::now();
    if (ctx_.kernel_release.empty()) {
        if (auto release = RunningKernelRelease()) ctx_.kernel_release = *release;
    }
    // Hot-add resolves and loads from the sealed tree only (peinit/core/sealed_tree.h): the
    // root file system may be written by any root service by now. No tree: fail closed.
    const BootPaths tree{ctx_.sealed_root};
    const bool sealed = !ctx_.sealed_root.empty() || session_ != nullptr;
    const bool have_tree =
        !ctx_.kernel_release.empty() &&
        (session_ != nullptr ||
         std::filesystem::exists(tree.ModulesDir() / ctx_.kernel_release / "modules.dep"));
    int loaded = 0, refused = 0, failed = 0, locked = 0;
    std::set<std::string> attempted;  // each module once per batch
    for (const DeviceModalias& dev : devices) {
        HotplugDevice rec{dev.syspath, dev.modalias, "", {}, "", BootOffsetMs()};
        auto finish = [&](std::string result, std::string detail) {
            rec.result = std::move(result);
            rec.detail = std::move(detail);
            PushBounded(devices_, std::move(rec));
        };
        // 1. The kernel's own answer, right before anything is attempted for this device.
        auto is_locked = Locked();
        if (!is_locked || *is_locked) {
            ++locked;
            finish("locked", is_locked ? "module loading is locked: nothing attempted"
                                       : "lock state unknown (" + is_locked.error().message() +
                                             "): nothing attempted");
            continue;
        }
        // 2. Nothing is loaded on demand at all.
        if (ctx_.policy.autoload.value == AutoLoadPolicy::kDisabled) {
            ++refused;
            spdlog::warn("hotplug: refused {} ({}): AutoLoadPolicy is disabled", dev.syspath,
                         dev.modalias);
            finish("disabled", "AutoLoadPolicy is disabled: nothing attempted");
            continue;
        }
        if (!sealed) {
            ++failed;
            finish("failed", "the sealed tree " + std::string(kSealedRoot) +
                                 " was not built: nothing attempted (fail closed)");
            continue;
        }
        if (!have_tree) {
            finish("no-driver", "no module tree for " + ctx_.kernel_release);
            continue;
        }
        // 3. As coldplug: resolve, decide, load from the verified packages (one path).
        DeviceLoad load = LoadDeviceDrivers(*Session(), dev,
                                            RequestOrigin::Other("hotplug " + dev.syspath),
                                            attempted, "hotplug");
        loaded += load.loaded;
        refused += load.refused;
        failed += load.failed;
        rec.modules = std::move(load.modules);
        for (auto& o : load.outcomes) PushBounded(outcomes_, std::move(o));
        finish(std::move(load.result), std::move(load.detail));
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - origin).count();
    spdlog::info("hotplug done devices={} loaded={} refused={} failed={} locked={} ms={}",
                 devices.size(), loaded, refused, failed, locked, ms);
    WriteRecord();
}

void Hotplug::WriteRecord() const {
    HotplugRecord record;
    record.policy = std::string(ToString(ctx_.policy.autoload.value));
    for (const auto& d : devices_) {
        record.devices.push_back(
            {d.syspath, d.modalias, d.result, d.modules, d.detail, d.boot_offset_ms});
    }
    for (const auto& o : outcomes_) record.modules.push_back(ModuleRow::From(o));
    std::string path = ctx_.paths.Under(HotplugRecord::kPath).string();
    if (auto r = WriteFileAtomically(path, record.ToJson()); !r) {
        spdlog::error("hotplug: cannot write {}: {}", path, r.error().message());
    }
}

}  // namespace peinit
