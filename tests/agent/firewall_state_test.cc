#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "agent/firewall/enforced_state.h"
#include "agent/firewall/enforced_state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::HasSubstr;

IpPrefix P(std::string_view text) { return *IpPrefix::FromString(text); }

EnforcedState Sample() {
  return EnforcedState{.epoch = 77,
                       .revision = 1234,
                       .items = {
                           {.id = 1, .prefix = P("198.51.100.7")},
                           {.id = 2,
                            .prefix = P("203.0.113.0/24"),
                            .expires = absl::FromUnixMicros(1767225600123456)},
                           {.id = 9, .prefix = P("2001:db8:1:2::/64")},
                           {.id = 10,
                            .prefix = P("2001:db8::5"),
                            .expires = absl::FromUnixSeconds(1767225600)},
                       }};
}

TEST(EnforcedStateTest, EncodingIsStableAndRoundTrips) {
  const std::string text = EncodeEnforcedState(Sample());
  EXPECT_EQ(text,
            "rampart-enforced-bans 1\n"
            "epoch 77\n"
            "revision 1234\n"
            "count 4\n"
            "1 198.51.100.7/32 -\n"
            "2 203.0.113.0/24 1767225600123456\n"
            "9 2001:db8:1:2::/64 -\n"
            "10 2001:db8::5/128 1767225600000000\n"
            "checksum " +
                text.substr(text.rfind(' ') + 1));
  absl::StatusOr<EnforcedState> back = DecodeEnforcedState(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, Sample());
}

TEST(EnforcedStateTest, EmptyListRoundTrips) {
  const EnforcedState empty{.epoch = 5, .revision = 0};
  absl::StatusOr<EnforcedState> back =
      DecodeEnforcedState(EncodeEnforcedState(empty));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, empty);
}

