// ExecFirewall, DryRunFirewall, RunCommand and the backend factory.

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/firewall/dry_run_firewall.h"
#include "agent/firewall/exec_firewall.h"
#include "agent/firewall/firewall_factory.h"
#include "agent/firewall/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

IpPrefix P(std::string_view text) { return *IpPrefix::FromString(text); }

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class ExecTest : public ::testing::Test {
 protected:
  ExecTest()
      : dir_((std::filesystem::temp_directory_path() /
              ("rampart-fw-exec-" + std::to_string(::getpid())))
                 .string()) {
    std::filesystem::create_directories(dir_);
    log_ = dir_ + "/log";
    // The "user command": records its action, count, arguments and stdin.
    script_ = dir_ + "/hook.sh";
    std::ofstream(script_) << "#!/bin/sh\n"
                           << "{ echo \"== $RAMPART_ACTION $RAMPART_COUNT $*\""
                           << "; cat; } >> '" << log_ << "'\n"
                           << "[ -e '" << dir_ << "/fail' ] && exit 3\n"
                           << "exit 0\n";
    ::chmod(script_.c_str(), 0755);
  }
  ~ExecTest() override { std::filesystem::remove_all(dir_); }

  std::string dir_, log_, script_;
};

TEST_F(ExecTest, StdinModeSendsOneLinePerEntry) {
  absl::StatusOr<std::unique_ptr<ExecFirewall>> fw = ExecFirewall::Create(
      {.add_command = {script_, "add"}, .remove_command = {script_, "del"}});
  ASSERT_TRUE(fw.ok()) << fw.status();
  ASSERT_TRUE((*fw)
                  ->ApplySnapshot({{P("198.51.100.7"), std::nullopt},
                                   {P("203.0.113.0/24"), kT0}})
                  .ok());
  ASSERT_TRUE((*fw)
                  ->ApplyDelta({{P("2001:db8::/64"), std::nullopt}},
                               {P("198.51.100.7")})
                  .ok());
  EXPECT_EQ(ReadFile(log_),
            "== add 2 add\n"
            "198.51.100.7/32 0\n"
            "203.0.113.0/24 1767225600\n"
            "== remove 1 del\n"
            "198.51.100.7/32 0\n"
            "== add 1 add\n"
            "2001:db8::/64 0\n");
  absl::StatusOr<std::vector<FirewallEntry>> listed = (*fw)->ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed,
              ElementsAre(FirewallEntry{P("203.0.113.0/24"), kT0},
                          FirewallEntry{P("2001:db8::/64"), std::nullopt}));
  // A snapshot is a diff against what was added.
  std::filesystem::remove(log_);
  ASSERT_TRUE((*fw)
                  ->ApplySnapshot({{P("203.0.113.0/24"), kT0},
                                   {P("198.51.100.9"), std::nullopt}})
                  .ok());
  EXPECT_EQ(ReadFile(log_),
            "== remove 1 del\n2001:db8::/64 0\n"
            "== add 1 add\n198.51.100.9/32 0\n");
}

TEST_F(ExecTest, ArgsModeBatches) {
  absl::StatusOr<std::unique_ptr<ExecFirewall>> fw =
      ExecFirewall::Create({.add_command = {script_},
                            .remove_command = {script_},
                            .pass = ExecOptions::Pass::kArgs,
                            .max_batch = 2});
  ASSERT_TRUE(fw.ok());
  ASSERT_TRUE((*fw)
                  ->ApplyDelta({{P("198.51.100.1"), std::nullopt},
                                {P("198.51.100.2"), std::nullopt},
                                {P("198.51.100.3"), std::nullopt}},
                               {})
                  .ok());
  EXPECT_EQ(ReadFile(log_),
            "== add 2 198.51.100.1/32 198.51.100.2/32\n"
            "== add 1 198.51.100.3/32\n");
}

TEST_F(ExecTest, FailureStopsAndKeepsEarlierBatches) {
  absl::StatusOr<std::unique_ptr<ExecFirewall>> fw = ExecFirewall::Create(
      {.add_command = {script_}, .remove_command = {script_}, .max_batch = 1});
  ASSERT_TRUE(fw.ok());
  ASSERT_TRUE((*fw)->ApplyDelta({{P("198.51.100.1"), std::nullopt}}, {}).ok());
  std::ofstream(dir_ + "/fail") << "";
  absl::Status s = (*fw)->ApplyDelta({{P("198.51.100.2"), std::nullopt}}, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("exited with 3"));
  absl::StatusOr<std::vector<FirewallEntry>> listed = (*fw)->ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed,
              ElementsAre(FirewallEntry{P("198.51.100.1"), std::nullopt}));
}

