#include "peinit/sys/memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace peinit {

namespace {

struct Mapping {
    std::uintptr_t start = 0, end = 0;
    bool private_file = false;  // a private mapping of a file (not heap, stack, vdso, ...)
    long rss_kib = 0;
    long anonymous_kib = 0;
    long locked_kib = 0;
};

// A mapping header line: "7f..-7f.. r-xp 00000000 00:02 1234   /usr/lib/libfoo.so".
bool ParseHeader(const std::string& line, Mapping& m) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    if (!(in >> range >> perms >> offset >> dev >> inode)) return false;
    auto dash = range.find('-');
    if (dash == std::string::npos || perms.size() != 4) return false;
    char* end = nullptr;
    m.start = std::strtoull(range.c_str(), &end, 16);
    if (end != range.c_str() + dash) return false;
    m.end = std::strtoull(range.c_str() + dash + 1, &end, 16);
    if (*end != '\0' || m.end <= m.start) return false;
    std::getline(in >> std::ws, path);
    m.private_file = perms[3] == 'p' && inode != "0" && path.starts_with("/");
    return true;
}

long FieldKib(const std::string& line, const char* name) {
    std::string prefix = std::string(name) + ":";
    if (!line.starts_with(prefix)) return -1;
    return std::strtol(line.c_str() + prefix.size(), nullptr, 10);
}

}  // namespace

Result<DroppedMappings> DropCleanFileMappings() {
    std::ifstream in("/proc/self/smaps");
    if (!in) return Err("cannot read /proc/self/smaps");
    std::vector<Mapping> maps;
    for (std::string line; std::getline(in, line);) {
        Mapping m;
        if (ParseHeader(line, m)) {
            maps.push_back(m);
            continue;
        }
        if (maps.empty()) continue;
        if (long v = FieldKib(line, "Rss"); v >= 0) maps.back().rss_kib = v;
        if (long v = FieldKib(line, "Anonymous"); v >= 0) maps.back().anonymous_kib = v;
        if (long v = FieldKib(line, "Locked"); v >= 0) maps.back().locked_kib = v;
    }
    DroppedMappings dropped;
    for (const Mapping& m : maps) {
        // Only mappings whose every resident page is the file's own, unchanged.
        if (!m.private_file || m.rss_kib == 0 || m.anonymous_kib != 0 || m.locked_kib != 0) {
            continue;
        }
        if (::madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) == 0) {
            ++dropped.mappings;
            dropped.kib += static_cast<std::size_t>(m.rss_kib);
        }
    }
    return dropped;
}

long ResidentKib() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
        if (long v = FieldKib(line, "VmRSS"); v >= 0) return v;
    }
    return 0;
}

}  // namespace peinit
