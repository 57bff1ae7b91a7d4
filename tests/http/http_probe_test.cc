#include "common/http/http_probe.h"

#include <atomic>
#include <string>

#include "common/http/http_endpoint.h"
#include "gtest/gtest.h"

namespace rampart::http {
namespace {

TEST(HttpProbeTest, HealthyOnlyFor200) {
  std::atomic<bool> ready{false};
  auto endpoint = HttpEndpoint::Start(
      {.host = "127.0.0.1", .port = 0},
      {.metrics = [] { return std::string(); },
       .ready =
           [&] {
             return ready ? Readiness{true, ""}
                          : Readiness{false, "store unreachable"};
           }});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();

  EXPECT_TRUE(ProbeHttp("127.0.0.1", port, "/healthz", absl::Seconds(5)).ok());
  absl::Status s = ProbeHttp("127.0.0.1", port, "/readyz", absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("HTTP 503 not ready: store unreachable"),
            std::string::npos)
      << s;
  ready = true;
  EXPECT_TRUE(ProbeHttp("127.0.0.1", port, "/readyz", absl::Seconds(5)).ok());
  s = ProbeHttp("127.0.0.1", port, "/nope", absl::Seconds(5));
  EXPECT_NE(s.message().find("HTTP 404"), std::string::npos) << s;

  (*endpoint)->Stop();
  s = ProbeHttp("127.0.0.1", port, "/healthz", absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("127.0.0.1"), std::string::npos) << s;
}

TEST(HttpProbeTest, RejectsBadTargets) {
  EXPECT_EQ(ProbeHttp("127.0.0.1", 0, "/healthz", absl::Seconds(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProbeHttp("127.0.0.1", 9443, "healthz", absl::Seconds(1)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpProbeTest, WildcardListenHostsAreProbedOnLoopback) {
  EXPECT_EQ(ProbeHostFor("0.0.0.0"), "127.0.0.1");
  EXPECT_EQ(ProbeHostFor(""), "127.0.0.1");
  EXPECT_EQ(ProbeHostFor("::"), "::1");
  EXPECT_EQ(ProbeHostFor("[::]"), "::1");
  EXPECT_EQ(ProbeHostFor("192.0.2.10"), "192.0.2.10");
  EXPECT_EQ(ProbeHostFor("rampart.example"), "rampart.example");
}

}  // namespace
}  // namespace rampart::http
