#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/firewall/netsh_firewall.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Golden files live in tests/agent/testdata/netsh/ (tests run from the
// source root). RAMPART_UPDATE_GOLDEN=1 rewrites them.
constexpr char kGoldenDir[] = "tests/agent/testdata/netsh/";

IpPrefix P(std::string_view text) { return *IpPrefix::FromString(text); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void ExpectGolden(const std::string& actual, const std::string& name) {
  const std::string path = std::string(kGoldenDir) + name;
  if (std::getenv("RAMPART_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  ASSERT_TRUE(std::filesystem::exists(path))
      << path << " missing; run with RAMPART_UPDATE_GOLDEN=1";
  EXPECT_EQ(actual, ReadFile(path))
      << "differs from " << path << " (RAMPART_UPDATE_GOLDEN=1 rewrites)";
}

std::vector<FirewallEntry> Entries(const std::vector<std::string>& prefixes) {
  std::vector<FirewallEntry> out;
  for (const std::string& p : prefixes) {
    out.push_back({P(p), std::nullopt});
  }
  return out;
}

class NetshTest : public ::testing::Test {
 protected:
  NetshTest()
      : dir_((std::filesystem::temp_directory_path() /
              ("rampart-fw-netsh-" + std::to_string(::getpid())))
                 .string()) {}
  ~NetshTest() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<NetshFirewall> Make(NetshOptions options = {}) {
    if (options.output_dir.empty()) {
      options.output_dir = dir_;
    }
    options.sync = false;
    absl::StatusOr<std::unique_ptr<NetshFirewall>> fw =
        NetshFirewall::Create(options);
    EXPECT_TRUE(fw.ok()) << fw.status();
    return fw.ok() ? std::move(*fw) : nullptr;
  }

  std::string dir_;
};

TEST_F(NetshTest, SnapshotScriptMatchesGolden) {
  auto fw = Make({.addresses_per_rule = 2});
  ASSERT_TRUE(fw->ApplySnapshot(
                    Entries({"198.51.100.7", "203.0.113.0/24", "2001:db8::/64",
                             "198.51.100.9", "2001:db8:5::7"}))
                  .ok());
  const std::string script = ReadFile(fw->script_path());
  EXPECT_EQ(script, fw->RenderScript());
  ExpectGolden(script, "snapshot.ps1");
  EXPECT_THAT(fw->LastChangedRulesForTest(), ElementsAre(1, 2, 3));
}

TEST_F(NetshTest, DeltaRewritesOnlyTheChangedRules) {
  auto fw = Make({.addresses_per_rule = 2});
  ASSERT_TRUE(fw->ApplySnapshot(
                    Entries({"198.51.100.7", "203.0.113.0/24", "2001:db8::/64",
                             "198.51.100.9", "2001:db8:5::7"}))
                  .ok());
  const std::string before = ReadFile(fw->script_path());
  // Remove one prefix of rule 1; add one (fills rule 1's hole) and another
  // (fills rule 3).
  ASSERT_TRUE(
      fw->ApplyDelta(Entries({"192.0.2.77", "192.0.2.78"}), {P("198.51.100.9")})
          .ok());
  const std::string after = ReadFile(fw->script_path());
  ExpectGolden(after, "delta.ps1");
  EXPECT_THAT(fw->LastChangedRulesForTest(), ElementsAre(1, 3));
  // Rule 2's block is byte-identical in both scripts.
  const auto block = [](const std::string& s, const std::string& rule) {
    const size_t at = s.find("Sync-RampartRule '" + rule + "'");
    return s.substr(at, s.find(")\n", at) - at);
  };
  EXPECT_EQ(block(before, "Rampart-Block-0002"),
            block(after, "Rampart-Block-0002"));
  EXPECT_NE(block(before, "Rampart-Block-0001"),
            block(after, "Rampart-Block-0001"));
}

TEST_F(NetshTest, PortScopeAndEmptyListMatchGolden) {
  auto fw =
      Make({.rule_prefix = "Rampart-Block", .ports = PortScope::DominoPorts()});
  ASSERT_TRUE(fw->ApplySnapshot(Entries({"198.51.100.7"})).ok());
  ExpectGolden(ReadFile(fw->script_path()), "domino_ports.ps1");
  ASSERT_TRUE(fw->RemoveAll().ok());
  // No rules left; the script deletes every Rampart rule (high water 1).
  const std::string empty = ReadFile(fw->script_path());
  ExpectGolden(empty, "remove_all.ps1");
  EXPECT_THAT(empty, Not(HasSubstr("Sync-RampartRule '")));
  EXPECT_THAT(fw->LastChangedRulesForTest(), ElementsAre(1));
}

TEST_F(NetshTest, ChunksAreStableAcrossDeltasAndSnapshots) {
  auto fw = Make();  // 200 per rule
  std::vector<FirewallEntry> all;
  for (uint32_t i = 0; i < 1000; ++i) {
    all.push_back(
        {IpPrefix::Host(IpAddress::V4(0xC6120000u + i)), std::nullopt});
  }
  ASSERT_TRUE(fw->ApplySnapshot(all).ok());
  EXPECT_THAT(fw->LastChangedRulesForTest(), ElementsAre(1, 2, 3, 4, 5));
  // One removal and one addition: the addition fills the hole.
  ASSERT_TRUE(
      fw->ApplyDelta({{P("203.0.113.1"), std::nullopt}}, {all[450].prefix})
          .ok());
  EXPECT_THAT(fw->LastChangedRulesForTest(), ElementsAre(3));
  // A new snapshot equal to the current list changes nothing.
  std::vector<FirewallEntry> same = all;
  same.erase(same.begin() + 450);
  same.push_back({P("203.0.113.1"), std::nullopt});
  ASSERT_TRUE(fw->ApplySnapshot(same).ok());
  EXPECT_THAT(fw->LastChangedRulesForTest(), IsEmpty());
  // Appending beyond the full rules opens rule 6 only.
  ASSERT_TRUE(fw->ApplyDelta({{P("203.0.113.2"), std::nullopt}}, {}).ok());
  EXPECT_THAT(fw->LastChangedRulesForTest(), ElementsAre(6));
  absl::StatusOr<std::vector<FirewallEntry>> listed = fw->ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, SizeIs(1001));
}

TEST_F(NetshTest, ManyRemovalsRepackOnce) {
  auto fw = Make({.addresses_per_rule = 10});
  std::vector<FirewallEntry> all;
  for (uint32_t i = 0; i < 100; ++i) {
    all.push_back(
        {IpPrefix::Host(IpAddress::V4(0xC6120000u + i)), std::nullopt});
  }
  ASSERT_TRUE(fw->ApplySnapshot(all).ok());
  // Keep one prefix of each rule: 10 rules of 1 where 1 rule would do.
  std::vector<IpPrefix> removes;
  for (uint32_t i = 0; i < 100; ++i) {
    if (i % 10 != 0) {
      removes.push_back(all[i].prefix);
    }
  }
  ASSERT_TRUE(fw->ApplyDelta({}, removes).ok());
  const std::string script = ReadFile(fw->script_path());
  EXPECT_THAT(script, HasSubstr("Rampart-Block-0001"));
  EXPECT_THAT(script, Not(HasSubstr("Sync-RampartRule 'Rampart-Block-0002'")));
  // The old rule numbers stay covered by the cleanup (high water).
  EXPECT_THAT(script, HasSubstr("$HighWater = 10"));
}

TEST_F(NetshTest, AssignmentSurvivesARestart) {
  std::string first;
  {
    auto fw = Make({.addresses_per_rule = 2});
    ASSERT_TRUE(fw->ApplySnapshot(
                      Entries({"198.51.100.7", "198.51.100.8", "198.51.100.9"}))
                    .ok());
    ASSERT_TRUE(fw->ApplyDelta({}, {P("198.51.100.7")}).ok());
    first = ReadFile(fw->script_path());
  }
  auto fw = Make({.addresses_per_rule = 2});
  EXPECT_EQ(fw->RenderScript(), first);
  absl::StatusOr<std::vector<FirewallEntry>> listed = fw->ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, SizeIs(2));
  // A corrupt state file starts empty (the next snapshot repacks).
  { std::ofstream(fw->state_path(), std::ios::app) << "garbage"; }
  auto again = Make({.addresses_per_rule = 2});
  listed = again->ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
}

TEST_F(NetshTest, InstallLeavesWindowsAloneUntilAListIsKnown) {
  const std::string marker = dir_ + "/applied";
  {
    auto fw = Make({.apply_command = {"touch", marker}});
    ASSERT_TRUE(fw->Install().ok());
    EXPECT_FALSE(std::filesystem::exists(fw->script_path()));
    EXPECT_FALSE(std::filesystem::exists(marker));
    ASSERT_TRUE(fw->ApplySnapshot(Entries({"198.51.100.7"})).ok());
    EXPECT_TRUE(std::filesystem::exists(marker));
  }
  // After a restart the saved assignment is known: Install re-runs it.
  std::filesystem::remove(marker);
  auto fw = Make({.apply_command = {"touch", marker}});
  ASSERT_TRUE(fw->Install().ok());
  EXPECT_TRUE(std::filesystem::exists(marker));
  EXPECT_THAT(ReadFile(fw->script_path()), HasSubstr("'198.51.100.7'"));
}

TEST_F(NetshTest, RunsTheApplyCommandAfterWriting) {
  const std::string marker = dir_ + "/applied";
  auto fw = Make({.apply_command = {"touch", marker}});
  ASSERT_TRUE(fw->ApplySnapshot(Entries({"198.51.100.7"})).ok());
  EXPECT_TRUE(std::filesystem::exists(marker));
  auto failing = Make({.apply_command = {"false"}});
  EXPECT_EQ(failing->ApplySnapshot(Entries({"198.51.100.7"})).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(NetshTest, RejectsBadOptions) {
  EXPECT_FALSE(NetshFirewall::Create({}).ok());
  EXPECT_FALSE(
      NetshFirewall::Create({.output_dir = dir_, .addresses_per_rule = 0})
          .ok());
  EXPECT_FALSE(
      NetshFirewall::Create({.output_dir = dir_, .rule_prefix = "x'; rm"})
          .ok());
  EXPECT_FALSE(NetshFirewall::Create(
                   {.output_dir = dir_,
                    .ports = PortScope{.all_ports = false, .tcp_ports = {}}})
                   .ok());
}

}  // namespace
}  // namespace rampart::agent
