#pragma once

// The reading side every versioned record under /run/peinit and /etc/peinit shares: the JSON
// parsed (Boost.PropertyTree) with the file and line of a syntax error, and the record's major
// `version` checked: a reader accepts its own version and older ones and refuses a newer one
// with both versions named.

#include <boost/property_tree/ptree.hpp>
#include <string>

#include "peinit/core/result.h"

namespace peinit {

struct VersionedRecord {
    boost::property_tree::ptree tree;
    int version = 0;
};

// `newer_hint` is appended to the newer-version error in parentheses when not empty ("the image
// was built by a newer peinit-image").
Result<VersionedRecord> ParseVersionedRecord(const std::string& text, const std::string& file,
                                             int reader_version,
                                             const std::string& newer_hint = "");

}  // namespace peinit
