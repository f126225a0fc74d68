#pragma once

// The log against the reference policy (peinit-verify step f): peinit's records read as typed
// events, their order, the module set, the lock and the policy values. Pure logic on an
// EventLog: the quote and the replay are checked elsewhere (verifier.h); the unit tests feed
// crafted logs.

#include <optional>
#include <string>
#include <vector>

#include "peinit/tpm/event_log_read.h"
#include "peinit/verify/reference.h"

namespace peinit::verify {

// One way the attested boot differs from what it must be. record: the log record it concerns
// (1-based), 0 for the quote or the boot as a whole.
struct Deviation {
    int record = 0;
    std::string message;
    std::string ToString() const;  // "record 4: ..." or the message
};

// What the log shows, for the summary line.
struct Posture {
    bool locked = false;
    std::string mechanism;  // "syscall", "fallback", "none", "" without a lock record
    int modules = 0;
    std::vector<std::string> signers;  // distinct, in first-seen order
};

// The module-set digest: SHA-256 over the sorted lines "<name> <sha256>\n" of the module
// events, lowercase hex.
std::string ModuleSetDigest(std::vector<std::string> lines);

// Checks peinit's records in `log` against `ref`: every deviation, in log order where a
// record is concerned, then the boot-wide ones.
std::vector<Deviation> CheckPosture(const tpm::EventLog& log, const Reference& ref,
                                    Posture& posture);

}  // namespace peinit::verify
