// The shared command-line syntax (peinit/core/args.h): the hand-written engine of the image
// binaries and the Boost.program_options engine of the host tools give the same result, or the
// same message, for every input.

#include "peinit/core/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peinit/tools/host_args.h"

namespace peinit::args {
namespace {

constexpr OptionSpec kSpec[] = {
    {"--root", Arity::kValue},
    {"--output", Arity::kValue, 'o'},
    {"--module", Arity::kList},
    {"--json", Arity::kFlag},
};

// A parse result as one line: operands, options in name order, help; or "error: MESSAGE".
std::string Show(const Result<Parsed>& r) {
    if (!r) return "error: " + r.error().message();
    std::string out = "operands:";
    for (const auto& o : r->operands) out += " [" + o + "]";
    for (const auto& o : kSpec) {
        if (!r->Has(o.name)) continue;
        out += " " + std::string(o.name) + "=";
        for (const auto& v : r->Values(o.name)) out += "[" + v + "]";
    }
    if (r->help) out += " help";
    return out;
}

struct Both {
    std::string own, host;
};

Both ParseBoth(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return {Show(Parse(argv, kSpec)), Show(ParseHost(argv, kSpec))};
}

struct Case {
    std::vector<std::string> args;
    std::string want;
};

TEST(ArgsTest, BothEnginesAgree) {
    const Case cases[] = {
        {{}, "operands:"},
        {{"--root", "r", "a", "--json", "b"}, "operands: [a] [b] --root=[r] --json=[]"},
        {{"--root=r"}, "operands: --root=[r]"},
        {{"--root", "--json"}, "operands: --root=[--json]"},  // a value may start with '-'
        {{"--root=--x"}, "operands: --root=[--x]"},
        {{"--root=a=b"}, "operands: --root=[a=b]"},
        {{"-o", "f"}, "operands: --output=[f]"},
        {{"-of"}, "operands: --output=[f]"},
        {{"--module", "a", "--module=b"}, "operands: --module=[a][b]"},
        {{"--json", "--json"}, "operands: --json=[][]"},
        {{"-", "x"}, "operands: [-] [x]"},
        {{"a", "--", "--json", "-o", "--"}, "operands: [a] [--json] [-o] [--]"},
        {{"--"}, "operands:"},
        {{"--help"}, "operands: help"},
        {{"-h", "x"}, "operands: [x] help"},
        {{"--root", "r", "--help"}, "operands: --root=[r] help"},
        // Errors, each naming the option.
        {{"--bogus"}, "error: unknown option \"--bogus\""},
        {{"--bogus=3"}, "error: unknown option \"--bogus\""},
        {{"--roo", "x"}, "error: unknown option \"--roo\""},  // no abbreviations
        {{"-x"}, "error: unknown option \"-x\""},
        {{"--=x"}, "error: unknown option \"--\""},
        {{"--root"}, "error: option --root needs a value"},
        {{"--root="}, "error: option --root needs a value"},
        {{"--root", ""}, "error: option --root needs a value"},
        {{"--module", "a", "--module="}, "error: option --module needs a value"},
        {{"-o"}, "error: option --output needs a value"},
        {{"--json=1"}, "error: option --json takes no value"},
        {{"--help=x"}, "error: option --help takes no value"},
        {{"--root", "a", "--root", "b"}, "error: option --root given more than once"},
        {{"-o", "a", "--output=b"}, "error: option --output given more than once"},
    };
    for (const auto& c : cases) {
        std::string shown;
        for (const auto& a : c.args) shown += " '" + a + "'";
        Both got = ParseBoth(c.args);
        EXPECT_EQ(got.own, c.want) << "hand-written:" << shown;
        EXPECT_EQ(got.host, c.want) << "Boost.program_options:" << shown;
    }
}

TEST(ArgsTest, ValueAccessors) {
    std::vector<std::string> args = {"--module", "a", "x", "--module", "b", "--root", "r"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    auto r = Parse(argv, kSpec);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->Value("--root"), "r");
    EXPECT_EQ(r->Value("--output"), std::nullopt);
    EXPECT_THAT(r->Values("--module"), testing::ElementsAre("a", "b"));
    EXPECT_THAT(r->Values("--output"), testing::IsEmpty());
    EXPECT_FALSE(r->Has("--json"));
    EXPECT_THAT(r->operands, testing::ElementsAre("x"));
}

TEST(ArgsTest, VersionIsTheProjectVersion) {
    EXPECT_THAT(VersionText("peinitctl"), testing::MatchesRegex("peinitctl \\(peinit\\) [0-9]+\\.[0-9]+\\.[0-9]+\n"));
}

}  // namespace
}  // namespace peinit::args
