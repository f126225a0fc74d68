#include "initramfs/elf_closure.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <set>

namespace peinit::image {

namespace {

// A read-only mapping of a whole file.
class MappedFile {
  public:
    ~MappedFile() {
        if (data_ != nullptr && data_ != MAP_FAILED) ::munmap(data_, size_);
    }
    Result<void> Open(const std::string& path) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return ErrnoErr(path);
        struct stat st;
        if (::fstat(fd, &st) != 0) {
            int e = errno;
            ::close(fd);
            return ErrnoErr(path, e);
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            return Err(path + ": not a regular file");
        }
        size_ = static_cast<size_t>(st.st_size);
        if (size_ == 0) {
            ::close(fd);
            return Ok();
        }
        data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        int e = errno;
        ::close(fd);
        if (data_ == MAP_FAILED) {
            data_ = nullptr;
            return ErrnoErr(path + ": mmap", e);
        }
        return Ok();
    }
    const unsigned char* data() const { return static_cast<const unsigned char*>(data_); }
    size_t size() const { return size_; }

  private:
    void* data_ = nullptr;
    size_t size_ = 0;
};

struct Elf64Types {
    using Ehdr = Elf64_Ehdr;
    using Phdr = Elf64_Phdr;
    using Dyn = Elf64_Dyn;
};
struct Elf32Types {
    using Ehdr = Elf32_Ehdr;
    using Phdr = Elf32_Phdr;
    using Dyn = Elf32_Dyn;
};

std::vector<std::string> SplitColon(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t colon = s.find(':', start);
        std::string part =
            s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        if (!part.empty()) out.push_back(part);
        if (colon == std::string::npos) break;
        start = colon + 1;
    }
    return out;
}

