#pragma once

// The records PID 1 writes under /run/peinit besides modules.json (peinit/record/modules.h),
// policy.json (policy.h), measurements.json (measurement.h) and image.json (image.h): one type
// per file, written by its stage and read by `peinitctl` through the status model
// (peinit/core/status.h). record.h says how versions are handled.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/record/modules.h"

namespace peinit {

// lockdown.json: what the lockdown stage did.
struct LockdownRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/lockdown.json";
    int version = kVersion;
    bool requested = false;
    std::string requested_by;  // the policy source of LockAfterBoot: "hive", "default", ...
    std::string mechanism;     // "syscall", "modules_disabled", "" when not locked
    std::string trigger;       // "registry", "boot-orchestrator-step"
    bool locked = false;       // read back from the kernel
    std::string error;
    int64_t pid = 0;
    std::string comm;
    int64_t boot_offset_ms = 0;
    std::string wall_time;  // RFC 3339 UTC

    template <typename F>
    void Members(F& f) {
        f("version", version)("requested", requested)("requested_by", requested_by)(
            "mechanism", mechanism)("trigger", trigger)("locked", locked)("error", error)(
            "pid", pid)("comm", comm)("boot_offset_ms", boot_offset_ms)("wall_time", wall_time);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<LockdownRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<LockdownRecord>(text, file, kVersion);
    }
};

// autoload.json: who answers the kernel's demand loads and what was read back.
struct AutoloadRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/autoload.json";
    int version = kVersion;
    std::string policy, source;  // AutoLoadPolicy and its source
    std::string helper, helper_source, read_back;
    std::vector<std::string> allowed;
    std::string error;
    std::string gate;

    template <typename F>
    void Members(F& f) {
        f("version", version)("policy", policy)("source", source)("helper", helper)(
            "helper_source", helper_source)("read_back", read_back)("allowed", allowed)(
            "error", error)("gate", gate);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<AutoloadRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<AutoloadRecord>(text, file, kVersion);
    }
};

// coldplug.json: the devices present at boot, what each resolved to and the module attempts
// settle says whether every device got its drivers before the lock).
struct ColdplugRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/coldplug.json";
    struct Device {
        std::string syspath, modalias;
        std::vector<std::string> modules;
        std::string error;
        int round = 1;
        template <typename F>
        void Members(F& f) {
            f("syspath", syspath)("modalias", modalias)("modules", modules)("error", error)("round",
                                                                                            round);
        }
    };
    struct Left {
        std::string syspath, modalias;
        template <typename F>
        void Members(F& f) {
            f("syspath", syspath)("modalias", modalias);
        }
    };
    struct Settle {
        int rounds = 0;
        bool settled = true;
        int64_t quiet_ms = 0, timeout_ms = 0;
        std::vector<Left> left;
        template <typename F>
        void Members(F& f) {
            f("rounds", rounds)("settled", settled)("quiet_ms", quiet_ms)("timeout_ms", timeout_ms)(
                "left", left);
        }
    };
    int version = kVersion;
    std::string policy;
    int64_t total_ms = 0;
    std::vector<Device> devices;
    std::vector<ModuleRow> modules;
    Settle settle;
    std::string error;

    template <typename F>
    void Members(F& f) {
        f("version", version)("policy", policy)("total_ms", total_ms)("devices", devices)(
            "modules", modules)("settle", settle)("error", error);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<ColdplugRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<ColdplugRecord>(text, file, kVersion);
    }
};

// hotplug.json: devices added after coldplug while peinit stayed PID 1.
struct HotplugRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/hotplug.json";
    struct Device {
        std::string syspath, modalias;
        // "loaded", "present", "no-driver", "refused", "failed", "locked", "disabled"
        // (peinit/init/hotplug.h).
        std::string result;
        std::vector<std::string> modules;
        std::string detail;
        int64_t boot_offset_ms = 0;
        template <typename F>
        void Members(F& f) {
            f("syspath", syspath)("modalias", modalias)("result", result)("modules", modules)(
                "detail", detail)("boot_offset_ms", boot_offset_ms);
        }
    };
    int version = kVersion;
    std::string policy;
    std::vector<Device> devices;
    std::vector<ModuleRow> modules;

    template <typename F>
    void Members(F& f) {
        f("version", version)("policy", policy)("devices", devices)("modules", modules);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<HotplugRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<HotplugRecord>(text, file, kVersion);
    }
};

// services.json: each service PID 1 runs and the privileges its unit grants.
struct ServicesRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/services.json";
    struct Service {
        std::string name;
        std::vector<std::string> privileges;  // "SeLoadDriverPrivilege", ...
        std::string state;                    // "waiting", "running", "exited", "failed"
        int64_t pid = 0;
        std::string result;  // "exit 0", or why it did not start
        std::optional<int64_t> uid, gid;
        std::optional<std::string> user, group;
        template <typename F>
        void Members(F& f) {
            f("name", name)("privileges", privileges)("state", state)("pid", pid)("result", result)(
                "uid", uid)("user", user)("gid", gid)("group", group);
        }
    };
    int version = kVersion;
    std::vector<Service> services;

    template <typename F>
    void Members(F& f) {
        f("version", version)("services", services);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<ServicesRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<ServicesRecord>(text, file, kVersion);
    }
};

// boot.json: why the boot stopped. PID 1's emergency path writes it before it powers off (or
// starts the emergency shell, where `peinitctl status` reads it).
struct BootRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/boot.json";
    int version = kVersion;
    std::string state = "emergency";
    std::string stage;  // the fatal stage that failed ("" when the error was not a stage's)
    std::string error;  // the error that stopped the boot
    int64_t boot_offset_ms = 0;
    std::string wall_time;  // RFC 3339 UTC

    template <typename F>
    void Members(F& f) {
        f("version", version)("state", state)("stage", stage)("error", error)(
            "boot_offset_ms", boot_offset_ms)("wall_time", wall_time);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<BootRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<BootRecord>(text, file, kVersion);
    }
};

}  // namespace peinit
