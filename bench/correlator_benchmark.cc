// Events/s through the correlator's detection model alone (no store, no
// gRPC) with 1M distinct attacking addresses, and memory per tracked
// address. Figures in docs/benchmarks.md.

#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/core/detector.h"

namespace rampart::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1709719200);  // 2024-03-06

// `n` events over `distinct` addresses (IPv4 from 10.0.0.0/8 numbering —
// addresses here never leave the process; 10% IPv6 in 2001:db8::/32), 8
// servers, users from a small dictionary, deterministic.
std::vector<AuthEvent> MakeEvents(size_t n, uint32_t distinct) {
  static const char* kServers[] = {"mail01", "mail02", "mail03", "hub01",
                                   "hub02",  "app01",  "app02",  "web01"};
  static const char* kUsers[] = {"admin", "info",   "test", "postmaster",
                                 "sales", "office", "jdoe", "support"};
  std::vector<AuthEvent> out;
  out.reserve(n);
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint32_t k = static_cast<uint32_t>(i < distinct ? i : x % distinct);
    IpAddress ip = IpAddress::V4(0x0A000000u + k);
    if (k % 10 == 9) {
      std::array<uint8_t, 16> b = {0x20, 0x01, 0x0d, 0xb8};
      b[4] = static_cast<uint8_t>(k >> 24);
      b[5] = static_cast<uint8_t>(k >> 16);
      b[6] = static_cast<uint8_t>(k >> 8);
      b[7] = static_cast<uint8_t>(k);
      b[15] = 1;
      ip = IpAddress::V6(b);
    }
    out.push_back(
        AuthEvent{.agent_id = kServers[x % 8],
                  .kind = (x >> 8) % 10 == 0 ? EventKind::kLockout
                                             : EventKind::kAuthFailure,
                  .protocol = static_cast<Protocol>(1 + (x >> 12) % 5),
                  .ip = ip,
                  .user = kUsers[(x >> 16) % 8],
                  .time = kT0 + absl::Milliseconds(static_cast<int64_t>(i))});
  }
  return out;
}

void BM_DetectorObserve(benchmark::State& state) {
  const uint32_t distinct = static_cast<uint32_t>(state.range(0));
  const std::vector<AuthEvent> events = MakeEvents(2 * distinct, distinct);
  size_t bans = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto detector = std::make_unique<Detector>(Policy{});
    Decisions out;
    state.ResumeTiming();
    for (const AuthEvent& e : events) {
      detector->Observe(e, e.time, /*decide=*/true, &out);
    }
    bans = out.journal.size();
    state.PauseTiming();
    detector.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() *
                          static_cast<int64_t>(events.size()));
  state.counters["distinct_ips"] = distinct;
  state.counters["bans"] = static_cast<double>(bans);
}
BENCHMARK(BM_DetectorObserve)
    ->Arg(1000000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

// Heap bytes per tracked address (score entry, server slots, hash-map slot
// and the account/prefix state they drag in), measured with mallinfo2.
void BM_DetectorMemoryPerIp(benchmark::State& state) {
  const uint32_t distinct = static_cast<uint32_t>(state.range(0));
  const std::vector<AuthEvent> events = MakeEvents(distinct, distinct);
  double per_ip = 0;
  size_t tracked = 0;
  for (auto _ : state) {
    malloc_trim(0);
    const struct mallinfo2 m0 = mallinfo2();
    const size_t before = m0.uordblks + m0.hblkhd;
    auto detector = std::make_unique<Detector>(Policy{});
    Decisions out;
    for (const AuthEvent& e : events) {
      detector->Observe(e, e.time, /*decide=*/false, &out);
    }
    const struct mallinfo2 m1 = mallinfo2();
    const size_t after = m1.uordblks + m1.hblkhd;
    tracked = detector->tracked_keys();
    per_ip = static_cast<double>(after - before) / static_cast<double>(tracked);
  }
  state.counters["tracked_keys"] = static_cast<double>(tracked);
  state.counters["bytes_per_ip"] = per_ip;
}
BENCHMARK(BM_DetectorMemoryPerIp)
    ->Arg(900000)
    ->Arg(1000000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace
}  // namespace rampart::server

BENCHMARK_MAIN();