template <typename T>
Result<ElfInfo> Parse(const std::string& path, const unsigned char* data, size_t size) {
    using Ehdr = typename T::Ehdr;
    using Phdr = typename T::Phdr;
    using Dyn = typename T::Dyn;
    auto bad = [&](const std::string& what) { return Err(path + ": malformed ELF: " + what); };
    if (size < sizeof(Ehdr)) return bad("truncated header");
    Ehdr eh;
    std::memcpy(&eh, data, sizeof eh);
    ElfInfo info;
    info.elf_class = data[EI_CLASS];
    info.machine = eh.e_machine;
    info.type = eh.e_type;
    if (eh.e_phentsize != sizeof(Phdr) && eh.e_phnum != 0) return bad("program header size");
    uint64_t ph_end = static_cast<uint64_t>(eh.e_phoff) + uint64_t{eh.e_phnum} * sizeof(Phdr);
    if (ph_end > size) return bad("program headers beyond end of file");
    std::vector<Phdr> phdrs(eh.e_phnum);
    if (eh.e_phnum != 0) std::memcpy(phdrs.data(), data + eh.e_phoff, eh.e_phnum * sizeof(Phdr));

    const Phdr* dynamic = nullptr;
    for (const Phdr& ph : phdrs) {
        if (ph.p_type == PT_INTERP) {
            if (uint64_t{ph.p_offset} + ph.p_filesz > size || ph.p_filesz == 0)
                return bad("PT_INTERP beyond end of file");
            const char* s = reinterpret_cast<const char*>(data + ph.p_offset);
            info.interp.assign(s, strnlen(s, ph.p_filesz));
        } else if (ph.p_type == PT_DYNAMIC) {
            dynamic = &ph;
        }
    }
    if (dynamic == nullptr) return info;  // static
    if (uint64_t{dynamic->p_offset} + dynamic->p_filesz > size)
        return bad("PT_DYNAMIC beyond end of file");

    // Dynamic entries hold virtual addresses; map them to file offsets through PT_LOAD.
    auto vaddr_to_offset = [&](uint64_t vaddr) -> std::optional<uint64_t> {
        for (const Phdr& ph : phdrs) {
            if (ph.p_type == PT_LOAD && vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
                return vaddr - ph.p_vaddr + ph.p_offset;
        }
        return std::nullopt;
    };

    size_t count = dynamic->p_filesz / sizeof(Dyn);
    std::vector<uint64_t> needed_off, rpath_off, runpath_off;
    std::optional<uint64_t> soname_off;
    uint64_t strtab = 0, strsz = 0;
    bool have_strtab = false;
    for (size_t i = 0; i < count; ++i) {
        Dyn d;
        std::memcpy(&d, data + dynamic->p_offset + i * sizeof(Dyn), sizeof d);
        if (d.d_tag == DT_NULL) break;
        switch (d.d_tag) {
            case DT_NEEDED:
                needed_off.push_back(d.d_un.d_val);
                break;
            case DT_RPATH:
                rpath_off.push_back(d.d_un.d_val);
                break;
            case DT_RUNPATH:
                runpath_off.push_back(d.d_un.d_val);
                break;
            case DT_SONAME:
                soname_off = d.d_un.d_val;
                break;
            case DT_STRTAB:
                strtab = d.d_un.d_ptr;
                have_strtab = true;
                break;
            case DT_STRSZ:
                strsz = d.d_un.d_val;
                break;
            default:
                break;
        }
    }
    if (needed_off.empty() && rpath_off.empty() && runpath_off.empty() && !soname_off) return info;
    if (!have_strtab) return bad("DT_STRTAB missing");
    auto str_file_off = vaddr_to_offset(strtab);
    if (!str_file_off) return bad("DT_STRTAB outside every PT_LOAD segment");
    if (*str_file_off + strsz > size) return bad("string table beyond end of file");
    const char* strings = reinterpret_cast<const char*>(data + *str_file_off);
    auto get = [&](uint64_t off) -> Result<std::string> {
        if (off >= strsz) return bad("string offset beyond DT_STRSZ");
        return std::string(strings + off, strnlen(strings + off, strsz - off));
    };
    for (uint64_t off : needed_off) info.needed.push_back(PEINIT_TRY(get(off)));
    for (uint64_t off : rpath_off)
        for (auto& p : SplitColon(PEINIT_TRY(get(off)))) info.rpath.push_back(p);
    for (uint64_t off : runpath_off)
        for (auto& p : SplitColon(PEINIT_TRY(get(off)))) info.runpath.push_back(p);
    if (soname_off) info.soname = PEINIT_TRY(get(*soname_off));
    return info;
}

std::string Dirname(const std::string& p) {
    auto slash = p.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return p.substr(0, slash);
}

std::string JoinRoot(const std::string& root, const std::string& path) {
    if (root.empty() || root == "/") return path;
    std::string r = root;
    while (r.size() > 1 && r.back() == '/') r.pop_back();
    return r + path;
}

// Resolves `path` (absolute, as seen inside `root`) to a host path with every symlink
// followed inside `root`, the way a chroot would. Returns an error when it does not exist.
Result<std::string> ResolveInRoot(const std::string& root, const std::string& path) {
    if (root.empty() || root == "/") {
        char buf[PATH_MAX];
        if (::realpath(path.c_str(), buf) == nullptr) return ErrnoErr(path);
        return std::string(buf);
    }
    std::vector<std::string> todo;
    auto push_components = [&](const std::string& p) {
        std::vector<std::string> parts;
        size_t start = 0;
        while (start <= p.size()) {
            size_t slash = p.find('/', start);
            if (slash == std::string::npos) slash = p.size();
            std::string c = p.substr(start, slash - start);
            if (!c.empty() && c != ".") parts.push_back(c);
            start = slash + 1;
        }
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
    };
    push_components(path);
    std::string cur;  // inside root, "" == "/"
    int links = 0;
    while (!todo.empty()) {
        std::string c = todo.back();
        todo.pop_back();
        if (c == "..") {
            cur = Dirname(cur.empty() ? "/" : cur);
            if (cur == "/") cur.clear();
            continue;
        }
        std::string next = cur + "/" + c;
        std::string host = JoinRoot(root, next);
        struct stat st;
        if (::lstat(host.c_str(), &st) != 0) return ErrnoErr(host);
        if (S_ISLNK(st.st_mode)) {
            if (++links > 40) return Err(host + ": too many levels of symbolic links", ELOOP);
            char buf[PATH_MAX];
            ssize_t n = ::readlink(host.c_str(), buf, sizeof buf - 1);
            if (n < 0) return ErrnoErr(host);
            std::string target(buf, static_cast<size_t>(n));
            if (!target.empty() && target[0] == '/') cur.clear();
            push_components(target);
        } else {
            cur = next;
        }
    }
    return JoinRoot(root, cur.empty() ? "/" : cur);
}

}  // namespace

