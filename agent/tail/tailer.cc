#include "agent/tail/tailer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "agent/tail/content_hash.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace rampart::agent {
namespace {

using file_util::ErrnoStatus;

constexpr size_t kHeadBytes = 1024;
constexpr size_t kTailBytes = 256;
constexpr size_t kChunkBytes = 64 * 1024;
constexpr size_t kMinMaxLine = kLineRecordHashBytes;
constexpr size_t kMaxDirEntries = 100000;
// Raw bytes kept from the end of the previous generation (see Guard).
constexpr uint64_t kTailCopyBytes = 8 * 1024;

uint32_t Fold32(uint64_t h) { return static_cast<uint32_t>(h ^ (h >> 32)); }

// LineRecord::hash of a line of `length` bytes (its '\n' included) whose
// first bytes are `head` (the line without '\n', possibly cut).
uint32_t RecordHash(std::string_view head, uint64_t length) {
  if (length <= kLineRecordHashBytes) {
    return Fold32(ContentHash64("\n", ContentHash64(head)));
  }
  return Fold32(ContentHash64(head.substr(0, kLineRecordHashBytes)));
}

// Indices of `n` records to persist: `dense` from `from`, then `sparse`
// evenly spread over the rest, and always the last one.
std::vector<LineRecord> Sample(const std::vector<LineRecord>& lines,
                               size_t from, size_t dense, size_t sparse) {
  std::vector<LineRecord> out;
  if (from >= lines.size()) {
    return out;
  }
  const size_t n = lines.size() - from;
  if (n <= dense + sparse + 1) {
    out.assign(lines.begin() + static_cast<ptrdiff_t>(from), lines.end());
    return out;
  }
  for (size_t i = 0; i < dense; ++i) {
    out.push_back(lines[from + i]);
  }
  const size_t rest_begin = from + dense;
  const size_t rest = lines.size() - rest_begin;  // > sparse + 1
  for (size_t k = 0; k < sparse; ++k) {
    out.push_back(lines[rest_begin + (k * rest) / sparse]);
  }
  if (out.back().start != lines.back().start) {
    out.push_back(lines.back());
  }
  return out;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tailer>> Tailer::Create(
    const TailerOptions& options, std::optional<TailPosition> saved) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("tailer: empty path");
  }
  if (options.max_line_bytes < kMinMaxLine) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tailer %s: max_line_bytes must be >= %d, got %d",
                        options.path, kMinMaxLine, options.max_line_bytes));
  }
  if (options.max_bytes_per_poll == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tailer %s: max_bytes_per_poll must be > 0", options.path));
  }
  return std::unique_ptr<Tailer>(new Tailer(options, std::move(saved)));
}

Tailer::Tailer(const TailerOptions& options, std::optional<TailPosition> saved)
    : options_(options), saved_(std::move(saved)), chunk_(kChunkBytes) {}

Tailer::~Tailer() { CloseFile(); }

void Tailer::CloseFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  chunk_len_ = 0;
  stats_.file_open = false;
}

// ---------------------------------------------------------------------------
// Opening and resuming

absl::StatusOr<bool> Tailer::OpenPath() {
  const int fd = ::open(options_.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return false;
    }
    return ErrnoStatus(errno, "cannot open log", options_.path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot stat log", options_.path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrFormat("log %s is not a regular file", options_.path));
  }
  fd_ = fd;
  device_ = static_cast<uint64_t>(st.st_dev);
  inode_ = static_cast<uint64_t>(st.st_ino);
  stats_.file_open = true;
  StartGeneration(/*guard_old=*/false);
  return true;
}

absl::StatusOr<std::optional<std::string>> Tailer::FindByInode(
    uint64_t device, uint64_t inode) const {
  const std::string dir = DirName(options_.path);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) {
      return std::optional<std::string>();
    }
    return ErrnoStatus(errno, "cannot list directory", dir);
  }
  std::optional<std::string> found;
  size_t seen = 0;
  while (const dirent* e = ::readdir(d)) {
    if (++seen > kMaxDirEntries) {
      break;
    }
    if (static_cast<uint64_t>(e->d_ino) != inode) {
      continue;
    }
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_dev) == device &&
        static_cast<uint64_t>(st.st_ino) == inode) {
      found = dir + "/" + e->d_name;
      break;
    }
  }
  ::closedir(d);
  return found;
}

