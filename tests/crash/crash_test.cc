// Crash safety of the correlator on each real store: a child process makes
// ban decisions and is killed with SIGKILL (no destructor, no flush runs);
// after a restart the active bans and the revision must be exactly what was
// durable, and the revision sequence must continue.

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/correlator.h"
#include "server/store/pg_store.h"
#include "tests/server/pg_test_env.h"
#ifdef RAMPART_HAVE_SQLITE_STORE
#include "server/store/sqlite_store.h"
#endif

namespace rampart::server {
namespace {

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());
constexpr int kDecisions = 25;

// Writes each published revision to a pipe, then optionally dies right after
// the N-th decision became durable and was published.
class PipePublisher final : public BanPublisher {
 public:
  PipePublisher(int fd, uint64_t die_at) : fd_(fd), die_at_(die_at) {}
  void Publish(const std::vector<JournalEntry>& entries) override {
    for (const JournalEntry& e : entries) {
      const uint64_t r = e.revision;
      if (::write(fd_, &r, sizeof r) != sizeof r) {
        _exit(3);
      }
      if (die_at_ != 0 && r >= die_at_) {
        ::raise(SIGKILL);
      }
    }
  }

 private:
  int fd_;
  uint64_t die_at_;
};

// Batch i: 10 failures from a /64 in its own /48 (no prefix ban interferes).
std::vector<AuthEvent> BanBatch(int i, absl::Time t = kT0) {
  const auto ip = IpAddress::Parse(absl::StrFormat("2001:db8:%x::1", i + 1));
  return std::vector<AuthEvent>(10, AuthEvent{.agent_id = "mail1",
                                              .kind = EventKind::kAuthFailure,
                                              .protocol = Protocol::kSmtp,
                                              .ip = ip,
                                              .user = "admin",
                                              .time = t});
}

CorrelatorOptions Options() {
  CorrelatorOptions o;
  o.policy.ban_jitter = 0;
  return o;
}

using StoreFactory = std::function<absl::StatusOr<std::unique_ptr<Store>>()>;

struct StoreKind {
  std::string name;
  // Returns a factory for a fresh store location (empty = skip), and cleans
  // up in the returned closure.
  std::function<std::pair<StoreFactory, std::function<void()>>()> make;
};

// Runs the child: ingest batches until killed (or `max_batches`).
[[noreturn]] void RunChild(const StoreFactory& factory, int fd, uint64_t die_at,
                           int max_batches) {
  absl::StatusOr<std::unique_ptr<Store>> store = factory();
  if (!store.ok()) {
    std::fprintf(stderr, "child: %s\n", store.status().ToString().c_str());
    _exit(2);
  }
  SimulatedClock clock(kT0);
  PipePublisher publisher(fd, die_at);
  absl::StatusOr<std::unique_ptr<Correlator>> c =
      Correlator::Create(Options(), **store, clock, publisher);
  if (!c.ok()) {
    _exit(2);
  }
  for (int i = 0; i < max_batches; ++i) {
    if (!(*c)->Ingest(BatchId{.agent_id = "mail1", .sequence = uint64_t(i) + 1},
                      BanBatch(i))
             .ok()) {
      _exit(4);
    }
  }
  _exit(0);
}

class CrashTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    auto [factory, cleanup] = GetParam().make();
    factory_ = factory;
    cleanup_ = cleanup;
  }
  void TearDown() override {
    if (cleanup_) cleanup_();
  }
  // Reopens the store and a Correlator as a restarted server would.
  void Restart(std::unique_ptr<Store>* store, std::unique_ptr<Correlator>* c) {
    absl::StatusOr<std::unique_ptr<Store>> s = factory_();
    ASSERT_TRUE(s.ok()) << s.status();
    *store = std::move(*s);
    absl::StatusOr<std::unique_ptr<Correlator>> corr =
        Correlator::Create(Options(), **store, clock_, publisher_);
    ASSERT_TRUE(corr.ok()) << corr.status();
    *c = std::move(*corr);
  }
  // Forks the child; returns its pid and the read end of its pipe.
  std::pair<pid_t, int> Spawn(uint64_t die_at, int max_batches) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      RunChild(factory_, fds[1], die_at, max_batches);
    }
    ::close(fds[1]);
    return {pid, fds[0]};
  }

  StoreFactory factory_;
  std::function<void()> cleanup_;
  SimulatedClock clock_{kT0 + absl::Seconds(1)};
  struct : BanPublisher {
    void Publish(const std::vector<JournalEntry>&) override {}
  } publisher_;
};

