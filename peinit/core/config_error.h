#pragma once

// ConfigError: one problem found in a configuration file (unit, hive), formatted exactly as
// `path:line: message` (or `path: message` when no line applies, e.g. an unreadable file) so
// editors and the image builder can jump to it.

#include <string>
#include <vector>

namespace peinit {

struct ConfigError {
    std::string path;
    // 1-based line, or 0 when the problem concerns the whole file and has no line.
    int line = 0;
    std::string message;

    std::string ToString() const {
        if (line > 0) return path + ":" + std::to_string(line) + ": " + message;
        return path + ": " + message;
    }
    bool operator==(const ConfigError&) const = default;
};

using ConfigErrors = std::vector<ConfigError>;

}  // namespace peinit
