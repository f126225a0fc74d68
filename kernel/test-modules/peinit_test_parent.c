// SPDX-License-Identifier: GPL-2.0
/*
 * peinit test module peinit_test_parent: when loaded it registers the
 * platform device "peinit_test_bridge" (MODALIAS platform:peinit_test_bridge),
 * which only peinit_test_bridge drives.  With peinit_test_bridge and
 * peinit_test_leaf it makes a chain of devices that appear because a driver
 * loaded, as a PCI controller's or a USB host's children do: coldplug must
 * settle for peinit_test_leaf to be loaded before the lock.
 */
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/platform_device.h>

static struct platform_device *bridge;

static int __init peinit_test_parent_init(void)
{
	bridge = platform_device_register_simple("peinit_test_bridge", PLATFORM_DEVID_NONE,
						 NULL, 0);
	if (IS_ERR(bridge))
		return PTR_ERR(bridge);
	pr_info("peinit_test_parent: loaded, registered device peinit_test_bridge\n");
	return 0;
}

static void __exit peinit_test_parent_exit(void)
{
	platform_device_unregister(bridge);
	pr_info("peinit_test_parent: unloaded\n");
}

module_init(peinit_test_parent_init);
module_exit(peinit_test_parent_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: registers a platform device another test module drives");
