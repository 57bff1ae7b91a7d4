// Ingest throughput, end to end: --agents agent streams sending full event
// batches to the real rampart-server on PostgreSQL as fast as durable acks
// allow.
//
// Needs RAMPART_TEST_PG_DSN (a throwaway database is created on that
// server and dropped afterwards); without it the benchmark prints why and
// exits 0, or 1 when CI is set. The cluster's durability settings are
// printed with the figures: scripts/test-postgres.sh's cluster runs with
// fsync=off and synchronous_commit=off, so for durable figures point
// RAMPART_TEST_PG_DSN at a cluster with fsync=on, synchronous_commit=on
// (docs/benchmarks.md "Server ingest" says how).
//
// Each agent (BenchAgent: callback API, streams share --channels
// connections) keeps --inflight batches of --batch events unacknowledged,
// sending the next batch when a BatchAck settles one (the server acks only
// after the commit). Events are SMTP auth failures from documentation
// addresses (10 % IPv4 in 198.51.100.0/24, 203.0.113.0/24, 192.0.2.0/24;
// 90 % IPv6, a distinct 2001:db8::/32 /64 per event of a pool of --pool
// batches), --users user names (default 1000); the policy's ban threshold is
// 10^6 so nothing is banned and the run measures ingest. After --warmup
// seconds, events acknowledged during --duration seconds are counted; the ack
// latency is the agent's view, from queueing the batch on its stream to the
// BatchAck, for the batches acknowledged inside the window (so with N batches
// in flight it includes waiting behind the agent's and other agents' earlier
// batches). The server's histograms (rampart_store_commit_seconds: the whole
// Correlator::IngestMany of a group; rampart_store_seconds{op="commit"}: the
// store transaction alone; rampart_ingest_latency_seconds: queue + group),
// CPU use (server, this process, whole machine) and PostgreSQL's WAL and
// checkpoint counters over the same window show where time goes.
//
// Prints a table and one machine-readable line starting with "RESULT ".

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_client.h"
#include "tests/fakes/fake_agent.h"

namespace rampart::bench {
namespace {

struct Flags {
  int agents = 100;
  int channels = 4;
  int batch = 5000;
  int inflight = 4;
  int pool = 16;
  int users = 1000;
  double warmup_s = 3;
  double duration_s = 10;
};

std::string ConfigYaml(int agents) {
  return absl::StrFormat(R"(policy:
  ban_threshold: 1000000
limits:
  max_agents: %d
  heartbeat_timeout: 1h
  # Every simulated agent connects at once, from 127.0.0.1, many per
  # connection: lift the caps on streams awaiting their Hello.
  max_unauthenticated_streams: 100000
  max_unauthenticated_streams_per_address: 100000
  max_unauthenticated_streams_per_connection: 100000
  # Measure ingest, not the per-agent abuse limits (docs/security.md).
  agent_events_per_second: 1000000
  agent_events_burst: 10000000
)",
                         agents + 16);
}

// Event k of the pool: 1 in 10 from an IPv4 documentation host, else from
// its own IPv6 /64 (2001:db8:H:L::1, H and L never 0 so the text is
// canonical).
std::string EventAddress(int64_t k) {
  static constexpr const char* kV4[] = {"198.51.100", "203.0.113", "192.0.2"};
  if (k % 10 == 0) {
    const int64_t h = (k / 10) % (3 * 254);
    return absl::StrFormat("%s.%d", kV4[h % 3], 1 + h / 3);
  }
  return absl::StrFormat("2001:db8:%x:%x::1", 1 + k / 65535, 1 + k % 65535);
}

// One agent's sending state; its BatchAcks arrive one at a time (one read
// in flight per stream), sends may come from the main thread too.
struct IngestAgent {
  std::unique_ptr<BenchAgent> stream;
  int index = 0;
  absl::Mutex mu;
  uint64_t next_sequence ABSL_GUARDED_BY(mu) = 1;
  std::map<uint64_t, SteadyTime> sent ABSL_GUARDED_BY(mu);
  std::vector<double> latencies_ms ABSL_GUARDED_BY(mu);
  int64_t window_events ABSL_GUARDED_BY(mu) = 0;
  int64_t window_batches ABSL_GUARDED_BY(mu) = 0;
  int64_t acked_batches ABSL_GUARDED_BY(mu) = 0;
  int64_t rejected_batches ABSL_GUARDED_BY(mu) = 0;
};

class IngestRun {
 public:
  IngestRun(const Flags& flags, std::vector<v1::EventBatch> pool)
      : flags_(flags), pool_(std::move(pool)) {}

