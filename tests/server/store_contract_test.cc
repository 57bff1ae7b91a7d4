// The Store contract: the SAME tests run against every implementation -
// InMemoryStore (the fake the correlator tests use), SqliteStore (a
// temporary file, deleted afterwards) and PgStore (a unique schema, dropped
// afterwards) - so that the fake cannot drift from the real stores.
//
// PgStore needs RAMPART_TEST_PG_DSN; without it its tests skip, except under
// CI (env CI set), where they fail (tests/server/pg_test_env.h).
//
// Store-specific behaviour (migrations, connections, error mapping, text
// PostgreSQL cannot hold) is in pg_store_test.cc and sqlite_store_test.cc.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/enrollment_store.h"
#include "server/core/store.h"
#include "server/store/in_memory_store.h"
#include "server/store/pg_store.h"
#include "server/store/sqlite_store.h"
#include "tests/server/pg_test_env.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }

AuthEvent Event(const char* ip, absl::Time t, std::string user = "admin",
                std::string agent = "mail1") {
  return AuthEvent{.agent_id = std::move(agent),
                   .kind = EventKind::kAuthFailure,
                   .protocol = Protocol::kSmtp,
                   .ip = ip == nullptr ? std::nullopt : IpAddress::Parse(ip),
                   .user = std::move(user),
                   .time = t};
}

Ban MakeBan(uint64_t id, const char* prefix,
            absl::Time expires = kT0 + absl::Hours(1), int level = 0) {
  return Ban{.id = id,
             .prefix = Prefix(prefix),
             .created = kT0,
             .expires = expires,
             .origin = BanOrigin::kAuto,
             .level = level,
             .reason = absl::StrFormat("ban %d", id),
             .actor = "correlator"};
}

JournalEntry Entry(uint64_t revision, JournalEntry::Op op, Ban ban,
                   absl::Time at = kT0) {
  return JournalEntry{
      .revision = revision, .op = op, .ban = std::move(ban), .at = at};
}
JournalEntry Add(uint64_t revision, Ban ban, absl::Time at = kT0) {
  return Entry(revision, JournalEntry::Op::kAdd, std::move(ban), at);
}
JournalEntry Remove(uint64_t revision, Ban ban, absl::Time at) {
  return Entry(revision, JournalEntry::Op::kRemove, std::move(ban), at);
}
// Revision r adds ban id r for 10.0.0.r.
JournalEntry AddNth(uint64_t r) {
  const std::string ip = absl::StrFormat("10.0.0.%d", r);
  return Add(r, MakeBan(r, ip.c_str()));
}

AuditRecord Audit(const char* action, absl::Time t = kT0) {
  return AuditRecord{.time = t,
                     .actor = "alice",
                     .action = action,
                     .target = "198.51.100.0/24",
                     .before = "",
                     .after = "{\"x\":1}",
                     .peer = "ipv4:192.0.2.1:40000"};
}

CompromiseAlert Alert(uint64_t id, absl::Time t) {
  return CompromiseAlert{.id = id,
                         .time = t,
                         .user = "bob",
                         .ip = *IpAddress::Parse("203.0.113.9"),
                         .agent_id = "mail2",
                         .protocol = Protocol::kImap,
                         .ip_score = 12.5,
                         .recent_failures = 40,
                         .account_under_attack = true,
                         .evidence = "40 failures in 10 min"};
}

AccountAttack Account(std::string user, absl::Time last_seen) {
  return AccountAttack{.user = std::move(user),
                       .first_seen = kT0 - absl::Hours(1),
                       .last_seen = last_seen,
                       .failures = 120,
                       .distinct_ips = 30,
                       .distinct_servers = 2,
                       .sample_ips = {"198.51.100.7", "2001:db8::1"},
                       .servers = {"mail1", "mail2"}};
}

BatchId Batch(const char* agent, uint64_t epoch, uint64_t sequence) {
  return BatchId{.agent_id = agent, .spool_epoch = epoch, .sequence = sequence};
}

// --- The store under test ----------------------------------------------------

struct StoreKind {
  std::string name;
  // Creates an empty store and sets *cleanup (run after the store is
  // destroyed). Returns nullptr after recording a skip or failure.
  std::function<std::unique_ptr<Store>(std::function<void()>* cleanup)> make;
  friend void PrintTo(const StoreKind& kind, std::ostream* os) {
    *os << kind.name;
  }
};

std::unique_ptr<Store> MakeInMemory(std::function<void()>*) {
  return std::make_unique<InMemoryStore>();
}

std::unique_ptr<Store> MakeSqlite(std::function<void()>* cleanup) {
  static std::atomic<int> counter{0};
  const std::string path =
      (std::filesystem::temp_directory_path() /
       absl::StrFormat("rampart-contract-%d-%d.db", getpid(), counter++))
          .string();
  *cleanup = [path] {
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::error_code ignored;
      std::filesystem::remove(path + suffix, ignored);
    }
  };
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Create({.path = path});
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) {
    return nullptr;
  }
  return std::move(*store);
}

std::unique_ptr<Store> MakePg(std::function<void()>* cleanup) {
  const std::string dsn = RequirePgTestDsn();
  if (dsn.empty()) {
    return nullptr;  // skipped (or failed, under CI)
  }
  const std::string schema = UniquePgTestSchema();
  *cleanup = [dsn, schema] {
    EXPECT_TRUE(PgStore::DropSchemaForTest(dsn, schema).ok());
  };
  absl::StatusOr<std::unique_ptr<PgStore>> store =
      PgStore::Create({.dsn = dsn, .schema = schema});
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) {
    return nullptr;
  }
  return std::move(*store);
}

class StoreContractTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    store_ = GetParam().make(&cleanup_);
    // A skip or failure was recorded if null: gtest does not run the body.
    if (store_ == nullptr && !IsSkipped()) {
      FAIL() << "could not create the store";
    }
  }
  void TearDown() override {
    store_.reset();
    if (cleanup_) {
      cleanup_();
    }
  }

  Store& store() { return *store_; }

  std::vector<AuthEvent> Events(absl::Time from = absl::InfinitePast(),
                                absl::Time to = absl::InfiniteFuture()) {
    std::vector<AuthEvent> events;
    const absl::Status s =
        store().ForEachEvent(from, to, [&](const AuthEvent& e) {
          events.push_back(e);
          return absl::OkStatus();
        });
    EXPECT_TRUE(s.ok()) << s;
    return events;
  }

  DurableState State(absl::Time now = kT0) {
    absl::StatusOr<DurableState> state = store().LoadState(now);
    EXPECT_TRUE(state.ok()) << state.status();
    return state.ok() ? *std::move(state) : DurableState();
  }

  bool Has(const BatchId& b) {
    absl::StatusOr<bool> has = store().HasBatch(b);
    EXPECT_TRUE(has.ok()) << has.status();
    return has.ok() && *has;
  }

  std::vector<AuthEvent> InPrefix(const char* prefix, absl::Time since = kT0,
                                  size_t limit = 100) {
    absl::StatusOr<std::vector<AuthEvent>> events =
        store().EventsForPrefix(Prefix(prefix), since, limit);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *std::move(events) : std::vector<AuthEvent>();
  }

  std::unique_ptr<Store> store_;
  std::function<void()> cleanup_;
};

// --- Empty store, batches
// -----------------------------------------------------

TEST_P(StoreContractTest, EmptyStoreHasNothing) {
  ASSERT_TRUE(store().Commit(CommitRecord{}).ok());
  const DurableState state = State();
  EXPECT_EQ(state.revision, 0u);
  EXPECT_EQ(state.max_ban_id, 0u);
  EXPECT_EQ(state.max_alert_id, 0u);
  EXPECT_THAT(state.active_bans, IsEmpty());
  EXPECT_THAT(state.history, IsEmpty());
  EXPECT_THAT(state.allowlist, IsEmpty());
  EXPECT_EQ(*store().OldestRevision(), 0u);
  EXPECT_THAT(*store().JournalSince(0, 10), IsEmpty());
  EXPECT_EQ(*store().PruneJournal(10), 0);
  EXPECT_EQ(*store().PruneEvents(absl::InfiniteFuture()), 0);
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_THAT(InPrefix("0.0.0.0/0", absl::InfinitePast()), IsEmpty());
  EXPECT_THAT(*store().BansFor(Prefix("198.51.100.7")), IsEmpty());
  EXPECT_THAT(*store().ListAccounts(absl::InfinitePast(), 10), IsEmpty());
  EXPECT_THAT(*store().ListAlerts(absl::InfinitePast(), 10), IsEmpty());
  EXPECT_THAT(*store().ListAudit(absl::InfinitePast(), 10), IsEmpty());
  EXPECT_FALSE(Has(Batch("mail1", 1, 1)));
  EXPECT_THAT(*store().HasBatches({}), IsEmpty());
}

TEST_P(StoreContractTest, BanListEpochIsNonZeroAndStable) {
  const absl::StatusOr<uint64_t> epoch = store().BanListEpoch();
  ASSERT_TRUE(epoch.ok()) << epoch.status();
  EXPECT_NE(*epoch, 0u);
  ASSERT_TRUE(store().Commit({.journal = {AddNth(1)}}).ok());
  EXPECT_EQ(*store().BanListEpoch(), *epoch);
}

TEST_P(StoreContractTest, BatchIsCommittedOnceAndARetryWritesNothing) {
  const BatchId a = Batch("mail1", 7, 1);
  ASSERT_TRUE(store()
                  .Commit({.batches = {a},
                           .events = {Event("198.51.100.7", kT0, "first")}})
                  .ok());
  EXPECT_TRUE(Has(a));
  // Every field of the id counts.
  EXPECT_FALSE(Has(Batch("mail2", 7, 1)));
  EXPECT_FALSE(Has(Batch("mail1", 8, 1)));
  EXPECT_FALSE(Has(Batch("mail1", 7, 2)));

  // The retry carries other writes too: none of them happens.
  const absl::Status retry =
      store().Commit({.batches = {a},
                      .events = {Event("198.51.100.7", kT0, "second")},
                      .journal = {AddNth(1)},
                      .audit = {Audit("ban.add")}});
  EXPECT_EQ(retry.code(), absl::StatusCode::kAlreadyExists) << retry;
  ASSERT_THAT(Events(), SizeIs(1));
  EXPECT_EQ(Events()[0].user, "first");
  EXPECT_EQ(State().revision, 0u);
  EXPECT_THAT(*store().ListAudit(absl::InfinitePast(), 10), IsEmpty());
}

