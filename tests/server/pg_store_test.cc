// PostgreSQL-specific behaviour of PgStore; the behaviour shared with the
// other stores is in store_contract_test.cc.
//
// Needs RAMPART_TEST_PG_DSN (scripts/test-postgres.sh start prints one).
// Without it the database tests skip, except under CI (env CI set), where
// they fail: CI must never silently skip the real database
// (tests/server/pg_test_env.h).

#include "server/store/pg_store.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/pg_migrations.h"
#include "server/store/pg_status.h"
#include "tests/server/pg_test_env.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }

AuthEvent Event(const char* ip, absl::Time t, std::string user = "admin") {
  return AuthEvent{.agent_id = "mail1",
                   .kind = EventKind::kAuthFailure,
                   .protocol = Protocol::kSmtp,
                   .ip = ip == nullptr ? std::nullopt : IpAddress::Parse(ip),
                   .user = std::move(user),
                   .time = t};
}

JournalEntry Add(uint64_t revision, uint64_t ban_id, const char* prefix) {
  JournalEntry j;
  j.revision = revision;
  j.op = JournalEntry::Op::kAdd;
  j.ban.id = ban_id;
  j.ban.prefix = Prefix(prefix);
  j.ban.created = kT0;
  j.ban.expires = kT0 + absl::Hours(1);
  j.ban.reason = "test";
  j.ban.actor = "correlator";
  j.at = kT0;
  return j;
}

AuditRecord Audit(const char* action) {
  return AuditRecord{.time = kT0,
                     .actor = "admin",
                     .action = action,
                     .target = "198.51.100.0/24"};
}

// --- Exception mapping (no database needed) ----------------------------------

absl::StatusCode CodeFor(std::exception_ptr e) {
  return StatusFromPqxxException(e, "test").code();
}

TEST(PgStatusTest, MapsLibpqxxExceptionsPerConventions) {
  EXPECT_EQ(CodeFor(std::make_exception_ptr(pqxx::broken_connection("gone"))),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(
      CodeFor(std::make_exception_ptr(pqxx::too_many_connections("full"))),
      absl::StatusCode::kUnavailable);
  EXPECT_EQ(
      CodeFor(std::make_exception_ptr(pqxx::serialization_failure("40001"))),
      absl::StatusCode::kAborted);
  EXPECT_EQ(CodeFor(std::make_exception_ptr(pqxx::deadlock_detected("40P01"))),
            absl::StatusCode::kAborted);
  EXPECT_EQ(CodeFor(std::make_exception_ptr(
                pqxx::unique_violation("dup", "INSERT", "23505"))),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeFor(std::make_exception_ptr(pqxx::in_doubt_error("?"))),
            absl::StatusCode::kUnknown);
  EXPECT_EQ(
      CodeFor(std::make_exception_ptr(pqxx::statement_completion_unknown("?"))),
      absl::StatusCode::kUnknown);
  EXPECT_EQ(CodeFor(std::make_exception_ptr(std::runtime_error("boom"))),
            absl::StatusCode::kInternal);
  const absl::Status other = StatusFromPqxxException(
      std::make_exception_ptr(pqxx::undefined_table("no table", "", "42P01")),
      "Commit");
  EXPECT_EQ(other.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(other.message(), HasSubstr("42P01"));
  EXPECT_THAT(other.message(), HasSubstr("Commit"));
  // A foreign key violation is an integrity violation but not a unique one.
  EXPECT_EQ(CodeFor(std::make_exception_ptr(
                pqxx::foreign_key_violation("fk", "", "23503"))),
            absl::StatusCode::kInternal);
}

TEST(PgStoreNoServerTest, UnreachableServerIsUnavailable) {
  char dir[] = "/tmp/rampart-pg-none.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const auto store = PgStore::Create(
      {.dsn = absl::StrFormat("host=%s port=5432 dbname=rampart_test "
                              "connect_timeout=5",
                              dir)});
  rmdir(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable)
      << store.status();
}

TEST(PgStoreNoServerTest, EmptyDsnIsInvalidArgument) {
  EXPECT_EQ(PgStore::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Against a real PostgreSQL
// ------------------------------------------------

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = RequirePgTestDsn();
    if (dsn_.empty()) {
      return;
    }
    schema_ = UniquePgTestSchema();
  }

  void TearDown() override {
    if (!schema_.empty()) {
      EXPECT_TRUE(PgStore::DropSchemaForTest(dsn_, schema_).ok());
    }
  }

  PgStoreOptions Options() const {
    return PgStoreOptions{.dsn = dsn_, .schema = schema_};
  }

  std::unique_ptr<PgStore> Open(PgStoreOptions options) {
    auto store = PgStore::Create(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<PgStore> Open() { return Open(Options()); }

  // Runs `sql` in this test's schema on a separate connection.
  pqxx::result Exec(const std::string& sql) {
    pqxx::connection conn(dsn_);
    pqxx::work tx(conn);
    tx.exec("SET LOCAL search_path TO " + tx.quote_name(schema_));
    pqxx::result r = tx.exec(sql);
    tx.commit();
    return r;
  }

  std::string dsn_;
  std::string schema_;
};

TEST_F(PgStoreTest, MigratesAndRecordsVersions) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const auto version = store->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, PgMigrations().back().version);
  const pqxx::result r = Exec(
      "SELECT version, name, applied_at IS NOT NULL FROM "
      "schema_migrations ORDER BY version");
  ASSERT_EQ(r.size(), PgMigrations().size());
  EXPECT_EQ(r[0][0].as<int>(), 1);
  EXPECT_EQ(r[0][1].as<std::string>(), "init");
  EXPECT_TRUE(r[0][2].as<bool>());
  // Reopening applies nothing.
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(Exec("SELECT count(*) FROM schema_migrations")[0][0].as<size_t>(),
            PgMigrations().size());
}

TEST_F(PgStoreTest, ConcurrentMigrationsApplyOnce) {
  constexpr int kThreads = 6;
  absl::Barrier* start = new absl::Barrier(kThreads);
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) {
        delete start;
      }
      results[i] = PgStore::Create(Options()).status();
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (const absl::Status& s : results) {
    EXPECT_TRUE(s.ok()) << s;
  }
  const pqxx::result r =
      Exec("SELECT count(*), count(DISTINCT version) FROM schema_migrations");
  EXPECT_EQ(r[0][0].as<size_t>(), PgMigrations().size());
  EXPECT_EQ(r[0][1].as<size_t>(), PgMigrations().size());
}