bool IsElfFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    unsigned char magic[SELFMAG];
    ssize_t n = ::read(fd, magic, SELFMAG);
    ::close(fd);
    return n == SELFMAG && std::memcmp(magic, ELFMAG, SELFMAG) == 0;
}

bool IsElfRelocatable(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char h[18] = {};
    in.read(h, sizeof h);
    // ELF magic, ET_REL (1) little-endian at e_type.
    return in.gcount() == sizeof h && h[0] == 0x7f && h[1] == 'E' && h[2] == 'L' && h[3] == 'F' &&
           h[16] == 1 && h[17] == 0;
}

Result<ElfInfo> ReadElf(const std::string& path) {
    MappedFile f;
    PEINIT_TRY(f.Open(path));
    const unsigned char* d = f.data();
    if (f.size() < EI_NIDENT || std::memcmp(d, ELFMAG, SELFMAG) != 0)
        return Err(path + ": not an ELF file");
    if (d[EI_DATA] != ELFDATA2LSB) return Err(path + ": big-endian ELF is not supported");
    if (d[EI_CLASS] == ELFCLASS64) return Parse<Elf64Types>(path, d, f.size());
    if (d[EI_CLASS] == ELFCLASS32) return Parse<Elf32Types>(path, d, f.size());
    return Err(path + ": unknown ELF class");
}

