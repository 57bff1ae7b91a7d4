// Parse throughput of the Domino console.log parser on one core.
//
// Input: the file named by RAMPART_BENCH_LOG, or else a 1M-line log made in
// memory by the project's generator (rampart_sim, fixed seed). The log is
// split into lines once, outside the timed loop, so the figure is the parser
// (plus the A+B pair collapse) alone; bench/parse_vs_fail2ban.sh times the
// whole `rampart-agent parse` command as well.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/domino/domino_parser.h"
#include "agent/domino/pair_deduplicator.h"
#include "sim/domino_log_generator.h"

namespace rampart::agent {
namespace {

struct Corpus {
  std::string text;
  std::vector<std::string_view> lines;
};

const Corpus& GetCorpus() {
  static const Corpus* corpus = [] {
    auto* c = new Corpus;
    if (const char* path = std::getenv("RAMPART_BENCH_LOG")) {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      c->text = ss.str();
    } else {
      // Same shape as bench/parse_vs_fail2ban.sh: DMY dashes, thread ids.
      absl::StatusOr<sim::GeneratedLog> gen = sim::GenerateToStrings({
          .seed = 1,
          .lines = 1000000,
          .lines_per_second = 50.0,
          .date_format = sim::DateFormat::kDmyDash,
          .thread_ids = sim::ThreadIdStyle::kLinux,
          .attack_ratio = 0.2,
          .attackers = 500,
      });
      if (!gen.ok()) {
        std::fprintf(stderr, "generator: %s\n",
                     gen.status().ToString().c_str());
        std::exit(1);
      }
      c->text = std::move(gen->log);
    }
    std::string_view rest = c->text;
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      c->lines.push_back(rest.substr(0, nl));
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    }
    return c;
  }();
  return *corpus;
}

void BM_ParseConsoleLog(benchmark::State& state) {
  const Corpus& corpus = GetCorpus();
  const DominoParserOptions options{.date_order =
                                        static_cast<DateOrder>(state.range(0))};
  int64_t recognised = 0;
  for (auto _ : state) {
    DominoParser parser(options);
    PairDeduplicator dedup;
    ParsedLine p;
    recognised = 0;
    for (std::string_view line : corpus.lines) {
      if (parser.Parse(line, &p)) {
        ++recognised;
        benchmark::DoNotOptimize(dedup.Observe(p));
      }
    }
    benchmark::DoNotOptimize(recognised);
  }
  state.SetItemsProcessed(state.iterations() *
                          static_cast<int64_t>(corpus.lines.size()));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(corpus.text.size()));
  state.counters["lines"] = static_cast<double>(corpus.lines.size());
  state.counters["recognised"] = static_cast<double>(recognised);
}
BENCHMARK(BM_ParseConsoleLog)
    ->Arg(static_cast<int>(DateOrder::kDmy))
    ->ArgName("date_order")
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

}  // namespace
}  // namespace rampart::agent

BENCHMARK_MAIN();