  // Sends batches until `agent` has flags_.inflight unacknowledged, unless
  // stopping.
  void Fill(IngestAgent& agent) {
    // agent.mu is held across Send so that sequences are queued in
    // increasing order whichever thread fills (Send never runs a reaction
    // inline, so this cannot deadlock with OnAck).
    absl::MutexLock lock(&agent.mu);
    while (!stopping_.load() &&
           agent.sent.size() < static_cast<size_t>(flags_.inflight)) {
      const uint64_t seq = agent.next_sequence++;
      auto m = std::make_shared<v1::AgentMessage>();
      v1::EventBatch* b = m->mutable_event_batch();
      *b = pool_[(static_cast<size_t>(agent.index) + seq) % pool_.size()];
      b->set_sequence(seq);
      agent.sent[seq] = SteadyClock::now();
      if (!agent.stream->Send(std::move(m))) {
        agent.sent.erase(seq);
        return;
      }
    }
  }

  // BatchAck handler for `agent` (gRPC callback thread).
  void OnAck(IngestAgent& agent, const v1::BatchAck& ack, SteadyTime at) {
    const bool in_window = at >= window_start_ && at < window_end_;
    {
      absl::MutexLock lock(&agent.mu);
      const auto settle = [&](uint64_t seq, bool committed) {
        const auto it = agent.sent.find(seq);
        if (it == agent.sent.end()) {
          return;
        }
        if (committed) {
          ++agent.acked_batches;
        } else {
          ++agent.rejected_batches;
        }
        if (in_window && committed) {
          agent.window_events += flags_.batch;
          ++agent.window_batches;
          agent.latencies_ms.push_back(Ms(it->second, at));
        }
        agent.sent.erase(it);
      };
      for (uint64_t seq : ack.sequences()) {
        settle(seq, true);
      }
      for (const v1::BatchRejection& r : ack.rejected()) {
        settle(r.sequence(), false);
      }
      // durable_through covers anything not listed (never expected here).
      while (!agent.sent.empty() &&
             agent.sent.begin()->first <= ack.durable_through()) {
        settle(agent.sent.begin()->first, true);
      }
    }
    Fill(agent);
  }

  void SetWindow(SteadyTime start, SteadyTime end) {
    window_start_ = start;
    window_end_ = end;
  }
  void Stop() { stopping_.store(true); }

