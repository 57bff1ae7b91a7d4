// Store write throughput: events/s for Commit() of agent batches of 5000
// events (plus the batch id, as the correlator writes them).
//
// PostgreSQL: needs RAMPART_TEST_PG_DSN (scripts/test-postgres.sh start);
// without it the PostgreSQL benchmarks report a skip message. Each run uses
// its own schema, dropped afterwards. Two event write paths are measured:
// COPY (pqxx::stream_to, PgStore's default) and one multi-row
// INSERT ... SELECT FROM unnest(arrays).
// SQLite: a fresh database file in a temporary directory.
//
// The events are deterministic (fixed seed): IPv4 and some IPv6 addresses
// from a pool of attackers, user names, 20 agents, increasing times.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "server/store/pg_store.h"
#include "server/store/store.h"
#ifdef RAMPART_HAVE_SQLITE_STORE
#include "server/store/sqlite_store.h"
#endif

namespace rampart::server {
namespace {

constexpr int kBatchEvents = 5000;

// One batch of events at `start`, one millisecond apart.
std::vector<AuthEvent> MakeBatch(std::mt19937_64& rng, absl::Time start) {
  std::vector<AuthEvent> events;
  events.reserve(kBatchEvents);
  std::uniform_int_distribution<int> attacker(0, 4999);
  std::uniform_int_distribution<int> agent(1, 20);
  std::uniform_int_distribution<int> user(0, 999);
  for (int i = 0; i < kBatchEvents; ++i) {
    const int a = attacker(rng);
    std::optional<IpAddress> ip;
    if (a % 10 == 9) {
      std::array<uint8_t, 16> b = {0x20, 0x01, 0x0d, 0xb8};
      b[14] = static_cast<uint8_t>(a >> 8);
      b[15] = static_cast<uint8_t>(a);
      ip = IpAddress::V6(b);
    } else if (a % 50 != 7) {
      ip = IpAddress::V4(0xC6336400u + static_cast<uint32_t>(a) * 7919u);
    }
    events.push_back(AuthEvent{
        .agent_id = absl::StrFormat("mail%02d.example.net", agent(rng)),
        .kind = EventKind::kAuthFailure,
        .protocol = Protocol::kSmtp,
        .ip = ip,
        .user = absl::StrFormat("user%03d", user(rng)),
        .time = start + absl::Milliseconds(i)});
  }
  return events;
}

// Commits batches to `store` for as long as the benchmark runs.
void RunCommits(benchmark::State& state, Store& store) {
  std::mt19937_64 rng(20240306);
  absl::Time t = absl::FromUnixSeconds(1'709'719'200);
  uint64_t sequence = 0;
  CommitRecord record;
  for (auto _ : state) {
    state.PauseTiming();
    record.batch =
        BatchId{.agent_id = "bench", .spool_epoch = 1, .sequence = ++sequence};
    record.events = MakeBatch(rng, t);
    t += absl::Seconds(5);
    state.ResumeTiming();
    const absl::Status s = store.Commit(record);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatchEvents);
  state.counters["events_per_batch"] = kBatchEvents;
}

void BM_PgCommit(benchmark::State& state) {
  const char* dsn = std::getenv("RAMPART_TEST_PG_DSN");
  if (dsn == nullptr || *dsn == '\0') {
    state.SkipWithError(
        "RAMPART_TEST_PG_DSN not set: skipping the PostgreSQL benchmark "
        "(export RAMPART_TEST_PG_DSN=$(scripts/test-postgres.sh start))");
    return;  // allowed after SkipWithError()
  }
  const std::string schema =
      absl::StrFormat("bench_%d_%d", getpid(), state.range(0));
  // Start from an empty schema each time (Google Benchmark may call this
  // function several times while it picks the iteration count).
  (void)PgStore::DropSchemaForTest(dsn, schema);
  auto store = PgStore::Create({.dsn = dsn, .schema = schema});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  (*store)->SetEventWriteModeForTest(
      state.range(0) == 0 ? PgStore::EventWriteMode::kCopy
                          : PgStore::EventWriteMode::kInsertUnnest);
  state.SetLabel(state.range(0) == 0 ? "COPY" : "INSERT unnest");
  RunCommits(state, **store);
  store->reset();
  (void)PgStore::DropSchemaForTest(dsn, schema);
}
BENCHMARK(BM_PgCommit)
    ->ArgName("insert")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

#ifdef RAMPART_HAVE_SQLITE_STORE
void BM_SqliteCommit(benchmark::State& state) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / absl::StrFormat("rampart-bench-%d", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    auto store = SqliteStore::Create({.path = (dir / "rampart.db").string()});
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
    } else {
      RunCommits(state, **store);
    }
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_SqliteCommit)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);
#endif

}  // namespace
}  // namespace rampart::server

BENCHMARK_MAIN();
