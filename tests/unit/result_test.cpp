#include "peinit/core/result.h"

#include <gtest/gtest.h>

namespace peinit {
namespace {

Result<int> Half(int x) {
    if (x % 2 != 0) return Err("odd: " + std::to_string(x), EINVAL);
    return x / 2;
}

Result<int> Quarter(int x) {
    int h = PEINIT_TRY(Half(x));
    return PEINIT_TRY(Half(h));
}

Result<void> Check(int x) {
    PEINIT_TRY(Half(x));
    return Ok();
}

TEST(Result, ValueAndError) {
    auto ok = Half(8);
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, 4);
    auto bad = Half(3);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(), "odd: 3");
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_EQ(bad.value_or(-1), -1);
}

TEST(Result, TryPropagatesFirstError) {
    EXPECT_EQ(*Quarter(8), 2);
    auto r = Quarter(6);  // 6 -> 3 -> odd
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "odd: 3");
    EXPECT_TRUE(Check(2));
    EXPECT_FALSE(Check(1));
}

TEST(Result, FromErrnoKeepsCodeAndText) {
    Error e = Error::FromErrno("open /x", ENOENT);
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.message(), "open /x: No such file or directory");
    EXPECT_EQ(e.Context("unit a: ").message(), "unit a: open /x: No such file or directory");
    EXPECT_EQ(e.Context("unit a: ").code(), ENOENT);
}

}  // namespace
}  // namespace peinit