absl::Status Tailer::Start() {
  CloseFile();  // a failed earlier attempt may have opened it
  if (saved_.has_value()) {
    const TailPosition& saved = *saved_;
    if (saved.inode == 0) {
      return absl::OkStatus();  // no file was open: read it from 0 later
    }
    std::string where = options_.path;
    struct stat st;
    const bool same = ::stat(where.c_str(), &st) == 0 &&
                      static_cast<uint64_t>(st.st_dev) == saved.device &&
                      static_cast<uint64_t>(st.st_ino) == saved.inode;
    if (!same) {
      // Rotated while we were stopped: finish the old file if it is still
      // in the directory, then the path is read from 0.
      ASSIGN_OR_RETURN(std::optional<std::string> found,
                       FindByInode(saved.device, saved.inode));
      if (!found.has_value()) {
        ++stats_.lost_files;
        RAMPART_LOG(Warning)
            << "tailer " << options_.path
            << ": the file read before the restart is gone; its unread end "
               "(after offset "
            << saved.offset << ") is lost";
        return absl::OkStatus();
      }
      ++stats_.resumed_renamed;
      where = *found;
    }
    const int fd = ::open(where.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        ++stats_.lost_files;
        return absl::OkStatus();
      }
      return ErrnoStatus(errno, "cannot open log", where);
    }
    if (::fstat(fd, &st) != 0 ||
        static_cast<uint64_t>(st.st_ino) != saved.inode) {
      ::close(fd);
      ++stats_.lost_files;
      return absl::OkStatus();  // lost a race with a rename
    }
    return ApplyResume(fd, saved);
  }
  ASSIGN_OR_RETURN(const bool opened, OpenPath());
  if (!opened || options_.start_at == TailerOptions::Start::kBeginning) {
    return absl::OkStatus();
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    return ErrnoStatus(errno, "cannot stat log", options_.path);
  }
  ASSIGN_OR_RETURN(const uint64_t end,
                   EndOfLastLine(static_cast<uint64_t>(st.st_size)));
  RETURN_IF_ERROR(RebuildIndex(end));
  offset_ = end;
  head_known_ = tail_known_ = false;
  fingerprints_dirty_ = true;
  return RefreshFingerprints();
}

absl::Status Tailer::ApplyResume(int fd, const TailPosition& saved) {
  fd_ = fd;
  stats_.file_open = true;
  device_ = saved.device;
  inode_ = saved.inode;
  offset_ = saved.offset;
  in_long_line_ = saved.in_long_line;
  head_length_ = saved.head_length;
  head_hash_ = saved.head_hash;
  tail_length_ = saved.tail_length;
  tail_hash_ = saved.tail_hash;
  guard_.reset();
  if (saved.guard_end > 0 && !saved.guard.empty()) {
    guard_ = Guard{.end = saved.guard_end,
                   .lines = saved.guard,
                   .copy_start = saved.guard_copy_start,
                   .copy = saved.guard_copy};
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    return ErrnoStatus(errno, "cannot stat log", options_.path);
  }
  bool same = static_cast<uint64_t>(st.st_size) >= offset_;
  if (same) {
    ASSIGN_OR_RETURN(const bool head_ok,
                     FingerprintMatches(0, head_length_, head_hash_));
    ASSIGN_OR_RETURN(
        const bool tail_ok,
        FingerprintMatches(offset_ - tail_length_, tail_length_, tail_hash_));
    same = head_ok && tail_ok;
  }
  if (same) {
    // Unchanged while we were stopped: the consumed bytes are what we saw.
    index_.clear();
    RETURN_IF_ERROR(RebuildIndex(offset_));
    // The copy of old bytes was taken while they were old; the file may
    // hold new lines there by now, so keep the saved one.
    RETURN_IF_ERROR(DensifyGuard(static_cast<uint64_t>(st.st_size),
                                 /*copy=*/saved.guard_copy.empty()));
    head_known_ = tail_known_ = false;
    fingerprints_dirty_ = true;
    return RefreshFingerprints();
  }
  // Truncated or rewritten while stopped: Poll's checks see it, with the
  // saved sample of the old lines as the stale guard material.
  index_ = saved.lines;
  index_is_sample_ = true;
  head_known_ = tail_known_ = false;
  return DensifyGuard(static_cast<uint64_t>(st.st_size),
                      /*copy=*/saved.guard_copy.empty());
}