TEST_P(StoreContractTest, GroupCommitWritesAllBatchesOrNone) {
  const BatchId a = Batch("mail1", 1, 1), b = Batch("mail2", 1, 1),
                c = Batch("mail1", 1, 2), d = Batch("mail3", 9, 9),
                e = Batch("mail4", 1, 1);
  ASSERT_TRUE(store()
                  .Commit({.batches = {a, b, c},
                           .events = {Event("198.51.100.7", kT0),
                                      Event("198.51.100.8", kT0)}})
                  .ok());
  EXPECT_THAT(*store().HasBatches({a, d, b, c, a}),
              ElementsAre(true, false, true, true, true));

  // One batch committed before: nothing of the group is written.
  EXPECT_EQ(store()
                .Commit({.batches = {d, b},
                         .events = {Event("192.0.2.1", kT0)},
                         .journal = {AddNth(1)}})
                .code(),
            absl::StatusCode::kAlreadyExists);
  // One batch twice in the group: the same.
  EXPECT_EQ(
      store()
          .Commit({.batches = {e, e}, .events = {Event("192.0.2.1", kT0)}})
          .code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(*store().HasBatches({d, e}), ElementsAre(false, false));
  EXPECT_THAT(Events(), SizeIs(2));
  EXPECT_EQ(State().revision, 0u);

  ASSERT_TRUE(store().Commit({.batches = {d, e}}).ok());
  EXPECT_THAT(*store().HasBatches({d, e}), ElementsAre(true, true));
}

// --- Journal and bans
// -----------------------------------------------------------

TEST_P(StoreContractTest, ActiveBansExcludeRemovedAndExpired) {
  const Ban b1 = MakeBan(1, "198.51.100.7", kT0 + absl::Hours(1));
  const Ban b2 = MakeBan(2, "203.0.113.0/24", absl::InfiniteFuture(), 2);
  const Ban b3 = MakeBan(3, "2001:db8::/64", kT0 + absl::Minutes(10));
  ASSERT_TRUE(
      store().Commit({.journal = {Add(1, b1), Add(2, b2), Add(3, b3)}}).ok());
  ASSERT_TRUE(store()
                  .Commit({.journal = {Remove(4, b1, kT0 + absl::Minutes(5))}})
                  .ok());

  DurableState state = State(kT0 + absl::Minutes(1));
  EXPECT_EQ(state.revision, 4u);
  EXPECT_EQ(state.max_ban_id, 3u);
  EXPECT_THAT(state.active_bans, ElementsAre(b2, b3));  // by id
  // A ban is no longer active at its expiry.
  EXPECT_THAT(State(kT0 + absl::Minutes(10)).active_bans, ElementsAre(b2));
  EXPECT_THAT(State(absl::InfiniteFuture()).active_bans, IsEmpty());
}

TEST_P(StoreContractTest, JournalAddOverwritesTheBanOfTheSameId) {
  Ban ban = MakeBan(5, "198.51.100.7", kT0 + absl::Hours(1));
  ASSERT_TRUE(store().Commit({.journal = {Add(1, ban)}}).ok());
  // An update restates the ban.
  ban.expires = kT0 + absl::Hours(2);
  ban.reason = "extended";
  ASSERT_TRUE(
      store()
          .Commit({.journal = {Entry(2, JournalEntry::Op::kUpdate, ban)}})
          .ok());
  EXPECT_THAT(*store().BansFor(ban.prefix), ElementsAre(ban));
  EXPECT_THAT(State().active_bans, ElementsAre(ban));
  // Removed, then added again under the same id: active again.
  ASSERT_TRUE(store()
                  .Commit({.journal = {Remove(3, ban, kT0 + absl::Minutes(1))}})
                  .ok());
  EXPECT_THAT(State(kT0 + absl::Minutes(2)).active_bans, IsEmpty());
  ban.level = 1;
  ASSERT_TRUE(
      store().Commit({.journal = {Add(4, ban, kT0 + absl::Minutes(3))}}).ok());
  EXPECT_THAT(State(kT0 + absl::Minutes(4)).active_bans, ElementsAre(ban));
  EXPECT_THAT(*store().BansFor(ban.prefix), ElementsAre(ban));
  const DurableState state = State(kT0 + absl::Minutes(4));
  ASSERT_THAT(state.history, SizeIs(1));
  EXPECT_EQ(state.history[0].bans, 1);
  EXPECT_EQ(state.history[0].last_end, ban.expires);
  // Both changes of one commit apply in order.
  ASSERT_TRUE(store()
                  .Commit({.journal = {Remove(5, ban, kT0 + absl::Minutes(5)),
                                       Add(6, ban, kT0 + absl::Minutes(5))}})
                  .ok());
  EXPECT_THAT(State(kT0 + absl::Minutes(6)).active_bans, ElementsAre(ban));
}

TEST_P(StoreContractTest, JournalRevisionsMustContinueTheHead) {
  ASSERT_TRUE(store().Commit({.journal = {AddNth(1), AddNth(2)}}).ok());
  const BatchId batch = Batch("mail1", 1, 1);
  // Already written (another writer won): kAborted.
  for (uint64_t first : {1, 2}) {
    const absl::Status s =
        store().Commit({.batches = {batch},
                        .events = {Event("192.0.2.1", kT0)},
                        .journal = {AddNth(first), AddNth(first + 1)}});
    EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << first << ": " << s;
  }
  // A gap after the head, or within the record: kInvalidArgument.
  EXPECT_EQ(store()
                .Commit({.batches = {batch},
                         .events = {Event("192.0.2.1", kT0)},
                         .journal = {AddNth(4)}})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().Commit({.journal = {AddNth(3), AddNth(5)}}).code(),
            absl::StatusCode::kInvalidArgument);
  // None of the rejected commits left a trace.
  EXPECT_FALSE(Has(batch));
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_EQ(State().revision, 2u);
  EXPECT_THAT(*store().JournalSince(0, 10), SizeIs(2));
  EXPECT_EQ(State().max_ban_id, 2u);

  ASSERT_TRUE(store().Commit({.journal = {AddNth(3), AddNth(4)}}).ok());
  EXPECT_EQ(State().revision, 4u);
}

TEST_P(StoreContractTest, HeadRevisionSurvivesPruneJournal) {
  ASSERT_TRUE(store()
                  .Commit({.journal = {AddNth(1), AddNth(2), AddNth(3),
                                       AddNth(4), AddNth(5)}})
                  .ok());
  EXPECT_EQ(*store().OldestRevision(), 1u);
  EXPECT_EQ(*store().PruneJournal(0), 0);
  EXPECT_EQ(*store().PruneJournal(3), 2);
  EXPECT_EQ(*store().OldestRevision(), 3u);
  EXPECT_THAT(*store().JournalSince(0, 10),
              ElementsAre(AddNth(3), AddNth(4), AddNth(5)));
  EXPECT_EQ(*store().PruneJournal(100), 3);
  EXPECT_EQ(*store().OldestRevision(), 0u);
  EXPECT_THAT(*store().JournalSince(0, 10), IsEmpty());
  // The head is kept: the sequence continues after it.
  const DurableState state = State();
  EXPECT_EQ(state.revision, 5u);
  EXPECT_THAT(state.active_bans, SizeIs(5));  // bans are not pruned
  EXPECT_EQ(store().Commit({.journal = {AddNth(5)}}).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store().Commit({.journal = {AddNth(7)}}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store().Commit({.journal = {AddNth(6)}}).ok());
  EXPECT_EQ(*store().OldestRevision(), 6u);
}

TEST_P(StoreContractTest, JournalSinceIsAscendingAndLimited) {
  ASSERT_TRUE(store().Commit({.journal = {AddNth(1), AddNth(2)}}).ok());
  ASSERT_TRUE(
      store().Commit({.journal = {AddNth(3), AddNth(4), AddNth(5)}}).ok());
  EXPECT_THAT(
      *store().JournalSince(0, 100),
      ElementsAre(AddNth(1), AddNth(2), AddNth(3), AddNth(4), AddNth(5)));
  EXPECT_THAT(*store().JournalSince(2, 2), ElementsAre(AddNth(3), AddNth(4)));
  EXPECT_THAT(*store().JournalSince(5, 10), IsEmpty());
  EXPECT_THAT(*store().JournalSince(0, 0), IsEmpty());
}

TEST_P(StoreContractTest, BanHistoryDescribesTheLatestBanOfEachPrefix) {
  // 198.51.100.7: an older level-3 ban, then a level-1 ban removed early.
  const Ban p1_old = MakeBan(1, "198.51.100.7", kT0 + absl::Minutes(30), 3);
  const Ban p1_new = MakeBan(4, "198.51.100.7", kT0 + absl::Hours(2), 1);
  // 203.0.113.0/24: permanent, never removed.
  const Ban p2 = MakeBan(2, "203.0.113.0/24", absl::InfiniteFuture(), 2);
  // 2001:db8::/64: removed after it had expired.
  const Ban p3 = MakeBan(3, "2001:db8::/64", kT0 + absl::Minutes(10));
  // 192.0.2.0/24: permanent, removed.
  const Ban p4 = MakeBan(5, "192.0.2.0/24", absl::InfiniteFuture(), 4);
  ASSERT_TRUE(store()
                  .Commit({.journal = {Add(1, p1_old), Add(2, p2), Add(3, p3),
                                       Add(4, p1_new), Add(5, p4)}})
                  .ok());
  ASSERT_TRUE(store()
                  .Commit({.journal =
                               {
                                   Remove(6, p1_new, kT0 + absl::Hours(1)),
                                   Remove(7, p3, kT0 + absl::Minutes(20)),
                                   Remove(8, p4, kT0 + absl::Minutes(5)),
                               }})
                  .ok());
  // Sorted by prefix (IPv4 before IPv6).
  EXPECT_THAT(State().history,
              ElementsAre(BanHistory{.prefix = p4.prefix,
                                     .bans = 1,
                                     .last_level = 4,
                                     .last_end = kT0 + absl::Minutes(5)},
                          BanHistory{.prefix = p1_new.prefix,
                                     .bans = 2,
                                     .last_level = 1,
                                     .last_end = kT0 + absl::Hours(1)},
                          BanHistory{.prefix = p2.prefix,
                                     .bans = 1,
                                     .last_level = 2,
                                     .last_end = absl::InfiniteFuture()},
                          BanHistory{.prefix = p3.prefix,
                                     .bans = 1,
                                     .last_level = 0,
                                     .last_end = kT0 + absl::Minutes(10)}));
}

TEST_P(StoreContractTest, BansForReturnsExactlyThatPrefixNewestFirst) {
  const Ban host1 = MakeBan(1, "198.51.100.7");
  const Ban net2 = MakeBan(2, "198.51.100.0/24");
  const Ban host3 = MakeBan(3, "198.51.100.7", kT0 + absl::Hours(2), 1);
  const Ban v6 = MakeBan(4, "2001:db8::/64");
  ASSERT_TRUE(store()
                  .Commit({.journal = {Add(1, host1), Add(2, net2),
                                       Add(3, host3), Add(4, v6)}})
                  .ok());
  ASSERT_TRUE(
      store()
          .Commit({.journal = {Remove(5, host3, kT0 + absl::Minutes(1))}})
          .ok());
  EXPECT_THAT(*store().BansFor(Prefix("198.51.100.7")),
              ElementsAre(host3, host1));
  EXPECT_THAT(*store().BansFor(Prefix("198.51.100.0/24")), ElementsAre(net2));
  EXPECT_THAT(*store().BansFor(Prefix("2001:db8::/64")), ElementsAre(v6));
  EXPECT_THAT(*store().BansFor(Prefix("2001:db8::/48")), IsEmpty());
  EXPECT_THAT(*store().BansFor(Prefix("198.51.100.8")), IsEmpty());
}

// --- Allowlist
// --------------------------------------------------------------------

TEST_P(StoreContractTest, AllowlistUpsertsDeletesAndKeepsExpiredEntries) {
  const AllowEntry expired{.prefix = Prefix("192.0.2.0/28"),
                           .expires = kT0 - absl::Hours(1),
                           .comment = "old",
                           .actor = "alice",
                           .created = kT0 - absl::Hours(2)};
  AllowEntry forever{.prefix = Prefix("10.0.0.0/8"),
                     .expires = std::nullopt,
                     .comment = "office",
                     .actor = "alice",
                     .created = kT0};
  const AllowEntry gone{.prefix = Prefix("2001:db8::/32"),
                        .comment = "lab",
                        .actor = "bob",
                        .created = kT0};
  ASSERT_TRUE(store().Commit({.allow_put = {expired, forever, gone}}).ok());
  forever.comment = "office, renamed";
  forever.actor = "carol";
  const AllowEntry transient{.prefix = Prefix("198.51.100.9"),
                             .comment = "put and deleted in one commit",
                             .created = kT0};
  ASSERT_TRUE(
      store()
          .Commit({.allow_put = {forever, transient},
                   .allow_delete = {gone.prefix, transient.prefix,
                                    Prefix("203.0.113.0/24")}})  // absent
          .ok());
  // Expired entries are kept (the detector ignores them); sorted by prefix.
  EXPECT_THAT(State().allowlist, ElementsAre(forever, expired));
}

// --- Atomicity, alerts, audit, accounts
// ----------------------------------------

TEST_P(StoreContractTest, CommitIsAllOrNothing) {
  ASSERT_TRUE(store().Commit({.alerts = {Alert(7, kT0)}}).ok());
  const auto everything = [](std::vector<CompromiseAlert> alerts) {
    return CommitRecord{
        .batches = {Batch("mail1", 1, 1), Batch("mail2", 1, 1)},
        .events = {Event("198.51.100.7", kT0), Event("2001:db8::1", kT0)},
        .journal = {AddNth(1), AddNth(2)},
        .alerts = std::move(alerts),
        .accounts = {Account("bob", kT0)},
        .allow_put = {AllowEntry{.prefix = Prefix("10.0.0.0/8"),
                                 .created = kT0}},
        .allow_delete = {},
        .audit = {Audit("ban.add")}};
  };
  // An alert id that exists; an alert id twice in one commit.
  EXPECT_EQ(store().Commit(everything({Alert(8, kT0), Alert(7, kT0)})).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store().Commit(everything({Alert(9, kT0), Alert(9, kT0)})).code(),
            absl::StatusCode::kAlreadyExists);

  EXPECT_THAT(*store().HasBatches({Batch("mail1", 1, 1), Batch("mail2", 1, 1)}),
              ElementsAre(false, false));
  EXPECT_THAT(Events(), IsEmpty());
  const DurableState state = State();
  EXPECT_EQ(state.revision, 0u);
  EXPECT_EQ(state.max_ban_id, 0u);
  EXPECT_EQ(state.max_alert_id, 7u);
  EXPECT_THAT(state.allowlist, IsEmpty());
  EXPECT_THAT(*store().JournalSince(0, 10), IsEmpty());
  EXPECT_THAT(*store().ListAccounts(absl::InfinitePast(), 10), IsEmpty());
  EXPECT_THAT(*store().ListAudit(absl::InfinitePast(), 10), IsEmpty());
  EXPECT_THAT(*store().ListAlerts(absl::InfinitePast(), 10),
              ElementsAre(Alert(7, kT0)));

  ASSERT_TRUE(store().Commit(everything({Alert(8, kT0)})).ok());
  EXPECT_EQ(State().revision, 2u);
  EXPECT_THAT(Events(), SizeIs(2));
}

TEST_P(StoreContractTest, ListAlertsIsNewestFirstTiesByHighestId) {
  CompromiseAlert v6 = Alert(4, kT0);
  v6.ip = *IpAddress::Parse("2001:db8::9");
  v6.user = std::string("\0\xff user", 7);
  v6.evidence = std::string("bytes \0\xfe", 8);
  v6.account_under_attack = false;
  v6.ip_score = 0.1;
  ASSERT_TRUE(store()
                  .Commit({.alerts = {Alert(3, kT0 + absl::Minutes(1)),
                                      Alert(1, kT0 + absl::Minutes(2))}})
                  .ok());
  ASSERT_TRUE(
      store().Commit({.alerts = {Alert(2, kT0 + absl::Minutes(2)), v6}}).ok());
  EXPECT_THAT(*store().ListAlerts(kT0, 10),
              ElementsAre(Alert(2, kT0 + absl::Minutes(2)),
                          Alert(1, kT0 + absl::Minutes(2)),
                          Alert(3, kT0 + absl::Minutes(1)), v6));
  EXPECT_THAT(*store().ListAlerts(kT0 + absl::Minutes(1), 10), SizeIs(3));
  EXPECT_THAT(*store().ListAlerts(kT0, 1),
              ElementsAre(Alert(2, kT0 + absl::Minutes(2))));
  EXPECT_EQ(State().max_alert_id, 4u);
}

TEST_P(StoreContractTest, ApiTokensArePutFoundListedAndRevoked) {
  const std::string hash_a(64, 'a');
  const std::string hash_b(64, 'b');
  const std::string hash_c(64, 'c');
  const ApiToken ops{.name = "ops",
                     .role = AdminRole::kOperator,
                     .hash = hash_a,
                     .created = kT0};
  const ApiToken admin{.name = "admin",
                       .role = AdminRole::kAdmin,
                       .hash = hash_b,
                       .created = kT0 + absl::Minutes(1)};
  ASSERT_TRUE(store().PutApiToken(ops).ok());
  ASSERT_TRUE(store().PutApiToken(admin).ok());
  // Same name while active, or same hash: refused.
  ApiToken again = ops;
  again.hash = hash_c;
  EXPECT_EQ(store().PutApiToken(again).code(),
            absl::StatusCode::kAlreadyExists);
  ApiToken same_hash = ops;
  same_hash.name = "other";
  EXPECT_EQ(store().PutApiToken(same_hash).code(),
            absl::StatusCode::kAlreadyExists);

  EXPECT_EQ(*store().FindApiToken(hash_a), std::optional<ApiToken>(ops));
  EXPECT_EQ(*store().FindApiToken(hash_c), std::nullopt);
  EXPECT_THAT(*store().ListApiTokens(), ElementsAre(admin, ops));

  ASSERT_TRUE(store().RevokeApiToken("ops", kT0 + absl::Hours(1)).ok());
  EXPECT_EQ(store().RevokeApiToken("ops", kT0).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store().RevokeApiToken("nobody", kT0).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*store().FindApiToken(hash_a), std::nullopt);
  ApiToken revoked = ops;
  revoked.revoked = kT0 + absl::Hours(1);
  EXPECT_THAT(*store().ListApiTokens(), ElementsAre(admin, revoked));
  // A revoked name can be reused with a new secret.
  ASSERT_TRUE(store().PutApiToken(again).ok());
  EXPECT_EQ(*store().FindApiToken(hash_c), std::optional<ApiToken>(again));
  EXPECT_THAT(*store().ListApiTokens(), ElementsAre(admin, again));
}

TEST_P(StoreContractTest, ListAuditAssignsIdsAndIsNewestFirst) {
  ASSERT_TRUE(store()
                  .Commit({.audit = {Audit("a", kT0),
                                     Audit("b", kT0 + absl::Minutes(1))}})
                  .ok());
  ASSERT_TRUE(store()
                  .Commit({.audit = {Audit("c", kT0 + absl::Minutes(1)),
                                     Audit("d", kT0)}})
                  .ok());
  const auto with_id = [](AuditRecord r, uint64_t id) {
    r.id = id;
    return r;
  };
  const AuditRecord a = with_id(Audit("a", kT0), 1);
  const AuditRecord b = with_id(Audit("b", kT0 + absl::Minutes(1)), 2);
  const AuditRecord c = with_id(Audit("c", kT0 + absl::Minutes(1)), 3);
  const AuditRecord d = with_id(Audit("d", kT0), 4);
  EXPECT_THAT(*store().ListAudit(kT0, 10), ElementsAre(c, b, d, a));
  EXPECT_THAT(*store().ListAudit(kT0 + absl::Minutes(1), 10),
              ElementsAre(c, b));
  EXPECT_THAT(*store().ListAudit(kT0, 1), ElementsAre(c));
}

TEST_P(StoreContractTest, ListAccountsUpsertsByUserNewestFirst) {
  AccountAttack alice = Account("alice", kT0 + absl::Minutes(1));
  AccountAttack bob = Account("bob", kT0 + absl::Minutes(2));
  AccountAttack carol = Account("carol", kT0);
  carol.sample_ips = {};
  carol.servers = {"", "a,b", "x\"y", "back\\slash", "new\nline", "{}"};
  // Same last_seen as bob: ties by user, bytewise ("B" < "a" < "b" < "\xc3").
  const AccountAttack upper = Account("Bob", kT0 + absl::Minutes(2));
  const AccountAttack accented = Account("\xc3\xa9ric", kT0 + absl::Minutes(2));
  ASSERT_TRUE(
      store().Commit({.accounts = {alice, bob, carol, upper, accented}}).ok());
  alice.last_seen = kT0 + absl::Minutes(3);
  alice.failures = 500;
  alice.sample_ips.push_back("203.0.113.1");
  ASSERT_TRUE(store().Commit({.accounts = {alice}}).ok());
  EXPECT_THAT(*store().ListAccounts(kT0, 10),
              ElementsAre(alice, upper, bob, accented, carol));
  EXPECT_THAT(*store().ListAccounts(kT0 + absl::Minutes(2), 10),
              ElementsAre(alice, upper, bob, accented));
  EXPECT_THAT(*store().ListAccounts(kT0, 2), ElementsAre(alice, upper));
}

// --- Time resolution
// -----------------------------------------------------------

TEST_P(StoreContractTest, TimesAreKeptToTheMicrosecondTruncated) {
  // 1.5 us after kT0, and 1.5 us before the epoch: truncated towards the
  // past, to kT0 + 1 us and -2 us.
  const absl::Time late = kT0 + absl::Nanoseconds(1500);
  const absl::Time late_us = kT0 + absl::Microseconds(1);
  const absl::Time early = absl::UnixEpoch() - absl::Nanoseconds(1500);
  const absl::Time early_us = absl::UnixEpoch() - absl::Microseconds(2);

  Ban ban = MakeBan(1, "198.51.100.7", late);
  ban.created = early;
  AllowEntry allow{.prefix = Prefix("10.0.0.0/8"),
                   .expires = late,
                   .comment = "c",
                   .actor = "a",
                   .created = early};
  AccountAttack account = Account("bob", late);
  account.first_seen = early;
  ASSERT_TRUE(store()
                  .Commit({.events = {Event("198.51.100.7", late),
                                      Event("198.51.100.8", early)},
                           .journal = {Add(1, ban, late)},
                           .alerts = {Alert(1, late)},
                           .accounts = {account},
                           .allow_put = {allow},
                           .audit = {Audit("x", early)}})
                  .ok());
  ban.created = early_us;
  ban.expires = late_us;
  allow.expires = late_us;
  allow.created = early_us;
  account.first_seen = early_us;
  account.last_seen = late_us;

  const std::vector<AuthEvent> events = Events();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].time, early_us);
  EXPECT_EQ(events[1].time, late_us);
  EXPECT_THAT(*store().JournalSince(0, 10), ElementsAre(Add(1, ban, late_us)));
  EXPECT_THAT(*store().BansFor(ban.prefix), ElementsAre(ban));
  const DurableState state = State(kT0);
  EXPECT_THAT(state.active_bans, ElementsAre(ban));
  EXPECT_THAT(state.allowlist, ElementsAre(allow));
  ASSERT_THAT(state.history, SizeIs(1));
  EXPECT_EQ(state.history[0].last_end, late_us);
  EXPECT_THAT(*store().ListAlerts(kT0, 10), ElementsAre(Alert(1, late_us)));
  EXPECT_THAT(*store().ListAccounts(kT0, 10), ElementsAre(account));
  AuditRecord audit = Audit("x", early_us);
  audit.id = 1;
  EXPECT_THAT(*store().ListAudit(absl::InfinitePast(), 10), ElementsAre(audit));

  // Time arguments are truncated the same way: `now` 0.5 us after the
  // stored expiry is the expiry itself, so the ban is no longer active ...
  EXPECT_THAT(State(late_us + absl::Nanoseconds(500)).active_bans, IsEmpty());
  // ... and `since` 0.5 us after an event still finds it.
  EXPECT_THAT(InPrefix("198.51.100.7", late_us + absl::Nanoseconds(500)),
              SizeIs(1));
  EXPECT_THAT(Events(late_us + absl::Nanoseconds(500)), SizeIs(1));
}

