// The standard gRPC health service (grpc.health.v1.Health, issue 17) on the
// real rampart-server binary (plaintext loopback, SQLite), called by a real
// gRPC client: the generic stub with hand-encoded messages, so the test
// needs no health proto library (Debian's gRPC ships none for C++):
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  SERVING = 1,
//                                                      NOT_SERVING = 2
// Checks: Check("") answers SERVING; an unknown service is NOT_FOUND; a
// Watch opened before SIGTERM sees SERVING and then NOT_SERVING when the
// server starts draining (ServerApp::Impl::Stop shuts the health service
// down first, before the agent streams drain and the port closes); after
// the exit a Check fails UNAVAILABLE.

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "tests/fakes/temp_files.h"
#include "tests/integration/server_process.h"

namespace rampart::testing {
namespace {

constexpr char kCheck[] = "/grpc.health.v1.Health/Check";
constexpr char kWatch[] = "/grpc.health.v1.Health/Watch";
constexpr int kServing = 1;
constexpr int kNotServing = 2;

// HealthCheckRequest{service}: field 1, length-delimited (names < 128 bytes).
grpc::ByteBuffer Request(const std::string& service) {
  std::string bytes;
  if (!service.empty()) {
    bytes.push_back('\x0a');
    bytes.push_back(static_cast<char>(service.size()));
    bytes += service;
  }
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return out;
}

// HealthCheckResponse.status: 0 (UNKNOWN, the empty message) or the varint
// of field 1; -1 if the bytes are anything else.
int Status(const std::string& bytes) {
  if (bytes.empty()) {
    return 0;
  }
  if (bytes.size() == 2 && bytes[0] == '\x08' && bytes[1] >= 0) {
    return bytes[1];
  }
  return -1;
}

struct CheckResult {
  grpc::Status status;
  int serving = -1;
};

CheckResult Check(const std::string& target, const std::string& service) {
  auto channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, kCheck, Request(service), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  CheckResult result;
  call->Finish(&response, &result.status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  if (result.status.ok()) {
    result.serving = Status(Bytes(response));
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

// A Watch("") stream: one operation in flight at a time, so each Next() is
// that operation's completion.
class Watch {
 public:
  explicit Watch(const std::string& target)
      : channel_(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials())),
        stub_(channel_) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(60));
    call_ = stub_.PrepareCall(&context_, kWatch, &cq_);
    call_->StartCall(Tag(1));
    open_ = Step();
    if (open_) {
      call_->Write(Request(""), Tag(2));
      open_ = Step();
    }
    if (open_) {
      call_->WritesDone(Tag(3));
      open_ = Step();
    }
  }
  ~Watch() {
    context_.TryCancel();
    Finish();
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // The next status sent, or nullopt once the stream has ended.
  std::optional<int> Next() {
    if (!open_) {
      return std::nullopt;
    }
    grpc::ByteBuffer response;
    call_->Read(&response, Tag(4));
    if (!Step()) {
      open_ = false;
      return std::nullopt;
    }
    return Status(Bytes(response));
  }

  grpc::Status Finish() {
    if (!finished_) {
      finished_ = true;
      call_->Finish(&status_, Tag(5));
      Step();
    }
    return status_;
  }

 private:
  static void* Tag(intptr_t n) { return reinterpret_cast<void*>(n); }
  bool Step() {
    void* tag = nullptr;
    bool ok = false;
    return cq_.Next(&tag, &ok) && ok;
  }

  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  grpc::CompletionQueue cq_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool open_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

TEST(GrpcHealthTest, ServingThenNotServingWhileDrainingThenUnavailable) {
  TempDir dir("rampart-grpc-health");
  auto server = ServerProcess::Start(
      ServerBinary(),
      {"--insecure", "--db", "sqlite:" + dir.path() + "/rampart.db", "--listen",
       "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = (*server)->grpc_target();

  const CheckResult overall = Check(target, "");
  ASSERT_TRUE(overall.status.ok()) << overall.status.error_message();
  EXPECT_EQ(overall.serving, kServing);
  const CheckResult unknown = Check(target, "no.such.Service");
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::NOT_FOUND);

  Watch watch(target);
  EXPECT_EQ(watch.Next(), kServing);
  ASSERT_EQ(::kill((*server)->pid(), SIGTERM), 0);
  // The health service is shut down before anything else drains; the
  // server keeps the port open (and this call running) for up to 1 s after
  // the agent streams are gone, so the update arrives before the call ends.
  std::optional<int> next = watch.Next();
  EXPECT_EQ(next, kNotServing) << (*server)->log();
  absl::StatusOr<int> exit = (*server)->Terminate(absl::Seconds(60));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << (*server)->log();
  EXPECT_FALSE(watch.Next().has_value());

  const CheckResult after = Check(target, "");
  EXPECT_EQ(after.status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace rampart::testing
