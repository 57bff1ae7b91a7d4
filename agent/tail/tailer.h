#pragma once

// Tailer follows one log file (Domino's console.log) and delivers complete
// lines with their byte offsets. It survives, and tells apart
// (docs/agent.md, "Tailer"):
//
//  * rename + recreate (logrotate, start scripts): the path names another
//    inode. The old file is read to its end first, then the new one from 0.
//  * truncation (copytruncate): same inode, size below the offset. Reading
//    restarts at 0.
//  * in-place wrap (Console_Log_Max_Kbytes): same inode, size not below the
//    offset, but the fingerprint of consumed bytes (the first 1 KiB, and the
//    256 bytes before the offset) changed. Domino writes again from offset 0
//    without truncating, so the file holds new lines up to Domino's write
//    position and stale, already delivered, lines after it. Unread old lines
//    after the offset are delivered first (if the bytes before the offset
//    are intact), then the new generation is read from 0 while a "stale
//    guard" (records of the old generation's lines) stops reading where the
//    old content starts; reading resumes as Domino overwrites it.
//  * partially written last lines: held (not delivered) until their '\n'
//    arrives; a line over max_line_bytes is cut: its head is delivered,
//    flagged, and the rest skipped, so memory stays bounded.
//
// The caller persists position() (PositionStore) after it made the lines
// delivered so far durable; a Tailer created from that position continues
// exactly after the last delivered line: no line twice, none skipped, also
// when the file was rotated (the old file is found by inode in the same
// directory), truncated or wrapped while the agent was stopped (limits in
// docs/agent.md).
//
// Tests drive it with explicit Poll() calls; in the agent one thread waits on
// a ChangeNotifier and polls every Tailer after each wake-up.
//
// Thread-safety: not thread-safe; one owner thread (docs/threading.md).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/tail/tail_position.h"

namespace rampart::agent {

struct TailerOptions {
  // The log file. It need not exist yet; its directory should.
  std::string path;
  // Where to start when there is no saved position and the file exists at
  // the first Poll: kEnd (default) skips the history of a log that predates
  // the agent, kBeginning reads it. A file that appears later, or replaces a
  // rotated one, is always read from its beginning.
  enum class Start { kBeginning, kEnd };
  Start start_at = Start::kEnd;
  // Lines longer than this are cut to it (and flagged). At least 256.
  // Default 64 KiB.
  size_t max_line_bytes = 64 * 1024;
  // Poll stops starting new lines after this many bytes and reports
  // `more`, so one busy file cannot starve the others. Default 4 MiB.
  uint64_t max_bytes_per_poll = 4u << 20;
  // Lines of the current (and of the previous) generation remembered for
  // the in-place-wrap stale guard, 16 bytes each. Beyond it the guard
  // covers only the start of the file and stale lines past it may be
  // delivered again. 0 disables the guard (a wrap then re-reads the stale
  // tail). Default 1 Mi lines (about 100 MB of console.log).
  size_t max_index_lines = size_t{1} << 20;
  // How many line records position() includes: the first `dense` ones from
  // the relevant point, then `sparse` spread over the rest. Defaults 1024
  // and 64 (a position file of about 40 KB).
  size_t persisted_dense_lines = 1024;
  size_t persisted_sparse_lines = 64;
};

// One delivered line. `text` points into the Tailer's buffer and is valid
// only during the callback.
struct TailLine {
  // The line without its "\n" (and without a '\r' before it); at most
  // max_line_bytes.
  std::string_view text;
  // Byte offset of the line's first byte, and of the byte after its '\n'
  // (where reading continues).
  uint64_t offset = 0;
  uint64_t end_offset = 0;
  // The line was longer than max_line_bytes; `text` is its head.
  bool truncated = false;
  // The line had no '\n': the last line of a file that was rotated away or
  // of a wrapped generation.
  bool unterminated = false;
};

struct TailPollResult {
  // Lines delivered by this call.
  uint64_t lines = 0;
  // Stopped early (byte budget reached, or the sink asked to stop): call
  // Poll again without waiting.
  bool more = false;
  // Reading stopped at content the stale guard considers old (after a
  // wrap); it resumes once Domino overwrites it.
  bool held = false;
};

struct TailerStats {
  uint64_t lines = 0;
  uint64_t bytes = 0;  // bytes consumed (delivered lines and skipped tails)
  uint64_t truncated_lines = 0;
  uint64_t unterminated_lines = 0;
  uint64_t rotations = 0;  // switched to a new file at the path
  uint64_t truncations = 0;
  uint64_t wraps = 0;
  uint64_t stale_holds = 0;  // polls that stopped at stale content
  // A rotated file was found by inode in the directory at start-up.
  uint64_t resumed_renamed = 0;
  // The saved file was gone at start-up: its unread end is lost.
  uint64_t lost_files = 0;
  // Unread bytes after the last Poll (Heartbeat.tailer_backlog_bytes).
  uint64_t backlog_bytes = 0;
  bool file_open = false;
};

class Tailer {
 public:
  // Validates the options (InvalidArgument) and remembers `saved` (from
  // PositionStore) for the first Poll. Does no I/O.
  static absl::StatusOr<std::unique_ptr<Tailer>> Create(
      const TailerOptions& options,
      std::optional<TailPosition> saved = std::nullopt);

