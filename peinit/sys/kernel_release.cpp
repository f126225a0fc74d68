#include "peinit/sys/kernel_release.h"

#include <sys/utsname.h>

namespace peinit {

Result<std::string> RunningKernelRelease() {
    struct utsname names {};
    if (uname(&names) != 0) return ErrnoErr("uname");
    return std::string(names.release);
}

}  // namespace peinit
