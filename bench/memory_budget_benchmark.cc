// Memory budget under a flood of attacker-chosen keys (issue 16 item 5):
// 10,000,000 failures, each from a distinct address with a distinct user
// name, go through the correlator's detection model (Detector) with the
// default limits (limits.max_score_entries, max_account_entries,
// agent_new_keys_per_minute), while one real attacker keeps guessing
// passwords through another agent. Reports the resident set (VmRSS / peak
// VmHWM), the entries kept, evicted and refused, and whether the real
// attacker was banned. Figures in docs/benchmarks.md "Memory budget".

#include <benchmark/benchmark.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "server/config/server_config.h"
#include "server/core/detector.h"

namespace rampart::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1709719200);  // 2024-03-06

// The memory budget the default limits are sized for: 1,000,000 score
// entries (at most 200 bytes each, docs/benchmarks.md "Correlator"),
// 500,000 account entries and the eviction scratch, in one process.
constexpr double kBudgetMib = 512;

// Kilobytes of /proc/self/status field `name` (VmRSS, VmHWM); 0 if absent.
double StatusKb(const std::string& name) {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == name + ":") {
      double kb = 0;
      in >> kb;
      return kb;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

// Flood address i: distinct for every i < 2^32 (IPv4 numbering from
// 10.0.0.0, wrapping; these never leave the process), every tenth IPv6 in
// 2001:db8::/32 (one /64 each).
IpAddress FloodAddress(uint32_t i) {
  if (i % 10 == 9) {
    std::array<uint8_t, 16> b = {0x20, 0x01, 0x0d, 0xb8};
    b[4] = static_cast<uint8_t>(i >> 24);
    b[5] = static_cast<uint8_t>(i >> 16);
    b[6] = static_cast<uint8_t>(i >> 8);
    b[7] = static_cast<uint8_t>(i);
    b[15] = 1;
    return IpAddress::V6(b);
  }
  return IpAddress::V4(0x0A000000u + i);
}

void BM_FloodOfDistinctKeys(benchmark::State& state) {
  const auto events = static_cast<uint32_t>(state.range(0));
  const ServerConfig::Limits limits;  // the defaults
  const IpAddress attacker = *IpAddress::Parse("203.0.113.66");
  for (auto _ : state) {
    auto detector = std::make_unique<Detector>(
        Policy{},
        DetectorLimits{
            .max_score_entries = static_cast<size_t>(limits.max_score_entries),
            .max_account_entries =
                static_cast<size_t>(limits.max_account_entries),
            .agent_new_keys_per_minute = limits.agent_new_keys_per_minute});
    Decisions out;
    size_t attacker_bans = 0;
    size_t other_bans = 0;
    static const char* kAgents[] = {"mail01", "mail02", "mail03", "hub01",
                                    "hub02",  "app01",  "app02",  "web01"};
    // One event a millisecond: 10M events span 2.8 hours; the real attack
    // is one failure every 2000 flood events (every 2 s).
    for (uint32_t i = 0; i < events; ++i) {
      const absl::Time t = kT0 + absl::Milliseconds(i);
      detector->Observe(AuthEvent{.agent_id = kAgents[i % 8],
                                  .kind = EventKind::kAuthFailure,
                                  .protocol = Protocol::kImap,
                                  .ip = FloodAddress(i),
                                  .user = absl::StrFormat("flood-%u", i),
                                  .time = t},
                        t, /*decide=*/true, &out);
      if (i % 2000 == 0) {
        detector->Observe(AuthEvent{.agent_id = "mx-edge",
                                    .kind = EventKind::kAuthFailure,
                                    .protocol = Protocol::kSmtp,
                                    .ip = attacker,
                                    .user = "Administrator",
                                    .time = t},
                          t, /*decide=*/true, &out);
      }
      for (const JournalEntry& j : out.journal) {
        (j.ban.prefix.Contains(IpPrefix::Host(attacker)) ? attacker_bans
                                                         : other_bans)++;
      }
      out = Decisions{};
    }
    const DetectorStats& s = detector->stats();
    state.counters["events"] = events;
    state.counters["rss_mib"] = StatusKb("VmRSS") / 1024;
    state.counters["peak_rss_mib"] = StatusKb("VmHWM") / 1024;
    state.counters["score_entries"] =
        static_cast<double>(detector->tracked_keys());
    state.counters["account_entries"] =
        static_cast<double>(detector->tracked_accounts());
    state.counters["score_evictions"] = static_cast<double>(s.score_evictions);
    state.counters["account_evictions"] =
        static_cast<double>(s.account_evictions);
    state.counters["keys_refused"] =
        static_cast<double>(s.score_keys_refused + s.account_keys_refused);
    state.counters["attacker_bans"] = static_cast<double>(attacker_bans);
    state.counters["other_bans"] = static_cast<double>(other_bans);
    state.counters["budget_mib"] = kBudgetMib;
    if (StatusKb("VmHWM") / 1024 > kBudgetMib) {
      state.SkipWithError("peak RSS over the memory budget");
    }
    if (attacker_bans == 0 || other_bans != 0) {
      state.SkipWithError(
          "the real attacker was not banned, or a flood "
          "address was");
    }
  }
}
BENCHMARK(BM_FloodOfDistinctKeys)
    ->Arg(10'000'000)
    ->Unit(benchmark::kSecond)
    ->Iterations(1);

}  // namespace
}  // namespace rampart::server

BENCHMARK_MAIN();
