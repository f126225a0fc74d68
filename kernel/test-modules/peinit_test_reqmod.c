// SPDX-License-Identifier: GPL-2.0
/*
 * peinit test module peinit_test_reqmod: its init sleeps delay_ms, then
 * demand-loads the module named by the "request" parameter with
 * request_module() and prints what it returned.  The kernel boot test loads
 * it while module_lockdown(LOCK) waits for the loads in flight: the demand
 * load must be refused at once, not deadlock with LOCK.
 */
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/kmod.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static unsigned int delay_ms;
module_param(delay_ms, uint, 0444);
MODULE_PARM_DESC(delay_ms, "milliseconds init sleeps before the request (default 0)");

static char *request;
module_param(request, charp, 0444);
MODULE_PARM_DESC(request, "module name or alias to request_module() (default: none)");

static int __init peinit_test_reqmod_init(void)
{
	int ret;

	pr_info("peinit_test_reqmod: init start delay_ms=%u\n", delay_ms);
	msleep(delay_ms);
	if (request && request[0]) {
		ret = request_module("%s", request);
		pr_info("peinit_test_reqmod: request_module(%s)=%d\n", request, ret);
	}
	pr_info("peinit_test_reqmod: loaded\n");
	return 0;
}

static void __exit peinit_test_reqmod_exit(void)
{
	pr_info("peinit_test_reqmod: unloaded\n");
}

module_init(peinit_test_reqmod_init);
module_exit(peinit_test_reqmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: request_module() from a module init");