TEST_F(ExecTest, FlushCommandRunsBeforeASnapshot) {
  absl::StatusOr<std::unique_ptr<ExecFirewall>> fw =
      ExecFirewall::Create({.add_command = {script_, "add"},
                            .remove_command = {script_, "del"},
                            .flush_command = {script_, "flush"}});
  ASSERT_TRUE(fw.ok());
  ASSERT_TRUE((*fw)->ApplySnapshot({{P("198.51.100.7"), std::nullopt}}).ok());
  ASSERT_TRUE((*fw)->RemoveAll().ok());
  EXPECT_EQ(ReadFile(log_),
            "== flush 0 flush\n"
            "== add 1 add\n198.51.100.7/32 0\n"
            "== flush 0 flush\n");
}

TEST_F(ExecTest, RejectsMissingCommands) {
  EXPECT_EQ(ExecFirewall::Create({.add_command = {"x"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(
      ExecFirewall::Create(
          {.add_command = {"x"}, .remove_command = {"y"}, .max_batch = 0})
          .ok());
}

TEST(RunCommandTest, CapturesOutputAndExitCode) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"sh", "-c", "cat; echo err >&2; exit 4"}, {.input = "in\n"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->output, "in\nerr\n");
}

TEST(RunCommandTest, ChildThatIgnoresStdinDoesNotHang) {
  const std::string big(8 << 20, 'x');
  absl::StatusOr<CommandResult> r = RunCommand({"true"}, {.input = big});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
}

TEST(RunCommandTest, TimeoutKillsTheChild) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"sleep", "10"}, {.timeout = absl::Milliseconds(100)});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(RunCommandTest, MissingProgramIsNotFound) {
  EXPECT_EQ(RunCommand({"/nonexistent/rampart-no-such-tool"}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(RunCommand({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunCommandTest, NoShellInterpretsArguments) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"echo", "$(id)", ";", "rm -rf /"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output, "$(id) ; rm -rf /\n");
}

TEST(DryRunFirewallTest, KeepsTheSetAndHidesExpiredEntries) {
  SimulatedClock clock(kT0);
  DryRunFirewall fw(clock);
  ASSERT_TRUE(fw.Install().ok());
  ASSERT_TRUE(fw.ApplySnapshot({{P("198.51.100.7"), kT0 + absl::Minutes(1)},
                                {P("203.0.113.0/24"), std::nullopt}})
                  .ok());
  ASSERT_TRUE(fw.ApplyDelta({{P("2001:db8::/64"), std::nullopt},
                             {P("198.51.100.7"), kT0 + absl::Hours(1)}},
                            {P("198.51.100.7")})
                  .ok());
  clock.Advance(absl::Minutes(2));
  absl::StatusOr<std::vector<FirewallEntry>> listed = fw.ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(
      *listed,
      ElementsAre(FirewallEntry{P("198.51.100.7"), kT0 + absl::Hours(1)},
                  FirewallEntry{P("203.0.113.0/24"), std::nullopt},
                  FirewallEntry{P("2001:db8::/64"), std::nullopt}));
  ASSERT_TRUE(fw.RemoveAll().ok());
  listed = fw.ListEnforced();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
}

TEST(FirewallFactoryTest, CreatesEachBackendByName) {
  SimulatedClock clock(kT0);
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("rampart-fw-factory-" + std::to_string(::getpid())))
                              .string();
  FirewallOptions options;
  options.netsh.output_dir = dir;
  options.exec.add_command = {"true"};
  options.exec.remove_command = {"true"};
  for (const std::string& name : FirewallBackendNames()) {
    options.backend = name;
    absl::StatusOr<std::unique_ptr<Firewall>> fw =
        CreateFirewall(options, clock);
    ASSERT_TRUE(fw.ok()) << name << ": " << fw.status();
    EXPECT_EQ((*fw)->Name(), name);
  }
  options.backend = "pf";
  absl::StatusOr<std::unique_ptr<Firewall>> bad =
      CreateFirewall(options, clock);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("windows-netsh"));
  options.backend = "nftables";
  options.nftables.table = "Bad Name";
  EXPECT_EQ(CreateFirewall(options, clock).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rampart::agent