// --- Events
// -------------------------------------------------------------------

TEST_P(StoreContractTest, ForEachEventVisitsTimeOrderTiesInInsertionOrder) {
  const absl::Time t1 = kT0 + absl::Seconds(1), t2 = kT0 + absl::Seconds(2);
  AuthEvent a = Event("198.51.100.1", t2, "a");
  AuthEvent b = Event("198.51.100.2", kT0, "b");
  AuthEvent c = Event("198.51.100.3", t1, "c", "mail2");
  AuthEvent d = Event("2001:db8::4", kT0, std::string("d\0\xff\"\\,{}", 8));
  AuthEvent e = Event(nullptr, t1, "e (no address)");
  e.kind = EventKind::kAuthSuccess;
  e.protocol = Protocol::kHttp;
  AuthEvent f = Event("198.51.100.6", kT0, "");
  ASSERT_TRUE(store().Commit({.events = {a, b, c}}).ok());
  ASSERT_TRUE(store().Commit({.events = {d, e, f}}).ok());

  EXPECT_THAT(Events(), ElementsAre(b, d, f, c, e, a));
  // [from, to): `to` excluded.
  EXPECT_THAT(Events(kT0, t2), ElementsAre(b, d, f, c, e));
  EXPECT_THAT(Events(t1, absl::InfiniteFuture()), ElementsAre(c, e, a));
  EXPECT_THAT(Events(t2 + absl::Microseconds(1), absl::InfiniteFuture()),
              IsEmpty());

  // fn's error stops the walk and is returned; fn may call the store.
  int calls = 0;
  const absl::Status s = store().ForEachEvent(
      absl::InfinitePast(), absl::InfiniteFuture(), [&](const AuthEvent&) {
        absl::StatusOr<bool> has = store().HasBatch(Batch("x", 0, 0));
        if (!has.ok()) {
          return has.status();
        }
        return ++calls == 2 ? absl::CancelledError("enough") : absl::OkStatus();
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(calls, 2);
}

TEST_P(StoreContractTest, ForEachEventKeepsOrderAcrossManyEvents) {
  // More events than any store's read page, with long runs of equal times.
  constexpr int kEvents = 10'050;
  std::vector<AuthEvent> events;
  for (int i = 0; i < kEvents; ++i) {
    events.push_back(Event("192.0.2.1", kT0 + absl::Seconds(i / 2500),
                           absl::StrFormat("u%05d", i)));
  }
  ASSERT_TRUE(store().Commit({.events = events}).ok());
  EXPECT_EQ(Events(), events);
}

TEST_P(StoreContractTest, EventsForPrefixMatchesByContainmentNewestFirst) {
  const auto at = [](int s) { return kT0 + absl::Seconds(s); };
  const AuthEvent v4_7 = Event("198.51.100.7", at(0));
  const AuthEvent v4_200 = Event("198.51.100.200", at(1));
  const AuthEvent v4_other = Event("198.51.101.1", at(2));
  const AuthEvent v4_far = Event("10.0.0.1", at(3));
  const AuthEvent v6_7 = Event("2001:db8::7", at(4));
  const AuthEvent v6_net1 = Event("2001:db8:0:1::1", at(5));
  const AuthEvent v6_far = Event("2001:db9::1", at(6));
  // An IPv6 address whose low 32 bits are 198.51.100.7: IPv6, so no IPv4
  // prefix contains it.
  const AuthEvent v6_compat = Event("::c633:6407", at(7));
  const AuthEvent none = Event(nullptr, at(8));
  // The last IPv4 address: its IPv4-mapped form ::ffff:255.255.255.255 is
  // the last address of ::/80, which must still not contain it.
  const AuthEvent v4_last = Event("255.255.255.255", at(8));
  // Two at the same time: the later insertion is newer.
  const AuthEvent tie1 = Event("198.51.100.9", at(9), "first");
  const AuthEvent tie2 = Event("198.51.100.9", at(9), "second");
  ASSERT_TRUE(
      store()
          .Commit({.events = {v4_7, v4_200, v4_other, v4_far, v6_7, v6_net1,
                              v6_far, v6_compat, none, v4_last}})
          .ok());
  ASSERT_TRUE(store().Commit({.events = {tie1}}).ok());
  ASSERT_TRUE(store().Commit({.events = {tie2}}).ok());

  EXPECT_THAT(InPrefix("198.51.100.7"), ElementsAre(v4_7));
  EXPECT_THAT(InPrefix("198.51.100.0/24"),
              ElementsAre(tie2, tie1, v4_200, v4_7));
  EXPECT_THAT(InPrefix("198.51.100.128/25"), ElementsAre(v4_200));
  EXPECT_THAT(InPrefix("198.51.0.0/16"),
              ElementsAre(tie2, tie1, v4_other, v4_200, v4_7));
  EXPECT_THAT(InPrefix("0.0.0.0/0"),
              ElementsAre(tie2, tie1, v4_last, v4_far, v4_other, v4_200, v4_7));
  EXPECT_THAT(InPrefix("255.255.255.255"), ElementsAre(v4_last));
  EXPECT_THAT(InPrefix("255.255.255.0/24"), ElementsAre(v4_last));
  EXPECT_THAT(InPrefix("::/0"), ElementsAre(v6_compat, v6_far, v6_net1, v6_7));
  EXPECT_THAT(InPrefix("::/80"), ElementsAre(v6_compat));
  EXPECT_THAT(InPrefix("::/96"), ElementsAre(v6_compat));
  EXPECT_THAT(InPrefix("8000::/1"), IsEmpty());
  EXPECT_THAT(InPrefix("2001:db8::/32"), ElementsAre(v6_net1, v6_7));
  EXPECT_THAT(InPrefix("2001:db8::/64"), ElementsAre(v6_7));
  EXPECT_THAT(InPrefix("2001:db8::7"), ElementsAre(v6_7));
  EXPECT_THAT(InPrefix("2001:db8::8"), IsEmpty());
  // since and limit.
  EXPECT_THAT(InPrefix("198.51.100.0/24", at(1)),
              ElementsAre(tie2, tie1, v4_200));
  EXPECT_THAT(InPrefix("198.51.100.0/24", at(10)), IsEmpty());
  EXPECT_THAT(InPrefix("0.0.0.0/0", kT0, 3), ElementsAre(tie2, tie1, v4_last));
  EXPECT_THAT(InPrefix("0.0.0.0/0", kT0, 0), IsEmpty());
}

TEST_P(StoreContractTest, PruneEventsDeletesOlderThanTheBound) {
  const AuthEvent e0 = Event("192.0.2.1", kT0);
  const AuthEvent e1 = Event("192.0.2.2", kT0 + absl::Seconds(1));
  const AuthEvent e1b = Event(nullptr, kT0 + absl::Seconds(1));
  const AuthEvent e2 = Event("2001:db8::1", kT0 + absl::Seconds(2));
  ASSERT_TRUE(store().Commit({.events = {e0, e1, e1b, e2}}).ok());
  EXPECT_EQ(*store().PruneEvents(kT0), 0);
  EXPECT_EQ(*store().PruneEvents(kT0 + absl::Seconds(1)), 1);
  EXPECT_THAT(Events(), ElementsAre(e1, e1b, e2));
  EXPECT_THAT(InPrefix("0.0.0.0/0"), ElementsAre(e1));
  EXPECT_EQ(*store().PruneEvents(absl::InfiniteFuture()), 3);
  EXPECT_THAT(Events(), IsEmpty());
}

// --- EnrollmentStore (every Store implementation is also one) ----------------

AgentEnrollment Pending(std::string agent_id) {
  return AgentEnrollment{.agent_id = std::move(agent_id),
                         .site = "hq",
                         .token_sha256 = std::string(64, 'a'),
                         .token_expires = kT0 + absl::Hours(24),
                         .created = kT0 + absl::Microseconds(7)};
}

TEST_P(StoreContractTest, EnrollmentRoundTripsAndReplaces) {
  auto* es = dynamic_cast<EnrollmentStore*>(&store());
  ASSERT_NE(es, nullptr);
  EXPECT_EQ(*es->GetEnrollment("dom-01"), std::nullopt);
  EXPECT_THAT(*es->ListEnrollments(), IsEmpty());
  const AgentEnrollment pending = Pending("dom-01");
  ASSERT_TRUE(es->PutEnrollment(pending).ok());
  ASSERT_TRUE(es->PutEnrollment(Pending("dom-00")).ok());
  EXPECT_EQ(*es->GetEnrollment("dom-01"), pending);

  AgentEnrollment enrolled = pending;
  enrolled.token_used = true;
  enrolled.reenroll = true;
  enrolled.cert_serial = "4F00AB";
  enrolled.cert_sha256 = std::string(64, 'f');
  enrolled.cert_not_after = kT0 + absl::Hours(24 * 90);
  enrolled.enrolled_at = kT0 + absl::Minutes(3) + absl::Nanoseconds(1500);
  enrolled.revoked = true;
  enrolled.revoked_at = absl::InfiniteFuture();
  enrolled.revoke_reason = "stolen laptop \xe2\x9c\x93";
  ASSERT_TRUE(es->PutEnrollment(enrolled).ok());
  // Times come back truncated to microseconds.
  AgentEnrollment expected = enrolled;
  expected.enrolled_at = kT0 + absl::Minutes(3) + absl::Microseconds(1);
  EXPECT_EQ(*es->GetEnrollment("dom-01"), expected);
  const std::vector<AgentEnrollment> all = *es->ListEnrollments();
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].agent_id, "dom-00");
  EXPECT_EQ(all[1], expected);
  EXPECT_EQ(es->PutEnrollment(AgentEnrollment{}).code(),
            absl::StatusCode::kInvalidArgument);
}

