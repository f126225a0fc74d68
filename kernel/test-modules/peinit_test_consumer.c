// SPDX-License-Identifier: GPL-2.0
/* peinit test module: hard dependency on peinit_test_provider. */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

int peinit_test_provider_value(void);

static int __init peinit_test_consumer_init(void)
{
	pr_info("peinit_test_consumer: loaded, provider value=%d\n",
		peinit_test_provider_value());
	return 0;
}

static void __exit peinit_test_consumer_exit(void)
{
	pr_info("peinit_test_consumer: unloaded\n");
}

module_init(peinit_test_consumer_init);
module_exit(peinit_test_consumer_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: consumer of peinit_test_provider");
