// Enforcement cost on nftables (docs/benchmarks.md, "Agent enforcement"):
// applying a 100k-address snapshot and a 100-address delta to the kernel,
// through the backend alone and through the Enforcer (guard, normalisation,
// persisted state with fsync), with peers for comparison: the same 100k
// through `ipset restore`, one interval set holding everything (what the
// backend avoids), and one `nft add element` process per address (what a
// naive bouncer does; a sample, extrapolated).
//
// Runs as root inside a private network namespace it creates with
// unshare(CLONE_NEWNET): the host's ruleset is never touched, and the
// namespace disappears with the process. Addresses come from 198.18.0.0/15
// (RFC 2544 benchmarking range).

#include <benchmark/benchmark.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/firewall/enforcer.h"
#include "agent/firewall/guard.h"
#include "agent/firewall/host_address_source.h"
#include "agent/firewall/ipset_firewall.h"
#include "agent/firewall/nftables_firewall.h"
#include "agent/firewall/subprocess.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace rampart::agent {
namespace {

constexpr int kSnapshotSize = 100000;
constexpr int kDeltaSize = 100;

// Address number i of 198.18.0.0/15 (131072 addresses).
IpAddress Addr(int i) {
  return IpAddress::V4(0xC6120000u + static_cast<uint32_t>(i));
}

std::vector<FirewallEntry> HostEntries(int first, int n, absl::Time expires) {
  std::vector<FirewallEntry> out;
  out.reserve(n);
  for (int i = first; i < first + n; ++i) {
    out.push_back({IpPrefix::Host(Addr(i)), expires});
  }
  return out;
}

std::unique_ptr<NftablesFirewall> Nft() {
  absl::StatusOr<std::unique_ptr<NftablesFirewall>> fw =
      NftablesFirewall::Create({.table = "rampart_bench"}, RealClock::Get());
  if (!fw.ok()) {
    std::fprintf(stderr, "%s\n", std::string(fw.status().message()).c_str());
    std::abort();
  }
  return std::move(*fw);
}

void Check(const absl::Status& s, benchmark::State& state) {
  if (!s.ok()) {
    state.SkipWithError(std::string(s.message()).c_str());
  }
}

// Backend: the whole 100k set replaced in one transaction.
void BM_NftSnapshot100k(benchmark::State& state) {
  auto fw = Nft();
  const auto entries =
      HostEntries(0, kSnapshotSize, RealClock::Get().Now() + absl::Hours(1));
  for (auto _ : state) {
    Check(fw->ApplySnapshot(entries), state);
  }
  state.counters["entries/s"] = benchmark::Counter(
      static_cast<double>(kSnapshotSize) * state.iterations(),
      benchmark::Counter::kIsRate);
  (void)fw->RemoveAll();
}
BENCHMARK(BM_NftSnapshot100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);

// Backend: 100 new addresses added to a set holding 100k (and removed again
// outside the timing).
void BM_NftDelta100On100k(benchmark::State& state) {
  auto fw = Nft();
  const absl::Time expires = RealClock::Get().Now() + absl::Hours(1);
  Check(fw->ApplySnapshot(HostEntries(0, kSnapshotSize, expires)), state);
  const auto adds = HostEntries(kSnapshotSize, kDeltaSize, expires);
  std::vector<IpPrefix> removes;
  for (const FirewallEntry& e : adds) {
    removes.push_back(e.prefix);
  }
  for (auto _ : state) {
    Check(fw->ApplyDelta(adds, {}), state);
    state.PauseTiming();
    Check(fw->ApplyDelta({}, removes), state);
    state.ResumeTiming();
  }
  (void)fw->RemoveAll();
}
BENCHMARK(BM_NftDelta100On100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(200);

// Backend: removing 100 addresses from a set holding 100k.
void BM_NftDeltaRemove100On100k(benchmark::State& state) {
  auto fw = Nft();
  const absl::Time expires = RealClock::Get().Now() + absl::Hours(1);
  Check(fw->ApplySnapshot(HostEntries(0, kSnapshotSize, expires)), state);
  const auto adds = HostEntries(kSnapshotSize, kDeltaSize, expires);
  std::vector<IpPrefix> removes;
  for (const FirewallEntry& e : adds) {
    removes.push_back(e.prefix);
  }
  for (auto _ : state) {
    state.PauseTiming();
    Check(fw->ApplyDelta(adds, {}), state);
    state.ResumeTiming();
    Check(fw->ApplyDelta({}, removes), state);
  }
  (void)fw->RemoveAll();
}
BENCHMARK(BM_NftDeltaRemove100On100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(200);

// The Enforcer end to end: guard, normalisation, nft, state file (fsync).
class EnforcerRig {
 public:
  EnforcerRig()
      : fw_(Nft()),
        host_(std::vector<IpAddress>{}),
        guard_(GuardOptions{}, &host_) {
    char tmpl[] = "/tmp/rampart-fw-bench-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    (void)guard_.RefreshHostAddresses();
    enforcer_ = *Enforcer::Create({.state_dir = dir_}, *fw_, guard_,
                                  RealClock::Get(), metrics_);
  }
  ~EnforcerRig() {
    (void)fw_->RemoveAll();
    std::filesystem::remove_all(dir_);
  }
  Enforcer& enforcer() { return *enforcer_; }

 private:
  std::string dir_;
  std::unique_ptr<NftablesFirewall> fw_;
  StaticHostAddressSource host_;
  Guard guard_;
  metrics::Registry metrics_;
  std::unique_ptr<Enforcer> enforcer_;
};

std::vector<BanItem> Bans(int first, int n, absl::Time expires) {
  std::vector<BanItem> out;
  out.reserve(n);
  for (int i = first; i < first + n; ++i) {
    out.push_back({.id = static_cast<uint64_t>(i) + 1,
                   .prefix = IpPrefix::Host(Addr(i)),
                   .expires = expires});
  }
  return out;
}

void BM_EnforcerSnapshot100k(benchmark::State& state) {
  EnforcerRig rig;
  const auto bans =
      Bans(0, kSnapshotSize, RealClock::Get().Now() + absl::Hours(1));
  uint64_t revision = 0;
  for (auto _ : state) {
    Check(rig.enforcer().ApplySnapshot(1, ++revision, bans).status(), state);
  }
}
BENCHMARK(BM_EnforcerSnapshot100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);

void BM_EnforcerDelta100On100k(benchmark::State& state) {
  EnforcerRig rig;
  const absl::Time expires = RealClock::Get().Now() + absl::Hours(1);
  uint64_t revision = 1;
  Check(rig.enforcer()
            .ApplySnapshot(1, revision, Bans(0, kSnapshotSize, expires))
            .status(),
        state);
  std::vector<BanChange> adds, removes;
  for (const BanItem& b : Bans(kSnapshotSize, kDeltaSize, expires)) {
    adds.push_back({BanChange::Op::kAdd, b});
    removes.push_back({BanChange::Op::kRemove, b});
  }
  for (auto _ : state) {
    Check(rig.enforcer().ApplyDelta(1, revision, revision + 1, adds).status(),
          state);
    ++revision;
    state.PauseTiming();
    Check(
        rig.enforcer().ApplyDelta(1, revision, revision + 1, removes).status(),
        state);
    ++revision;
    state.ResumeTiming();
  }
}
BENCHMARK(BM_EnforcerDelta100On100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(50);

// Peer: the same 100k through `ipset restore` (fill a spare set, swap).
void BM_IpsetSnapshot100k(benchmark::State& state) {
  absl::StatusOr<std::unique_ptr<IpsetFirewall>> fw = IpsetFirewall::Create(
      {.set_v4 = "rbench4", .set_v6 = "rbench6"}, RealClock::Get());
  absl::StatusOr<CommandResult> probe = RunCommand({"ipset", "--version"});
  if (!fw.ok() || !probe.ok() || probe->exit_code != 0) {
    state.SkipWithError("ipset not installed");
    return;
  }
  const auto entries =
      HostEntries(0, kSnapshotSize, RealClock::Get().Now() + absl::Hours(1));
  for (auto _ : state) {
    Check((*fw)->ApplySnapshot(entries), state);
  }
  (void)(*fw)->RemoveAll();
}
BENCHMARK(BM_IpsetSnapshot100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);

// Peer: a single interval set for everything (the textbook layout), 100k
// elements, then a 100-address delta into it: libnftables re-reads the
// whole set from the kernel before every change.
void BM_SingleIntervalSetDelta100On100k(benchmark::State& state) {
  auto fw = Nft();  // used only to run scripts
  std::string script =
      "add table inet rampart_single\n"
      "add set inet rampart_single ban4 { type ipv4_addr; flags interval, "
      "timeout; }\n"
      "flush set inet rampart_single ban4\n"
      "add element inet rampart_single ban4 { ";
  for (int i = 0; i < kSnapshotSize; ++i) {
    script += (i == 0 ? "" : ", ") + Addr(i).ToString() + " timeout 3600s";
  }
  script += " }\n";
  Check(fw->RunScriptForTest(script), state);
  std::string add = "add element inet rampart_single ban4 { ";
  std::string del = "delete element inet rampart_single ban4 { ";
  for (int i = kSnapshotSize; i < kSnapshotSize + kDeltaSize; ++i) {
    const std::string sep = i == kSnapshotSize ? "" : ", ";
    add += sep + Addr(i).ToString() + " timeout 3600s";
    del += sep + Addr(i).ToString();
  }
  add += " }\n";
  del += " }\n";
  for (auto _ : state) {
    Check(fw->RunScriptForTest(add), state);
    state.PauseTiming();
    Check(fw->RunScriptForTest(del), state);
    state.ResumeTiming();
  }
  (void)fw->RunScriptForTest(
      "add table inet rampart_single\ndelete table inet rampart_single\n");
}
BENCHMARK(BM_SingleIntervalSetDelta100On100k)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(5);

// Peer: one `nft add element` process per address, as a naive bouncer
// does; time per address (multiply by 100,000 for the snapshot).
void BM_NaivePerAddressNftCommand(benchmark::State& state) {
  auto fw = Nft();
  Check(fw->Install(), state);
  int i = 0;
  for (auto _ : state) {
    Check(RunCommandChecked({"nft", "add", "element", "inet", "rampart_bench",
                             "ban4",
                             "{ " + Addr(i++).ToString() + " timeout 3600s }"}),
          state);
  }
  (void)fw->RemoveAll();
}
BENCHMARK(BM_NaivePerAddressNftCommand)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(200);

}  // namespace
}  // namespace rampart::agent

int main(int argc, char** argv) {
  if (::unshare(CLONE_NEWNET) != 0) {
    std::perror(
        "firewall_benchmark: unshare(CLONE_NEWNET) (needs root; the "
        "benchmark runs in a private network namespace)");
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
