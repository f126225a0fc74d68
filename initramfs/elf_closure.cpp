#include "initramfs/elf_closure.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include "peinit/sys/elf_file.h"

namespace peinit::image {

namespace {

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

// The dynamic section's entries: DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, their strings read
// from the section's linked string table.
Result<void> ReadDynamic(const ElfFile& f, Elf_Scn* scn, const GElf_Shdr& shdr, ElfInfo& info) {
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr) return Err(".dynamic section: " + ElfError());
    GElf_Dyn dyn;
    for (int i = 0; gelf_getdyn(data, i, &dyn) != nullptr && dyn.d_tag != DT_NULL; ++i) {
        if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RPATH && dyn.d_tag != DT_RUNPATH &&
            dyn.d_tag != DT_SONAME) {
            continue;
        }
        const char* s = elf_strptr(f.get(), shdr.sh_link, dyn.d_un.d_val);
        if (s == nullptr) {
            return Err("dynamic entry " + std::to_string(i) + ": string offset " +
                       std::to_string(dyn.d_un.d_val) + ": " + ElfError());
        }
        if (dyn.d_tag == DT_NEEDED) {
            info.needed.emplace_back(s);
        } else if (dyn.d_tag == DT_SONAME) {
            info.soname = s;
        } else {
            auto& dirs = dyn.d_tag == DT_RPATH ? info.rpath : info.runpath;
            for (auto& dir : SplitColon(s)) dirs.push_back(std::move(dir));
        }
    }
    return Ok();
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
    auto f = ElfFile::Open(path);
    return f && f->IsElf();
}

bool IsElfRelocatable(const std::string& path) {
    auto f = ElfFile::Open(path);
    if (!f || !f->IsElf()) return false;
    auto ehdr = f->Header();
    return ehdr && ehdr->e_type == ET_REL;
}

Result<ElfInfo> ReadElf(const std::string& path) {
    const ElfFile f = PEINIT_TRY(ElfFile::Open(path));
    if (!f.IsElf()) return Err(path + ": not an ELF file");
    auto bad = [&](const std::string& what) { return Err(path + ": malformed ELF: " + what); };
    auto ehdr = f.Header();
    if (!ehdr) return bad(ehdr.error().message());
    ElfInfo info;
    info.elf_class = ehdr->e_ident[EI_CLASS];
    info.machine = ehdr->e_machine;
    info.type = ehdr->e_type;

    std::size_t phnum = 0;
    if (elf_getphdrnum(f.get(), &phnum) != 0) return bad("program headers: " + ElfError());
    bool dynamic = false;
    for (std::size_t i = 0; i < phnum; ++i) {
        GElf_Phdr ph;
        if (gelf_getphdr(f.get(), static_cast<int>(i), &ph) == nullptr) {
            return bad("program header " + std::to_string(i) + ": " + ElfError());
        }
        if (ph.p_type == PT_DYNAMIC) dynamic = true;
        if (ph.p_type != PT_INTERP) continue;
        Elf_Data* interp = elf_getdata_rawchunk(f.get(), static_cast<int64_t>(ph.p_offset),
                                                ph.p_filesz, ELF_T_BYTE);
        if (interp == nullptr || interp->d_size == 0) return bad("PT_INTERP: " + ElfError());
        const char* text = static_cast<const char*>(interp->d_buf);
        info.interp.assign(text, strnlen(text, interp->d_size));
    }
    if (!dynamic) return info;  // static

    // The loader reads PT_DYNAMIC; its contents are the .dynamic section's, which libelf reads
    // (and checks) with the string table the section links to.
    std::size_t shnum = 0;
    if (elf_getshdrnum(f.get(), &shnum) != 0) return bad("section headers: " + ElfError());
    for (Elf_Scn* scn = elf_nextscn(f.get(), nullptr); scn != nullptr;
         scn = elf_nextscn(f.get(), scn)) {
        auto shdr = f.SectionHeader(scn);
        if (!shdr) return bad(shdr.error().message());
        if (shdr->sh_type == SHT_DYNAMIC) {
            if (auto read = ReadDynamic(f, scn, *shdr, info); !read) {
                return bad(read.error().message());
            }
            return info;
        }
    }
    return bad("PT_DYNAMIC but no .dynamic section (section headers stripped?): its libraries "
               "cannot be read");
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
    // What the first root dlopens: searched like its own needs, but optional.
    std::set<std::string> optional_needs;
    if (!loaded.empty()) {
        for (const auto& name : opts.dlopened) {
            loaded[0].info.needed.push_back(name);
            optional_needs.insert(name);
        }
    }

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
            if (!found && idx == 0 && optional_needs.count(need) != 0) {
                if (opts.missing_dlopened != nullptr) opts.missing_dlopened->push_back(need);
                continue;
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