Result<std::vector<std::string>> DefaultSearchDirs(uint16_t machine) {
    std::string triplet;
    switch (machine) {
        case EM_X86_64:
            triplet = "x86_64-linux-gnu";
            break;
        case EM_AARCH64:
            triplet = "aarch64-linux-gnu";
            break;
        case EM_386:
            triplet = "i386-linux-gnu";
            break;
        case EM_RISCV:
            triplet = "riscv64-linux-gnu";
            break;
        default:
            return Err("no Debian multiarch triplet for ELF machine " + std::to_string(machine));
    }
    return std::vector<std::string>{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib", "/usr/lib"};
}

namespace {

struct Loaded {
    std::string path;       // logical path
    std::string host_path;  // resolved host path
    ElfInfo info;
    int parent = -1;  // index of the object that loaded it (for the RPATH chain)
};

std::string ExpandTokens(const std::string& dir, const std::string& origin, uint16_t machine) {
    std::string out;
    for (size_t i = 0; i < dir.size();) {
        auto match = [&](const char* tok) {
            size_t n = std::strlen(tok);
            if (dir.compare(i, n + 1, std::string("$") + tok) == 0) return n + 1;
            if (dir.compare(i, n + 3, std::string("${") + tok + "}") == 0) return n + 3;
            return size_t{0};
        };
        if (dir[i] == '$') {
            if (size_t n = match("ORIGIN")) {
                out += origin;
                i += n;
                continue;
            }
            if (size_t n = match("PLATFORM")) {
                out += machine == EM_AARCH64 ? "aarch64" : "x86_64";
                i += n;
                continue;
            }
            if (size_t n = match("LIB")) {
                out += machine == EM_AARCH64 ? "lib/aarch64-linux-gnu" : "lib/x86_64-linux-gnu";
                i += n;
                continue;
            }
        }
        out += dir[i++];
    }
    return out;
}

}  // namespace

Result<std::vector<ResolvedObject>> ElfClosure(const std::vector<std::string>& roots,
                                               const ClosureOptions& opts) {
    std::vector<Loaded> loaded;
    std::vector<ResolvedObject> out;
    std::map<std::string, int> by_name;       // needed names, sonames, logical paths
    std::map<std::string, int> by_host_path;  // the same file under two names loads once

    auto note_names = [&](int idx, const std::string& name) {
        by_name.emplace(name, idx);
        by_name.emplace(loaded[idx].path, idx);
        if (!loaded[idx].info.soname.empty()) by_name.emplace(loaded[idx].info.soname, idx);
    };

    // Tries a logical path as a candidate for `requester`: exists, is ELF, same class+machine.
    auto try_candidate =
        [&](const std::string& logical,
            const ElfInfo* requester) -> std::optional<std::pair<std::string, ElfInfo>> {
        auto host = ResolveInRoot(opts.sysroot, logical);
        if (!host) return std::nullopt;
        if (!IsElfFile(*host)) return std::nullopt;
        auto info = ReadElf(*host);
        if (!info) return std::nullopt;
        if (requester != nullptr &&
            (info->elf_class != requester->elf_class || info->machine != requester->machine))
            return std::nullopt;
        return std::make_pair(*host, std::move(*info));
    };

    std::deque<int> queue;
    auto add_loaded = [&](const std::string& name, const std::string& logical,
                          const std::string& host, ElfInfo info, int parent) -> int {
        if (auto it = by_host_path.find(host); it != by_host_path.end()) {
            by_name.emplace(name, it->second);
            return it->second;
        }
        int idx = static_cast<int>(loaded.size());
        loaded.push_back(Loaded{logical, host, std::move(info), parent});
        by_host_path.emplace(host, idx);
        note_names(idx, name);
        out.push_back(ResolvedObject{name, logical, host});
        queue.push_back(idx);
        return idx;
    };

    for (const std::string& root : roots) {
        auto info = ReadElf(root);
        if (!info) return info.error();
        // The root itself is shipped by the caller; we only record it to walk its needs.
        if (by_host_path.count(root) == 0) {
            int idx = static_cast<int>(loaded.size());
            loaded.push_back(Loaded{root, root, *info, -1});
            by_host_path.emplace(root, idx);
            queue.push_back(idx);
        }
        if (!info->interp.empty() && by_name.count(info->interp) == 0) {
            auto cand = try_candidate(info->interp, nullptr);
            if (!cand)
                return Err(root + ": program interpreter " + info->interp + " not found under " +
                           opts.sysroot);
            int idx = add_loaded(info->interp, info->interp, cand->first, cand->second, -1);
            // glibc's loader is itself loaded: it answers to its soname (libc asks for it).
            (void)idx;
        }
    }

    std::vector<std::string> default_dirs = opts.search_dirs;

    while (!queue.empty()) {
        int idx = queue.front();
        queue.pop_front();
        // Copy: `loaded` may grow while we iterate.
        const ElfInfo info = loaded[idx].info;
        const std::string origin = Dirname(loaded[idx].path);
        if (default_dirs.empty() && !info.needed.empty())
            default_dirs = PEINIT_TRY(DefaultSearchDirs(info.machine));
        for (const std::string& need : info.needed) {
            if (by_name.count(need) != 0) continue;
            std::vector<std::string> dirs;
            if (need.find('/') == std::string::npos) {
                if (info.runpath.empty()) {
                    // DT_RPATH of this object and of every object up the chain that loaded it.
                    for (int p = idx; p >= 0; p = loaded[p].parent) {
                        if (!loaded[p].info.runpath.empty()) continue;
                        for (const auto& d : loaded[p].info.rpath)
                            dirs.push_back(ExpandTokens(d, Dirname(loaded[p].path), info.machine));
                    }
                }
                for (const auto& d : info.runpath)
                    dirs.push_back(ExpandTokens(d, origin, info.machine));
                for (const auto& d : default_dirs) dirs.push_back(d);
            }
            std::optional<std::pair<std::string, ElfInfo>> found;
            std::string logical;
            if (need.find('/') != std::string::npos) {
                logical = need;
                found = try_candidate(logical, &info);
            } else {
                for (const auto& d : dirs) {
                    logical = (d.size() > 1 && d.back() == '/' ? d.substr(0, d.size() - 1) : d) +
                              "/" + need;
                    found = try_candidate(logical, &info);
                    if (found) break;
                }
            }
            if (!found) {
                std::string searched;
                for (const auto& d : dirs) searched += (searched.empty() ? "" : ":") + d;
                return Err(need + " (needed by " + loaded[idx].path + ") not found" +
                           (searched.empty() ? "" : " in " + searched));
            }
            add_loaded(need, logical, found->first, std::move(found->second), idx);
        }
    }
    return out;
}

}  // namespace peinit::image