// Issue 16 item 3: what protects an agent survives a restart.
TEST_P(StoreContractTest, ProtectedAgentAddressesRoundTripAndReplace) {
  auto* es = dynamic_cast<EnrollmentStore*>(&store());
  ASSERT_NE(es, nullptr);
  EXPECT_THAT(*es->ListProtectedAddresses(), IsEmpty());
  using Source = ProtectedAgentAddress::Source;
  const ProtectedAgentAddress peer{.agent_id = "mx1",
                                   .address = "192.0.2.10",
                                   .source = Source::kPeer,
                                   .since = kT0 + absl::Nanoseconds(1500)};
  const ProtectedAgentAddress approved{.agent_id = "mx1",
                                       .address = "192.0.2.10",
                                       .source = Source::kApproved,
                                       .since = kT0 + absl::Minutes(1),
                                       .actor = "token:alice"};
  const ProtectedAgentAddress v6{.agent_id = "mx1",
                                 .address = "2001:db8::10",
                                 .source = Source::kApproved,
                                 .since = kT0,
                                 .actor = "token:alice"};
  const ProtectedAgentAddress other{.agent_id = "mx0",
                                    .address = "198.51.100.1",
                                    .source = Source::kPeer,
                                    .since = kT0};
  ASSERT_TRUE(es->ReplaceProtectedAddresses("mx1", {v6, approved, peer}).ok());
  ASSERT_TRUE(es->ReplaceProtectedAddresses("mx0", {other}).ok());
  ProtectedAgentAddress peer_us = peer;  // truncated to microseconds
  peer_us.since = kT0 + absl::Microseconds(1);
  EXPECT_THAT(*es->ListProtectedAddresses(),
              ElementsAre(other, peer_us, approved, v6));

  // Replace is whole: the agent's rows become exactly the new ones.
  ASSERT_TRUE(es->ReplaceProtectedAddresses("mx1", {approved}).ok());
  EXPECT_THAT(*es->ListProtectedAddresses(), ElementsAre(other, approved));
  ASSERT_TRUE(es->ReplaceProtectedAddresses("mx1", {}).ok());  // revoked
  EXPECT_THAT(*es->ListProtectedAddresses(), ElementsAre(other));

  // Malformed: nothing changes.
  EXPECT_EQ(es->ReplaceProtectedAddresses("", {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(es->ReplaceProtectedAddresses("mx1", {other}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(es->ReplaceProtectedAddresses("mx0", {other, other}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(*es->ListProtectedAddresses(), ElementsAre(other));
}

std::vector<StoreKind> Kinds() {
  return {
      {"InMemory", MakeInMemory}, {"Sqlite", MakeSqlite}, {"Postgres", MakePg}};
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContractTest,
                         ::testing::ValuesIn(Kinds()),
                         [](const ::testing::TestParamInfo<StoreKind>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace rampart::server
