// The image's provenance record (peinit/record/image.h): written by peinit-image, read by
// PID 1 and peinitctl through the same type.

#include "peinit/record/image.h"

#include <gtest/gtest.h>

namespace peinit {
namespace {

ImageInfo Sample() {
    ImageInfo info;
    info.generator = "peinit-image 0.3.0";
    info.kernel_release = "6.1.0-57-amd64";
    info.module_mode = "host";
    info.key_fingerprint = std::string(64, 'a');
    info.built = IsoUtc(1700000000);
    return info;
}

TEST(ImageInfo, RoundTrip) {
    ImageInfo info = Sample();
    std::string json = info.ToJson();
    EXPECT_NE(json.find("\"kernel_release\" : \"6.1.0-57-amd64\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"version\" : 1"), std::string::npos) << json;
    auto back = ImageInfo::FromJson(json, "image.json");
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->version, 1);
    EXPECT_EQ(back->generator, info.generator);
    EXPECT_EQ(back->kernel_release, info.kernel_release);
    EXPECT_EQ(back->module_mode, info.module_mode);
    EXPECT_EQ(back->key_fingerprint, info.key_fingerprint);
    EXPECT_EQ(back->built, "2023-11-14T22:13:20Z");
    EXPECT_EQ(back->ToJson(), json);
}

TEST(ImageInfo, IsoUtcOfTheEpoch) { EXPECT_EQ(IsoUtc(0), "1970-01-01T00:00:00Z"); }

TEST(ImageInfo, NewerMajorVersionIsRefusedNamingBoth) {
    ImageInfo info = Sample();
    info.version = 2;
    auto r = ImageInfo::FromJson(info.ToJson(), "/etc/peinit/image.json");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(),
              "/etc/peinit/image.json: version 2 is newer than this reader's 1 (the image was "
              "built by a newer peinit-image)");
}

TEST(ImageInfo, UnknownFieldsOfTheSameVersionAreIgnored) {
    std::string json = Sample().ToJson();
    json.insert(json.find('{') + 1, "\n    \"future\" : \"x\",");
    auto r = ImageInfo::FromJson(json, "image.json");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->module_mode, "host");
}

TEST(ImageInfo, BadInputNamesFileLineOrField) {
    auto syntax = ImageInfo::FromJson("{\n  \"version\": 1,\n  oops\n}\n", "x.json");
    ASSERT_FALSE(syntax);
    EXPECT_EQ(syntax.error().message().rfind("x.json:3: ", 0), 0u) << syntax.error().message();

    ImageInfo bad_mode = Sample();
    bad_mode.module_mode = "everything";
    auto mode = ImageInfo::FromJson(bad_mode.ToJson(), "x.json");
    ASSERT_FALSE(mode);
    EXPECT_NE(mode.error().message().find("\"module_mode\" must be"), std::string::npos);

    auto missing = ImageInfo::FromJson("{\"version\": 1, \"generator\": \"g\"}", "x.json");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message(), "x.json: no \"kernel_release\"");

    auto version = ImageInfo::FromJson("{\"version\": \"one\"}", "x.json");
    ASSERT_FALSE(version);
    EXPECT_NE(version.error().message().find("positive integer"), std::string::npos);
}

}  // namespace
}  // namespace peinit
