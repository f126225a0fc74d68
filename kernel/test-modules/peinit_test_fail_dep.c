// SPDX-License-Identifier: GPL-2.0
/* peinit test module: hard dependency on peinit_test_fail (whose init always fails). */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

int peinit_test_fail_value(void);

static int __init peinit_test_fail_dep_init(void)
{
	pr_info("peinit_test_fail_dep: loaded, fail value=%d\n", peinit_test_fail_value());
	return 0;
}

module_init(peinit_test_fail_dep_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: depends on peinit_test_fail");
