#include "peinit/verify/posture.h"
#include "peinit/core/text.h"

#include <algorithm>
#include <climits>
#include <map>
#include <set>

#include "peinit/sys/package_crypto.h"
#include "peinit/sys/package_format.h"
#include "peinit/record/json.h"

namespace peinit::verify {

namespace {




// The events in boot order; a module repeats.
enum class Kind { kImage, kPolicy, kModule, kModuleSet, kLock, kLeaveInitrd };
constexpr const char* kNames[] = {"image",      "policy", "module",
                                  "module-set", "lock",   "leave-initrd"};

std::optional<Kind> KindOf(std::string_view name) {
    for (int i = 0; i < 6; ++i) {
        if (name == kNames[i]) return static_cast<Kind>(i);
    }
    return std::nullopt;
}

std::string Q(const std::string& s) { return "\"" + s + "\""; }

bool Contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

// One peinit record, parsed: its content string's JSON and the event it names.
struct Event {
    int record = 0;
    Kind kind{};
    JsonDocument doc;
    JsonValue v() const { return doc.root(); }
};

class Checker {
  public:
    Checker(const Reference& ref, Posture& posture) : ref_(ref), posture_(posture) {}

    void Run(const tpm::EventLog& log) {
        std::vector<Event> events = Read(log);
        Order(events);
        for (const auto& e : events) {
            if (after_handover_.count(e.record) != 0) continue;
            switch (e.kind) {
                case Kind::kImage:
                    Image(e);
                    break;
                case Kind::kPolicy:
                    Policy(e);
                    break;
                case Kind::kModule:
                    Module(e);
                    break;
                case Kind::kModuleSet:
                    module_set_ = &e;
                    break;
                case Kind::kLock:
                    Lock(e);
                    break;
                case Kind::kLeaveInitrd:
                    break;
            }
        }
        ModuleSet();
        Missing();
    }

    std::vector<Deviation> deviations;

  private:
    void Add(int record, std::string message) {
        deviations.push_back({record, std::move(message)});
    }

    std::vector<Event> Read(const tpm::EventLog& log) {
        std::vector<Event> events;
        for (const auto& r : log.records) {
            if (r.content_type != tpm::kPeinitContentType) continue;
            auto doc = JsonDocument::Parse(*r.content_string);
            if (!doc) {
                Add(r.number, "content string is " + doc.error().message());
                continue;
            }
            JsonValue v = doc->root();
            if (!v.IsObject()) {
                Add(r.number, "content string is not a JSON object");
                continue;
            }
            auto version = v.IntAt("v");
            if (!version || *version != 1) {
                Add(r.number, version ? "content version " + std::to_string(*version) +
                                            " is not 1 (a newer peinit?)"
                                      : "content: " + version.error().message());
                continue;
            }
            auto name = v.StringAt("event");
            if (!name) {
                Add(r.number, "content: " + name.error().message());
                continue;
            }
            auto kind = KindOf(*name);
            if (!kind) {
                Add(r.number, "unknown peinit event " + Q(*name));
                continue;
            }
            if (r.event_type != "peinit-" + *name) {
                Add(r.number,
                    "eventType " + Q(r.event_type) + " does not match the event " + Q(*name));
            }
            events.push_back({r.number, *kind, std::move(*doc)});
        }
        return events;
    }

