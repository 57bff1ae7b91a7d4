#include "agent/domino/line_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace rampart::agent {
namespace {

absl::Status ErrnoStatus(int err, std::string_view what,
                         std::string_view path) {
  std::string msg =
      absl::StrFormat("%s %s: %s", what, path, std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case EISDIR:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<LineReader>> LineReader::Open(
    const std::string& path, size_t max_line) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, "cannot open", path);
  }
  return std::unique_ptr<LineReader>(
      new LineReader(fd, path, max_line == 0 ? kDefaultMaxLine : max_line));
}

LineReader::LineReader(int fd, std::string path, size_t max_line)
    : fd_(fd),
      path_(std::move(path)),
      max_line_(max_line),
      buf_(std::max<size_t>(size_t{1} << 20, 2 * max_line + 1)) {}

LineReader::~LineReader() { ::close(fd_); }

absl::StatusOr<size_t> LineReader::Fill() {
  if (begin_ > 0 && begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && end_ == buf_.size()) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  while (true) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return ErrnoStatus(errno, "cannot read", path_);
    }
    end_ += static_cast<size_t>(n);
    if (n == 0) {
      eof_ = true;
    }
    return static_cast<size_t>(n);
  }
}

absl::StatusOr<bool> LineReader::Next(std::string_view* line, bool* truncated) {
  *truncated = false;
  bool skipping = false;  // discarding the tail of an over-long line
  size_t scanned = 0;     // bytes after begin_ already known to hold no '\n'
  while (true) {
    const char* start = buf_.data() + begin_;
    const size_t avail = end_ - begin_;
    const void* nl = avail > scanned
                         ? std::memchr(start + scanned, '\n', avail - scanned)
                         : nullptr;
    if (nl != nullptr) {
      const size_t len =
          static_cast<size_t>(static_cast<const char*>(nl) - start);
      begin_ += len + 1;
      if (skipping) {
        ++line_number_;
        return true;  // *line already points at the kept head
      }
      if (len > max_line_) {
        *truncated = true;
        ++truncated_lines_;
      }
      *line = std::string_view(start, std::min(len, max_line_));
      ++line_number_;
      return true;
    }
    scanned = avail;
    if (!skipping && avail > max_line_) {
      // Over-long line: keep its head in a side copy, discard the rest.
      *truncated = true;
      ++truncated_lines_;
      head_.assign(start, max_line_);
      *line = head_;
      skipping = true;
      begin_ = end_;
      scanned = 0;
    } else if (skipping) {
      begin_ = end_;
      scanned = 0;
    }
    if (eof_) {
      if (skipping) {
        ++line_number_;
        return true;
      }
      if (avail == 0) {
        return false;
      }
      *line = std::string_view(start, avail);  // avail <= max_line_ here
      begin_ = end_;
      ++line_number_;
      return true;
    }
    // Fill() may move unconsumed bytes to the front; `scanned` stays valid
    // because it counts from begin_.
    if (absl::StatusOr<size_t> n = Fill(); !n.ok()) {
      return n.status();
    }
  }
}

}  // namespace rampart::agent
