/* Guest side of the module boot tests (tests/boot/modules_boot_test.cpp): a static service that
 * prints what the module stage left behind, one prefixed line each, so the host can compare:
 *   PROC_MODULE <name> <state>        every line of /proc/modules
 *   SIG_ENFORCE <Y|N>                 /sys/module/module/parameters/sig_enforce
 *   RECORD <line>                     every line of /run/peinit/modules.json
 *   MODULES_PROBE done
 * on the results channel (channel.h). The unit gives it exit_action = "poweroff", so the boot
 * ends when it exits; before it exits, everything it wrote has left the port. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"

static void dump(const char* path, const char* prefix, int first_two_fields) {
  FILE* f = fopen(path, "r");
  if (f == NULL) {
    printf("%sUNREADABLE %s\n", prefix, path);
    return;
  }
  char line[4096];
  while (fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    if (first_two_fields) {
      /* /proc/modules: name size refcount deps state address */
      char name[256], size[64], refs[64], deps[2048], state[64];
      if (sscanf(line, "%255s %63s %63s %2047s %63s", name, size, refs, deps, state) == 5) {
        printf("%s%s %s\n", prefix, name, state);
      }
    } else {
      printf("%s%s\n", prefix, line);
    }
  }
  fclose(f);
}

int main(void) {
  channel_stdout();
  dump("/proc/modules", "PROC_MODULE ", 1);
  dump("/sys/module/module/parameters/sig_enforce", "SIG_ENFORCE ", 0);
  dump("/run/peinit/modules.json", "RECORD ", 0);
  printf("MODULES_PROBE done\n");
  channel_flush();
  return 0;
}