    // image, policy, module..., module-set, lock, leave-initrd: each once, in that order.
    void Order(const std::vector<Event>& events) {
        int stage = -1;
        int leave_record = 0;
        std::map<Kind, int> first;
        for (const auto& e : events) {
            const char* name = kNames[static_cast<int>(e.kind)];
            if (leave_record != 0) {
                // Whoever holds root after the handover can extend the PCR and append records:
                // nothing measured after leave-initrd speaks for the boot.
                Add(e.record, std::string("peinit-") + name + " after leave-initrd (record " +
                                  std::to_string(leave_record) +
                                  "): measured after the handover, not part of the boot's "
                                  "posture; ignored");
                after_handover_.insert(e.record);
                continue;
            }
            auto [it, inserted] = first.emplace(e.kind, e.record);
            if (!inserted && e.kind != Kind::kModule) {
                Add(e.record, std::string("a second peinit-") + name + " (the first is record " +
                                  std::to_string(it->second) + ")");
            }
            int rank = static_cast<int>(e.kind);
            if (rank < stage) {
                Add(e.record, std::string("peinit-") + name + " out of order: after peinit-" +
                                  kNames[stage] +
                                  " (expected: image, policy, module..., module-set, lock, "
                                  "leave-initrd)");
            }
            stage = std::max(stage, rank);
            if (e.kind == Kind::kLeaveInitrd) leave_record = e.record;
            seen_.insert(e.kind);
        }
    }

    std::optional<std::string> Str(const Event& e, const char* key) {
        auto s = e.v().StringAt(key);
        if (!s) {
            Add(e.record, std::string("peinit-") + kNames[static_cast<int>(e.kind)] + ": " +
                              s.error().message());
            return std::nullopt;
        }
        return *s;
    }
    std::optional<bool> Flag(const Event& e, const char* key) {
        auto b = e.v().BoolAt(key);
        if (!b) {
            Add(e.record, std::string("peinit-") + kNames[static_cast<int>(e.kind)] + ": " +
                              b.error().message());
            return std::nullopt;
        }
        return *b;
    }

    void Image(const Event& e) {
        auto release = Str(e, "kernel_release");
        auto key = Str(e, "key_fingerprint");
        Str(e, "image_sha256");
        if (release && ref_.kernel_release && *release != *ref_.kernel_release) {
            Add(e.record, "kernel release " + Q(*release) + ", the reference expects " +
                              Q(*ref_.kernel_release));
        }
        if (key && ref_.image_key_fingerprints && !Contains(*ref_.image_key_fingerprints, *key)) {
            Add(e.record, "image signed by key " + *key + ", not one the reference expects");
        }
    }

    void Policy(const Event& e) {
        auto lab = Flag(e, "lock_after_boot");
        auto autoload = Str(e, "autoload_policy");
        auto signing = Str(e, "signing_policy");
        auto cmdline = e.v().StringsAt("cmdline");
        if (!cmdline) Add(e.record, "peinit-policy: " + cmdline.error().message());
        Str(e, "hive_sha256");
        Str(e, "blacklist_sha256");
        if (lab && ref_.lock_after_boot && *lab != *ref_.lock_after_boot) {
            Add(e.record, std::string("policy LockAfterBoot is ") + (*lab ? "true" : "false") +
                              ", the reference requires " +
                              (*ref_.lock_after_boot ? "true" : "false"));
        }
        if (autoload && ref_.autoload_policy && *autoload != *ref_.autoload_policy) {
            Add(e.record, "policy AutoLoadPolicy is " + Q(*autoload) + ", the reference requires " +
                              Q(*ref_.autoload_policy));
        }
        if (signing && ref_.signing_policy && *signing != *ref_.signing_policy) {
            Add(e.record, "policy SigningPolicy is " + Q(*signing) + ", the reference requires " +
                              Q(*ref_.signing_policy));
        }
    }

    void Module(const Event& e) {
        auto name = Str(e, "name");
        auto sha = Str(e, "sha256");
        auto signer = Str(e, "signer");
        Str(e, "package");
        ++posture_.modules;
        if (name && sha) module_lines_.push_back(*name + " " + *sha + "\n");
        if (name) {
            auto [it, inserted] = module_names_.emplace(*name, e.record);
            if (!inserted) {
                Add(e.record, "module " + *name + " loaded twice (also record " +
                                  std::to_string(it->second) + ")");
            }
        }
        if (signer) {
            if (!Contains(posture_.signers, *signer)) posture_.signers.push_back(*signer);
            if (!Contains(ref_.signers, *signer)) {
                Add(e.record, "module " + name.value_or("?") + " signed by " + *signer +
                                  ", not a signer the reference trusts");
            }
        }
        if (name && ref_.allowed_modules && !Contains(*ref_.allowed_modules, *name)) {
            Add(e.record, "module " + *name + " is not allowed by the reference");
        }
    }

