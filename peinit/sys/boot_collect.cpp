#include "peinit/sys/boot_collect.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "peinit/sys/package.h"
#include "peinit/sys/package_format.h"
#include "peinit/sys/status_sources.h"

namespace peinit {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kRecordsDir = "run/peinit/";
constexpr std::string_view kKernelLog = "dev/kmsg";

std::vector<std::byte> AsBytes(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return {p, p + text.size()};
}

constexpr std::size_t kBlock = 512;

// `value` in octal, zero-padded to fill `field` but its last byte (NUL).
void Octal(std::span<char> field, std::uint64_t value) {
    for (std::size_t i = field.size() - 1; i-- > 0; value >>= 3) field[i] = char('0' + (value & 7));
}

// The members as a POSIX ustar stream (regular files, 0644, owner 0:0, mtime 0), as
// WriteArchive writes packages. Written here because PID 1 links libarchive statically, and its
// writer cannot be linked alone: ustar's object pulls in every format (7-Zip with bzip2, xar
// with libxml2). The host reads the stream back with libarchive (ReadArchive).
Result<std::vector<std::byte>> UstarStream(std::span<const ArchiveMember> members) {
    std::vector<std::byte> out;
    for (const ArchiveMember& m : members) {
        PEINIT_TRY(ValidateMemberPath(m.path));
        if (m.path.size() >= 100) return Err("\"" + m.path + "\": path too long for ustar");
        std::array<char, kBlock> h{};
        std::copy(m.path.begin(), m.path.end(), h.begin());   // name
        Octal(std::span(h).subspan(100, 8), 0644);              // mode
        Octal(std::span(h).subspan(108, 8), 0);                 // uid
        Octal(std::span(h).subspan(116, 8), 0);                 // gid
        Octal(std::span(h).subspan(124, 12), m.data.size());    // size
        Octal(std::span(h).subspan(136, 12), 0);                // mtime
        h[156] = '0';                                           // typeflag: regular file
        std::memcpy(&h[257], "ustar\0" "00", 8);               // magic, version
        std::fill(h.begin() + 148, h.begin() + 156, ' ');       // checksum: summed as spaces
        unsigned sum = 0;
        for (char c : h) sum += static_cast<unsigned char>(c);
        Octal(std::span(h).subspan(148, 7), sum);
        const auto* header = reinterpret_cast<const std::byte*>(h.data());
        out.insert(out.end(), header, header + kBlock);
        out.insert(out.end(), m.data.begin(), m.data.end());
        out.resize(out.size() + (kBlock - m.data.size() % kBlock) % kBlock);
    }
    out.resize(out.size() + 2 * kBlock);  // end of archive
    return out;
}

}  // namespace

Result<std::vector<ArchiveMember>> CollectBootRecords(const fs::path& root) {
    const fs::path records = root / "run/peinit";
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(records, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file(ec)) names.push_back(it->path().filename().string());
    }
    if (ec) return Err(records.string() + ": " + ec.message(), ec.value());
    std::sort(names.begin(), names.end());
    std::vector<ArchiveMember> members;
    for (const std::string& name : names) {
        auto bytes = ReadFileOnce(records / name, kMaxPayloadFileBytes);
        if (!bytes) return bytes.error();
        members.push_back({std::string(kRecordsDir) + name, std::move(*bytes)});
    }
    if (auto log = ReadKmsg(root / kKernelLog)) {
        members.push_back({std::string(kKernelLog), AsBytes(*log)});
    }
    return members;
}

Result<std::size_t> WriteCollection(const std::string& device,
                                    std::span<const ArchiveMember> members) {
    std::vector<std::byte> stream = PEINIT_TRY(UstarStream(members));
    // O_NONBLOCK: opening a serial port never waits for a carrier; writes then block again.
    int fd = ::open(device.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ErrnoErr("open " + device);
    auto fail = [&](const std::string& what) {
        const int e = errno;
        ::close(fd);
        return ErrnoErr(what + " " + device, e);
    };
    // A serial port, nothing else: peinit.collect= naming a disk (or any file) must not have the
    // records written over it.
    struct stat st;
    if (::fstat(fd, &st) != 0) return fail("fstat");
    if (!S_ISCHR(st.st_mode)) {
        ::close(fd);
        return Err(device + " is not a character device (a serial port): the records are not "
                            "written over it");
    }
    if (::fcntl(fd, F_SETFL, 0) != 0) return fail("fcntl");
    // A tty would turn "\n" into "\r\n" (and worse): raw mode passes every byte as it is.
    termios tio;
    if (::tcgetattr(fd, &tio) == 0) {
        ::cfmakeraw(&tio);
        if (::tcsetattr(fd, TCSANOW, &tio) != 0) return fail("tcsetattr");
    }
    for (std::size_t done = 0; done < stream.size();) {
        ssize_t n = ::write(fd, stream.data() + done, stream.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail("write");
        done += static_cast<std::size_t>(n);
    }
    // Everything on the wire before PID 1 powers the machine off.
    if (::isatty(fd) && ::tcdrain(fd) != 0) return fail("tcdrain");
    if (::close(fd) != 0) return ErrnoErr("close " + device);
    return stream.size();
}

Result<std::vector<std::string>> ExtractCollection(std::span<const std::byte> stream,
                                                   const fs::path& dir, const std::string& what) {
    auto entries = ReadArchive(stream);
    if (!entries) return entries.error().Context(what + ": not a boot record collection: ");
    for (const ArchiveEntry& e : *entries) {
        const bool record = e.path.starts_with(kRecordsDir) &&
                            e.path.find('/', kRecordsDir.size()) == std::string::npos;
        if (!record && e.path != kKernelLog) {
            return Err(what + ": unexpected member \"" + e.path + "\" (only " +
                       std::string(kRecordsDir) + "NAME and " + std::string(kKernelLog) + ")");
        }
    }
    std::vector<std::string> written;
    for (const ArchiveEntry& e : *entries) {
        const fs::path target = dir / e.path;
        std::error_code ec;
        fs::create_directories(target.parent_path(), ec);
        if (ec) return Err(target.parent_path().string() + ": " + ec.message(), ec.value());
        std::ofstream out(target, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(e.data.data()),
                  static_cast<std::streamsize>(e.data.size()));
        out.close();
        if (!out) return Err(target.string() + ": cannot write");
        written.push_back(e.path);
    }
    return written;
}

}  // namespace peinit
