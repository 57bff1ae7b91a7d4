// SQLite-specific behaviour of SqliteStore: the file, WAL and synchronous
// settings, migrations, several connections on one file, locking and error
// mapping. The behaviour shared with the other stores is in
// store_contract_test.cc.

#include "server/store/sqlite_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/barrier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_migrations.h"
#include "server/store/sqlite_statement.h"

namespace rampart::server {
namespace {

namespace fs = std::filesystem;
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
                   .ip = IpAddress::Parse(ip),
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

// A second, raw connection to a database file, for inspecting and tampering.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr),
        SQLITE_OK);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Runs `sql`; returns its rows, each column as text ("NULL" for NULL), or
  // the error text prefixed with "error: ".
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    char* error = nullptr;
    const int rc = sqlite3_exec(
        db_, sql.c_str(),
        [](void* ctx, int n, char** values, char**) {
          auto* result =
              static_cast<std::vector<std::vector<std::string>>*>(ctx);
          std::vector<std::string> row;
          for (int i = 0; i < n; ++i) {
            row.push_back(values[i] == nullptr ? "NULL" : values[i]);
          }
          result->push_back(std::move(row));
          return 0;
        },
        &rows, &error);
    if (rc != SQLITE_OK) {
      rows = {{std::string("error: ") + (error ? error : "?")}};
    }
    sqlite3_free(error);
    return rows;
  }
  std::string One(const std::string& sql) {
    const auto rows = Query(sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           absl::StrFormat("rampart-sqlite-test-%d-%d", getpid(), counter++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "rampart.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SqliteStore> Open(SqliteStoreOptions options) {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Create(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<SqliteStore> Open() { return Open({.path = path_}); }

  fs::path dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, FileUsesWalAndFullSynchronousByDefault) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SynchronousForTest(), 2);  // FULL
  ASSERT_TRUE(store->Commit({.events = {Event("192.0.2.1", kT0)}}).ok());
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_TRUE(fs::exists(path_ + "-wal"));
  RawDb raw(path_);
  EXPECT_EQ(raw.One("PRAGMA journal_mode"), "wal");

  auto normal = Open({.path = (dir_ / "n.db").string(),
                      .synchronous = SqliteSynchronous::kNormal});
  ASSERT_NE(normal, nullptr);
  EXPECT_EQ(*normal->SynchronousForTest(), 1);
}

TEST_F(SqliteStoreTest, MigratesOnceAndRecordsVersions) {
  ASSERT_NE(Open(), nullptr);
  RawDb raw(path_);
  const auto rows = raw.Query(
      "SELECT version, name, applied_at_us > 0 FROM schema_migrations "
      "ORDER BY version");
  ASSERT_THAT(rows, SizeIs(SqliteMigrations().size()));
  EXPECT_THAT(rows[0], ElementsAre("1", "init", "1"));
  // Reopening applies nothing.
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(*again->SchemaVersion(), SqliteMigrations().back().version);
  EXPECT_EQ(raw.One("SELECT count(*) FROM schema_migrations"),
            std::to_string(SqliteMigrations().size()));
}

