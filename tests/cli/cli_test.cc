#include "cli/cli.h"

#include "gtest/gtest.h"
#include "tests/status_matchers.h"

namespace drr {
namespace {

using ::drr::testing::IsOk;

CommandLine Declared() {
  CommandLine cli;
  cli.Add("rotation", 3, "0 0 0", "angles");
  cli.Add("metrics-listen", 1, "0.0.0.0:9464", "address");
  cli.Add("output", 1, "drr", "name");
  cli.Alias('o', "output");
  cli.Add("verbose", 0, "", "switch");
  cli.Add("classes", CommandLine::kVariadic, "", "list");
  return cli;
}

TEST(CommandLineTest, ParsesMultiValueInlineAliasAndPositional) {
  CommandLine cli = Declared();
  ASSERT_THAT(
      cli.Parse({"render", "--rotation", "1", "-2.5", "3",
                 "--metrics-listen=:0", "-o", "out", "vol", "--verbose"}),
      IsOk());
  EXPECT_EQ(cli.positional(), (std::vector<std::string>{"render", "vol"}));
  EXPECT_EQ(*cli.Double("rotation", 1), -2.5);
  EXPECT_EQ(cli.Value("metrics-listen"), ":0");
  EXPECT_EQ(cli.Value("output"), "out");
  EXPECT_TRUE(cli.Given("verbose"));
}

TEST(CommandLineTest, VariadicOptionsTakeValuesUpToTheNextOption) {
  CommandLine cli = Declared();
  ASSERT_THAT(cli.Parse({"--classes", "1", "-3", "7", "--verbose"}), IsOk());
  EXPECT_EQ(cli.Values("classes"), (std::vector<std::string>{"1", "-3", "7"}));
  EXPECT_FALSE(Declared().Parse({"--classes", "--verbose"}).ok());
}

TEST(CommandLineTest, DefaultsApplyWhenNotGiven) {
  CommandLine cli = Declared();
  ASSERT_THAT(cli.Parse({}), IsOk());
  EXPECT_EQ(cli.Values("rotation"), (std::vector<std::string>{"0", "0", "0"}));
  EXPECT_FALSE(cli.Given("verbose"));
}

TEST(CommandLineTest, RejectsUnknownMissingRepeatedAndNonNumeric) {
  EXPECT_FALSE(Declared().Parse({"--nope"}).ok());
  EXPECT_FALSE(Declared().Parse({"--rotation", "1", "2"}).ok());
  EXPECT_FALSE(Declared().Parse({"-o", "a", "--output", "b"}).ok());
  CommandLine cli = Declared();
  ASSERT_THAT(cli.Parse({"--rotation", "1", "x", "nan"}), IsOk());
  EXPECT_FALSE(cli.Double("rotation", 1).ok());
  EXPECT_FALSE(cli.Double("rotation", 2).ok());
}

}  // namespace
}  // namespace drr
