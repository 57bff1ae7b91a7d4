#pragma once

// Test plumbing for rampartctl: an in-process gRPC server hosting
// FakeAdminService on 127.0.0.1:0, an output buffer tests can wait on, and
// proto builders.

#include <chrono>
#include <memory>
#include <ostream>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "ctl/cli.h"
#include "ctl/render.h"
#include "grpcpp/grpcpp.h"
#include "tests/ctl/fake_admin_service.h"

namespace rampart::ctl::testing {

// The fixed "now" of every test: 2024-11-23T09:00:00Z.
inline absl::Time TestNow() { return absl::FromUnixSeconds(1732352400); }

inline google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  SetTimestamp(t, &ts);
  return ts;
}

// An unbuffered stream buffer that counts lines, so a test can wait (without
// sleeping) until a concurrently running command has printed something.
class LineSignalBuf : public std::streambuf {
 public:
  std::string str() const {
    absl::MutexLock lock(&mu_);
    return text_;
  }
  // Blocks until at least `n` newlines were written.
  void WaitForLines(int n) const {
    absl::MutexLock lock(&mu_);
    target_ = n;
    mu_.Await(absl::Condition(this, &LineSignalBuf::Reached));
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      const char ch = traits_type::to_char_type(c);
      xsputn(&ch, 1);
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    for (std::streamsize i = 0; i < n; ++i) {
      lines_ += s[i] == '\n' ? 1 : 0;
    }
    return n;
  }

 private:
  bool Reached() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return lines_ >= target_;
  }

  mutable absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
  int lines_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int target_ ABSL_GUARDED_BY(mu_) = 0;
};

// A FakeAdminService served on 127.0.0.1:<ephemeral port>.
class FakeServer {
 public:
  FakeServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
  }

  FakeAdminService& service() { return service_; }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  FakeAdminService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace rampart::ctl::testing
