// Reusable QEMU launcher for boot tests: boots a kernel + initramfs under
// TCG, captures everything the guest prints on its serial console and on the
// results channel, enforces a timeout and reports how QEMU ended.
//
// The results channel: the guest's third serial port, /dev/ttyS2 (both kernels have the 8250
// driver built in with the four legacy ports), backed by a file on the host. The kernel and
// PID 1 never write to it (their console is ttyS0; `peinit.collect=` uses ttyS1), so what the
// boot tests' probes write there (channel.h) cannot interleave with the kernel's own lines,
// which stay on the console for assertions about them.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace peinit::testing {

// A QEMU monitor (HMP) command sent once the guest's console has printed `after`, e.g.
// {"PROBE-MARK add", "device_add virtio-rng-pci,bus=rp1,id=rng0"}. Steps run in order; each
// waits for its own text (searched in the whole output so far).
// The text is looked for on the console and on the results channel.
struct MonitorStep {
  std::string after;
  std::string command;
};

struct QemuOptions {
  std::string kernel;  // bzImage
  std::string initrd;  // initramfs (cpio, optionally compressed)
  // Extra kernel command line, appended to "console=ttyS0 panic=-1".
  std::string append;
  int smp = 2;
  int memory_mb = 512;
  std::chrono::seconds timeout{120};
  // The guest kernel must reach user space (print "Run ... as init process") within this. A boot
  // that does not hangs inside the kernel before any of the image runs; under TCG that happens
  // about once in a hundred boots (an RCU stall, "timer wakeup didn't happen", before /init).
  // run_qemu stops such a boot and boots once more with what is left of `timeout`, so that the
  // test judges the image and not the emulator. 0: no such limit.
  std::chrono::seconds user_space_within{60};
  // If non-empty, the serial output is also written to this file.
  std::string log_file;
  std::vector<std::string> extra_args;  // appended to the qemu command line
  // When non-empty, QEMU gets a monitor on a private unix socket and these are sent on it.
  std::vector<MonitorStep> monitor;
  std::string qemu_binary = "qemu-system-x86_64";
  // A TPM 2.0 for the guest (measured boot): a private `swtpm socket --tpm2` with its state in
  // the boot's own scratch directory, started before QEMU and killed after it, so parallel
  // boots (ctest -j) never share one; the guest sees a TPM TIS device (/dev/tpmrm0).
  bool tpm = false;
  std::string swtpm_binary = "swtpm";
};

struct QemuResult {
  std::string output;         // serial console output (and qemu's own stderr)
  std::string results;        // what the guest wrote to the results channel (/dev/ttyS2)
  bool launched = false;      // false: qemu could not be started (see error)
  bool timed_out = false;     // killed after QemuOptions::timeout
  // Killed because the kernel had not reached user space after QemuOptions::user_space_within
  // (in the second boot too when this is the result of a retry).
  bool stalled_before_user_space = false;
  // When the first boot stalled before user space and this is the second: what that boot was
  // (describe() and the last lines of its console). Empty otherwise.
  std::string retried_after;
  bool exited = false;        // qemu exited by itself
  int exit_status = -1;       // valid if exited
  int term_signal = 0;        // signal that ended qemu, if any
  std::chrono::milliseconds elapsed{0};
  std::string error;          // launch or I/O error
  std::vector<std::string> command;  // the argv used
  // What was sent on the monitor and what it answered (MonitorStep), for failure messages.
  std::string monitor_log;
  // --tpm: what swtpm printed (for failure messages).
  std::string swtpm_log;
  size_t monitor_steps_sent = 0;

  // True if the guest powered off / rebooted and qemu exited with status 0.
  bool clean_exit() const { return launched && exited && !timed_out && exit_status == 0; }
  // One-line human description ("exited 0 after 8.2 s", "timed out after 120 s", ...).
  std::string describe() const;
  // Output split into lines, '\r' removed.
  std::vector<std::string> lines() const;
  // The results channel split into lines, '\r' removed.
  std::vector<std::string> result_lines() const;
};

// The argv that run_qemu() would execute (for logging / reproduction). `monitor_socket`: the
// path of the monitor socket when options.monitor is used; `results_file`: the host file behind
// the results channel.
std::vector<std::string> qemu_command(const QemuOptions& options,
                                      const std::string& monitor_socket = "",
                                      const std::string& results_file = "",
                                      const std::string& tpm_socket = "");
// The swtpm argv for a TPM whose state lives in `state_dir` and whose control channel is the
// unix socket `socket` (QEMU's -tpmdev emulator connects to it).
std::vector<std::string> swtpm_command(const std::string& swtpm_binary,
                                       const std::string& state_dir, const std::string& socket);

// Boots and waits (a boot stalled before user space is booted once more, see
// QemuOptions::user_space_within). Never throws; problems are reported in the result.
QemuResult run_qemu(const QemuOptions& options);

// What the kernel prints as it starts the first user-space program (init/main.c).
inline constexpr const char* kUserSpaceMarker = " as init process";

// The guest device of the results channel (channel.h has the guest side).
inline constexpr const char* kResultsDevice = "/dev/ttyS2";

// Splits text into lines, '\r' removed.
std::vector<std::string> split_lines(const std::string& text);

}  // namespace peinit::testing
