#pragma once

// Getting a boot's records out of a VM (issue 16): with `peinit.collect=/dev/DEVICE` on the
// kernel command line, PID 1 writes at shutdown a tar stream of
//   run/peinit/NAME   every regular file directly in /run/peinit (the boot records), and
//   dev/kmsg          the kernel log in /dev/kmsg's record format,
// to DEVICE: `peinit-image boot --collect DIR` gives the VM a second serial port backed by a
// file (the guest's /dev/ttyS1) and extracts the stream into DIR, so that
// `peinitctl status|modules|blame|timeline --root DIR` read the boot as they would in the guest.
// A serial port is used because every kernel we boot has one built in (no driver to load, no
// kernel configuration change); a tty is switched to raw mode first so the bytes pass unchanged.
//
// The stream is ustar, laid out as packages are (WriteArchive, peinit/sys/package_archive.h), and
// is read back strictly with libarchive (ReadArchive): only the two kinds of member above.

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/sys/package_archive.h"

namespace peinit {

// The members of the collection of the tree at `root` ("/" in the guest): ROOT/run/peinit/* and
// ROOT/dev/kmsg (left out when unreadable), in that order, records sorted by name.
Result<std::vector<ArchiveMember>> CollectBootRecords(const std::filesystem::path& root);

// Writes `members` as one tar stream to `device` (a tty is put in raw mode and drained before
// this returns). Returns the number of bytes written.
Result<std::size_t> WriteCollection(const std::string& device,
                                    std::span<const ArchiveMember> members);

// Extracts a stream written by WriteCollection into `dir` (DIR/run/peinit/NAME, DIR/dev/kmsg),
// replacing earlier files of the same name. Returns the paths written, relative to `dir`.
// Anything else in the stream, or a stream that is not one, is an error naming `what` (the
// file the stream was captured in).
Result<std::vector<std::string>> ExtractCollection(std::span<const std::byte> stream,
                                                   const std::filesystem::path& dir,
                                                   const std::string& what);

}  // namespace peinit
