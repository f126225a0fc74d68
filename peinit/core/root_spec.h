#pragma once

// What the kernel command line says about the real root, the way distro initramfs
// generators read it (dracut, initramfs-tools, booster): pure interpretation, no I/O.
//
//   root=/dev/vda2 | UUID=... | PARTUUID=... | LABEL=... | PARTLABEL=...
//   rootfstype=ext4[,xfs...]   optional: the file system is probed when absent
//   rootflags=OPTS             mount options (libmount syntax: "noatime,data=ordered")
//   ro | rw                    the last one wins; read-only by default, as the kernel mounts it
//   rootwait[=SECONDS]         wait for the device: without a value as long as it takes,
//                              with one at most that long; default without rootwait: 10 s
//   rootdelay=SECONDS          sleep before looking for the device at all

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/cmdline.h"
#include "peinit/core/result.h"

namespace peinit {

struct RootSpec {
    // "" for a device path, else "UUID", "PARTUUID", "LABEL" or "PARTLABEL".
    std::string tag;
    // The path, or the tag's value as written (UUIDs compare case-insensitively).
    std::string value;

    bool IsPath() const { return tag.empty(); }
    // As written on the command line: "/dev/vda" or "UUID=...".
    std::string ToString() const { return tag.empty() ? value : tag + "=" + value; }
    bool operator==(const RootSpec&) const = default;
};

// Parses a root= value. Errors name the value and what is accepted.
Result<RootSpec> ParseRootSpec(std::string_view text);

struct RootOptions {
    RootSpec spec;
    // rootfstype= split at commas; empty: probe the device.
    std::vector<std::string> fstypes;
    // rootflags= as written ("" when absent).
    std::string flags;
    bool read_only = true;
    // nullopt: wait as long as it takes (rootwait without a value).
    std::optional<std::chrono::milliseconds> wait{std::chrono::seconds(10)};
    std::chrono::milliseconds delay{0};
    // The real init to run on it: init=, else /sbin/init (as seen from inside the new root).
    std::string init = "/sbin/init";
    // Problems with the optional parameters (a bad rootwait= or rootdelay= value); they are
    // reported and the default is used, like the kernel does.
    std::vector<std::string> warnings;
};

// The root options of a command line that has root= (error when it has none or it is bad).
Result<RootOptions> ParseRootOptions(const Cmdline& cmdline);

// True when `a` and `b` name the same tag value: UUIDs and PARTUUIDs case-insensitively,
// labels exactly.
bool RootTagValueMatches(const RootSpec& spec, std::string_view probed);

}  // namespace peinit