TEST_F(SqliteStoreTest, ConcurrentOpensMigrateExactlyOnce) {
  constexpr int kThreads = 6;
  absl::Barrier* start = new absl::Barrier(kThreads);
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) {
        delete start;
      }
      results[i] = SqliteStore::Create({.path = path_}).status();
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (const absl::Status& s : results) {
    EXPECT_TRUE(s.ok()) << s;
  }
  RawDb raw(path_);
  EXPECT_EQ(raw.One("SELECT count(*) FROM schema_migrations"),
            std::to_string(SqliteMigrations().size()));
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefused) {
  ASSERT_NE(Open(), nullptr);
  {
    RawDb raw(path_);
    raw.Query(
        "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')");
  }
  const auto store = SqliteStore::Create({.path = path_});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("V999__future"));
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(SqliteStoreTest, RenamedMigrationIsRefused) {
  ASSERT_NE(Open(), nullptr);
  {
    RawDb raw(path_);
    raw.Query("UPDATE schema_migrations SET name = 'other' WHERE version = 1");
  }
  EXPECT_EQ(SqliteStore::Create({.path = path_}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, ReopenKeepsEverything) {
  const BatchId batch{.agent_id = "mail1", .spool_epoch = 3, .sequence = 9};
  uint64_t epoch = 0;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    epoch = *store->BanListEpoch();
    ASSERT_TRUE(
        store
            ->Commit({.batches = {batch},
                      .events = {Event("198.51.100.7", kT0)},
                      .journal = {Add(1, 1, "198.51.100.7"),
                                  Add(2, 2, "2001:db8::/64")},
                      .allow_put = {AllowEntry{.prefix = Prefix("10.0.0.0/8"),
                                               .comment = "office",
                                               .created = kT0}}})
            .ok());
    ASSERT_TRUE(store->PruneJournal(2).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(*store->HasBatch(batch));
  EXPECT_EQ(*store->BanListEpoch(), epoch);  // same database, same lineage
  const auto state = store->LoadState(kT0);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->revision, 2u);
  EXPECT_EQ(state->max_ban_id, 2u);
  EXPECT_THAT(state->active_bans, SizeIs(2));
  EXPECT_THAT(state->allowlist, SizeIs(1));
  EXPECT_EQ(*store->OldestRevision(), 2u);
  EXPECT_THAT(*store->EventsForPrefix(Prefix("198.51.100.0/24"), kT0, 10),
              ElementsAre(Event("198.51.100.7", kT0)));
  EXPECT_EQ(store->Commit({.journal = {Add(2, 3, "192.0.2.1")}}).code(),
            absl::StatusCode::kAborted);
}

TEST_F(SqliteStoreTest, TwoStoresShareOneFile) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const BatchId batch{.agent_id = "mail1", .spool_epoch = 9, .sequence = 1};
  ASSERT_TRUE(a->Commit({.batches = {batch},
                         .events = {Event("198.51.100.7", kT0)},
                         .journal = {Add(1, 1, "198.51.100.7")}})
                  .ok());
  EXPECT_TRUE(*b->HasBatch(batch));
  EXPECT_EQ(b->LoadState(kT0)->revision, 1u);
  // b's view was stale: the revision check runs inside its transaction.
  const absl::Status lost = b->Commit({.events = {Event("192.0.2.50", kT0)},
                                       .journal = {Add(1, 2, "192.0.2.50")}});
  EXPECT_EQ(lost.code(), absl::StatusCode::kAborted) << lost;
  EXPECT_THAT(*a->EventsForPrefix(Prefix("192.0.2.0/24"), kT0, 10), IsEmpty());
  ASSERT_TRUE(b->Commit({.journal = {Add(2, 2, "192.0.2.50")}}).ok());
  EXPECT_THAT(*a->JournalSince(0, 10), SizeIs(2));
  EXPECT_EQ(b->Commit({.batches = {batch}}).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, RacingWritersOfOneRevisionExactlyOneWins) {
  constexpr int kWriters = 4;
  std::vector<std::unique_ptr<SqliteStore>> stores;
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
  EXPECT_THAT(*stores[0]->EventsForPrefix(Prefix("0.0.0.0/0"), kT0, 10),
              SizeIs(1));
}

TEST_F(SqliteStoreTest, WriteLockedByAnotherConnectionIsUnavailable) {
  // busy_timeout 0: fail at once instead of waiting (no sleeping in tests).
  auto store = Open({.path = path_, .busy_timeout = absl::ZeroDuration()});
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({.journal = {Add(1, 1, "198.51.100.7")}}).ok());
  RawDb raw(path_);
  ASSERT_THAT(raw.Query("BEGIN IMMEDIATE"), IsEmpty());
  const absl::Status busy =
      store->Commit({.journal = {Add(2, 2, "198.51.100.8")}});
  EXPECT_EQ(busy.code(), absl::StatusCode::kUnavailable) << busy;
  EXPECT_THAT(busy.message(), HasSubstr("code 5"));
  // WAL: readers are not blocked by the writer.
  const auto state = store->LoadState(kT0);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->revision, 1u);
  ASSERT_THAT(raw.Query("ROLLBACK"), IsEmpty());
  EXPECT_TRUE(store->Commit({.journal = {Add(2, 2, "198.51.100.8")}}).ok());
}

