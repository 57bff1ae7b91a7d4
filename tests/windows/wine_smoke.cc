// rampart_wine_smoke: proof that the MinGW-w64 dependency stack built by
// scripts/build-mingw-deps.sh works (docs/windows.md, "Wine smoke test").
// Runs a gRPC server on 127.0.0.1 (ephemeral port) and calls it from a
// client in the same process over Winsock: exercises gRPC, Protobuf, Abseil,
// c-ares (the resolver) and OpenSSL (a SHA-256 through EVP). Exit 0 and
// "wine smoke: ok" on success.
//
// Run: WINEDEBUG=-all wine64 build-win/bin/rampart_wine_smoke.exe
//
// Thread-safety: single-threaded main; the service is called on gRPC's
// threads and only touches an atomic.

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "wine_smoke.grpc.pb.h"

namespace {

class EchoService final : public rampart::winsmoke::Echo::Service {
 public:
  grpc::Status Echo(grpc::ServerContext*,
                    const rampart::winsmoke::EchoRequest* request,
                    rampart::winsmoke::EchoReply* reply) override {
    reply->set_text(request->text());
    reply->set_calls(++calls_);
    return grpc::Status::OK;
  }

 private:
  std::atomic<uint64_t> calls_{0};
};

// Hex SHA-256 of `data`, or "" on error.
std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    return "";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "wine smoke: FAILED: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  EchoService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail("server did not start");
  }

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  auto stub = rampart::winsmoke::Echo::NewStub(channel);
  const std::string text = Sha256Hex("rampart");
  if (text.size() != 64) {
    return Fail("OpenSSL SHA-256");
  }
  for (uint64_t i = 1; i <= 3; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    rampart::winsmoke::EchoRequest request;
    request.set_text(text);
    rampart::winsmoke::EchoReply reply;
    const grpc::Status status = stub->Echo(&context, request, &reply);
    if (!status.ok()) {
      return Fail("call " + std::to_string(i) + ": " + status.error_message());
    }
    if (reply.text() != text || reply.calls() != i) {
      return Fail("call " + std::to_string(i) + ": wrong reply");
    }
  }
  server->Shutdown();
  std::printf("wine smoke: ok (3 calls on 127.0.0.1:%d, sha256 %s)\n", port,
              text.substr(0, 16).c_str());
  return 0;
}