TEST_P(CrashTest, KilledAfterNDecisionsRestartsWithSameBansAndRevision) {
  if (!factory_) return;  // skipped in SetUp
  auto [pid, fd] = Spawn(kDecisions, 1000);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child exited with status " << status;
  uint64_t last = 0, r = 0;
  while (::read(fd, &r, sizeof r) == sizeof r) last = r;
  ::close(fd);
  ASSERT_EQ(last, static_cast<uint64_t>(kDecisions));

  std::unique_ptr<Store> store;
  std::unique_ptr<Correlator> c;
  Restart(&store, &c);
  EXPECT_EQ(c->revision(), static_cast<uint64_t>(kDecisions));
  const std::vector<Ban> active = c->ActiveBans();
  ASSERT_EQ(active.size(), static_cast<size_t>(kDecisions));
  for (int i = 0; i < kDecisions; ++i) {
    EXPECT_EQ(active[i].prefix.ToString(),
              absl::StrFormat("2001:db8:%x::/64", i + 1));
  }
  // The sequence continues: the next decision is revision N + 1.
  absl::StatusOr<IngestResult> next =
      c->Ingest(BatchId{.agent_id = "mail1", .sequence = 5000},
                BanBatch(kDecisions + 7, clock_.Now()));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->revision, static_cast<uint64_t>(kDecisions) + 1);
  // Escalation survives the crash: lift the first ban, offend again, and the
  // new ban is a second offence (level 1, 2 h instead of 30 min).
  ASSERT_TRUE(c->RemoveBan(active[0].prefix, "test", "crash-test").ok());
  absl::StatusOr<IngestResult> again =
      c->Ingest(BatchId{.agent_id = "mail1", .sequence = 5001},
                BanBatch(0, clock_.Now()));
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->new_bans, 1u);
  {
    std::unique_ptr<Store> store2;
    std::unique_ptr<Correlator> c2;
    Restart(&store2, &c2);  // history reloaded from the store only
    ASSERT_TRUE(c2->RemoveBan(active[0].prefix, "test", "crash-test").ok());
    absl::StatusOr<IngestResult> third =
        c2->Ingest(BatchId{.agent_id = "mail1", .sequence = 5002},
                   BanBatch(0, clock_.Now()));
    ASSERT_TRUE(third.ok()) << third.status();
    absl::StatusOr<std::vector<Ban>> bans = store2->BansFor(active[0].prefix);
    ASSERT_TRUE(bans.ok());
    ASSERT_GE(bans->size(), 3u);
    EXPECT_EQ((*bans)[0].level, 2);  // newest first: the third offence
    EXPECT_EQ((*bans)[1].level, 1);
    EXPECT_EQ((*bans)[0].expires - (*bans)[0].created, absl::Hours(8));
  }
  // A batch the child committed is still a duplicate after the crash.
  absl::StatusOr<IngestResult> dup =
      c->Ingest(BatchId{.agent_id = "mail1", .sequence = 1}, BanBatch(0));
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
}

TEST_P(CrashTest, KilledAtAnArbitraryMomentLosesNothingDurable) {
  if (!factory_) return;
  auto [pid, fd] = Spawn(/*die_at=*/0, /*max_batches=*/400);
  // Kill once at least kDecisions revisions were published, mid-stream.
  uint64_t last = 0, r = 0;
  while (last < static_cast<uint64_t>(kDecisions) &&
         ::read(fd, &r, sizeof r) == sizeof r) {
    last = r;
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  while (::read(fd, &r, sizeof r) == sizeof r) last = r;
  ::close(fd);
  ASSERT_GE(last, static_cast<uint64_t>(kDecisions));

  std::unique_ptr<Store> store;
  std::unique_ptr<Correlator> c;
  Restart(&store, &c);
  // Everything published was durable; at most the one commit in flight when
  // the signal hit may be durable without having been published.
  EXPECT_GE(c->revision(), last);
  EXPECT_LE(c->revision(), last + 1);
  // The active list equals a replay of the durable journal.
  absl::StatusOr<std::vector<JournalEntry>> journal =
      store->JournalSince(0, 100000);
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(journal->size(), c->revision());
  std::vector<std::string> replayed, active;
  for (const JournalEntry& e : *journal) {
    replayed.push_back(e.ban.prefix.ToString());
  }
  for (const Ban& b : c->ActiveBans()) {
    active.push_back(b.prefix.ToString());
  }
  EXPECT_EQ(active, replayed);
}

std::vector<StoreKind> Kinds() {
  std::vector<StoreKind> kinds;
  kinds.push_back(
      {"postgres", [] {
         std::pair<StoreFactory, std::function<void()>> out;
         const std::string dsn = RequirePgTestDsn();
         if (dsn.empty()) return out;
         const std::string schema = UniquePgTestSchema();
         out.first = [dsn, schema]() -> absl::StatusOr<std::unique_ptr<Store>> {
           absl::StatusOr<std::unique_ptr<PgStore>> s =
               PgStore::Create({.dsn = dsn, .schema = schema});
           if (!s.ok()) return s.status();
           return std::unique_ptr<Store>(std::move(*s));
         };
         out.second = [dsn, schema] {
           (void)PgStore::DropSchemaForTest(dsn, schema);
         };
         return out;
       }});
#ifdef RAMPART_HAVE_SQLITE_STORE
  kinds.push_back(
      {"sqlite", [] {
         std::pair<StoreFactory, std::function<void()>> out;
         const std::string path =
             (std::filesystem::temp_directory_path() /
              absl::StrFormat("rampart-crash-%d-%d.db", getpid(), rand()))
                 .string();
         out.first = [path]() -> absl::StatusOr<std::unique_ptr<Store>> {
           absl::StatusOr<std::unique_ptr<SqliteStore>> s =
               SqliteStore::Create({.path = path});
           if (!s.ok()) return s.status();
           return std::unique_ptr<Store>(std::move(*s));
         };
         out.second = [path] {
           for (const char* suffix : {"", "-wal", "-shm"}) {
             std::filesystem::remove(path + suffix);
           }
         };
         return out;
       }});
#endif
  return kinds;
}

INSTANTIATE_TEST_SUITE_P(Stores, CrashTest, ::testing::ValuesIn(Kinds()),
                         [](const ::testing::TestParamInfo<StoreKind>& p) {
                           return p.param.name;
                         });

}  // namespace
}  // namespace rampart::server
