#pragma once

// The on-disk format of spool segments (docs/agent.md, "Spool format"):
//
//   segment file "seg-<first sequence, 20 digits>.rsp":
//     header   magic "RSPOOL01" (8 bytes) | spool epoch (u64 LE)
//     records  crc32c (u32 LE) | payload length (u32 LE) | sequence (u64 LE)
//              | event count (u32 LE) | payload bytes
//
// The CRC-32C covers everything after the crc field (length, sequence, event
// count and payload), so a torn or corrupted record is detected before its
// length is trusted for anything but bounds checks.
//
// Thread-safety: SegmentReader is not thread-safe; the free functions are.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rampart::agent {

inline constexpr std::string_view kSegmentMagic = "RSPOOL01";
inline constexpr size_t kSegmentHeaderBytes = 16;
inline constexpr size_t kRecordHeaderBytes = 20;
// No record larger than this is ever written or read (SpoolOptions caps the
// configured limit here), so a corrupted length cannot make a reader
// allocate more.
inline constexpr uint32_t kMaxRecordPayloadBytes = 64u << 20;

struct RecordHeader {
  uint32_t crc = 0;
  uint32_t length = 0;
  uint64_t sequence = 0;
  uint32_t event_count = 0;
};

// Returns the 16-byte segment header for `epoch`.
std::string EncodeSegmentHeader(uint64_t epoch);

// Parses a segment header. Returns the epoch, or DataLoss if `header` is not
// 16 bytes starting with the magic.
absl::StatusOr<uint64_t> DecodeSegmentHeader(std::string_view header);

// Appends one encoded record (header + payload) to *dst.
// REQUIRES: payload.size() <= kMaxRecordPayloadBytes.
void EncodeRecord(uint64_t sequence, uint32_t event_count,
                  std::string_view payload, std::string* dst);

// "seg-00000000000000000042.rsp" for first sequence 42, and back. Parse
// returns false for any other name.
std::string SegmentFileName(uint64_t first_sequence);
bool ParseSegmentFileName(std::string_view name, uint64_t* first_sequence);

// Reads the records of one segment file sequentially with a bounded buffer.
class SegmentReader {
 public:
  enum class Kind {
    kRecord,   // a valid record was read
    kEnd,      // clean end of file
    kTorn,     // the file ends inside a record (crash mid-append)
    kCorrupt,  // a complete record fails its CRC or has an impossible length
  };
  struct Item {
    Kind kind = Kind::kEnd;
    RecordHeader header;       // valid for kRecord
    std::string_view payload;  // valid for kRecord until the next Next()
    uint64_t offset = 0;       // file offset of the record (or of the damage)
  };

  // Opens `path` read-only and checks its header. Returns NotFound /
  // PermissionDenied / Unavailable (with path and errno text) if the file
  // cannot be opened or read, DataLoss if the header is missing or bad.
  // Reading starts at `offset` (which must be a record boundary >=
  // kSegmentHeaderBytes), or just after the header when offset is 0.
  static absl::StatusOr<std::unique_ptr<SegmentReader>> Open(
      const std::string& path, uint64_t offset = 0);

  ~SegmentReader();
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  // The epoch from the segment header.
  uint64_t epoch() const { return epoch_; }

  // Reads the next record. Returns an I/O error status (with the path) only
  // when the file cannot be read; damage is reported as kTorn / kCorrupt and
  // the reader stays at the damaged record.
  absl::StatusOr<Item> Next();

 private:
  SegmentReader(int fd, std::string path, uint64_t epoch, uint64_t offset);
  // Makes at least `n` bytes from pos_ available in buf_ unless the file is
  // shorter. Returns the number available.
  absl::StatusOr<size_t> Ensure(size_t n);

  const int fd_;
  const std::string path_;
  const uint64_t epoch_;
  std::vector<char> buf_;
  uint64_t buf_offset_ = 0;  // file offset of buf_[0]
  size_t buf_len_ = 0;       // valid bytes in buf_
  uint64_t pos_ = 0;         // file offset of the next record
};

}  // namespace rampart::agent