  ~Tailer();
  Tailer(const Tailer&) = delete;
  Tailer& operator=(const Tailer&) = delete;

  // Reads what is available and calls `sink` for each complete line, in
  // file order. The sink returns false to stop after that line (the line
  // counts as delivered); Poll then returns with `more` set. A missing file
  // is not an error (nothing is delivered until it appears). Errors:
  // PermissionDenied / Unavailable / FailedPrecondition (not a regular file)
  // with path and OS reason; the state stays consistent and the next Poll
  // retries.
  // NOTE: the sink runs on the caller's stack, inside Poll; it must not call
  // back into this Tailer.
  absl::StatusOr<TailPollResult> Poll(
      absl::FunctionRef<bool(const TailLine&)> sink);

  // The position after the last delivered line, for PositionStore::Save.
  TailPosition position() const;

  const TailerStats& stats() const { return stats_; }
  const std::string& path() const { return options_.path; }

  size_t index_lines_ForTest() const { return index_.size(); }
  bool has_guard_ForTest() const { return guard_.has_value(); }

 private:
  struct Guard {
    uint64_t end = 0;               // old content ends here
    std::vector<LineRecord> lines;  // sorted, non-overlapping
    // A raw copy of the old bytes [copy_start, copy_start + copy.size()),
    // the last 8 KiB of the file when the generation started (where the
    // next wrap happens): lets the last line of a generation be told from
    // a stale fragment that ends at the same place.
    uint64_t copy_start = 0;
    std::string copy;
  };
  struct Scan {
    bool found = false;    // a '\n' was found
    uint64_t newline = 0;  // its offset
    uint64_t end = 0;      // first byte not scanned
  };

  Tailer(const TailerOptions& options, std::optional<TailPosition> saved);

