// SPDX-License-Identifier: GPL-2.0
/*
 * peinit test module peinit_test_leaf: the driver of the platform device
 * "peinit_test_leaf", which appears only once peinit_test_bridge is bound
 * coldplug settles before the lock).
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>

static int peinit_test_leaf_probe(struct platform_device *pdev)
{
	dev_info(&pdev->dev, "peinit_test_leaf: bound\n");
	return 0;
}

static const struct platform_device_id peinit_test_leaf_ids[] = {
	{ .name = "peinit_test_leaf" },
	{}
};
MODULE_DEVICE_TABLE(platform, peinit_test_leaf_ids);

static struct platform_driver peinit_test_leaf_driver = {
	.probe = peinit_test_leaf_probe,
	.id_table = peinit_test_leaf_ids,
	.driver = { .name = "peinit_test_leaf" },
};
module_platform_driver(peinit_test_leaf_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: driver of a device that appears when another driver binds");
