#pragma once

// LinuxKernel: the Kernel seam implemented with the real system calls.

#include "peinit/sys/kernel.h"

namespace peinit {

class LinuxKernel final : public Kernel {
  public:
    Result<void> Mount(const std::string& source, const std::string& target,
                       const std::string& fstype, unsigned long flags,
                       const std::string& data) override;
    Result<void> MoveMount(const std::string& from, int to_fd) override;
    Result<unsigned long> MountFlags(const std::string& path) override;
    Result<void> Umount(const std::string& target, int flags) override;
    Result<void> MakeDir(const std::string& path, mode_t mode) override;
    Result<void> Mknod(const std::string& path, mode_t mode, dev_t dev) override;
    Result<void> FinitModule(int fd, const std::string& name, const std::string& params,
                             int flags) override;
    Result<void> InitModule(const std::string& name, std::span<const std::byte> image,
                            const std::string& params) override;
    Result<void> DeleteModule(const std::string& name, unsigned int flags) override;
    Result<std::string> ReadSysctl(const std::string& key) override;
    Result<void> WriteSysctl(const std::string& key, const std::string& value) override;
    Result<std::string> ReadSysfs(const std::string& path) override;
    Result<void> WriteSysfs(const std::string& path, const std::string& value) override;
    Result<int> ModuleLockdown(unsigned int op, unsigned int trigger) override;
    bool HasCapability(int cap) override;
    Result<void> AuditUserMessage(int type, const std::string& text) override;
    Result<void> Reboot(int cmd) override;
    Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                        const SpawnOptions& options) override;
    Result<void> Exec(const std::vector<std::string>& argv,
                      const std::vector<std::string>& env) override;
    Result<void> SwitchRoot(const std::string& new_root) override;
};

// Marks every open descriptor from `first` on close-on-exec, read from /proc/self/fd: what
// Exec falls back to where close_range(CLOSE_RANGE_CLOEXEC) is missing (kernels before 5.11).
Result<void> MarkCloseOnExecFrom(int first);

}  // namespace peinit
