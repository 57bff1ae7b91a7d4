#include "agent/spool/segment.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "agent/spool/crc32c.h"
#include "common/file_util.h"

namespace rampart::agent {
namespace {

using file_util::ErrnoStatus;

constexpr size_t kReadChunk = 64 * 1024;
constexpr std::string_view kSegmentPrefix = "seg-";
constexpr std::string_view kSegmentSuffix = ".rsp";
constexpr size_t kSequenceDigits = 20;

void PutU32(uint32_t v, std::string* dst) {
  for (int i = 0; i < 4; ++i) {
    dst->push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
  }
}

void PutU64(uint64_t v, std::string* dst) {
  for (int i = 0; i < 8; ++i) {
    dst->push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
  }
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  }
  return v;
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  }
  return v;
}

}  // namespace

std::string EncodeSegmentHeader(uint64_t epoch) {
  std::string out(kSegmentMagic);
  PutU64(epoch, &out);
  return out;
}

absl::StatusOr<uint64_t> DecodeSegmentHeader(std::string_view header) {
  if (header.size() != kSegmentHeaderBytes ||
      header.substr(0, kSegmentMagic.size()) != kSegmentMagic) {
    return absl::DataLossError("bad spool segment header");
  }
  return GetU64(header.data() + kSegmentMagic.size());
}

void EncodeRecord(uint64_t sequence, uint32_t event_count,
                  std::string_view payload, std::string* dst) {
  const size_t start = dst->size();
  PutU32(0, dst);  // crc placeholder
  PutU32(static_cast<uint32_t>(payload.size()), dst);
  PutU64(sequence, dst);
  PutU32(event_count, dst);
  dst->append(payload);
  const uint32_t crc = Crc32c(std::string_view(*dst).substr(start + 4));
  for (int i = 0; i < 4; ++i) {
    (*dst)[start + static_cast<size_t>(i)] =
        static_cast<char>((crc >> (8 * i)) & 0xFFu);
  }
}

std::string SegmentFileName(uint64_t first_sequence) {
  return absl::StrFormat("%s%020d%s", kSegmentPrefix, first_sequence,
                         kSegmentSuffix);
}

bool ParseSegmentFileName(std::string_view name, uint64_t* first_sequence) {
  if (name.size() !=
          kSegmentPrefix.size() + kSequenceDigits + kSegmentSuffix.size() ||
      !name.starts_with(kSegmentPrefix) || !name.ends_with(kSegmentSuffix)) {
    return false;
  }
  uint64_t v = 0;
  for (const char c : name.substr(kSegmentPrefix.size(), kSequenceDigits)) {
    if (c < '0' || c > '9') {
      return false;
    }
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) {
      return false;
    }
    v = v * 10 + digit;
  }
  *first_sequence = v;
  return true;
}

absl::StatusOr<std::unique_ptr<SegmentReader>> SegmentReader::Open(
    const std::string& path, uint64_t offset) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, "cannot open spool segment", path);
  }
  char header[kSegmentHeaderBytes];
  ssize_t n;
  do {
    n = ::pread(fd, header, sizeof(header), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot read spool segment", path);
  }
  absl::StatusOr<uint64_t> epoch =
      DecodeSegmentHeader(std::string_view(header, static_cast<size_t>(n)));
  if (!epoch.ok()) {
    ::close(fd);
    return absl::DataLossError(
        absl::StrFormat("%s: missing or bad segment header", path));
  }
  return std::unique_ptr<SegmentReader>(new SegmentReader(
      fd, path, *epoch, offset == 0 ? kSegmentHeaderBytes : offset));
}

SegmentReader::SegmentReader(int fd, std::string path, uint64_t epoch,
                             uint64_t offset)
    : fd_(fd),
      path_(std::move(path)),
      epoch_(epoch),
      buf_(kReadChunk),
      buf_offset_(offset),
      pos_(offset) {}

SegmentReader::~SegmentReader() { ::close(fd_); }

absl::StatusOr<size_t> SegmentReader::Ensure(size_t n) {
  if (pos_ < buf_offset_ || pos_ > buf_offset_ + buf_len_) {
    buf_offset_ = pos_;
    buf_len_ = 0;
  }
  const size_t have = static_cast<size_t>(buf_offset_ + buf_len_ - pos_);
  if (have >= n) {
    return have;
  }
  // Move the unread bytes to the front, grow if one record needs more room.
  const size_t skip = static_cast<size_t>(pos_ - buf_offset_);
  if (skip > 0) {
    std::memmove(buf_.data(), buf_.data() + skip, have);
  }
  buf_offset_ = pos_;
  buf_len_ = have;
  if (buf_.size() < n) {
    buf_.resize(n);
  }
  while (buf_len_ < n) {
    const ssize_t r =
        ::pread(fd_, buf_.data() + buf_len_, buf_.size() - buf_len_,
                static_cast<off_t>(buf_offset_ + buf_len_));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      return ErrnoStatus(errno, "cannot read spool segment", path_);
    }
    if (r == 0) {
      break;
    }
    buf_len_ += static_cast<size_t>(r);
  }
  return buf_len_;
}

absl::StatusOr<SegmentReader::Item> SegmentReader::Next() {
  Item item;
  item.offset = pos_;
  absl::StatusOr<size_t> have = Ensure(kRecordHeaderBytes);
  if (!have.ok()) {
    return have.status();
  }
  if (*have == 0) {
    item.kind = Kind::kEnd;
    return item;
  }
  if (*have < kRecordHeaderBytes) {
    item.kind = Kind::kTorn;
    return item;
  }
  const char* h = buf_.data() + (pos_ - buf_offset_);
  RecordHeader header;
  header.crc = GetU32(h);
  header.length = GetU32(h + 4);
  header.sequence = GetU64(h + 8);
  header.event_count = GetU32(h + 16);
  if (header.length > kMaxRecordPayloadBytes) {
    item.kind = Kind::kCorrupt;
    return item;
  }
  const size_t total = kRecordHeaderBytes + header.length;
  have = Ensure(total);
  if (!have.ok()) {
    return have.status();
  }
  if (*have < total) {
    item.kind = Kind::kTorn;
    return item;
  }
  const char* rec = buf_.data() + (pos_ - buf_offset_);
  if (Crc32c(std::string_view(rec + 4, total - 4)) != header.crc) {
    item.kind = Kind::kCorrupt;
    return item;
  }
  item.kind = Kind::kRecord;
  item.header = header;
  item.payload = std::string_view(rec + kRecordHeaderBytes, header.length);
  pos_ += total;
  return item;
}

}  // namespace rampart::agent