  absl::Status Start();
  absl::Status PollFile(absl::FunctionRef<bool(const TailLine&)> sink,
                        TailPollResult* result);
  absl::Status ApplyResume(int fd, const TailPosition& saved);
  // Opens options_.path as a new file read from 0. Returns false if absent.
  absl::StatusOr<bool> OpenPath();
  void CloseFile();
  absl::StatusOr<std::optional<std::string>> FindByInode(uint64_t device,
                                                         uint64_t inode) const;
  // Starts a new generation at offset 0. With `guard_old`, the lines read so
  // far, `straddling` (the still-old rest of an older line that straddles
  // the offset) and the older guard's lines past the offset become the
  // stale guard.
  void StartGeneration(bool guard_old,
                       std::optional<LineRecord> straddling = std::nullopt);
  // At a wrap: an older generation's line may straddle the offset. Its part
  // after the offset is still old content when the bytes before the offset
  // are intact (Domino writes before them), so it is guarded as a record of
  // its own. Returns that record, if any.
  absl::StatusOr<std::optional<LineRecord>> StraddlingRecord();
  absl::Status ReadLines(absl::FunctionRef<bool(const TailLine&)> sink,
                         uint64_t size, bool final, TailPollResult* result);
  // Scans from `from` for '\n', copying at most max_line_bytes into line_.
  // Stops at `limit` (exclusive) or when the file ends early.
  absl::StatusOr<Scan> ScanLine(uint64_t from, uint64_t limit);
  // Whether the complete line [start, newline] is new content, given the
  // stale guard (docs/agent.md, "In-place wrap"). `final`: nothing will be
  // written to this generation any more.
  absl::StatusOr<bool> ShouldDeliver(uint64_t start, uint64_t newline,
                                     uint64_t size, bool final);
  // Whether the file still holds the bytes `r` describes.
  absl::StatusOr<bool> Intact(const LineRecord& r, uint64_t size);
  // After a restart the guard is only a sample of the old lines: from its
  // first record that Domino has not overwritten yet, replace it with a
  // record of every line actually in the file (that part is old content).
  // With `copy`, also takes the raw copy of old bytes (CopyOldTail).
  absl::Status DensifyGuard(uint64_t size, bool copy);
  // Fills guard_->copy from the file (the part not overwritten yet).
  absl::Status CopyOldTail(uint64_t size);
  // Delivers line_ as [start, end) and advances the offset.
  bool Deliver(absl::FunctionRef<bool(const TailLine&)> sink, uint64_t start,
               uint64_t end, bool terminated, bool truncated);
  void Consumed(std::string_view bytes, bool complete);
  void AddRecord(uint64_t start, uint64_t length, uint32_t hash);
  absl::Status RebuildIndex(uint64_t limit);
  absl::StatusOr<uint64_t> EndOfLastLine(uint64_t size);
  // Makes the fingerprints describe the consumed bytes again.
  absl::Status RefreshFingerprints();
  absl::StatusOr<bool> FingerprintMatches(uint64_t at, uint32_t length,
                                          uint64_t hash);
  absl::Status ReadAt(uint64_t offset, size_t n, std::string* out);
  // Returns a view of file bytes at `at` (at most to the end of the cached
  // chunk), reading a chunk if needed; empty at end of file.
  absl::StatusOr<std::string_view> ChunkAt(uint64_t at);

  // Constant after construction.
  const TailerOptions options_;

  std::optional<TailPosition> saved_;
  bool started_ = false;
  int fd_ = -1;
  uint64_t device_ = 0;
  uint64_t inode_ = 0;
  uint64_t offset_ = 0;
  bool in_long_line_ = false;
  // Fingerprints of consumed bytes as last verified/persisted.
  uint32_t head_length_ = 0;
  uint64_t head_hash_ = 0;
  uint32_t tail_length_ = 0;
  uint64_t tail_hash_ = 0;
  // The consumed bytes themselves (first 1 KiB / last 256 bytes), kept up
  // to date from the bytes delivered; *_known_ is false when skipped bytes
  // make a re-read necessary.
  std::string head_bytes_;
  std::string tail_bytes_;
  bool head_known_ = true;
  bool tail_known_ = true;
  bool fingerprints_dirty_ = false;
  // Records of the lines of the current generation (sorted; may be sparse
  // after a restart that followed a wrap).
  std::vector<LineRecord> index_;
  // index_ is the saved sample, not every line (resumed after a rewrite).
  bool index_is_sample_ = false;
  std::optional<Guard> guard_;
  std::string line_;
  std::vector<char> chunk_;
  uint64_t chunk_offset_ = 0;
  size_t chunk_len_ = 0;
  TailerStats stats_;
};

}  // namespace rampart::agent
