// The parser against the project's own workload generator (sim/), over every
// date format, clock, thread-id prefix and both F settings: the output of
// `rampart-agent parse` must equal the generator's ground truth byte for byte.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/parse_command.h"
#include "gtest/gtest.h"
#include "sim/domino_log_generator.h"

namespace rampart::agent {
namespace {

struct Variant {
  sim::DateFormat format;
  sim::ClockStyle clock;
  sim::ThreadIdStyle prefix;
  bool successes;
  DateOrder order;
};

std::string Name(const Variant& v) {
  return std::string(sim::DateFormatName(v.format)) +
         (v.clock == sim::ClockStyle::k12Hour ? "_12h" : "_24h") + "_" +
         std::string(sim::ThreadIdStyleName(v.prefix)) +
         (v.successes ? "_f" : "") + "_" + std::string(DateOrderName(v.order));
}

class SimCrossCheck : public ::testing::TestWithParam<Variant> {};

TEST_P(SimCrossCheck, ParseOutputEqualsGroundTruth) {
  const Variant& v = GetParam();
  absl::StatusOr<sim::GeneratedLog> gen = sim::GenerateToStrings({
      .seed = 4242,
      .lines = 20000,
      .lines_per_second = 20.0,
      .date_format = v.format,
      .clock = v.clock,
      .hundredths = v.prefix == sim::ThreadIdStyle::kWindows,
      .thread_ids = v.prefix,
      .attack_ratio = 0.3,
      .attackers = 60,
      .hostile_user_ratio = 0.1,
      .masked_ip_ratio = 0.05,
      .ip_variant_ratio = 0.1,
      .successes = v.successes,
  });
  ASSERT_TRUE(gen.ok()) << gen.status();
  ASSERT_GT(gen->stats.recognised_lines, 5000u);

  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("rampart-simx-" + Name(v) + "-" + std::to_string(::getpid()) + ".log");
  std::ofstream(path, std::ios::binary) << gen->log;

  char* out_buf = nullptr;
  char* err_buf = nullptr;
  size_t out_len = 0, err_len = 0;
  std::FILE* out = open_memstream(&out_buf, &out_len);
  std::FILE* err = open_memstream(&err_buf, &err_len);
  const int code = RunParseCommand(
      {.parser = {.date_order = v.order, .successes = v.successes},
       .files = {path.string()}},
      out, err);
  std::fclose(out);
  std::fclose(err);
  const std::string got(out_buf, out_len);
  const std::string errors(err_buf, err_len);
  std::free(out_buf);
  std::free(err_buf);
  std::filesystem::remove(path);

  EXPECT_EQ(code, 0) << errors;
  if (got != gen->truth) {
    // Report the first differing line, not 2 MB of text.
    size_t i = 0;
    while (i < got.size() && i < gen->truth.size() && got[i] == gen->truth[i]) {
      ++i;
    }
    const size_t from =
        got.rfind('\n', i) == std::string::npos ? 0 : got.rfind('\n', i) + 1;
    FAIL() << "first difference:\n  got:  "
           << got.substr(from, got.find('\n', from) - from) << "\n  want: "
           << gen->truth.substr(from, gen->truth.find('\n', from) - from);
  }
}

std::vector<Variant> AllVariants() {
  std::vector<Variant> out;
  const std::pair<sim::DateFormat, DateOrder> formats[] = {
      {sim::DateFormat::kDmyDash, DateOrder::kDmy},
      {sim::DateFormat::kDmyDot, DateOrder::kDmy},
      {sim::DateFormat::kMdySlash, DateOrder::kMdy},
      {sim::DateFormat::kMdyDash, DateOrder::kMdy},
      {sim::DateFormat::kYmdDash, DateOrder::kYmd},
  };
  for (const auto& [format, order] : formats) {
    for (auto clock : {sim::ClockStyle::k24Hour, sim::ClockStyle::k12Hour}) {
      for (auto prefix :
           {sim::ThreadIdStyle::kNone, sim::ThreadIdStyle::kLinux,
            sim::ThreadIdStyle::kPaddedHex, sim::ThreadIdStyle::kWindows}) {
        out.push_back({format, clock, prefix,
                       prefix == sim::ThreadIdStyle::kLinux, order});
      }
    }
  }
  // Auto date order on unambiguous formats.
  out.push_back({sim::DateFormat::kYmdDash, sim::ClockStyle::k24Hour,
                 sim::ThreadIdStyle::kNone, false, DateOrder::kAuto});
  out.push_back({sim::DateFormat::kMdySlash, sim::ClockStyle::k12Hour,
                 sim::ThreadIdStyle::kLinux, true, DateOrder::kAuto});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Variants, SimCrossCheck,
                         ::testing::ValuesIn(AllVariants()),
                         [](const ::testing::TestParamInfo<Variant>& p) {
                           std::string n = Name(p.param);
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace rampart::agent
