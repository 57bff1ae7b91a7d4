// RunCtlWithStub with the generated gMock stub: for tests where the
// interaction is the point (which calls are made, and none on usage errors).

#include <sstream>
#include <string>
#include <vector>

#include "ctl/cli.h"
#include "ctl/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rampart/v1/admin_mock.grpc.pb.h"
#include "tests/ctl/ctl_test_util.h"

namespace rampart::ctl {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::Return;
using ::testing::SetArgPointee;
using ::testing::StrictMock;

class CtlStubTest : public ::testing::Test {
 protected:
  CtlStubTest() : clock_(testing::TestNow()) { env_.clock = &clock_; }

  int Run(const std::vector<std::string>& args) {
    return RunCtlWithStub(args, stub_, out_, err_, env_);
  }

  SimulatedClock clock_;
  CtlEnvironment env_;
  StrictMock<v1::MockAdminServiceStub> stub_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CtlStubTest, UsageErrorMakesNoCall) {
  EXPECT_EQ(Run({"bans", "add", "not-an-ip", "--for", "1h", "--reason", "x"}),
            kExitUsage);
}

TEST_F(CtlStubTest, CallsTheStubOnce) {
  v1::RemoveAllowResponse response;
  response.mutable_removed()->set_id(3);
  response.mutable_removed()->set_prefix("10.0.0.0/8");
  EXPECT_CALL(stub_, RemoveAllow(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(response), Return(grpc::Status::OK)));
  EXPECT_EQ(Run({"allow", "remove", "3"}), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "Removed allowlist entry 3 (10.0.0.0/8)\n");
}

TEST_F(CtlStubTest, UnavailableWithoutAChannelIsAServerAnswer) {
  EXPECT_CALL(stub_, Status(_, _, _))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "drain")));
  EXPECT_EQ(Run({"status"}), kExitUnreachable);
  EXPECT_EQ(err_.str(),
            "rampartctl: status: server unavailable: drain (nothing was "
            "changed; try again later)\n");
}

}  // namespace
}  // namespace rampart::ctl