 private:
  const Flags flags_;
  const std::vector<v1::EventBatch> pool_;
  // Set before the first batch is sent, read-only afterwards.
  SteadyTime window_start_ = SteadyTime::max();
  SteadyTime window_end_ = SteadyTime::max();
  std::atomic<bool> stopping_{false};
};

int Run(const Flags& flags) {
  const char* env_dsn = std::getenv("RAMPART_TEST_PG_DSN");
  if (env_dsn == nullptr || !*env_dsn) {
    const bool ci = std::getenv("CI") != nullptr;
    absl::FPrintF(
        ci ? stderr : stdout,
        "ingest_benchmark: RAMPART_TEST_PG_DSN is not set; this benchmark "
        "needs PostgreSQL (export RAMPART_TEST_PG_DSN=$(scripts/"
        "test-postgres.sh start)). %s\n",
        ci ? "CI is set: failing." : "Skipped.");
    return ci ? 1 : 0;
  }
  auto dir = TempDir::Create();
  if (!dir.ok()) {
    absl::FPrintF(stderr, "%s\n", dir.status().ToString());
    return 1;
  }
  auto pg = ThrowawayDatabase::Create(env_dsn, "bench_ingest");
  if (!pg.ok()) {
    absl::FPrintF(stderr, "%s\n", pg.status().ToString());
    return 1;
  }
  const std::string settings = DurabilitySettings((*pg)->base_dsn());
  auto server = StartServer(**dir, ConfigYaml(flags.agents), (*pg)->db_flag());
  if (!server.ok()) {
    absl::FPrintF(stderr, "starting rampart-server: %s\n",
                  server.status().ToString());
    return 1;
  }

  // The batch pool, built once; each send copies one and sets its sequence.
  const absl::Time now = absl::Now();
  std::vector<v1::EventBatch> pool(static_cast<size_t>(flags.pool));
  int64_t k = 0;
  for (v1::EventBatch& b : pool) {
    for (int j = 0; j < flags.batch; ++j, ++k) {
      v1::AuthEvent* e = b.add_events();
      *e = testing::MakeAuthFailure(
          EventAddress(k), now - absl::Milliseconds(flags.batch - j),
          absl::StrFormat("user%d", static_cast<int>(k % flags.users)));
      e->set_log_source_id(1);
      e->set_line_offset(static_cast<uint64_t>(k) * 120);
    }
    const int64_t ns = absl::ToUnixNanos(now);
    b.mutable_sealed_at()->set_seconds(ns / 1000000000);
    b.mutable_sealed_at()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  }
  IngestRun run(flags, std::move(pool));

  auto channels = MakeChannels((*server)->grpc_target(), flags.channels);
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  for (const auto& c : channels) {
    stubs.push_back(v1::AgentService::NewStub(c));
  }
  std::vector<std::unique_ptr<IngestAgent>> agents;
  for (int i = 0; i < flags.agents; ++i) {
    auto agent = std::make_unique<IngestAgent>();
    agent->index = i;
    IngestAgent* raw = agent.get();
    agent->stream = std::make_unique<BenchAgent>(
        BenchAgent::Options{},
        [&run, raw](const v1::ServerMessage& m, SteadyTime at) {
          if (m.has_batch_ack()) {
            run.OnAck(*raw, m.batch_ack(), at);
          }
        });
    agent->stream->Start(
        *stubs[static_cast<size_t>(i % flags.channels)],
        testing::FakeAgent::MakeHello(absl::StrFormat("ingest-%03d", i), 0, 0,
                                      0x1000 + static_cast<uint64_t>(i)));
    agents.push_back(std::move(agent));
  }
  for (auto& agent : agents) {
    if (absl::Status s = agent->stream->WaitForWelcome(absl::Seconds(60));
        !s.ok()) {
      absl::FPrintF(stderr, "agent: %s\n%s\n", s.ToString(), (*server)->log());
      return 1;
    }
  }

  const auto dur = [](double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(s));
  };
  const SteadyTime begin = SteadyClock::now();
  const SteadyTime window_start = begin + dur(flags.warmup_s);
  const SteadyTime window_end = window_start + dur(flags.duration_s);
  run.SetWindow(window_start, window_end);
  absl::PrintF(
      "%d agents over %d connections, %d-event batches, %d in flight each; "
      "PostgreSQL %s; warm-up %.0f s, measuring %.0f s\n",
      flags.agents, flags.channels, flags.batch, flags.inflight, settings,
      flags.warmup_s, flags.duration_s);
  for (auto& agent : agents) {
    run.Fill(*agent);
  }

  const int http_port = (*server)->http_port();
  const auto scrape = [http_port] {
    return std::vector<absl::StatusOr<ScrapedHistogram>>{
        ScrapeHistogram(http_port, "rampart_store_commit_seconds"),
        ScrapeHistogram(http_port, "rampart_store_seconds", "op", "commit"),
        ScrapeHistogram(http_port, "rampart_store_seconds", "op", "has_batch"),
        ScrapeHistogram(http_port, "rampart_ingest_latency_seconds"),
    };
  };
  std::this_thread::sleep_until(window_start);
  const auto before = scrape();
  const PgCounters pg_before = ReadPgCounters((*pg)->base_dsn());
  const double server_cpu_before = ProcessCpuSeconds((*server)->pid());
  const double self_cpu_before = ProcessCpuSeconds(0);
  const MachineCpu machine_before = ReadMachineCpu();
  const auto postgres_before = CommandCpuSeconds("postgres");
  std::this_thread::sleep_until(window_end);
  const auto after = scrape();
  const PgCounters pg_after = ReadPgCounters((*pg)->base_dsn());
  const double server_cpu =
      ProcessCpuSeconds((*server)->pid()) - server_cpu_before;
  const double self_cpu = ProcessCpuSeconds(0) - self_cpu_before;
  const MachineCpu machine_after = ReadMachineCpu();
  // The PostgreSQL processes of this machine (0 when the cluster is remote).
  const double postgres_cpu =
      CommandCpuDelta(postgres_before, CommandCpuSeconds("postgres"));
  run.Stop();

