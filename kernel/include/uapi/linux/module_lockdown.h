/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * module_lockdown(2): one-way lock of kernel module loading/unloading.
 *
 * This file is the single source of the ABI shared between the patched
 * kernel (include/uapi/linux/module_lockdown.h in the kernel tree) and
 * userspace (peinit).  Both copies must stay byte-identical.
 *
 *   long syscall(__NR_module_lockdown, unsigned int op, unsigned int trigger);
 *
 * MODULE_LOCKDOWN_QUERY: no privilege needed.  Returns 0 (unlocked) or
 *   1 (locked).  trigger must be 0 or one of the MODULE_LOCKDOWN_TRIGGER_*
 *   values, otherwise -EINVAL.
 * MODULE_LOCKDOWN_LOCK: requires CAP_SYS_ADMIN in the initial user
 *   namespace (SeTcbPrivilege), else -EPERM and the flag is unchanged.
 *   trigger must be one of MODULE_LOCKDOWN_TRIGGER_*, else -EINVAL.
 *   Returns 0; locking an already locked kernel is a no-op returning 0.
 *   Once locked, init_module(2), finit_module(2) and delete_module(2)
 *   fail with -EPERM for every caller and request_module() fails without
 *   starting the user-mode helper, until the next reboot.  LOCK waits for
 *   the loads and unloads in flight: when it returns, each has finished or
 *   been refused.
 * MODULE_LOCKDOWN_DISABLE_AUTOLOAD: same privilege and trigger rules as
 *   LOCK.  One-way: from then on request_module() fails with -EPERM at
 *   once, for every caller, without starting the user-mode helper
 *   (AutoLoadPolicy "disabled").  Explicit loads are not affected.
 * MODULE_LOCKDOWN_SEAL_MODPROBE: same privilege and trigger rules as LOCK.
 *   One-way: from then on writing kernel.modprobe fails with -EPERM for
 *   every caller; its value stays what it was when the seal was set.
 * MODULE_LOCKDOWN_QUERY_AUTOLOAD, MODULE_LOCKDOWN_QUERY_MODPROBE: like
 *   QUERY (no privilege, same trigger rule); return 1 once autoload is
 *   disabled / kernel.modprobe is sealed, else 0.
 * Repeating a one-way op is a no-op returning 0.  Every set and every
 * refusal is audited (refusals rate-limited, with a suppressed count).
 * Any other op: -EINVAL.
 */
#ifndef _UAPI_LINUX_MODULE_LOCKDOWN_H
#define _UAPI_LINUX_MODULE_LOCKDOWN_H

/* Operations (first argument). */
#define MODULE_LOCKDOWN_QUERY			0
#define MODULE_LOCKDOWN_LOCK			1
#define MODULE_LOCKDOWN_DISABLE_AUTOLOAD	2
#define MODULE_LOCKDOWN_SEAL_MODPROBE		3
#define MODULE_LOCKDOWN_QUERY_AUTOLOAD		4
#define MODULE_LOCKDOWN_QUERY_MODPROBE		5

/* Triggers (second argument): who/what asked for the lock (audited). */
#define MODULE_LOCKDOWN_TRIGGER_REGISTRY	1	/* "registry" */
#define MODULE_LOCKDOWN_TRIGGER_RUNTIME		2	/* "runtime-syscall" */
#define MODULE_LOCKDOWN_TRIGGER_BOOT		3	/* "boot-orchestrator-step" */

/* Sysctl exposing the flag read-only: /proc/sys/kernel/<name>. */
#define MODULE_LOCKDOWN_SYSCTL_PATH	"/proc/sys/kernel/module_loading_locked"
/* The same for DISABLE_AUTOLOAD and SEAL_MODPROBE (0 or 1, read-only). */
#define MODULE_LOCKDOWN_AUTOLOAD_SYSCTL_PATH \
	"/proc/sys/kernel/module_autoload_disabled"
#define MODULE_LOCKDOWN_MODPROBE_SYSCTL_PATH \
	"/proc/sys/kernel/modprobe_sealed"

/*
 * System call number (x86-64 native ABI only; not wired for i386/x32).
 * Kept here so userspace built against unpatched host headers can call it.
 */
#if defined(__x86_64__) && !defined(__ILP32__)
#ifndef __NR_module_lockdown
#define __NR_module_lockdown 1030
#endif
#endif

#endif /* _UAPI_LINUX_MODULE_LOCKDOWN_H */
