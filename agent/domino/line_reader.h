#pragma once

// LineReader splits a file into lines with bounded memory: lines longer than
// max_line bytes are cut (the head is returned, flagged, and the rest is
// skipped), so a hostile or corrupt log cannot make the reader grow.
//
// Thread-safety: not thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rampart::agent {

class LineReader {
 public:
  static constexpr size_t kDefaultMaxLine = 64 * 1024;

  // Opens `path` for reading. Errors carry the path and the OS reason
  // (NotFound, PermissionDenied, ...). A directory fails on the first Next().
  static absl::StatusOr<std::unique_ptr<LineReader>> Open(
      const std::string& path, size_t max_line = kDefaultMaxLine);

  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line, without its '\n'. Returns true with *line set (valid
  // until the next call), false at end of file, or an error status (with the
  // path) if reading fails. A final line without '\n' is returned too.
  // *truncated is set when the line was longer than max_line.
  absl::StatusOr<bool> Next(std::string_view* line, bool* truncated);

  // Lines returned so far (the number of the last line returned).
  uint64_t line_number() const { return line_number_; }
  // Lines that were cut to max_line.
  uint64_t truncated_lines() const { return truncated_lines_; }

 private:
  LineReader(int fd, std::string path, size_t max_line);
  // Reads more bytes after end_. Returns the number read (0 at EOF).
  absl::StatusOr<size_t> Fill();

  const int fd_;
  const std::string path_;
  const size_t max_line_;
  std::vector<char> buf_;
  std::string head_;  // kept head of the current over-long line
  size_t begin_ = 0;  // first unconsumed byte
  size_t end_ = 0;    // one past the last valid byte
  bool eof_ = false;
  uint64_t line_number_ = 0;
  uint64_t truncated_lines_ = 0;
};

}  // namespace rampart::agent