  // Let the batches in flight settle, then end the streams.
  const SteadyTime settle_deadline = SteadyClock::now() + dur(60);
  for (auto& agent : agents) {
    for (;;) {
      size_t left = 0;
      {
        absl::MutexLock lock(&agent->mu);
        left = agent->sent.size();
      }
      if (left == 0 || SteadyClock::now() > settle_deadline) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    agent->stream->Close();
  }
  for (auto& agent : agents) {
    if (!agent->stream->WaitDone(absl::Seconds(30)).ok()) {
      agent->stream->Cancel();
      (void)agent->stream->WaitDone(absl::Seconds(30));
    }
  }
  (void)(*server)->Terminate();

  int64_t events = 0;
  int64_t batches = 0;
  int64_t rejected = 0;
  std::vector<double> latencies;
  for (auto& agent : agents) {
    absl::MutexLock lock(&agent->mu);
    events += agent->window_events;
    batches += agent->window_batches;
    rejected += agent->rejected_batches;
    latencies.insert(latencies.end(), agent->latencies_ms.begin(),
                     agent->latencies_ms.end());
  }
  const double rate = static_cast<double>(events) / flags.duration_s;
  const double p50 = Percentile(latencies, 0.50);
  const double p90 = Percentile(latencies, 0.90);
  const double p99 = Percentile(latencies, 0.99);
  const double lat_max = latencies.empty() ? 0 : latencies.back();

  absl::PrintF("\n%-44s %14s\n", "measure", "value");
  absl::PrintF("%-44s %14.0f\n", "events/s durably acknowledged", rate);
  absl::PrintF("%-44s %14d\n", "batches acknowledged in the window", batches);
  absl::PrintF("%-44s %8.1f / %.1f / %.1f / %.1f\n",
               "ack latency ms p50 / p90 / p99 / max", p50, p90, p99, lat_max);
  // Window deltas of the server histograms (empty if a scrape failed).
  ScrapedHistogram window[4];
  for (size_t i = 0; i < 4; ++i) {
    if (before[i].ok() && after[i].ok()) {
      window[i] = after[i]->Minus(*before[i]);
    } else {
      absl::FPrintF(
          stderr, "scrape: %s\n",
          (before[i].ok() ? after[i] : before[i]).status().ToString());
    }
  }
  const ScrapedHistogram& group = window[0];
  const ScrapedHistogram& store_commit = window[1];
  const ScrapedHistogram& has_batch = window[2];
  const ScrapedHistogram& ingest = window[3];
  const double commit_mean_ms = group.Mean() * 1e3;
  const double commits_per_s = group.count / flags.duration_s;
  const double busy = group.sum / flags.duration_s;
  const double store_share = store_commit.sum / flags.duration_s;
  const double dedup_share = has_batch.sum / flags.duration_s;
  absl::PrintF("%-44s %14.1f\n", "server groups (transactions) per s",
               commits_per_s);
  absl::PrintF("%-44s %14.0f\n", "events per group",
               group.count > 0 ? static_cast<double>(events) / group.count : 0);
  absl::PrintF("%-44s %8.1f / <= %.0f / <= %.0f\n",
               "group (IngestMany) ms mean / p50 / p99 bucket", commit_mean_ms,
               group.QuantileUpperBound(0.5) * 1e3,
               group.QuantileUpperBound(0.99) * 1e3);
  absl::PrintF("%-44s %8.1f ms\n", "  of which store transaction, mean",
               store_commit.Mean() * 1e3);
  absl::PrintF("%-44s %8.1f ms\n", "  of which dedup look-up, mean",
               has_batch.Mean() * 1e3);
  absl::PrintF("%-44s %5.0f%% (store %.0f%%, dedup %.0f%%, other %.0f%%)\n",
               "ingest workers busy (sum; 100% = 1 thread)", busy * 100,
               store_share * 100, dedup_share * 100,
               (busy - store_share - dedup_share) * 100);
  absl::PrintF("%-44s %8.1f / <= %.0f / <= %.0f\n",
               "server ingest ms mean / p50 / p99 bucket", ingest.Mean() * 1e3,
               ingest.QuantileUpperBound(0.5) * 1e3,
               ingest.QuantileUpperBound(0.99) * 1e3);
  if (pg_before.wal_bytes >= 0 && pg_after.wal_bytes >= 0) {
    absl::PrintF(
        "%-44s %8.1f MB/s, %.0f checkpoints\n", "PostgreSQL WAL written",
        (pg_after.wal_bytes - pg_before.wal_bytes) / 1e6 / flags.duration_s,
        pg_after.checkpoints - pg_before.checkpoints);
  }
  const double machine_total = machine_after.total - machine_before.total;
  const double machine_busy =
      machine_total > 0
          ? (machine_after.busy - machine_before.busy) / machine_total
          : 0;
  const double cores = static_cast<double>(std::thread::hardware_concurrency());
  const double server_cores = server_cpu / flags.duration_s;
  const double client_cores = self_cpu / flags.duration_s;
  const double postgres_cores = postgres_cpu / flags.duration_s;
  const double machine_cores = machine_busy * cores;
  // Everything else the machine ran in the window: other jobs, the kernel's
  // own threads. More than a few percent of a core means the figures are
  // low and the run should be repeated on a quiet machine.
  const double other_cores = std::max(
      0.0, machine_cores - server_cores - client_cores - postgres_cores);
  absl::PrintF("%-44s %8.2f / %.2f / %.2f / %.2f / %.2f of %.0f\n",
               "CPU cores: server/PostgreSQL/client/other/all", server_cores,
               postgres_cores, client_cores, other_cores, machine_cores, cores);
  if (other_cores > 0.1) {
    absl::PrintF(
        "WARNING: other processes used %.2f cores during the window; the "
        "machine was not quiet, so the rate above is low\n",
        other_cores);
  }
  absl::PrintF("target >= 200000 events/s: %s\n",
               rate >= 200000 ? "met" : "MISSED");
  absl::PrintF(
      "RESULT ingest agents=%d connections=%d batch=%d inflight=%d users=%d "
      "duration_s=%.0f pg=\"%s\" events_per_s=%.0f batches=%d "
      "ack_p50_ms=%.2f ack_p99_ms=%.2f ack_max_ms=%.2f group_mean_ms=%.2f "
      "groups_per_s=%.1f worker_busy=%.2f store_share=%.2f server_cores=%.2f "
      "postgres_cores=%.2f client_cores=%.2f other_cores=%.2f "
      "machine_cores=%.2f rejected=%d\n",
      flags.agents, flags.channels, flags.batch, flags.inflight, flags.users,
      flags.duration_s, settings, rate, batches, p50, p99, lat_max,
      commit_mean_ms, commits_per_s, busy, store_share, server_cores,
      postgres_cores, client_cores, other_cores, machine_cores, rejected);
  return batches > 0 && rejected == 0 ? 0 : 1;
}

}  // namespace
}  // namespace rampart::bench

int main(int argc, char** argv) {
  rampart::bench::Flags flags;
  CLI::App app{
      "ingest_benchmark: events/s durably acknowledged by rampart-server on "
      "PostgreSQL (RAMPART_TEST_PG_DSN) from many agent streams"};
  app.add_option("--agents", flags.agents, "agent streams")
      ->check(CLI::Range(1, 5000));
  app.add_option("--channels", flags.channels,
                 "client connections the streams share")
      ->check(CLI::Range(1, 256));
  app.add_option("--batch", flags.batch, "events per batch")
      ->check(CLI::Range(1, 5000));
  app.add_option("--inflight", flags.inflight,
                 "unacknowledged batches per agent")
      ->check(CLI::Range(1, 32));
  app.add_option("--pool", flags.pool, "distinct pre-built batches")
      ->check(CLI::Range(1, 1000));
  app.add_option("--users", flags.users,
                 "distinct user names (each attacked account costs the store "
                 "an upsert per group)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", flags.warmup_s, "seconds before measuring");
  app.add_option("--duration", flags.duration_s, "seconds measured")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  return rampart::bench::Run(flags);
}