TEST_F(SqliteStoreTest, UnopenablePathsAreClearErrors) {
  const std::string missing_dir =
      (dir_ / "no" / "such" / "rampart.db").string();
  const auto missing = SqliteStore::Create({.path = missing_dir});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition)
      << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr(missing_dir));
  EXPECT_THAT(missing.status().message(), HasSubstr("directory exists"));

  const auto directory = SqliteStore::Create({.path = dir_.string()});
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(directory.status().message(), HasSubstr(dir_.string()));

  const std::string garbage = (dir_ / "garbage.db").string();
  std::ofstream(garbage) << std::string(4096, 'x');
  const auto not_db = SqliteStore::Create({.path = garbage});
  ASSERT_FALSE(not_db.ok());
  EXPECT_EQ(not_db.status().code(), absl::StatusCode::kInternal)
      << not_db.status();
  EXPECT_THAT(not_db.status().message(), HasSubstr("code 26"));  // NOTADB

  EXPECT_EQ(SqliteStore::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SqliteStore::Create({.path = path_, .read_page_size = 0}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SqliteStore::Create({.path = path_, .cache_mib = 0}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, ForEachEventPagesAndAllowsReentrantCalls) {
  auto store = Open({.path = path_, .read_page_size = 3});
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
                                   // Re-entrant: must not deadlock.
                                   return store->Commit(
                                       {.audit = {AuditRecord{.time = kT0,
                                                              .action = "x"}}});
                                 })
                  .ok());
  EXPECT_EQ(read, events);
  EXPECT_THAT(*store->ListAudit(kT0, 100), SizeIs(10));
}

TEST_F(SqliteStoreTest, InMemoryDatabaseWorks) {
  auto store = Open({.path = ":memory:"});
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({.journal = {Add(1, 1, "198.51.100.7")}}).ok());
  EXPECT_EQ(store->LoadState(kT0)->revision, 1u);
}

TEST(SqliteErrorTest, MapsResultCodes) {
  const auto code = [](int rc) {
    return SqliteError(nullptr, rc, "test").code();
  };
  EXPECT_EQ(code(SQLITE_BUSY), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(SQLITE_BUSY_TIMEOUT), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(SQLITE_LOCKED), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(SQLITE_BUSY_SNAPSHOT), absl::StatusCode::kAborted);
  EXPECT_EQ(code(SQLITE_CONSTRAINT_PRIMARYKEY),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code(SQLITE_CONSTRAINT_UNIQUE), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(code(SQLITE_CONSTRAINT_FOREIGNKEY),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(SQLITE_CANTOPEN), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(code(SQLITE_READONLY), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(code(SQLITE_FULL), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(code(SQLITE_IOERR_FSYNC), absl::StatusCode::kInternal);
  EXPECT_EQ(code(SQLITE_CORRUPT), absl::StatusCode::kInternal);
  const absl::Status io = SqliteError(nullptr, SQLITE_IOERR_WRITE, "Commit");
  EXPECT_THAT(io.message(), HasSubstr("Commit"));
  EXPECT_THAT(io.message(),
              HasSubstr(absl::StrFormat("(code %d)", SQLITE_IOERR_WRITE)));
}

}  // namespace
}  // namespace rampart::server