TEST_F(PgStoreTest, NewerSchemaIsFailedPrecondition) {
  ASSERT_NE(Open(), nullptr);
  Exec("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')");
  const auto store = PgStore::Create(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("V999__future"));
}

TEST_F(PgStoreTest, RenamedMigrationIsFailedPrecondition) {
  ASSERT_NE(Open(), nullptr);
  Exec("UPDATE schema_migrations SET name = 'other' WHERE version = 1");
  EXPECT_EQ(PgStore::Create(Options()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PgStoreTest, UniqueViolationIsAlreadyExistsAndWritesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  CompromiseAlert alert{.id = 7, .time = kT0, .user = "alice"};
  alert.ip = *IpAddress::Parse("203.0.113.9");
  ASSERT_TRUE(store->Commit({.alerts = {alert}}).ok());

  // Same alert id again, with other writes before and after it.
  const absl::Status s =
      store->Commit({.batches = {BatchId{
                         .agent_id = "mail1", .spool_epoch = 1, .sequence = 1}},
                     .events = {Event("203.0.113.9", kT0)},
                     .journal = {Add(1, 1, "203.0.113.9")},
                     .alerts = {alert},
                     .audit = {Audit("ban.add")}});
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_THAT(s.message(), HasSubstr("23505"));

  EXPECT_FALSE(*store->HasBatch({"mail1", 1, 1}));
  EXPECT_THAT(*store->EventsForPrefix(Prefix("0.0.0.0/0"), kT0, 10), IsEmpty());
  EXPECT_THAT(*store->ListAudit(kT0, 10), IsEmpty());
  EXPECT_EQ(store->LoadState(kT0)->revision, 0u);
  EXPECT_THAT(*store->ListAlerts(kT0, 10), SizeIs(1));
}

TEST_F(PgStoreTest, OtherSqlErrorIsInternalWithSqlstate) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // About 10700 BC: before timestamptz's range (4713 BC).
  const absl::Status s = store->Commit(
      {.events = {
           Event("192.0.2.1", absl::FromUnixSeconds(-400'000'000'000))}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(s.message(), HasSubstr("SQLSTATE 22008")) << s;
}

TEST_F(PgStoreTest, TextThatPostgresCannotHoldIsInvalidArgument) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  AuthEvent e = Event("192.0.2.1", kT0);
  e.agent_id = std::string("mail\xff", 5);
  EXPECT_EQ(store->Commit({.events = {e}}).code(),
            absl::StatusCode::kInvalidArgument);
  e.agent_id = std::string("mail\0", 5);
  EXPECT_EQ(store->Commit({.events = {e}}).code(),
            absl::StatusCode::kInvalidArgument);
  // User names are bytea: any bytes round-trip.
  e.agent_id = "mail1";
  e.user = std::string("a\0\xff\"\\\n\tb", 9);
  ASSERT_TRUE(store->Commit({.events = {e}}).ok());
  EXPECT_THAT(*store->EventsForPrefix(Prefix("192.0.2.1"), kT0, 10),
              ElementsAre(e));
}

TEST_F(PgStoreTest, BatchIdsPostgresCannotHoldWereNeverCommitted) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const BatchId stored{.agent_id = "mail \"1\", {x}\\", .sequence = 1};
  ASSERT_TRUE(store->Commit({.batches = {stored}}).ok());
  const BatchId bad_utf8{.agent_id = std::string("mail\xff", 5)};
  const BatchId nul{.agent_id = std::string("mail\0", 5)};
  // Answered without error, in order, with one statement for the rest.
  EXPECT_THAT(*store->HasBatches({bad_utf8, stored, nul, stored}),
              ElementsAre(false, true, false, true));
  EXPECT_FALSE(*store->HasBatch(nul));
  EXPECT_EQ(store->Commit({.batches = {bad_utf8}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PgStoreTest, TerminatedBackendIsUnavailableThenReconnects) {
  const std::string app = schema_.substr(0, 60);
  PgStoreOptions options = Options();
  options.dsn += " application_name=" + app;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({.journal = {Add(1, 1, "198.51.100.7")}}).ok());

  {
    pqxx::connection admin(dsn_);
    pqxx::nontransaction tx(admin);
    const pqxx::result r = tx.exec_params(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1",
        app);
    ASSERT_EQ(r.size(), 1u);
  }
  const auto broken = store->LoadState(kT0);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kUnavailable)
      << broken.status();
  // The next call reconnects, with this store's schema (search_path) again.
  const auto state = store->LoadState(kT0);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->revision, 1u);
  EXPECT_THAT(state->active_bans, SizeIs(1));
}

TEST_F(PgStoreTest, TwoStoresShareOneDatabase) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Commit({.batches = {BatchId{"mail1", 9, 1}},
                         .events = {Event("198.51.100.7", kT0)},
                         .journal = {Add(1, 1, "198.51.100.7")}})
                  .ok());
  EXPECT_TRUE(*b->HasBatch({"mail1", 9, 1}));
  EXPECT_EQ(*a->BanListEpoch(), *b->BanListEpoch());
  const auto state = b->LoadState(kT0);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->revision, 1u);
  EXPECT_EQ(state->max_ban_id, 1u);
  ASSERT_TRUE(b->Commit({.journal = {Add(2, 2, "198.51.100.8")}}).ok());
  const auto journal = a->JournalSince(0, 10);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_THAT(*journal, SizeIs(2));
  EXPECT_EQ((*journal)[1].ban.prefix, Prefix("198.51.100.8"));
  // The same batch through the other store is still a duplicate.
  EXPECT_EQ(b->Commit({.batches = {BatchId{"mail1", 9, 1}}}).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(PgStoreTest, JournalConflictBetweenStoresWritesNothing) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Commit({.journal = {Add(1, 1, "198.51.100.7")}}).ok());

  // b still believes the journal is empty.
  const absl::Status lost =
      b->Commit({.batches = {BatchId{"mail2", 1, 1}},
                 .events = {Event("192.0.2.50", kT0)},
                 .journal = {Add(1, 2, "192.0.2.50"), Add(2, 3, "192.0.2.51")},
                 .accounts = {AccountAttack{
                     .user = "bob", .first_seen = kT0, .last_seen = kT0}},
                 .allow_put = {AllowEntry{.prefix = Prefix("10.0.0.0/8")}},
                 .audit = {Audit("ban.add")}});
  EXPECT_EQ(lost.code(), absl::StatusCode::kAborted) << lost;

  // A gap is the caller's bug, not a race.
  EXPECT_EQ(b->Commit({.journal = {Add(3, 2, "192.0.2.50")}}).code(),
            absl::StatusCode::kInvalidArgument);

  // Nothing of the losing commits is visible, from either store.
  for (PgStore* s : {a.get(), b.get()}) {
    EXPECT_FALSE(*s->HasBatch({"mail2", 1, 1}));
    EXPECT_THAT(*s->EventsForPrefix(Prefix("192.0.2.0/24"), kT0, 10),
                IsEmpty());
    EXPECT_THAT(*s->BansFor(Prefix("192.0.2.50")), IsEmpty());
    EXPECT_THAT(*s->ListAccounts(kT0, 10), IsEmpty());
    EXPECT_THAT(*s->ListAudit(kT0, 10), IsEmpty());
    const auto state = s->LoadState(kT0);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->revision, 1u);
    EXPECT_THAT(state->allowlist, IsEmpty());
    EXPECT_THAT(*s->JournalSince(0, 10), SizeIs(1));
  }
  // After reloading, b continues the sequence.
  EXPECT_TRUE(b->Commit({.journal = {Add(2, 2, "192.0.2.50")}}).ok());
}