    void ModuleSet() {
        if (module_set_ == nullptr) return;
        const Event& e = *module_set_;
        auto count = e.v().IntAt("count");
        if (!count) {
            Add(e.record, "peinit-module-set: " + count.error().message());
        } else if (*count != posture_.modules) {
            Add(e.record, "module set counts " + std::to_string(*count) + " modules, the log has " +
                              std::to_string(posture_.modules) + " module records");
        }
        auto sha = Str(e, "sha256");
        std::string want = ModuleSetDigest(module_lines_);
        if (sha && *sha != want) {
            Add(e.record, "module set digest " + *sha +
                              " is not the digest of the module "
                              "records (" +
                              want + ")");
        }
    }

    void Lock(const Event& e) {
        auto requested = Flag(e, "requested");
        auto locked = Flag(e, "locked");
        auto mechanism = Str(e, "mechanism");
        Str(e, "trigger");
        posture_.locked = locked.value_or(false);
        posture_.mechanism = mechanism.value_or("");
        if (!ref_.lock_required) return;
        if (requested && !*requested) {
            Add(e.record,
                "the lock was not requested (LockAfterBoot=false): module loading "
                "stayed open; the reference requires the lock");
        } else if (locked && !*locked) {
            Add(e.record, "the lock was requested but not applied (locked=false, mechanism " +
                              Q(mechanism.value_or("")) + ")");
        }
        if (mechanism && locked && *locked && !Contains(ref_.lock_mechanisms, *mechanism)) {
            Add(e.record, "locked by " + Q(*mechanism) + ", the reference allows " +
                              Join(ref_.lock_mechanisms, ", "));
        }
    }

    void Missing() {
        for (Kind k : {Kind::kImage, Kind::kPolicy, Kind::kModuleSet, Kind::kLock}) {
            if (seen_.count(k) == 0) {
                Add(0, std::string("no peinit-") + kNames[static_cast<int>(k)] + " record");
            }
        }
        if (ref_.require_leave_initrd && seen_.count(Kind::kLeaveInitrd) == 0) {
            Add(0, "no peinit-leave-initrd record: the reference requires the handover measured");
        }
        if (ref_.exact_modules && ref_.allowed_modules) {
            for (const auto& name : *ref_.allowed_modules) {
                if (module_names_.count(name) == 0) {
                    Add(0, "module " + name +
                               " that the reference requires was not loaded "
                               "before the lock");
                }
            }
        }
    }

    const Reference& ref_;
    Posture& posture_;
    std::set<Kind> seen_;
    std::set<int> after_handover_;
    std::map<std::string, int> module_names_;
    std::vector<std::string> module_lines_;
    const Event* module_set_ = nullptr;
};

}  // namespace

std::string Deviation::ToString() const {
    return record > 0 ? "record " + std::to_string(record) + ": " + message : message;
}

std::string ModuleSetDigest(std::vector<std::string> lines) {
    std::sort(lines.begin(), lines.end());
    std::string all;
    for (const auto& l : lines) all += l;
    return HexEncode(Sha256Of({reinterpret_cast<const std::byte*>(all.data()), all.size()}));
}

std::vector<Deviation> CheckPosture(const tpm::EventLog& log, const Reference& ref,
                                    Posture& posture) {
    posture = Posture{};
    Checker c(ref, posture);
    c.Run(log);
    // In log order, the boot-wide ones (record 0) last.
    std::stable_sort(
        c.deviations.begin(), c.deviations.end(), [](const Deviation& a, const Deviation& b) {
            return (a.record == 0 ? INT_MAX : a.record) < (b.record == 0 ? INT_MAX : b.record);
        });
    return std::move(c.deviations);
}

}  // namespace peinit::verify
