#pragma once

// TailPosition: everything a Tailer needs to resume a log file after a
// restart without re-sending or skipping lines, and its on-disk encoding
// (docs/agent.md, "Position file").
//
// Thread-safety: plain values and pure functions.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rampart::agent {

// Bytes of a line that LineRecord::hash covers (from the line's start; the
// '\n' is included when the line is shorter).
inline constexpr size_t kLineRecordHashBytes = 256;

// A byte range [start, start + length) of the file that ends with '\n' and
// holds no other '\n' (a line, or the tail of one), with a hash of its
// first min(length, kLineRecordHashBytes) bytes. Records let the tailer
// recognise stale content that an in-place wrap has not overwritten yet.
struct LineRecord {
  uint64_t start = 0;
  uint32_t length = 0;
  uint32_t hash = 0;

  uint64_t end() const { return start + length; }
  friend bool operator==(const LineRecord&, const LineRecord&) = default;
};

struct TailPosition {
  // Identity of the file the offset refers to; inode 0 means "no file was
  // open" (a file that appears later is read from its beginning).
  uint64_t device = 0;
  uint64_t inode = 0;
  // Next byte to read: the start of the first line not delivered yet, or,
  // when in_long_line, a point inside an over-long line whose head was
  // already delivered (the rest, up to '\n', is skipped).
  uint64_t offset = 0;
  bool in_long_line = false;
  // Fingerprints of consumed bytes: [0, head_length) and
  // [offset - tail_length, offset). A mismatch at the same inode means the
  // file was rewritten in place (Console_Log_Max_Kbytes wrap).
  uint32_t head_length = 0;
  uint64_t head_hash = 0;
  uint32_t tail_length = 0;
  uint64_t tail_hash = 0;
  // A sample of the lines before `offset` (dense at the start of the file,
  // sparse after), used as the stale guard if the file wrapped while the
  // agent was stopped.
  std::vector<LineRecord> lines;
  // While reading a wrapped file: the previous generation's content still
  // on disk ends at guard_end (0 = no guard), and guard samples its lines
  // from `offset` on (dense near offset, sparse after).
  uint64_t guard_end = 0;
  std::vector<LineRecord> guard;
  // A raw copy of old bytes at [guard_copy_start, + size) (at most 8 KiB,
  // near the old end), to tell a generation's last line from a stale
  // fragment ending at the same place.
  uint64_t guard_copy_start = 0;
  std::string guard_copy;

  friend bool operator==(const TailPosition&, const TailPosition&) = default;
};

// Serialises a position as versioned text with a trailing checksum.
std::string EncodeTailPosition(const TailPosition& position);

// Parses EncodeTailPosition's output. Returns DataLoss (naming `source`) if
// the text is malformed, truncated, fails its checksum or has more than
// 65536 records in a list.
absl::StatusOr<TailPosition> DecodeTailPosition(std::string_view text,
                                                std::string_view source);

}  // namespace rampart::agent