TEST_F(PgStoreTest, RacingWritersOfOneRevisionExactlyOneWins) {
  constexpr int kWriters = 5;
  std::vector<std::unique_ptr<PgStore>> stores;
  for (int i = 0; i < kWriters; ++i) {
    stores.push_back(Open());
    ASSERT_NE(stores.back(), nullptr);
  }
  absl::Barrier* start = new absl::Barrier(kWriters);
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) {
        delete start;
      }
      const std::string ip = absl::StrFormat("192.0.2.%d", i + 1);
      results[i] = stores[i]->Commit(
          {.events = {Event(ip.c_str(), kT0)},
           .journal = {Add(1, static_cast<uint64_t>(i + 1), ip.c_str())}});
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  int ok = 0;
  for (const absl::Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_THAT(*stores[0]->JournalSince(0, 10), SizeIs(1));
  EXPECT_THAT(*stores[0]->EventsForPrefix(Prefix("0.0.0.0/0"), kT0, 10),
              SizeIs(1));
}

TEST_F(PgStoreTest, CopyAndInsertWriteTheSameEvents) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<AuthEvent> events = {
      Event("192.0.2.1", kT0 + absl::Microseconds(1), "plain"),
      Event(nullptr, kT0 + absl::Microseconds(2), "no address"),
      Event("2001:db8::1", kT0 + absl::Microseconds(3),
            std::string("\0\xff\\\"{},NULL\t\n", 14)),
      Event("192.0.2.2", absl::FromUnixMicros(-1), "before 1970"),
      Event("192.0.2.3", kT0 + absl::Microseconds(3), ""),
  };
  events[1].agent_id = "mail \"two\", {x}\\";
  ASSERT_TRUE(store->Commit({.events = events}).ok());
  store->SetEventWriteModeForTest(PgStore::EventWriteMode::kInsertUnnest);
  ASSERT_TRUE(store->Commit({.events = events}).ok());

  std::vector<AuthEvent> read;
  ASSERT_TRUE(store
                  ->ForEachEvent(absl::InfinitePast(), absl::InfiniteFuture(),
                                 [&](const AuthEvent& e) {
                                   read.push_back(e);
                                   return absl::OkStatus();
                                 })
                  .ok());
  ASSERT_THAT(read, SizeIs(2 * events.size()));
  // Time order; ties in insertion order (COPY batch first).
  std::vector<AuthEvent> expected;
  for (int idx : {3, 3, 0, 0, 1, 1}) {
    expected.push_back(events[idx]);
  }
  for (int idx : {2, 4, 2, 4}) {
    expected.push_back(events[idx]);
  }
  EXPECT_EQ(read, expected);
}

