// Store throughput: events/s for Store::Commit() of agent batches, as the
// correlator writes them (the events plus the batch ids), and the latency of
// EventsForPrefix() on a loaded events table.
//
// Commit benchmarks take {batches per commit, events per batch}: one batch
// per commit is Correlator::Ingest(); several are group commit
// (Correlator::IngestMany(): e.g. 100 agents x 500 events in ONE
// transaction).
//
// PostgreSQL: needs RAMPART_TEST_PG_DSN (scripts/test-postgres.sh start);
// without it the PostgreSQL benchmarks report a skip message. Each run uses
// its own schema, dropped afterwards. Two event write paths are measured:
// COPY (pqxx::stream_to, PgStore's default) and one multi-row
// INSERT ... SELECT FROM unnest(arrays). Whether commits are durable depends
// on the cluster (the test cluster runs with fsync=off; see
// docs/benchmarks.md).
// SQLite: a fresh database file in a temporary directory, with
// synchronous=FULL (the default: durable commits) or NORMAL.
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
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "server/core/store.h"
#include "server/store/pg_store.h"
#include "server/store/sqlite_store.h"

namespace rampart::server {
namespace {

namespace fs = std::filesystem;

const absl::Time kStart = absl::FromUnixSeconds(1'709'719'200);

// `n` events from `start`, one millisecond apart.
std::vector<AuthEvent> MakeEvents(std::mt19937_64& rng, absl::Time start,
                                  int n) {
  std::vector<AuthEvent> events;
  events.reserve(n);
  std::uniform_int_distribution<int> attacker(0, 4999);
  std::uniform_int_distribution<int> agent(1, 20);
  std::uniform_int_distribution<int> user(0, 999);
  for (int i = 0; i < n; ++i) {
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

// Commits for as long as the benchmark runs: each commit carries
// state.range(1) batches of state.range(2) events.
void RunCommits(benchmark::State& state, Store& store) {
  const int batches = static_cast<int>(state.range(1));
  const int per_batch = static_cast<int>(state.range(2));
  const int64_t per_commit = int64_t{batches} * per_batch;
  std::mt19937_64 rng(20240306);
  absl::Time t = kStart;
  uint64_t sequence = 0;
  CommitRecord record;
  for (auto _ : state) {
    state.PauseTiming();
    record.batches.clear();
    for (int b = 0; b < batches; ++b) {
      record.batches.push_back(
          BatchId{.agent_id = absl::StrFormat("agent%03d", b),
                  .spool_epoch = 1,
                  .sequence = ++sequence});
    }
    record.events = MakeEvents(rng, t, static_cast<int>(per_commit));
    t += absl::Milliseconds(per_commit);
    state.ResumeTiming();
    const absl::Status s = store.Commit(record);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * per_commit);
  state.counters["events_per_commit"] = static_cast<double>(per_commit);
}

// Fills `store` with `n` events (in commits of 10,000), then measures
// EventsForPrefix() for a /32, a /24 and a /16 (state.range(0): 32, 24, 16)
// with limit 1000 over everything.
void RunPrefixQueries(benchmark::State& state, Store& store, int n) {
  std::mt19937_64 rng(7);
  absl::Time t = kStart;
  for (int done = 0; done < n; done += 10'000) {
    CommitRecord record{.events = MakeEvents(rng, t, 10'000)};
    t += absl::Seconds(10);
    if (absl::Status s = store.Commit(record); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  const IpPrefix prefix = IpPrefix::Of(IpAddress::V4(0xC6336400u + 17u * 7919u),
                                       static_cast<int>(state.range(0)));
  size_t found = 0;
  for (auto _ : state) {
    absl::StatusOr<std::vector<AuthEvent>> events =
        store.EventsForPrefix(prefix, absl::InfinitePast(), 1000);
    if (!events.ok()) {
      state.SkipWithError(events.status().ToString().c_str());
      break;
    }
    found = events->size();
  }
  state.counters["rows"] = static_cast<double>(found);
  state.SetLabel(prefix.ToString());
}

// --- PostgreSQL
// ---------------------------------------------------------------

const char* PgDsn(benchmark::State& state) {
  const char* dsn = std::getenv("RAMPART_TEST_PG_DSN");
  if (dsn == nullptr || *dsn == '\0') {
    state.SkipWithError(
        "RAMPART_TEST_PG_DSN not set: skipping the PostgreSQL benchmark "
        "(export RAMPART_TEST_PG_DSN=$(scripts/test-postgres.sh start))");
    return nullptr;
  }
  return dsn;
}

// Which index events.ip has: the schema's B-tree (migrations/postgres/V002)
// or, for comparison, V001's GiST (inet_ops) put back by the benchmark.
enum PgIpIndex { kBtree = 0, kGist = 1 };

// Runs `body` on a store in a fresh schema, dropped afterwards. (Google
// Benchmark may call a benchmark function several times while it picks the
// iteration count; each call starts from an empty schema.)
template <typename Body>
void WithPgStore(benchmark::State& state, PgIpIndex index, Body body) {
  const char* dsn = PgDsn(state);
  if (dsn == nullptr) {
    return;  // allowed after SkipWithError()
  }
  const std::string schema = absl::StrFormat("bench_%d", getpid());
  (void)PgStore::DropSchemaForTest(dsn, schema);
  {
    auto store = PgStore::Create({.dsn = dsn, .schema = schema});
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
      return;
    }
    if (index == kGist) {
      try {
        pqxx::connection conn(dsn);
        pqxx::work tx(conn);
        tx.exec("SET LOCAL search_path TO " + tx.quote_name(schema));
        tx.exec("DROP INDEX events_ip_idx");
        tx.exec(
            "CREATE INDEX events_ip_idx ON events USING gist (ip inet_ops)");
        tx.commit();
      } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
      }
    }
    body(**store);
  }
  (void)PgStore::DropSchemaForTest(dsn, schema);
}

// Args: {0 COPY | 1 INSERT unnest, batches per commit, events per batch,
// PgIpIndex}.
void BM_PgCommit(benchmark::State& state) {
  const auto index = static_cast<PgIpIndex>(state.range(3));
  WithPgStore(state, index, [&](PgStore& store) {
    store.SetEventWriteModeForTest(
        state.range(0) == 0 ? PgStore::EventWriteMode::kCopy
                            : PgStore::EventWriteMode::kInsertUnnest);
    state.SetLabel(absl::StrFormat(
        "%s, %s", state.range(0) == 0 ? "COPY" : "INSERT unnest",
        index == kGist ? "GiST" : "btree"));
    RunCommits(state, store);
  });
}
BENCHMARK(BM_PgCommit)
    ->ArgNames({"insert", "batches", "events", "gist"})
    ->Args({0, 1, 500, kBtree})
    ->Args({0, 1, 500, kGist})
    ->Args({0, 1, 5000, kBtree})
    ->Args({0, 1, 5000, kGist})
    ->Args({0, 10, 500, kBtree})
    ->Args({0, 100, 500, kBtree})
    ->Args({0, 100, 500, kGist})
    ->Args({1, 1, 5000, kBtree})
    ->Args({1, 100, 500, kBtree})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

// Args: {prefix length, PgIpIndex}.
void BM_PgEventsForPrefix(benchmark::State& state) {
  WithPgStore(state, static_cast<PgIpIndex>(state.range(1)),
              [&](PgStore& store) { RunPrefixQueries(state, store, 500'000); });
}
BENCHMARK(BM_PgEventsForPrefix)
    ->ArgNames({"len", "gist"})
    ->Args({32, kBtree})
    ->Args({24, kBtree})
    ->Args({16, kBtree})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MinTime(1.0);

// --- SQLite
// -------------------------------------------------------------------

template <typename Body>
void WithSqliteStore(benchmark::State& state, SqliteSynchronous sync,
                     int cache_mib, Body body) {
  const fs::path dir =
      fs::temp_directory_path() / absl::StrFormat("rampart-bench-%d", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    auto store = SqliteStore::Create({.path = (dir / "rampart.db").string(),
                                      .synchronous = sync,
                                      .cache_mib = cache_mib});
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
    } else {
      body(**store);
    }
  }
  fs::remove_all(dir);
}

// Args: {synchronous: 2 FULL | 1 NORMAL, batches per commit, events per
// batch, page cache MiB (2: SQLite's default; 64: SqliteStore's)}.
void BM_SqliteCommit(benchmark::State& state) {
  const bool full = state.range(0) == 2;
  state.SetLabel(absl::StrFormat("synchronous=%s, cache %d MiB",
                                 full ? "FULL" : "NORMAL", state.range(3)));
  WithSqliteStore(state,
                  full ? SqliteSynchronous::kFull : SqliteSynchronous::kNormal,
                  static_cast<int>(state.range(3)),
                  [&](SqliteStore& store) { RunCommits(state, store); });
}
BENCHMARK(BM_SqliteCommit)
    ->ArgNames({"sync", "batches", "events", "cache"})
    ->Args({2, 1, 500, 64})
    ->Args({2, 1, 5000, 64})
    ->Args({2, 1, 5000, 2})
    ->Args({2, 10, 500, 64})
    ->Args({2, 100, 500, 64})
    ->Args({2, 100, 500, 2})
    ->Args({1, 1, 500, 64})
    ->Args({1, 1, 5000, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

void BM_SqliteEventsForPrefix(benchmark::State& state) {
  WithSqliteStore(
      state, SqliteSynchronous::kNormal, 64,
      [&](SqliteStore& store) { RunPrefixQueries(state, store, 500'000); });
}
BENCHMARK(BM_SqliteEventsForPrefix)
    ->ArgName("len")
    ->Arg(32)
    ->Arg(24)
    ->Arg(16)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace
}  // namespace rampart::server

BENCHMARK_MAIN();
