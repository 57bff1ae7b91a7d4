#include "tests/pki/test_certs.h"

#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace rampart::testing {

absl::StatusOr<TestCerts> TestCerts::Make(
    const std::vector<std::string>& agents, const std::string& admin) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "rampart-certs-XXXXXX")
          .string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  TestCerts certs(tmpl);
  std::string command =
      absl::StrCat(RAMPART_SOURCE_DIR, "/deploy/make-certs.sh '", tmpl, "'");
  for (const std::string& a : agents) {
    absl::StrAppend(&command, " --agent '", a, "'");
  }
  if (!admin.empty()) {
    absl::StrAppend(&command, " --admin '", admin, "'");
  }
  absl::StrAppend(&command, " 2>/dev/null");
  const int rc = std::system(command.c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", command));
  }
  return certs;
}

TestCerts::TestCerts(TestCerts&& other) noexcept
    : dir_(std::exchange(other.dir_, "")) {}

TestCerts::~TestCerts() {
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string TestCerts::Read(const std::string& name) const {
  std::ifstream in(path(name), std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace rampart::testing
