// /sbin/init of the real root in the switch-root boot test: proves peinit handed off (we are
// PID 1 on the ext4 root, the lock is in force, the early mounts came along), then powers off.
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "channel.h"

static void report(const char* name, int ok, const char* detail) {
  printf(ok ? "PROBE %s ok\n" : "PROBE %s FAIL %s\n", name, detail);
  channel_flush();
}

static int file_is(const char* path, const char* want) {
  char buf[64] = {0};
  FILE* f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return strncmp(buf, want, strlen(want)) == 0;
}

int main(void) {
  channel_stdout();  // the results channel (channel.h)
  report("root_init_is_pid1", getpid() == 1, "not PID 1");
  struct statfs sfs;
  report("root_is_ext4", statfs("/", &sfs) == 0 && sfs.f_type == EXT4_SUPER_MAGIC,
         "/ is not ext4");
  report("proc_moved", file_is("/proc/sys/kernel/module_loading_locked", "1"),
         "/proc not mounted or not locked");
  struct stat st;
  report("dev_moved", stat("/dev/vda", &st) == 0 && S_ISBLK(st.st_mode), "/dev/vda missing");
  report("initramfs_init_gone", stat("/init", &st) != 0, "/init of the initramfs visible");
  report("printk_devkmsg_ratelimit", file_is("/proc/sys/kernel/printk_devkmsg", "ratelimit"),
         "kernel.printk_devkmsg is not the kernel's ratelimit");
  sync();
  reboot(RB_POWER_OFF);
  return 1;
}
