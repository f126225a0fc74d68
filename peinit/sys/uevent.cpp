#include "peinit/sys/uevent.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>
#include <system_error>

#include "peinit/core/contain.h"

namespace peinit {

namespace {

std::optional<uint64_t> ParseU64(std::string_view text) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::optional<Uevent> ParseUevent(std::string_view datagram) {
    size_t nul = datagram.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    std::string_view header = datagram.substr(0, nul);
    size_t at = header.find('@');
    if (at == std::string_view::npos || at == 0) return std::nullopt;
    Uevent event;
    bool has_seqnum = false;
    for (size_t pos = nul + 1; pos < datagram.size();) {
        size_t end = datagram.find('\0', pos);
        if (end == std::string_view::npos) end = datagram.size();
        std::string_view pair = datagram.substr(pos, end - pos);
        pos = end + 1;
        size_t eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        std::string_view key = pair.substr(0, eq);
        std::string_view value = pair.substr(eq + 1);
        if (key == "ACTION") {
            event.action = value;
        } else if (key == "DEVPATH") {
            event.devpath = value;
        } else if (key == "SUBSYSTEM") {
            event.subsystem = value;
        } else if (key == "MODALIAS") {
            event.modalias = value;
        } else if (key == "SEQNUM") {
            auto n = ParseU64(value);
            if (!n) return std::nullopt;
            event.seqnum = *n;
            has_seqnum = true;
        }
    }
    // The header repeats ACTION and DEVPATH; a datagram whose two halves disagree was not
    // written by the kernel.
    if (!has_seqnum || header.substr(0, at) != event.action ||
        header.substr(at + 1) != event.devpath || !event.devpath.starts_with('/')) {
        return std::nullopt;
    }
    return event;
}

std::vector<DeviceModalias> HotAddedDevices(const std::vector<Uevent>& events,
                                            uint64_t after_seqnum) {
    std::vector<DeviceModalias> out;
    std::set<std::string> seen;
    for (const Uevent& e : events) {
        if (e.action != "add" || e.modalias.empty() || e.seqnum <= after_seqnum) continue;
        std::string syspath = "/sys" + e.devpath;
        if (!seen.insert(syspath).second) continue;
        out.push_back({std::move(syspath), e.modalias});
    }
    return out;
}

std::vector<DeviceModalias> DevicesSince(std::vector<DeviceModalias> scanned,
                                         const std::vector<Uevent>& events, uint64_t seqnum) {
    std::set<std::string> present;
    for (const auto& d : scanned) present.insert(d.syspath);
    for (auto& d : HotAddedDevices(events, seqnum)) {
        if (present.insert(d.syspath).second) scanned.push_back(std::move(d));
    }
    std::sort(scanned.begin(), scanned.end(), [](const DeviceModalias& a, const DeviceModalias& b) {
        return a.syspath < b.syspath;
    });
    return scanned;
}

std::unique_ptr<DeviceScan> DeviceScan::Start(std::string sysfs, Enumerate enumerate) {
    std::unique_ptr<DeviceScan> scan(new DeviceScan());
    if (!enumerate) {
        enumerate = [](const std::string& root) { return EnumerateModaliases(root); };
    }
    try {
        scan->thread_ = std::thread([s = scan.get(), sysfs = std::move(sysfs),
                                     enumerate = std::move(enumerate)] {
            // Background work: the loads it runs beside come first for the CPUs (the nice
            // value of this thread only; a failure leaves it as it was).
            s->tid_ = gettid();
            (void)setpriority(PRIO_PROCESS, static_cast<id_t>(s->tid_.load()), 19);
            const auto start = std::chrono::steady_clock::now();
            try {
                s->found_.seqnum = ReadUeventSeqnum(sysfs);
                s->found_.devices = enumerate(sysfs);
            } catch (...) {
                // Contained (issue 24 point 4): an exception on a std::thread would end PID 1.
                s->found_.devices = Err(UnexpectedException("device scan"));
            }
            s->found_.took = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start);
        });
    } catch (const std::system_error&) {
        return nullptr;
    }
    return scan;
}

DeviceScan::~DeviceScan() {
    if (thread_.joinable()) thread_.join();
}

DeviceScan::Found DeviceScan::Take() {
    // Coldplug waits for it now: it is no longer background work.
    if (pid_t tid = tid_.load(); tid > 0 && thread_.joinable()) {
        (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 0);
    }
    if (thread_.joinable()) thread_.join();
    return std::move(found_);
}

Result<uint64_t> ReadUeventSeqnum(const std::string& sysfs) {
    std::string path = sysfs + "/kernel/uevent_seqnum";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoErr("open " + path);
    char buf[32];
    ssize_t n;
    do {
        n = ::read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    if (n < 0) return ErrnoErr("read " + path, err);
    std::string_view text(buf, static_cast<size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    auto value = ParseU64(text);
    if (!value) return Err(path + ": not a number: \"" + std::string(text) + "\"");
    return *value;
}

Result<UeventSocket> UeventSocket::Open() {
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      NETLINK_KOBJECT_UEVENT);
    if (fd < 0) return ErrnoErr("uevent socket");
    UeventSocket sock(fd);
    // Only "add@..." events, and not "add@/module/...": big-endian words of the datagram's
    // first 12 bytes, as classic BPF loads them.
    constexpr uint32_t kAdd = 0x61646440;     // "add@"
    constexpr uint32_t kSlashMod = 0x2f6d6f64;  // "/mod"
    constexpr uint32_t kUleSlash = 0x756c652f;  // "ule/"
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAdd, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kSlashMod, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kUleSlash, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffU),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0) {
        return ErrnoErr("uevent socket: attach filter");
    }
    // Events stay queued only until PID 1 reads them; the size bounds the queue, it is not
    // allocated up front. Without CAP_NET_ADMIN (tests) the default buffer stays.
    int size = 4 * 1024 * 1024;
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = 1;  // the kernel's own events (udevd re-broadcasts on group 2)
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return ErrnoErr("uevent socket: bind");
    }
    return sock;
}

UeventSocket::~UeventSocket() {
    if (fd_ >= 0) ::close(fd_);
}

std::vector<Uevent> UeventSocket::Drain(bool& overflowed) {
    std::vector<Uevent> events;
    // A uevent is at most UEVENT_BUFFER_SIZE (2048) bytes of environment plus its header.
    char buf[8192];
    while (true) {
        sockaddr_nl from{};
        iovec iov{buf, sizeof buf};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {
                overflowed = true;
                continue;
            }
            break;  // EAGAIN: nothing more queued
        }
        if (from.nl_pid != 0 || (msg.msg_flags & MSG_TRUNC) != 0) continue;
        if (auto event = ParseUevent(std::string_view(buf, static_cast<size_t>(n)))) {
            events.push_back(std::move(*event));
        }
    }
    return events;
}

std::vector<DeviceModalias> UeventDeviceEvents::Added(std::chrono::milliseconds wait) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + wait;
    while (true) {
        bool overflowed = false;
        std::vector<Uevent> events = socket_.Drain(overflowed);
        std::vector<DeviceModalias> added = HotAddedDevices(events, last_seqnum_);
        for (const Uevent& e : events) last_seqnum_ = std::max(last_seqnum_, e.seqnum);
        if (overflowed) {
            if (auto all = EnumerateModaliases(sysfs_)) added = std::move(*all);
        }
        if (!added.empty()) return added;
        // Events without a MODALIAS (a block device, a class device) need no driver: keep
        // waiting for the rest of `wait`.
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return {};
        pollfd pfd{socket_.fd(), POLLIN, 0};
        int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno != EINTR) return {};
    }
}

}  // namespace peinit
