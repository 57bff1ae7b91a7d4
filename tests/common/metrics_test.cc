#include "common/metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace rampart::metrics {
namespace {

TEST(MetricsTest, RendersCountersGaugesAndCollectorsInTextFormat) {
  Registry registry;
  registry.GetCounter("rampart_events_total", "Events.", {{"protocol", "smtp"}})
      .Increment(3);
  registry.GetCounter("rampart_events_total", "Events.", {{"protocol", "imap"}})
      .Increment();
  registry.GetGauge("rampart_active_bans", "Active bans.").Set(7);
  registry.AddCollector("rampart_agent_lag_revisions", "Lag.", Type::kGauge,
                        [](std::vector<Sample>& samples) {
                          samples.push_back({{{"agent", "mx\"1\n"}}, 2});
                        });
  const std::string text = registry.Render();
  EXPECT_NE(text.find("# TYPE rampart_events_total counter\n"),
            std::string::npos);
  EXPECT_NE(text.find("rampart_events_total{protocol=\"imap\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("rampart_agent_lag_revisions{agent=\"mx\\\"1\\n\"} 2\n"),
            std::string::npos)
      << text;

  auto parsed = ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->types.at("rampart_active_bans"), "gauge");
  EXPECT_EQ(parsed->Value("rampart_events_total", {{"protocol", "smtp"}}), 3);
  EXPECT_EQ(parsed->Value("rampart_active_bans"), 7);
  EXPECT_EQ(
      parsed->Value("rampart_agent_lag_revisions", {{"agent", "mx\"1\n"}}), 2);
  EXPECT_EQ(parsed->Value("rampart_missing", {}, -5), -5);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndQuantilesInterpolate) {
  Registry registry;
  Histogram& h = registry.GetHistogram("rampart_push_seconds", "Push.", {},
                                       {0.001, 0.01, 0.1});
  for (int i = 0; i < 90; ++i) {
    h.Observe(0.0005);
  }
  for (int i = 0; i < 10; ++i) {
    h.Observe(0.05);
  }
  h.Observe(5);  // +Inf bucket
  const Histogram::Snapshot s = h.Take();
  EXPECT_EQ(s.count, 101u);
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{90, 90, 100, 101}));
  EXPECT_LE(s.Quantile(0.5), 0.001);
  EXPECT_GT(s.Quantile(0.95), 0.01);
  EXPECT_LE(s.Quantile(0.95), 0.1);

  auto parsed = ParsePrometheusText(registry.Render());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Value("rampart_push_seconds_bucket", {{"le", "0.01"}}), 90);
  EXPECT_EQ(parsed->Value("rampart_push_seconds_bucket", {{"le", "+Inf"}}),
            101);
  EXPECT_EQ(parsed->Value("rampart_push_seconds_count"), 101);
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter& c = registry.GetCounter("rampart_c_total", "C.");
  Histogram& h = registry.GetHistogram("rampart_h_seconds", "H.");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Increment();
        h.Observe(0.001);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(c.Value(), 40000u);
  EXPECT_EQ(h.Take().count, 40000u);
}

TEST(MetricsTest, ParserRejectsMalformedLinesWithLineNumbers) {
  for (const char* bad : {"x{a=\"1\" 2\n", "1bad 2\n", "x{a=1} 2\n", "x 2z\n",
                          "x{a=\"1\"}2\n", "# TYPE x bogus\n", "x\n"}) {
    auto parsed = ParsePrometheusText(std::string("ok 1\n") + bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("line 2"), std::string::npos)
        << parsed.status();
  }
  auto good = ParsePrometheusText("a_b:c{x=\"y\",z=\"\\\\\"} -Inf 123\n\n");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->samples[0].labels[1].second, "\\");
}

}  // namespace
}  // namespace rampart::metrics
