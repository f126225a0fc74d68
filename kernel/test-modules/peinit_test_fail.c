// SPDX-License-Identifier: GPL-2.0
/*
 * peinit test module: init fails with -errno (module parameter).
 * It exports a symbol so that peinit_test_fail_dep has a hard dependency on it:
 * the module stage must skip that dependent, naming this module as the reason.
 */
#include <linux/errno.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static int errno_value = ENODEV;
module_param(errno_value, int, 0444);
MODULE_PARM_DESC(errno_value, "positive errno init returns negated (default ENODEV)");

int peinit_test_fail_value(void)
{
	return errno_value;
}
EXPORT_SYMBOL_GPL(peinit_test_fail_value);

static int __init peinit_test_fail_init(void)
{
	int err = errno_value > 0 ? errno_value : ENODEV;

	pr_info("peinit_test_fail: init failing with -%d\n", err);
	return -err;
}

module_init(peinit_test_fail_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: init always fails");
