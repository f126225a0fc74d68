// peinit/tools/STATUS-JSON.md checked against what `peinitctl status --json` prints: a status
// with every optional part present is rendered, and every key it prints must be documented and
// every documented key printed; the members of the documented objects and lists must be named in
// their row.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "peinit/core/status.h"
#include "peinit/record/json.h"

namespace peinit {
namespace {

struct DocRow {
    std::vector<std::string> keys;  // "lock.pid", "lock.comm" for the row `lock.pid`, `lock.comm`
    std::set<std::string> named;    // every `word` of the meaning column
};

// The table rows of STATUS-JSON.md, by each key they document.
std::map<std::string, DocRow> ReadDoc() {
    std::ifstream in(std::string(PEINIT_SOURCE_DIR) + "/peinit/tools/STATUS-JSON.md");
    EXPECT_TRUE(in) << "STATUS-JSON.md not readable";
    std::map<std::string, DocRow> rows;
    std::string line;
    const std::regex code("`([^`]+)`");
    while (std::getline(in, line)) {
        if (!line.starts_with("| `")) continue;
        auto bar = line.find(" | ", 2);
        auto bar2 = line.find(" | ", bar + 3);
        if (bar == std::string::npos || bar2 == std::string::npos) continue;
        std::string key_column = line.substr(2, bar - 2);
        std::string meaning = line.substr(bar2 + 3);
        DocRow row;
        for (std::sregex_iterator it(key_column.begin(), key_column.end(), code), end; it != end;
             ++it) {
            row.keys.push_back((*it)[1]);
        }
        for (std::sregex_iterator it(meaning.begin(), meaning.end(), code), end; it != end; ++it) {
            row.named.insert((*it)[1]);
        }
        for (const auto& k : row.keys) rows[k] = row;
    }
    return rows;
}

ModuleRow Row(const std::string& name, ModuleOutcome::Status status) {
    ModuleOutcome o;
    o.module = name;
    o.status = status;
    o.waits_for = {"dep"};
    return ModuleRow::From(o);
}

// A status with every optional part set, so that every key is printed.
Status FullStatus() {
    Status s;
    s.locked = true;
    s.locked_from = "module_lockdown";
    s.mechanism = "syscall";
    s.syscall_available = true;
    s.modules_disabled = false;
    s.trigger = "registry";
    s.set_by_pid = 1;
    s.set_by_comm = "peinit";
    s.set_by_from = "kernel-log";
    s.locked_at_ms = 4000;
    s.locked_at_wall = "2026-12-07T08:00:00Z";
    s.lock_requested = true;
    s.lock_requested_source = "hive";
    s.sig_enforce = "1";
    s.lsm_lockdown = "none";
    s.tainted = 0;
    s.modprobe = "";
    s.helper = "none: module loading is locked";
    s.autoload_disabled = true;
    s.modprobe_sealed = true;
    s.autoload_enforced_by = "kernel";
    s.policy_present = true;
    s.hive_state = "loaded";
    s.blacklist = {{"floppy", "hive"}};
    s.policy_modprobe = "/run/peinit/ro/bin/peinit-modprobe";
    s.modules_present = true;
    s.modules = {Row("ext4", ModuleOutcome::Status::kLoaded)};
    s.coldplug = {Row("virtio_net", ModuleOutcome::Status::kLoaded)};
    s.services = {{"probe", {"SeLoadDriverPrivilege"}, "exited", "exit 0"}};
    s.hotplug = {{"/sys/devices/x", "pci:v1", "loaded", "", {"e1000"}}};
    s.image = ImageInfo{};
    s.measurement = MeasurementRecord{};
    s.boot = BootRecord{};
    s.records = {{"policy", "/run/peinit/policy.json", "ok", ""}};
    return s;
}

// Every key printed as "TOP" or "TOP.MEMBER" (the documentation's depth), and for each printed
// object or list of objects the names of its members.
void Flatten(const JsonValue& root, std::set<std::string>& keys,
             std::map<std::string, std::vector<std::string>>& members) {
    auto member_names = [](const JsonValue& v) {
        JsonValue object = v.IsArray() && v.Size() > 0 ? v.At(0) : v;
        return object.IsObject() ? object.Keys() : std::vector<std::string>{};
    };
    for (const auto& top : root.Keys()) {
        JsonValue v = root.Get(top);
        if (!v.IsObject()) {
            keys.insert(top);
            members[top] = member_names(v);
            continue;
        }
        keys.insert(top);
        members[top] = member_names(v);
        for (const auto& member : v.Keys()) {
            std::string path = top + "." + member;
            keys.insert(path);
            members[path] = member_names(v.Get(member));
        }
    }
}

TEST(StatusJsonDoc, EveryPrintedKeyIsDocumentedAndEveryDocumentedKeyPrinted) {
    auto doc = ReadDoc();
    ASSERT_GT(doc.size(), 30u) << "STATUS-JSON.md's key table was not found";
    auto json = JsonDocument::Parse(RenderStatusJson(FullStatus()));
    ASSERT_TRUE(json) << json.error().message();
    std::set<std::string> printed;
    std::map<std::string, std::vector<std::string>> members;
    Flatten(json->root(), printed, members);

    for (const auto& key : printed) {
        // An object documented as a whole ("image", "policy.hive") documents its members in its
        // row; a top-level object documented member by member ("lock") needs no row of its own.
        const bool has_row = doc.count(key) > 0;
        const bool documented_by_members =
            key.find('.') == std::string::npos &&
            std::any_of(doc.begin(), doc.end(),
                        [&](const auto& d) { return d.first.starts_with(key + "."); });
        std::string parent = key.substr(0, key.rfind('.'));
        const bool member_of_documented_object =
            key.find('.') != std::string::npos && doc.count(parent) > 0;
        EXPECT_TRUE(has_row || documented_by_members || member_of_documented_object)
            << "printed but not in STATUS-JSON.md: " << key;
        if (member_of_documented_object && !has_row) {
            EXPECT_TRUE(doc[parent].named.count(key.substr(key.rfind('.') + 1)))
                << key << " is not named in the row of " << parent;
        }
        if (has_row) {
            for (const auto& m : members[key]) {
                EXPECT_TRUE(doc[key].named.count(m))
                    << "member " << m << " of " << key << " is not named in its row";
            }
        }
    }
    for (const auto& [key, row] : doc) {
        EXPECT_TRUE(printed.count(key)) << "documented but never printed: " << key;
    }
}

}  // namespace
}  // namespace peinit