TEST(EnforcedStateTest, EveryTruncationIsDataLoss) {
  const std::string text = EncodeEnforcedState(Sample());
  for (size_t n = 0; n < text.size(); ++n) {
    absl::StatusOr<EnforcedState> r = DecodeEnforcedState(text.substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << n;
  }
}

TEST(EnforcedStateTest, AnyFlippedByteIsDetected) {
  const std::string text = EncodeEnforcedState(Sample());
  for (size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    absl::StatusOr<EnforcedState> r = DecodeEnforcedState(bad);
    EXPECT_FALSE(r.ok()) << "flip at " << i << " went unnoticed";
  }
}

TEST(EnforcedStateTest, NewerVersionIsFailedPrecondition) {
  absl::StatusOr<EnforcedState> r =
      DecodeEnforcedState("rampart-enforced-bans 2\nwhatever\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EnforcedStateTest, HugeCountIsRejectedBeforeAllocating) {
  absl::StatusOr<EnforcedState> r = DecodeEnforcedState(
      "rampart-enforced-bans 1\nepoch 1\nrevision 1\ncount "
      "18446744073709551615\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("count"));
}

TEST(EnforcedStateTest, WriteReplacesAtomicallyAndReadsBack) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("rampart-fw-state-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/enforced-bans.state";
  EXPECT_EQ(ReadEnforcedState(path).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteEnforcedState(path, Sample()).ok());
  EnforcedState next = Sample();
  next.revision = 1235;
  next.items.pop_back();
  ASSERT_TRUE(WriteEnforcedState(path, next).ok());
  absl::StatusOr<EnforcedState> back = ReadEnforcedState(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, next);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::ofstream(path, std::ios::app) << "junk";
  EXPECT_EQ(ReadEnforcedState(path).status().code(),
            absl::StatusCode::kDataLoss);
  std::filesystem::remove_all(dir);
}

class StateStoreTest : public ::testing::Test {
 protected:
  StateStoreTest()
      : dir_((std::filesystem::temp_directory_path() /
              ("rampart-fw-store-" + std::to_string(::getpid())))
                 .string()) {
    std::filesystem::create_directories(dir_);
  }
  ~StateStoreTest() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

BanChange Upsert(BanItem item) { return {BanChange::Op::kUpdate, item}; }
BanChange Del(uint64_t id) { return {BanChange::Op::kRemove, {.id = id}}; }

TEST_F(StateStoreTest, JournalReplaysDeltasOnTopOfTheSnapshot) {
  EnforcedStateStore store(dir_ + "/enforced-bans.state", true);
  EXPECT_EQ(store.Load().status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store.WriteSnapshot(Sample()).ok());
  const auto state_size = std::filesystem::file_size(store.state_path());
  ASSERT_TRUE(
      store
          .AppendDelta(77, 1234, 1240,
                       {Upsert({.id = 11, .prefix = P("192.0.2.1")}), Del(1)})
          .ok());
  ASSERT_TRUE(
      store
          .AppendDelta(77, 1240, 1241,
                       {Upsert({.id = 2,
                                .prefix = P("203.0.113.0/25"),
                                .expires = absl::FromUnixSeconds(1800000000)})})
          .ok());
  // The state file was not rewritten.
  EXPECT_EQ(std::filesystem::file_size(store.state_path()), state_size);
  EnforcedStateStore reader(dir_ + "/enforced-bans.state", true);
  absl::StatusOr<EnforcedState> got = reader.Load();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->epoch, 77u);
  EXPECT_EQ(got->revision, 1241u);
  EXPECT_EQ(got->items, (std::vector<BanItem>{
                            {.id = 2,
                             .prefix = P("203.0.113.0/25"),
                             .expires = absl::FromUnixSeconds(1800000000)},
                            {.id = 9, .prefix = P("2001:db8:1:2::/64")},
                            Sample().items[3],
                            {.id = 11, .prefix = P("192.0.2.1")}}));
  EXPECT_FALSE(reader.ShouldCompact());
  // A snapshot removes the journal.
  ASSERT_TRUE(reader.WriteSnapshot(*got).ok());
  EXPECT_FALSE(std::filesystem::exists(reader.journal_path()));
}

TEST_F(StateStoreTest, TornOrUnchainedRecordsAreSkipped) {
  EnforcedStateStore store(dir_ + "/enforced-bans.state", false);
  ASSERT_TRUE(store.WriteSnapshot(Sample()).ok());
  ASSERT_TRUE(store.AppendDelta(77, 1234, 1235, {Del(1)}).ok());
  // A record from another lineage, then one that does not chain.
  ASSERT_TRUE(store.AppendDelta(5, 1235, 1236, {Del(2)}).ok());
  ASSERT_TRUE(store.AppendDelta(77, 1300, 1301, {Del(9)}).ok());
  absl::StatusOr<EnforcedState> got =
      ReadEnforcedState(dir_ + "/enforced-bans.state");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->revision, 1235u);
  EXPECT_EQ(got->items.size(), 3u);
  // A crash in the middle of an append: every cut of the last record.
  ASSERT_TRUE(store.WriteSnapshot(Sample()).ok());
  ASSERT_TRUE(store.AppendDelta(77, 1234, 1235, {Del(1)}).ok());
  const std::string tail = EnforcedStateStore::EncodeDelta(
      77, 1235, 1236, {Del(2), Upsert({.id = 3, .prefix = P("192.0.2.3")})});
  for (size_t cut = 0; cut < tail.size(); ++cut) {
    std::filesystem::remove(store.journal_path());
    ASSERT_TRUE(store.AppendDelta(77, 1234, 1235, {Del(1)}).ok());
    std::ofstream(store.journal_path(), std::ios::app) << tail.substr(0, cut);
    EnforcedStateStore reader(dir_ + "/enforced-bans.state", false);
    absl::StatusOr<EnforcedState> r = reader.Load();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->revision, 1235u) << cut;
    EXPECT_EQ(r->items.size(), 3u) << cut;
    EXPECT_EQ(reader.ShouldCompact(), cut > 0) << cut;
  }
}

TEST_F(StateStoreTest, AGrowingJournalAsksForCompaction) {
  EnforcedStateStore store(dir_ + "/enforced-bans.state", false);
  ASSERT_TRUE(store.WriteSnapshot(Sample()).ok());
  uint64_t rev = 1234;
  std::vector<BanChange> changes;
  for (uint64_t id = 100; id < 2100; ++id) {
    changes.push_back(Upsert({.id = id, .prefix = P("2001:db8::1")}));
  }
  while (!store.ShouldCompact()) {
    ASSERT_TRUE(store.AppendDelta(77, rev, rev + 1, changes).ok());
    ++rev;
    ASSERT_LT(rev, 1300u);
  }
  EXPECT_GT(std::filesystem::file_size(store.journal_path()), 1u << 20);
}

}  // namespace
}  // namespace rampart::agent