TEST_F(PgStoreTest, ForEachEventPagesAndAllowsReentrantCalls) {
  PgStoreOptions options = Options();
  options.read_page_size = 3;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  std::vector<AuthEvent> events;
  for (int i = 0; i < 10; ++i) {
    // Pairs of equal times, so pages split ties.
    events.push_back(Event("192.0.2.1", kT0 + absl::Seconds(i / 2),
                           absl::StrFormat("user%d", i)));
  }
  ASSERT_TRUE(store->Commit({.events = events}).ok());
  std::vector<AuthEvent> read;
  ASSERT_TRUE(store
                  ->ForEachEvent(kT0, kT0 + absl::Seconds(5),
                                 [&](const AuthEvent& e) {
                                   read.push_back(e);
                                   // Re-entrant call: must not deadlock.
                                   return store->HasBatch({"x", 0, 0}).status();
                                 })
                  .ok());
  EXPECT_EQ(read, events);
}

TEST_F(PgStoreTest, TimesRoundTripExactly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  JournalEntry permanent = Add(1, 1, "2001:db8::/32");
  permanent.ban.expires = absl::InfiniteFuture();
  permanent.ban.created = absl::FromUnixMicros(1'709'719'200'123'456);
  permanent.at = absl::FromUnixMicros(-86'400'000'001);  // 1969, odd micros
  ASSERT_TRUE(store->Commit({.journal = {permanent}}).ok());
  const auto journal = store->JournalSince(0, 1);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_THAT(*journal, SizeIs(1));
  EXPECT_EQ((*journal)[0], permanent);
  const auto state = store->LoadState(absl::FromUnixSeconds(1LL << 40));
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_THAT(state->active_bans, SizeIs(1));
  EXPECT_EQ(state->active_bans[0], permanent.ban);
}

TEST_F(PgStoreTest, PooledConnectionsCommitEventsWhileAJournalWriterWaits) {
  PgStoreOptions options = Options();
  options.pool_size = 2;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  // Another writer holds the journal lock (as a second server would).
  pqxx::connection other(dsn_);
  pqxx::work holder(other);
  holder.exec("SELECT pg_advisory_xact_lock(" +
              std::to_string(0x52414d504a524e4cLL) + ")");
  absl::Notification journal_done;
  absl::Status journal_status;
  std::thread writer([&] {
    journal_status = store->Commit({.journal = {Add(1, 1, "203.0.113.9")}});
    journal_done.Notify();
  });
  // Wait (bounded) until the writer's connection is queued on the lock.
  bool waiting = false;
  for (int i = 0; i < 500 && !waiting; ++i) {
    pqxx::connection probe(dsn_);
    pqxx::nontransaction q(probe);
    waiting = q.exec1(
                   "SELECT count(*) FROM pg_locks WHERE "
                   "locktype = 'advisory' AND NOT granted")[0]
                  .as<int>() > 0;
    if (!waiting) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  ASSERT_TRUE(waiting) << "the journal writer never queued on the lock";
  // With one connection this would wait behind the journal writer; the pool
  // commits the events on the second one meanwhile.
  ASSERT_TRUE(store->Commit({.events = {Event("198.51.100.7", kT0)}}).ok());
  EXPECT_FALSE(journal_done.HasBeenNotified());
  holder.abort();
  writer.join();
  EXPECT_TRUE(journal_status.ok()) << journal_status;
  const auto journal = store->JournalSince(0, 10);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_THAT(*journal, SizeIs(1));
  EXPECT_THAT(*store->EventsForPrefix(Prefix("198.51.100.7"), kT0, 10),
              SizeIs(1));
}

TEST_F(PgStoreTest, PrefixQueriesUseTheIpBtree) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store
          ->Commit({.events = {Event("198.51.100.7", kT0),
                               Event("198.51.100.200", kT0),
                               Event("198.51.101.1", kT0),
                               Event("2001:db8::7", kT0), Event(nullptr, kT0)}})
          .ok());
  EXPECT_THAT(*store->EventsForPrefix(Prefix("198.51.100.7"), kT0, 10),
              SizeIs(1));
  EXPECT_THAT(*store->EventsForPrefix(Prefix("198.51.100.0/24"), kT0, 10),
              SizeIs(2));
  EXPECT_THAT(*store->EventsForPrefix(Prefix("198.51.0.0/16"), kT0, 10),
              SizeIs(3));
  EXPECT_THAT(*store->EventsForPrefix(Prefix("0.0.0.0/0"), kT0, 10), SizeIs(3));
  EXPECT_THAT(*store->EventsForPrefix(Prefix("::/0"), kT0, 10), SizeIs(1));
  const pqxx::result index = Exec(
      "SELECT indexdef FROM pg_indexes WHERE indexname = 'events_ip_idx' "
      "AND schemaname = current_schema()");
  ASSERT_EQ(index.size(), 1u);
  EXPECT_THAT(index[0][0].as<std::string>(), HasSubstr("btree (ip)"));
  // The prefix becomes an index range (planned with the actual prefix).
  const pqxx::result plan = Exec(
      "EXPLAIN SELECT * FROM events WHERE ip BETWEEN "
      "host('198.51.100.0/24'::cidr)::inet AND "
      "host(broadcast('198.51.100.0/24'::cidr))::inet "
      "AND time >= '-infinity' ORDER BY time DESC, id DESC LIMIT 10");
  std::string text;
  for (const pqxx::row& row : plan) {
    text += row[0].as<std::string>() + "\n";
  }
  EXPECT_THAT(text, HasSubstr("events_ip_idx")) << text;
}

}  // namespace
}  // namespace rampart::server