absl::StatusOr<uint64_t> Tailer::EndOfLastLine(uint64_t size) {
  const uint64_t window = std::min<uint64_t>(size, options_.max_line_bytes + 1);
  std::string buf;
  RETURN_IF_ERROR(ReadAt(size - window, window, &buf));
  const size_t nl = buf.rfind('\n');
  if (nl != std::string::npos) {
    return size - window + nl + 1;
  }
  if (window < options_.max_line_bytes + 1) {
    return 0;  // the whole file is one unfinished line
  }
  // Inside an over-long line: skip the rest of it.
  in_long_line_ = true;
  return size;
}

absl::Status Tailer::RebuildIndex(uint64_t limit) {
  uint64_t at = 0;
  chunk_len_ = 0;
  while (at < limit && index_.size() < options_.max_index_lines) {
    ASSIGN_OR_RETURN(const Scan s, ScanLine(at, limit));
    if (!s.found) {
      break;
    }
    AddRecord(at, s.newline + 1 - at, RecordHash(line_, s.newline + 1 - at));
    at = s.newline + 1;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Polling

absl::StatusOr<TailPollResult> Tailer::Poll(
    absl::FunctionRef<bool(const TailLine&)> sink) {
  TailPollResult result;
  chunk_len_ = 0;  // the file may have changed since the last call
  if (!started_) {
    RETURN_IF_ERROR(Start());
    started_ = true;
    saved_.reset();
  }
  const absl::Status status = PollFile(sink, &result);
  // Whatever happened, position() must describe the bytes before offset_.
  const absl::Status refreshed = RefreshFingerprints();
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(refreshed);
  return result;
}

absl::Status Tailer::PollFile(absl::FunctionRef<bool(const TailLine&)> sink,
                              TailPollResult* out) {
  TailPollResult& result = *out;
  // At most: finish a rotated file, then read its successor.
  for (int round = 0; round < 2; ++round) {
    if (fd_ < 0) {
      ASSIGN_OR_RETURN(const bool opened, OpenPath());
      if (!opened) {
        stats_.backlog_bytes = 0;
        return absl::OkStatus();
      }
    }
    bool replaced = false;
    struct stat st;
    if (::stat(options_.path.c_str(), &st) == 0) {
      replaced = static_cast<uint64_t>(st.st_dev) != device_ ||
                 static_cast<uint64_t>(st.st_ino) != inode_;
    } else if (errno != ENOENT && errno != ENOTDIR) {
      return ErrnoStatus(errno, "cannot stat log", options_.path);
    }
    if (::fstat(fd_, &st) != 0) {
      return ErrnoStatus(errno, "cannot stat log", options_.path);
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size < offset_) {
      ++stats_.truncations;
      RAMPART_LOG(Info) << "tailer " << options_.path << ": truncated to "
                        << size << " bytes (was at " << offset_
                        << "): reading from the start";
      StartGeneration(/*guard_old=*/false);
    } else if (offset_ > 0) {
      ASSIGN_OR_RETURN(const bool head_ok,
                       FingerprintMatches(0, head_length_, head_hash_));
      ASSIGN_OR_RETURN(
          const bool tail_ok,
          FingerprintMatches(offset_ - tail_length_, tail_length_, tail_hash_));
      if (!head_ok || !tail_ok) {
        // Rewritten in place. If the bytes before the offset are intact,
        // Domino's new write position is before them and everything after
        // the offset is old content we have not read yet: finish it first.
        if (tail_ok && tail_length_ > 0 && size > offset_) {
          RETURN_IF_ERROR(ReadLines(sink, size, /*final=*/true, &result));
          if (result.more) {
            return absl::OkStatus();
          }
        }
        ++stats_.wraps;
        RAMPART_LOG(Info) << "tailer " << options_.path
                          << ": rewritten in place (wrap) at " << offset_
                          << " of " << size << " bytes: reading from 0";
        std::optional<LineRecord> straddling;
        if (tail_ok) {
          ASSIGN_OR_RETURN(straddling, StraddlingRecord());
        }
        const bool sampled = index_is_sample_;
        StartGeneration(/*guard_old=*/true, straddling);
        if (sampled) {
          RETURN_IF_ERROR(DensifyGuard(size, /*copy=*/true));
        } else if (tail_ok) {
          RETURN_IF_ERROR(CopyOldTail(size));
        }
      }
    }
    RETURN_IF_ERROR(ReadLines(sink, size, /*final=*/replaced, &result));
    if (result.more || !replaced) {
      stats_.backlog_bytes = size > offset_ ? size - offset_ : 0;
      return absl::OkStatus();
    }
    // The path names another file and this one is read to its end.
    ++stats_.rotations;
    RAMPART_LOG(Info) << "tailer " << options_.path
                      << ": rotated; continuing with the new file";
    CloseFile();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LineRecord>> Tailer::StraddlingRecord() {
  if (!guard_.has_value()) {
    return std::optional<LineRecord>();
  }
  const std::vector<LineRecord>& old = guard_->lines;
  auto it = std::upper_bound(
      old.begin(), old.end(), offset_,
      [](uint64_t v, const LineRecord& r) { return v < r.start; });
  if (it == old.begin() || (it - 1)->start == offset_ ||
      (it - 1)->end() <= offset_) {
    return std::optional<LineRecord>();
  }
  const uint64_t length = (it - 1)->end() - offset_;
  std::string head;
  RETURN_IF_ERROR(ReadAt(
      offset_,
      static_cast<size_t>(std::min<uint64_t>(length, kLineRecordHashBytes)),
      &head));
  return LineRecord{.start = offset_,
                    .length = static_cast<uint32_t>(length),
                    .hash = Fold32(ContentHash64(head))};
}

void Tailer::StartGeneration(bool guard_old,
                             std::optional<LineRecord> straddling) {
  if (guard_old && options_.max_index_lines > 0) {
    Guard g;
    g.end = offset_;
    g.lines = std::move(index_);
    if (straddling.has_value()) {
      g.lines.push_back(*straddling);
    }
    if (guard_.has_value()) {
      // Older content past our offset is still on disk: keep guarding it.
      for (const LineRecord& r : guard_->lines) {
        if (r.start >= offset_) {
          g.lines.push_back(r);
        }
      }
      g.end = std::max(g.end, guard_->end);
    }
    if (g.lines.size() > options_.max_index_lines) {
      g.lines.resize(options_.max_index_lines);
    }
    guard_.reset();
    if (!g.lines.empty()) {
      guard_ = std::move(g);
    }
  } else {
    guard_.reset();
  }
  index_.clear();
  index_is_sample_ = false;
  offset_ = 0;
  in_long_line_ = false;
  head_bytes_.clear();
  tail_bytes_.clear();
  head_known_ = tail_known_ = true;
  fingerprints_dirty_ = true;
  chunk_len_ = 0;
}

absl::Status Tailer::ReadLines(absl::FunctionRef<bool(const TailLine&)> sink,
                               uint64_t size, bool final,
                               TailPollResult* result) {
  const uint64_t budget_end = offset_ > UINT64_MAX - options_.max_bytes_per_poll
                                  ? UINT64_MAX
                                  : offset_ + options_.max_bytes_per_poll;
  if (in_long_line_) {
    // Skip the rest of a line whose head was delivered.
    ASSIGN_OR_RETURN(const Scan s,
                     ScanLine(offset_, std::min(size, budget_end)));
    const uint64_t next = s.found ? s.newline + 1 : s.end;
    stats_.bytes += next - offset_;
    offset_ = next;
    head_known_ = head_known_ && head_bytes_.size() >= kHeadBytes;
    tail_known_ = false;
    fingerprints_dirty_ = true;
    if (!s.found) {
      result->more = offset_ < size;
      return absl::OkStatus();
    }
    in_long_line_ = false;
  }
  while (offset_ < size) {
    if (offset_ >= budget_end) {
      result->more = true;
      return absl::OkStatus();
    }
    // Scan at most one budget (and at least one max-length line) ahead.
    const uint64_t scan_room = std::max<uint64_t>(options_.max_bytes_per_poll,
                                                  options_.max_line_bytes + 1);
    const uint64_t limit =
        size - offset_ > scan_room ? offset_ + scan_room : size;
    ASSIGN_OR_RETURN(const Scan s, ScanLine(offset_, limit));
    if (!s.found) {
      const uint64_t length = s.end - offset_;
      if (final && s.end == size) {
        // The last line of a file nobody will append to again.
        const bool stale = guard_.has_value() && offset_ < guard_->end;
        if (stale) {
          stats_.bytes += length;
          offset_ = size;
          return absl::OkStatus();
        }
        const bool truncated = length > options_.max_line_bytes;
        Deliver(sink, offset_, s.end, /*terminated=*/false, truncated);
        ++result->lines;
        return absl::OkStatus();
      }
      if (length > options_.max_line_bytes) {
        // Over-long and unfinished: deliver the head now, skip the rest.
        const uint64_t start = offset_;
        in_long_line_ = true;
        const bool go_on = Deliver(sink, start, s.end, /*terminated=*/false,
                                   /*truncated=*/true);
        ++result->lines;
        result->more = !go_on || s.end < size;
        return absl::OkStatus();
      }
      return absl::OkStatus();  // a partial line: wait for its '\n'
    }
    if (guard_.has_value()) {
      ASSIGN_OR_RETURN(const bool deliver,
                       ShouldDeliver(offset_, s.newline, size, final));
      if (!deliver) {
        result->held = true;
        ++stats_.stale_holds;
        return absl::OkStatus();
      }
    }
    const bool truncated = s.newline - offset_ > options_.max_line_bytes;
    const bool go_on = Deliver(sink, offset_, s.newline + 1,
                               /*terminated=*/true, truncated);
    ++result->lines;
    if (!go_on) {
      result->more = true;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

bool Tailer::Deliver(absl::FunctionRef<bool(const TailLine&)> sink,
                     uint64_t start, uint64_t end, bool terminated,
                     bool truncated) {
  const uint64_t length = end - start;
  if (terminated) {
    AddRecord(start, length, RecordHash(line_, length));
  }
  if (truncated) {
    // Only the head is known; fingerprints re-read the file.
    Consumed(line_, /*complete=*/false);
    ++stats_.truncated_lines;
  } else {
    Consumed(line_, /*complete=*/true);
    if (terminated) {
      Consumed("\n", /*complete=*/true);
    }
  }
  if (!terminated && !in_long_line_) {
    ++stats_.unterminated_lines;
  }
  offset_ = end;
  stats_.bytes += length;
  ++stats_.lines;
  fingerprints_dirty_ = true;
  if (guard_.has_value() && offset_ >= guard_->end) {
    guard_.reset();  // past all old content
  }
  std::string_view text = line_;
  if (!truncated && !text.empty() && text.back() == '\r') {
    text.remove_suffix(1);
  }
  TailLine line;
  line.text = text;
  line.offset = start;
  line.end_offset = end;
  line.truncated = truncated;
  line.unterminated = !terminated && !in_long_line_;
  return sink(line);
}

void Tailer::Consumed(std::string_view bytes, bool complete) {
  if (head_known_ && head_bytes_.size() < kHeadBytes) {
    head_bytes_.append(bytes.substr(0, kHeadBytes - head_bytes_.size()));
    if (!complete && head_bytes_.size() < kHeadBytes) {
      head_known_ = false;
    }
  }
  if (!complete) {
    tail_known_ = false;
    return;
  }
  if (tail_known_) {
    if (bytes.size() >= kTailBytes) {
      tail_bytes_.assign(bytes.substr(bytes.size() - kTailBytes));
    } else {
      tail_bytes_.append(bytes);
      if (tail_bytes_.size() > kTailBytes) {
        tail_bytes_.erase(0, tail_bytes_.size() - kTailBytes);
      }
    }
  }
}

void Tailer::AddRecord(uint64_t start, uint64_t length, uint32_t hash) {
  if (index_.size() >= options_.max_index_lines || length > UINT32_MAX ||
      length == 0) {
    return;
  }
  if (!index_.empty() && index_.back().end() > start) {
    return;  // keep records sorted and disjoint
  }
  index_.push_back(LineRecord{
      .start = start, .length = static_cast<uint32_t>(length), .hash = hash});
}

absl::StatusOr<bool> Tailer::ShouldDeliver(uint64_t start, uint64_t newline,
                                           uint64_t size, bool final) {
  const std::vector<LineRecord>& old = guard_->lines;
  const uint64_t end = newline + 1;
  const uint64_t covered = old.back().end();
  if (end > covered) {
    return true;  // past the old content we know
  }
  // If the '\n' lies inside an old line (not at its end), the old byte there
  // was not '\n': Domino has written past it, the line is new.
  auto it = std::upper_bound(
      old.begin(), old.end(), newline,
      [](uint64_t v, const LineRecord& r) { return v < r.start; });
  const LineRecord* ending_here = nullptr;
  if (it != old.begin()) {
    const LineRecord& r = *(it - 1);
    if (newline + 1 < r.end()) {
      return true;
    }
    if (r.end() == end) {
      ending_here = &r;
    }
  }
  // Otherwise the line ends where an old line ended (or in a gap of the
  // sample): it is new if the old line after it has been overwritten.
  auto next = std::lower_bound(
      old.begin(), old.end(), end,
      [](const LineRecord& r, uint64_t v) { return r.start < v; });
  if (next != old.end()) {
    ASSIGN_OR_RETURN(const bool intact, Intact(*next, size));
    if (!intact) {
      return true;
    }
  } else if (size > covered) {
    return true;
  }
  // When the generation is finished (Domino has wrapped again, or the file
  // was rotated away), it ends with a complete line, so the line is new
  // exactly when it starts before Domino's last write position: when it
  // swallowed an old line end (start < old line start), or when the old line
  // it replaces exactly has changed. While Domino may still be writing, a
  // partial write could look the same, so wait for more evidence.
  if (final && ending_here != nullptr) {
    if (start < ending_here->start) {
      return true;
    }
    if (start == ending_here->start) {
      ASSIGN_OR_RETURN(const bool intact, Intact(*ending_here, size));
      return !intact;
    }
  }
  // The line starts inside an old line and ends where it ended: either a new
  // line or the stale rest of the old one. Near the old end (where Domino
  // wraps, so where a generation's last line usually is) the old bytes were
  // copied: compare.
  const Guard& g = *guard_;
  if (final && start >= g.copy_start && end <= g.copy_start + g.copy.size()) {
    std::string now;
    RETURN_IF_ERROR(ReadAt(start, static_cast<size_t>(end - start), &now));
    return now != std::string_view(g.copy).substr(
                      static_cast<size_t>(start - g.copy_start),
                      static_cast<size_t>(end - start));
  }
  return false;
}

absl::Status Tailer::DensifyGuard(uint64_t size, bool copy) {
  if (!guard_.has_value()) {
    return absl::OkStatus();
  }
  std::vector<LineRecord>& lines = guard_->lines;
  // Domino overwrites from 0 on, so the overwritten records form a prefix:
  // find the first intact one by bisection.
  size_t lo = 0, hi = lines.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(const bool intact, Intact(lines[mid], size));
    if (intact) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (lo == lines.size()) {
    return absl::OkStatus();
  }
  // From there on the file still holds the old content: its lines are the
  // old lines, record all of them.
  std::vector<LineRecord> dense(lines.begin(),
                                lines.begin() + static_cast<ptrdiff_t>(lo));
  uint64_t at = lines[lo].start;
  const uint64_t limit = std::min(guard_->end, size);
  chunk_len_ = 0;
  while (at < limit && dense.size() < options_.max_index_lines) {
    ASSIGN_OR_RETURN(const Scan s, ScanLine(at, limit));
    if (!s.found) {
      break;
    }
    const uint64_t length = s.newline + 1 - at;
    if (length <= UINT32_MAX) {
      dense.push_back(LineRecord{.start = at,
                                 .length = static_cast<uint32_t>(length),
                                 .hash = RecordHash(line_, length)});
    }
    at = s.newline + 1;
  }
  for (size_t i = lo; i < lines.size(); ++i) {
    if (lines[i].start >= at) {
      dense.push_back(lines[i]);
    }
  }
  lines = std::move(dense);
  return copy ? CopyOldTail(size) : absl::OkStatus();
}

absl::Status Tailer::CopyOldTail(uint64_t size) {
  if (!guard_.has_value()) {
    return absl::OkStatus();
  }
  guard_->copy.clear();
  guard_->copy_start = 0;
  const std::vector<LineRecord>& lines = guard_->lines;
  const uint64_t from = size > kTailCopyBytes ? size - kTailCopyBytes : 0;
  auto it = std::lower_bound(
      lines.begin(), lines.end(), from,
      [](const LineRecord& r, uint64_t v) { return r.start < v; });
  // Only what Domino has not overwritten yet: from the first intact record.
  for (; it != lines.end(); ++it) {
    ASSIGN_OR_RETURN(const bool intact, Intact(*it, size));
    if (intact) {
      break;
    }
  }
  if (it == lines.end()) {
    return absl::OkStatus();
  }
  guard_->copy_start = it->start;
  return ReadAt(it->start, static_cast<size_t>(size - it->start),
                &guard_->copy);
}

absl::StatusOr<bool> Tailer::Intact(const LineRecord& r, uint64_t size) {
  const uint64_t n = std::min<uint64_t>(r.length, kLineRecordHashBytes);
  if (r.start + n > size) {
    return false;
  }
  std::string buf;
  RETURN_IF_ERROR(ReadAt(r.start, static_cast<size_t>(n), &buf));
  return buf.size() == n && Fold32(ContentHash64(buf)) == r.hash;
}

// ---------------------------------------------------------------------------
// Reading

absl::StatusOr<std::string_view> Tailer::ChunkAt(uint64_t at) {
  if (at < chunk_offset_ || at >= chunk_offset_ + chunk_len_) {
    chunk_len_ = 0;
    chunk_offset_ = at;
    while (true) {
      const ssize_t n =
          ::pread(fd_, chunk_.data(), chunk_.size(), static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return ErrnoStatus(errno, "cannot read log", options_.path);
      }
      chunk_len_ = static_cast<size_t>(n);
      break;
    }
  }
  const size_t skip = static_cast<size_t>(at - chunk_offset_);
  return std::string_view(chunk_.data() + skip, chunk_len_ - skip);
}

absl::StatusOr<Tailer::Scan> Tailer::ScanLine(uint64_t from, uint64_t limit) {
  line_.clear();
  Scan s;
  uint64_t at = from;
  while (at < limit) {
    ASSIGN_OR_RETURN(std::string_view bytes, ChunkAt(at));
    if (bytes.empty()) {
      break;  // the file is shorter than it was a moment ago
    }
    if (bytes.size() > limit - at) {
      bytes = bytes.substr(0, static_cast<size_t>(limit - at));
    }
    const size_t nl = bytes.find('\n');
    const std::string_view part =
        nl == std::string_view::npos ? bytes : bytes.substr(0, nl);
    if (line_.size() < options_.max_line_bytes) {
      line_.append(part.substr(0, options_.max_line_bytes - line_.size()));
    }
    if (nl != std::string_view::npos) {
      s.found = true;
      s.newline = at + nl;
      s.end = s.newline + 1;
      return s;
    }
    at += bytes.size();
  }
  s.end = at;
  return s;
}

absl::Status Tailer::ReadAt(uint64_t offset, size_t n, std::string* out) {
  out->resize(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd_, out->data() + got, n - got,
                              static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      return ErrnoStatus(errno, "cannot read log", options_.path);
    }
    if (r == 0) {
      break;
    }
    got += static_cast<size_t>(r);
  }
  out->resize(got);
  return absl::OkStatus();
}

absl::StatusOr<bool> Tailer::FingerprintMatches(uint64_t at, uint32_t length,
                                                uint64_t hash) {
  if (length == 0) {
    return true;
  }
  std::string buf;
  RETURN_IF_ERROR(ReadAt(at, length, &buf));
  return buf.size() == length && ContentHash64(buf) == hash;
}

absl::Status Tailer::RefreshFingerprints() {
  if (fd_ < 0 || !fingerprints_dirty_) {
    return absl::OkStatus();
  }
  const size_t head =
      static_cast<size_t>(std::min<uint64_t>(kHeadBytes, offset_));
  const size_t tail =
      static_cast<size_t>(std::min<uint64_t>(kTailBytes, offset_));
  if (!head_known_ || head_bytes_.size() != head) {
    RETURN_IF_ERROR(ReadAt(0, head, &head_bytes_));
    head_known_ = true;
  }
  if (!tail_known_ || tail_bytes_.size() != tail) {
    RETURN_IF_ERROR(ReadAt(offset_ - tail, tail, &tail_bytes_));
    tail_known_ = true;
  }
  head_length_ = static_cast<uint32_t>(head_bytes_.size());
  head_hash_ = ContentHash64(head_bytes_);
  tail_length_ = static_cast<uint32_t>(tail_bytes_.size());
  tail_hash_ = ContentHash64(tail_bytes_);
  fingerprints_dirty_ = false;
  return absl::OkStatus();
}

TailPosition Tailer::position() const {
  TailPosition p;
  if (fd_ < 0) {
    return p;  // no file: whatever appears is read from its beginning
  }
  p.device = device_;
  p.inode = inode_;
  p.offset = offset_;
  p.in_long_line = in_long_line_;
  if (!fingerprints_dirty_) {
    // (After a failed refresh there is no fingerprint: a restart then
    // detects truncation but not a wrap.)
    p.head_length = head_length_;
    p.head_hash = head_hash_;
    p.tail_length = tail_length_;
    p.tail_hash = tail_hash_;
  }
  p.lines = Sample(index_, 0, options_.persisted_dense_lines,
                   options_.persisted_sparse_lines);
  if (guard_.has_value()) {
    // Only old lines that can still be ahead of us matter.
    const std::vector<LineRecord>& old = guard_->lines;
    auto first = std::lower_bound(
        old.begin(), old.end(), offset_,
        [](const LineRecord& r, uint64_t v) { return r.end() <= v; });
    p.guard =
        Sample(old, static_cast<size_t>(first - old.begin()),
               options_.persisted_dense_lines, options_.persisted_sparse_lines);
    p.guard_end = p.guard.empty() ? 0 : guard_->end;
    // Only old bytes still ahead of the offset can matter.
    const uint64_t copy_end = guard_->copy_start + guard_->copy.size();
    if (!p.guard.empty() && copy_end > offset_) {
      p.guard_copy_start = std::max(guard_->copy_start, offset_);
      p.guard_copy = guard_->copy.substr(
          static_cast<size_t>(p.guard_copy_start - guard_->copy_start));
    }
  }
  return p;
}

}  // namespace rampart::agent
