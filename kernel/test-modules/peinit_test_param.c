// SPDX-License-Identifier: GPL-2.0
/* peinit test module: prints its parameters in init. */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static char *message = "default";
module_param(message, charp, 0444);
MODULE_PARM_DESC(message, "string printed at init");

static int number;
module_param(number, int, 0444);
MODULE_PARM_DESC(number, "integer printed at init");

static int __init peinit_test_param_init(void)
{
	pr_info("peinit_test_param: loaded message=%s number=%d\n", message,
		number);
	return 0;
}

static void __exit peinit_test_param_exit(void)
{
	pr_info("peinit_test_param: unloaded\n");
}

module_init(peinit_test_param_init);
module_exit(peinit_test_param_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: module parameters");
