// SPDX-License-Identifier: GPL-2.0
/*
 * peinit test module peinit_test_bridge: the driver of the platform device
 * "peinit_test_bridge" (peinit_test_parent registers it).  Binding to it
 * registers a child platform device "peinit_test_leaf" (MODALIAS
 * platform:peinit_test_leaf), which only peinit_test_leaf drives: the device
 * appears only because this driver was loaded, after coldplug looked at the
 * devices present.
 */
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>

static int peinit_test_bridge_probe(struct platform_device *pdev)
{
	struct platform_device *leaf;

	leaf = platform_device_register_data(&pdev->dev, "peinit_test_leaf", PLATFORM_DEVID_NONE,
					     NULL, 0);
	if (IS_ERR(leaf))
		return PTR_ERR(leaf);
	platform_set_drvdata(pdev, leaf);
	dev_info(&pdev->dev, "peinit_test_bridge: bound, registered device peinit_test_leaf\n");
	return 0;
}

static int peinit_test_bridge_remove(struct platform_device *pdev)
{
	platform_device_unregister(platform_get_drvdata(pdev));
	return 0;
}

static const struct platform_device_id peinit_test_bridge_ids[] = {
	{ .name = "peinit_test_bridge" },
	{}
};
MODULE_DEVICE_TABLE(platform, peinit_test_bridge_ids);

static struct platform_driver peinit_test_bridge_driver = {
	.probe = peinit_test_bridge_probe,
	.remove = peinit_test_bridge_remove,
	.id_table = peinit_test_bridge_ids,
	.driver = { .name = "peinit_test_bridge" },
};
module_platform_driver(peinit_test_bridge_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("peinit test: driver whose device registers a child device");
