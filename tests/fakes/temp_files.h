#pragma once

// Header-only file helpers for tests: a private temporary directory removed
// with everything in it, and appends made like a logging process.

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace rampart::testing {

// mkdtemp(3) under the system temporary directory; removed recursively by
// the destructor.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "rampart-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() /
                        (std::string(prefix) + "-XXXXXX"))
                           .string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Appends `data` through O_APPEND (creating the file), as a logging process
// writes.
inline void AppendToFile(const std::string& path, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  ::close(fd);
}

}  // namespace rampart::testing
