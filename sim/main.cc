// rampart-loggen: writes a deterministic synthetic Domino console.log and its
// ground truth (the JSONL `rampart-agent parse` must print for it). This file
// only parses the command line and wires the generator to files.
//
// Exit codes: 0 success, 1 I/O error, 2 bad arguments.

#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "common/version.h"
#include "sim/domino_log_generator.h"
#include "sim/file_chunk_sink.h"

namespace {

using rampart::sim::FileChunkSink;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rampart-loggen: %s\n",
               std::string(status.message()).c_str());
  return 1;
}

int BadArgument(const absl::Status& status) {
  std::fprintf(stderr, "rampart-loggen: %s\n",
               std::string(status.message()).c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rampart-loggen: writes a deterministic synthetic HCL Domino "
      "console.log (password-guessing attacks plus realistic noise) and its "
      "ground truth"};
  app.set_version_flag("--version", std::string(rampart::kVersion));

  rampart::sim::GeneratorOptions options;
  std::string date_format = "dmy-dash";
  std::string clock = "24h";
  std::string prefix = "none";
  std::string start = "2024-03-06T00:00:00";
  std::string output = "-";
  std::string truth_path;
  std::string summary_path;
  bool print_stats = false;

  app.add_option("--lines", options.lines, "Number of lines to write")
      ->required();
  app.add_option("--seed", options.seed, "Random seed")->default_str("1");
  app.add_option("--date-format", date_format,
                 "dmy-dash (06-03-2024), dmy-dot, mdy-slash, mdy-dash or "
                 "ymd-dash")
      ->default_str(date_format);
  app.add_option("--clock", clock, "24h or 12h (10:15:33 AM)")
      ->default_str(clock);
  app.add_flag("--hundredths", options.hundredths,
               "Add hundredths to the time (09:49:47.90)");
  app.add_option("--spaces", options.message_spaces,
                 "Spaces before the message, 1..3 (0: 3 for 24h, 2 for 12h)")
      ->default_str("0");
  app.add_option("--prefix", prefix,
                 "Thread-id prefix: none, linux, hex or windows")
      ->default_str(prefix);
  app.add_option("--attack-ratio", options.attack_ratio,
                 "Expected share of lines that are attackers' failures")
      ->default_str("0.05");
  app.add_option("--attackers", options.attackers,
                 "Number of attacker addresses")
      ->default_str("20");
  app.add_option("--ipv6-ratio", options.ipv6_ratio,
                 "Share of IPv6 attacker addresses")
      ->default_str("0.1");
  app.add_option("--hostile-ratio", options.hostile_user_ratio,
                 "Share of attacker attempts with hostile user names")
      ->default_str("0.02");
  app.add_option("--masked-ratio", options.masked_ip_ratio,
                 "Share of attacker attempts with masked/invalid addresses")
      ->default_str("0.01");
  app.add_flag("--successes", options.successes,
               "Write successful logins (family F)");
  app.add_option("--start", start, "Time of the first line (local, no zone)")
      ->default_str(start);
  app.add_option("--rate", options.lines_per_second, "Mean lines per second")
      ->default_str("2");
  app.add_option("--servers", options.servers,
                 "Domino server names: this server first, then its peers");
  app.add_option("--truth", truth_path,
                 "Write the ground truth (parse JSONL) to FILE");
  app.add_option("--summary", summary_path,
                 "Write a per-address JSONL summary to FILE");
  app.add_option("-o,--output", output, "Log file ('-' for stdout)")
      ->default_str("-");
  app.add_flag("--stats", print_stats, "Print counters to stderr");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (auto f = rampart::sim::ParseDateFormat(date_format); f.ok()) {
    options.date_format = *f;
  } else {
    return BadArgument(f.status());
  }
  if (auto c = rampart::sim::ParseClockStyle(clock); c.ok()) {
    options.clock = *c;
  } else {
    return BadArgument(c.status());
  }
  if (auto p = rampart::sim::ParseThreadIdStyle(prefix); p.ok()) {
    options.thread_ids = *p;
  } else {
    return BadArgument(p.status());
  }
  if (!absl::ParseCivilTime(start, &options.start)) {
    return BadArgument(absl::InvalidArgumentError(absl::StrFormat(
        "invalid --start \"%s\": expected YYYY-MM-DDTHH:MM:SS", start)));
  }
  auto generator = rampart::sim::DominoLogGenerator::Create(options);
  if (!generator.ok()) {
    return BadArgument(generator.status());
  }

  auto log = FileChunkSink::Open(output);
  if (!log.ok()) {
    return Fail(log.status());
  }
  std::unique_ptr<FileChunkSink> truth;
  if (!truth_path.empty()) {
    auto t = FileChunkSink::Open(truth_path);
    if (!t.ok()) {
      return Fail(t.status());
    }
    truth = *std::move(t);
  }
  std::unique_ptr<FileChunkSink> summary;
  if (!summary_path.empty()) {
    auto s = FileChunkSink::Open(summary_path);
    if (!s.ok()) {
      return Fail(s.status());
    }
    summary = *std::move(s);
  }

  auto stats = (*generator)->Generate(**log, truth.get(), summary.get());
  if (!stats.ok()) {
    return Fail(stats.status());
  }
  for (FileChunkSink* sink : {log->get(), truth.get(), summary.get()}) {
    if (sink == nullptr) {
      continue;
    }
    if (absl::Status s = sink->Close(); !s.ok()) {
      return Fail(s);
    }
  }
  if (print_stats) {
    std::fprintf(
        stderr,
        "lines=%llu recognised=%llu attack_lines=%llu (%.4f) "
        "attack_attempts=%llu pairs=%llu masked=%llu hostile=%llu "
        "rewrites=%llu shifts=%llu first=%s last=%s\n",
        static_cast<unsigned long long>(stats->lines),
        static_cast<unsigned long long>(stats->recognised_lines),
        static_cast<unsigned long long>(stats->attack_lines),
        stats->lines == 0 ? 0.0
                          : static_cast<double>(stats->attack_lines) /
                                static_cast<double>(stats->lines),
        static_cast<unsigned long long>(stats->attack_attempts),
        static_cast<unsigned long long>(stats->pairs),
        static_cast<unsigned long long>(stats->masked_ip_lines),
        static_cast<unsigned long long>(stats->hostile_user_lines),
        static_cast<unsigned long long>(stats->pair_avoidance_rewrites),
        static_cast<unsigned long long>(stats->pair_avoidance_shifts),
        absl::FormatCivilTime(stats->first_time).c_str(),
        absl::FormatCivilTime(stats->last_time).c_str());
  }
  return 0;
}
