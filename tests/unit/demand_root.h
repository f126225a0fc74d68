#pragma once

// A fixture root for demand-load and coldplug tests: the synthetic tree
// tests/fixtures/roots/autoload copied into a fresh directory, a trusted key, and one signed
// package holding (fake bytes of) the chosen modules.

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/record/policy.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/record.h"
#include "peinit/sys/package.h"
#include "peinit/sys/package_crypto.h"
#include "tests/unit/fixture_roots.h"

namespace peinit::testing {

namespace fs = std::filesystem;

// Every module of the autoload fixture tree.
inline const std::vector<std::string> kAutoloadModules = {
    "af_packet", "af_alg",  "algif_hash", "failover", "net_failover", "virtio_net",
    "e1000e",    "bad_drv", "dual_a",     "dual_b",   "bl_dep",       "bl_dep_user"};

// Devices of the fixture tree's drivers: two virtio_net (needs net_failover, failover), an e1000e,
// one bad_drv (blacklisted by modprobe.d), one bl_dep_user (its dependency bl_dep is denied by an
// install /bin/false) and one no module matches.
inline const DeviceModalias kVirtioNet{"/sys/devices/pci0000:00/0000:00:02.0/virtio0",
                                       "virtio:d00000001v00001AF4"};
inline const DeviceModalias kVirtioNet2{"/sys/devices/pci0000:00/0000:00:03.0/virtio1",
                                        "virtio:d00000001v00001AF4"};
inline const DeviceModalias kE1000e{"/sys/devices/pci0000:00/0000:00:04.0",
                                    "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"};
inline const DeviceModalias kBad{"/sys/devices/pci0000:00/0000:00:05.0",
                                 "pci:v0000DEADd00000001sv00000000sd00000000bc02sc00i00"};
inline const DeviceModalias kBlDep{"/sys/devices/pci0000:00/0000:00:06.0",
                                   "pci:v0000BEEFd00000001sv00000000sd00000000bc02sc00i00"};
inline const DeviceModalias kUnknown{"/sys/devices/platform/serial8250", "platform:serial8250"};

// A root with the autoload fixture tree, a trusted key and one signed package of every module.
class DemandRoot {
  public:
    void Make(std::vector<std::string> packaged = kAutoloadModules) {
        fs::path fixture = FixtureRoot("autoload");
        ASSERT_FALSE(fixture.empty());
        char tmpl[] = "/tmp/peinit-autoload-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        tmp_ = tmpl;
        root_ = tmp_ / "root";
        fs::copy(fixture, root_, fs::copy_options::recursive);
        for (const char* d : {"run/peinit", "etc/peinit/keys", "usr/lib/peinit/packages", "proc"}) {
            fs::create_directories(root_ / d);
        }
        auto key = SigningKey::Generate();
        ASSERT_TRUE(key) << key.error().message();
        auto pem = key->PublicPem();
        ASSERT_TRUE(pem);
        std::ofstream(root_ / "etc/peinit/keys/test.pub") << *pem;
        PackageSpec spec{"all", "1", kFixtureKver, {}};
        for (const auto& m : packaged) {
            std::string text = "fake module " + m;
            std::vector<std::byte> bytes(text.size());
            std::memcpy(bytes.data(), text.data(), text.size());
            spec.files.push_back({"modules/" + m + ".ko", std::move(bytes)});
        }
        auto pkg = CreatePackage(spec, &*key);
        ASSERT_TRUE(pkg) << pkg.error().message();
        std::ofstream out(root_ / "usr/lib/peinit/packages/all.pkg", std::ios::binary);
        out.write(reinterpret_cast<const char*>(pkg->data()),
                  static_cast<std::streamsize>(pkg->size()));
        SetCmdline("console=ttyS0");
    }
    ~DemandRoot() {
        std::error_code ec;
        if (!tmp_.empty()) fs::remove_all(tmp_, ec);
    }
    // The command line and the hive, and the policy record PID 1's config stage writes from
    // them (the helper enforces the record, not the hive).
    void SetCmdline(const std::string& text) {
        std::ofstream(root_ / "proc/cmdline") << text;
        RecordPolicy();
    }
    void SetHive(const std::string& modules_key_body) {
        fs::path p = root_ / "etc/peinit/hive.toml";
        std::ofstream(p) << "['Machine\\System\\Modules']\n" << modules_key_body;
        ::chmod(p.c_str(), 0644);
        RecordPolicy();
    }
    void RecordPolicy(const std::string& modload_root = "/") {
        std::ifstream in(root_ / "proc/cmdline");
        std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        Hive hive = LoadHive((root_ / "etc/peinit/hive.toml").string());
        PolicyRecord record{ComputeEffectivePolicy(hive, ParseCmdline(cmdline)), hive.state,
                            hive.path, {}, modload_root};
        // The sealed tree's copy, which the helper reads (peinit/core/sealed_tree.h).
        fs::create_directories(root_ / "run/peinit/ro");
        auto written = WriteFileAtomically((root_ / "run/peinit/ro/policy.json").string(),
                                           record.ToJson());
        ASSERT_TRUE(written) << written.error().message();
    }
    // Changes one byte of `module`'s payload in all.pkg: same size, another SHA-256.
    void Tamper(const std::string& module) {
        fs::path p = root_ / "usr/lib/peinit/packages/all.pkg";
        std::ifstream in(p, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto at = bytes.find("fake module " + module);
        ASSERT_NE(at, std::string::npos) << module;
        bytes[at] = 'F';
        std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    }
    const fs::path& root() const { return root_; }
    BootPaths Paths() const {
        BootPaths p;
        p.root = root_;
        return p;
    }

  private:
    fs::path tmp_;
    fs::path root_;
};

}  // namespace peinit::testing
