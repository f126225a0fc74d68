// SPDX-License-Identifier: GPL-2.0
/* peinit test module: exports a symbol that peinit_test_consumer needs. */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

int peinit_test_provider_value(void)
{
	return 42;
}
EXPORT_SYMBOL_GPL(peinit_test_provider_value);

static int __init peinit_test_provider_init(void)
{
	pr_info("peinit_test_provider: loaded\n");
	return 0;
}

static void __exit peinit_test_provider_exit(void)
{
	pr_info("peinit_test_provider: unloaded\n");
}

module_init(peinit_test_provider_init);
module_exit(peinit_test_provider_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: symbol provider");
