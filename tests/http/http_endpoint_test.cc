#include "server/http/http_endpoint.h"

#include <atomic>
#include <string>

#include "common/metrics.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace rampart::server {
namespace {

TEST(HttpEndpointTest, ServesMetricsHealthAndReadiness) {
  metrics::Registry registry;
  registry.GetCounter("rampart_events_total", "Events.", {{"protocol", "smtp"}})
      .Increment(5);
  std::atomic<bool> ready{false};
  auto endpoint = HttpEndpoint::Start(
      {.host = "127.0.0.1", .port = 0},
      {.metrics = [&] { return registry.Render(); },
       .ready =
           [&] {
             return ready ? Readiness{true, ""}
                          : Readiness{false, "store unreachable"};
           }});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  httplib::Client client("127.0.0.1", (*endpoint)->port());
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(5, 0);

  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  auto parsed = metrics::ParsePrometheusText(res->body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Value("rampart_events_total", {{"protocol", "smtp"}}), 5);

  res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  res = client.Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_NE(res->body.find("store unreachable"), std::string::npos);
  ready = true;
  res = client.Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  res = client.Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);

  (*endpoint)->Stop();
  (*endpoint)->Stop();  // idempotent
  EXPECT_FALSE(client.Get("/healthz"));
}

TEST(HttpEndpointTest, PortInUseIsAClearError) {
  auto first = HttpEndpoint::Start({.host = "127.0.0.1", .port = 0}, {});
  ASSERT_TRUE(first.ok());
  auto second =
      HttpEndpoint::Start({.host = "127.0.0.1", .port = (*first)->port()}, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("HTTP port"), std::string::npos);
}

}  // namespace
}  // namespace rampart::server
