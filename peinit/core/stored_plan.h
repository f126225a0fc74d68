#pragma once

// The stored plan (issue 26 point 2, the booster model: decide at build time what can be decided
// at build time): `peinit-image build` plans the image's own plan input (CollectBootPlanInput)
// against the image's own module tree and ships every answer the planner got from that tree,
// signed with the image key, as /etc/peinit/plan.toml (+ plan.toml.sig). At boot the module
// stage verifies it and plans the boot's input, which may differ from the build's by the running
// command line (more blacklist entries, mod.param= options), with the same pure planner over
// these answers instead of opening libkmod: the deny lists still apply at boot, and libkmod's
// start (indexes, modprobe.d) leaves the stage's critical path. A question the stored answers do
// not cover (a module the build never planned, e.g. a new modules_load=) is an error, and the
// stage then plans with libkmod, as it does for a stored plan of another kernel release or one
// that does not verify (stages/modules/modules.h).
//
// Format (TOML, canonical: toml++'s formatter, keys sorted):
//   version = 1                         the major version; a newer one is refused
//   kernel_release = "6.1.0-57-amd64"   the release the answers are for
//   [[lookup]]  name = "fs-ext4", modules = ["ext4"]    ModuleDb::Lookup, in name order
//   [[module]]  name, path (relative to the root: "lib/modules/KVER/kernel/..."), builtin,
//               file_present, hard_deps, soft_pre, soft_post, options, denied_by,
//               install_command                         ModuleDb::Describe, in name order
//   warnings = [...]                    ModuleDb::TakeWarnings
// The signature file is a MANIFEST.sig (peinit/sys/PACKAGE.md) over the plan file's bytes.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/plan.h"
#include "peinit/core/result.h"

namespace peinit {

inline constexpr const char* kStoredPlanPath = "/etc/peinit/plan.toml";
inline constexpr const char* kStoredPlanSignaturePath = "/etc/peinit/plan.toml.sig";

// Every answer a ModuleDb gave a planner.
struct ModuleFacts {
    std::map<std::string, std::vector<std::string>> lookups;  // name or alias -> modules
    std::map<std::string, ModuleRecord> modules;              // by the name Describe was given
    std::vector<std::string> warnings;
    bool operator==(const ModuleFacts&) const = default;
};

struct StoredPlan {
    static constexpr int kVersion = 1;

    int version = kVersion;
    std::string kernel_release;
    // Module paths are relative to the root the tree was read under ("lib/modules/...").
    ModuleFacts facts;

    std::string ToToml() const;
    // Parses a stored plan; `file` names it in errors. Only called on verified bytes.
    static Result<StoredPlan> FromToml(std::string_view text, const std::string& file);
};

// Plans `input` against `db` (BuildPlan) and records every answer db gave, module paths made
// relative to `root` (the directory holding lib/modules). The build's side.
struct RecordedPlan {
    Plan plan;
    StoredPlan stored;
};
Result<RecordedPlan> RecordPlan(ModuleDb& db, const PlanInput& input, const std::string& root,
                                std::string kernel_release);

// A ModuleDb answering from stored facts only, module paths under `root`; a question the facts
// do not answer is an error ("the stored plan has no answer for ..."), so BuildPlan fails and the
// caller plans with the real tree instead.
class StoredModuleDb : public ModuleDb {
  public:
    StoredModuleDb(const ModuleFacts& facts, const std::string& root);
    Result<std::vector<std::string>> Lookup(std::string_view name_or_alias) override;
    Result<ModuleRecord> Describe(std::string_view name) override;
    std::vector<std::string> TakeWarnings() override;

  private:
    const ModuleFacts& facts_;
    std::string root_;
    bool warned_ = false;
};

}  // namespace peinit
