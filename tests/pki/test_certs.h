#pragma once

// TestCerts: a fresh directory of certificates made by deploy/make-certs.sh
// (a CA, a server certificate for localhost/127.0.0.1/::1, agent and admin
// client certificates), removed on destruction.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rampart::testing {

class TestCerts {
 public:
  // Runs deploy/make-certs.sh into a new temporary directory.
  static absl::StatusOr<TestCerts> Make(const std::vector<std::string>& agents,
                                        const std::string& admin = "");
  TestCerts(TestCerts&& other) noexcept;
  TestCerts& operator=(TestCerts&&) = delete;
  TestCerts(const TestCerts&) = delete;
  ~TestCerts();

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // Reads a file of the directory ("" if unreadable).
  std::string Read(const std::string& name) const;

 private:
  explicit TestCerts(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace rampart::testing
