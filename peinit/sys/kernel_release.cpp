#include "peinit/sys/kernel_release.h"

#include <sys/stat.h>
#include <sys/utsname.h>

#include <fstream>
#include <sstream>

namespace peinit {

Result<std::string> RunningKernelRelease() {
    struct utsname names {};
    if (uname(&names) != 0) return ErrnoErr("uname");
    return std::string(names.release);
}

Result<ModuleTreeLayout> ReadModuleTreeLayout(const std::string& dir_in) {
    std::string dir = dir_in;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    auto is_dir = [](const std::string& p) {
        struct stat st;
        return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    };
    if (!is_dir(dir)) return Err(dir + " is not a directory");
    ModuleTreeLayout layout;
    layout.root = is_dir(dir + "/modroot/lib/modules") ? dir + "/modroot" : dir;
    struct stat st;
    if (::stat((dir + "/kver").c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        std::ifstream in(dir + "/kver");
        std::stringstream ss;
        ss << in.rdbuf();
        if (!in) return ErrnoErr(dir + "/kver");
        std::string kver = ss.str();
        while (!kver.empty() && (kver.back() == '\n' || kver.back() == ' ')) kver.pop_back();
        if (kver.empty()) return Err(dir + "/kver is empty");
        layout.kver = kver;
    }
    return layout;
}

}  // namespace peinit
