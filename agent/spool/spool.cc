#include "agent/spool/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "agent/spool/crc32c.h"
#include "agent/spool/segment.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace rampart::agent {
namespace {

using file_util::ErrnoStatus;
using file_util::ReadSmallFile;
using file_util::SyncDir;
using file_util::WriteAll;
using file_util::WriteFileAtomically;

constexpr std::string_view kMetaName = "META";
constexpr std::string_view kMetaMagic = "rampart-spool-meta 1";
constexpr size_t kMaxMetaBytes = 4096;
// Sequences are leased this far ahead: META is rewritten once per this many
// appends, and a crash skips at most this many sequences.
constexpr uint64_t kSequenceLease = 1024;
// When META is lost the lease is unknown; sequences resume this far past the
// last record found, far beyond anything that can have been handed out
// between two syncs.
constexpr uint64_t kRecoveryGap = uint64_t{1} << 32;
constexpr uint64_t kIndexStride = 64 * 1024;
constexpr size_t kMaxReports = 64;

struct Meta {
  uint64_t epoch = 0;
  uint64_t acked_through = 0;
  uint64_t lease_end = 0;
  uint64_t dropped_batches = 0;
  uint64_t dropped_events = 0;
};

std::string EncodeMeta(const Meta& m) {
  std::string body = absl::StrFormat(
      "%s\nepoch %016x\nacked_through %d\nlease_end %d\ndropped_batches "
      "%d\ndropped_events %d\n",
      kMetaMagic, m.epoch, m.acked_through, m.lease_end, m.dropped_batches,
      m.dropped_events);
  return body + absl::StrFormat("crc32c %08x\n", Crc32c(body));
}

// Parses "<key> <value>\n" at the front of *s.
bool TakeField(std::string_view* s, std::string_view key, int base,
               uint64_t* value) {
  const size_t nl = s->find('\n');
  if (nl == std::string_view::npos) {
    return false;
  }
  std::string_view line = s->substr(0, nl);
  if (!line.starts_with(key) || line.size() <= key.size() + 1 ||
      line[key.size()] != ' ') {
    return false;
  }
  line.remove_prefix(key.size() + 1);
  uint64_t v = 0;
  for (const char c : line) {
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    if (v > (UINT64_MAX - digit) / static_cast<uint64_t>(base)) {
      return false;
    }
    v = v * static_cast<uint64_t>(base) + digit;
  }
  *value = v;
  s->remove_prefix(nl + 1);
  return true;
}

absl::StatusOr<Meta> DecodeMeta(std::string_view text,
                                const std::string& path) {
  const auto bad = [&path](std::string_view why) {
    return absl::DataLossError(absl::StrFormat("%s: %s", path, why));
  };
  const size_t crc_at = text.rfind("crc32c ");
  if (crc_at == std::string_view::npos) {
    return bad("no checksum");
  }
  std::string_view crc_line = text.substr(crc_at);
  uint64_t crc = 0;
  if (!TakeField(&crc_line, "crc32c", 16, &crc) || !crc_line.empty() ||
      crc != Crc32c(text.substr(0, crc_at))) {
    return bad("checksum mismatch");
  }
  std::string_view s = text.substr(0, crc_at);
  if (!s.starts_with(kMetaMagic) || s.size() <= kMetaMagic.size() ||
      s[kMetaMagic.size()] != '\n') {
    return bad("not a spool META file");
  }
  s.remove_prefix(kMetaMagic.size() + 1);
  Meta m;
  if (!TakeField(&s, "epoch", 16, &m.epoch) ||
      !TakeField(&s, "acked_through", 10, &m.acked_through) ||
      !TakeField(&s, "lease_end", 10, &m.lease_end) ||
      !TakeField(&s, "dropped_batches", 10, &m.dropped_batches) ||
      !TakeField(&s, "dropped_events", 10, &m.dropped_events) || !s.empty() ||
      m.epoch == 0) {
    return bad("malformed");
  }
  return m;
}

absl::Status ValidateOptions(const SpoolOptions& o) {
  if (o.dir.empty()) {
    return absl::InvalidArgumentError("spool: dir is empty");
  }
  if (o.max_record_bytes == 0 || o.max_record_bytes > kMaxRecordPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("spool: max_record_bytes must be in [1, %d], got %d",
                        kMaxRecordPayloadBytes, o.max_record_bytes));
  }
  if (o.segment_bytes <
      kSegmentHeaderBytes + kRecordHeaderBytes + o.max_record_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "spool: segment_bytes (%d) must be >= max_record_bytes + %d",
        o.segment_bytes, kSegmentHeaderBytes + kRecordHeaderBytes));
  }
  if (o.max_bytes / 2 < o.segment_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("spool: max_bytes (%d) must be >= 2 * segment_bytes "
                        "(%d)",
                        o.max_bytes, o.segment_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(
    const SpoolOptions& options, std::function<uint64_t()> random_u64) {
  RETURN_IF_ERROR(ValidateOptions(options));
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return ErrnoStatus(ec.value(), "cannot create spool directory",
                       options.dir);
  }
  if (!random_u64) {
    random_u64 = [gen = std::make_shared<absl::BitGen>()]() {
      return absl::Uniform<uint64_t>(*gen);
    };
  }
  std::unique_ptr<Spool> spool(new Spool(options, std::move(random_u64)));
  {
    absl::MutexLock lock(&spool->mu_);
    RETURN_IF_ERROR(spool->Recover());
  }
  return spool;
}

Spool::Spool(const SpoolOptions& options, std::function<uint64_t()> random_u64)
    : options_(options),
      meta_path_(options.dir + "/" + std::string(kMetaName)),
      random_u64_(std::move(random_u64)) {}

Spool::~Spool() {
  absl::MutexLock lock(&mu_);
  if (active_fd_ >= 0) {
    ::close(active_fd_);
    active_fd_ = -1;
  }
}

uint64_t Spool::NewEpoch() {
  uint64_t e = 0;
  while (e == 0) {
    e = random_u64_();
  }
  return e;
}

void Spool::Report(std::string message) {
  RAMPART_LOG(Warning) << message;
  if (reports_.size() < kMaxReports) {
    reports_.push_back(std::move(message));
  }
}

absl::Status Spool::WriteMeta(bool sync) {
  const Meta m{.epoch = epoch_,
               .acked_through = acked_through_,
               .lease_end = lease_end_,
               .dropped_batches = dropped_batches_,
               .dropped_events = dropped_events_};
  RETURN_IF_ERROR(WriteFileAtomically(meta_path_, EncodeMeta(m), sync));
  meta_dirty_ = false;
  return absl::OkStatus();
}

absl::Status Spool::Recover() {
  // Inventory of segment files.
  DIR* dir = ::opendir(options_.dir.c_str());
  if (dir == nullptr) {
    return ErrnoStatus(errno, "cannot open spool directory", options_.dir);
  }
  std::vector<Segment> found;
  while (const dirent* entry = ::readdir(dir)) {
    uint64_t first = 0;
    if (ParseSegmentFileName(entry->d_name, &first)) {
      Segment seg;
      seg.first_sequence = first;
      seg.last_sequence = first - 1;
      seg.path = options_.dir + "/" + entry->d_name;
      found.push_back(std::move(seg));
    }
  }
  ::closedir(dir);
  std::sort(found.begin(), found.end(), [](const Segment& a, const Segment& b) {
    return a.first_sequence < b.first_sequence;
  });

  std::string text;
  const absl::Status read = ReadSmallFile(meta_path_, kMaxMetaBytes, &text);
  absl::StatusOr<Meta> meta = absl::NotFoundError("no META");
  if (read.ok()) {
    meta = DecodeMeta(text, meta_path_);
  } else if (!absl::IsNotFound(read) && !absl::IsDataLoss(read)) {
    return read;
  } else {
    meta = read;
  }

  if (!meta.ok() && found.empty()) {
    if (!absl::IsNotFound(meta.status())) {
      Report(
          absl::StrFormat("spool META unreadable (%s) and no segments: "
                          "starting a new epoch",
                          meta.status().message()));
    }
    epoch_ = NewEpoch();
    next_sequence_ = 1;
    lease_end_ = 1;
    return WriteMeta(SyncEnabled());
  }
  if (meta.ok()) {
    epoch_ = meta->epoch;
    acked_through_ = meta->acked_through;
    lease_end_ = meta->lease_end;
    dropped_batches_ = meta->dropped_batches;
    dropped_events_ = meta->dropped_events;
  } else {
    // Segments without META: recover the epoch from the first readable
    // segment header; the lease is unknown.
    meta_recovered_ = true;
    for (const Segment& seg : found) {
      absl::StatusOr<std::unique_ptr<SegmentReader>> r =
          SegmentReader::Open(seg.path);
      if (r.ok()) {
        epoch_ = (*r)->epoch();
        break;
      }
    }
    if (epoch_ == 0) {
      epoch_ = NewEpoch();
    }
    Report(absl::StrFormat(
        "spool META lost (%s): epoch %016x recovered from segments; "
        "sequences resume after a gap",
        meta.status().message(), epoch_));
  }

  uint64_t last_sequence = 0;
  for (size_t i = 0; i < found.size(); ++i) {
    Segment& seg = found[i];
    if (seg.first_sequence <= last_sequence || seg.first_sequence == 0) {
      ++bad_segments_;
      Report(absl::StrFormat(
          "%s overlaps the previous segment (ends at %d): removed", seg.path,
          last_sequence));
      ::unlink(seg.path.c_str());
      continue;
    }
    ASSIGN_OR_RETURN(const bool keep, ScanSegment(&seg, i + 1 == found.size()));
    if (!keep) {
      ::unlink(seg.path.c_str());
      continue;
    }
    last_sequence = seg.last_sequence;
    if (seg.last_sequence <= acked_through_) {
      ::unlink(seg.path.c_str());
      continue;
    }
    total_bytes_ += seg.bytes;
    segments_.push_back(std::move(seg));
  }
  if (meta_recovered_) {
    acked_through_ = segments_.empty() ? last_sequence
                                       : segments_.front().first_sequence - 1;
    lease_end_ = last_sequence + 1 + kRecoveryGap;
  }
  next_sequence_ = std::max(
      {lease_end_, last_sequence + 1, acked_through_ + 1, uint64_t{1}});
  lease_end_ = next_sequence_;
  // New appends always start a new segment, so each segment holds a
  // contiguous run of sequences.
  return WriteMeta(SyncEnabled());
}

absl::StatusOr<bool> Spool::ScanSegment(Segment* seg, bool is_last) {
  absl::StatusOr<std::unique_ptr<SegmentReader>> reader =
      SegmentReader::Open(seg->path);
  if (!reader.ok()) {
    if (!absl::IsDataLoss(reader.status())) {
      return reader.status();
    }
    ++bad_segments_;
    Report(absl::StrFormat("%s: segment removed", reader.status().message()));
    return false;
  }
  if ((*reader)->epoch() != epoch_) {
    ++bad_segments_;
    Report(absl::StrFormat("%s belongs to epoch %016x, not %016x: removed",
                           seg->path, (*reader)->epoch(), epoch_));
    return false;
  }
  seg->bytes = kSegmentHeaderBytes;
  uint64_t expected = seg->first_sequence;
  uint64_t last_indexed = 0;
  while (true) {
    ASSIGN_OR_RETURN(SegmentReader::Item item, (*reader)->Next());
    if (item.kind == SegmentReader::Kind::kRecord &&
        item.header.sequence != expected) {
      item.kind = SegmentReader::Kind::kCorrupt;
    }
    if (item.kind == SegmentReader::Kind::kRecord) {
      if (seg->index.empty() || item.offset - last_indexed >= kIndexStride) {
        seg->index.emplace_back(item.header.sequence, item.offset);
        last_indexed = item.offset;
      }
      seg->last_sequence = item.header.sequence;
      seg->events += item.header.event_count;
      seg->bytes = item.offset + kRecordHeaderBytes + item.header.length;
      ++expected;
      continue;
    }
    if (item.kind == SegmentReader::Kind::kEnd) {
      break;
    }
    // Damage: keep the records before it, cut the file there.
    struct stat st;
    const uint64_t file_size = ::stat(seg->path.c_str(), &st) == 0
                                   ? static_cast<uint64_t>(st.st_size)
                                   : item.offset;
    const bool torn = item.kind == SegmentReader::Kind::kTorn;
    if (torn && is_last) {
      ++torn_tails_;
      Report(absl::StrFormat(
          "%s: torn record at offset %d (crash during append): %d bytes cut "
          "off",
          seg->path, item.offset, file_size - item.offset));
    } else {
      ++corrupt_records_;
      Report(absl::StrFormat(
          "%s: %s record at offset %d after sequence %d: the rest of the "
          "segment (%d bytes) is discarded",
          seg->path, torn ? "truncated" : "corrupted", item.offset,
          expected - 1, file_size - item.offset));
    }
    if (::truncate(seg->path.c_str(), static_cast<off_t>(item.offset)) != 0) {
      return ErrnoStatus(errno, "cannot truncate damaged spool segment",
                         seg->path);
    }
    break;
  }
  return seg->last_sequence >= seg->first_sequence;
}

absl::Status Spool::CreateSegment() {
  Segment seg;
  seg.first_sequence = next_sequence_;
  seg.last_sequence = next_sequence_ - 1;
  seg.path = options_.dir + "/" + SegmentFileName(next_sequence_);
  const int fd =
      ::open(seg.path.c_str(),
             O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    return ErrnoStatus(errno, "cannot create spool segment", seg.path);
  }
  absl::Status status = WriteAll(fd, EncodeSegmentHeader(epoch_), seg.path);
  if (status.ok() && SyncEnabled()) {
    status = SyncDir(options_.dir);
  }
  if (!status.ok()) {
    ::close(fd);
    ::unlink(seg.path.c_str());
    return status;
  }
  seg.bytes = kSegmentHeaderBytes;
  total_bytes_ += seg.bytes;
  segments_.push_back(std::move(seg));
  active_fd_ = fd;
  return absl::OkStatus();
}

absl::Status Spool::SealActive() {
  if (active_fd_ < 0) {
    return absl::OkStatus();
  }
  absl::Status status;
  if (SyncEnabled() && ::fdatasync(active_fd_) != 0) {
    status =
        ErrnoStatus(errno, "cannot fsync spool segment", segments_.back().path);
  }
  ::close(active_fd_);
  active_fd_ = -1;
  return status;
}

absl::Status Spool::DeleteFront() {
  Segment& seg = segments_.front();
  if (segments_.size() == 1 && active_fd_ >= 0) {
    ::close(active_fd_);
    active_fd_ = -1;
  }
  absl::Status status;
  if (::unlink(seg.path.c_str()) != 0 && errno != ENOENT) {
    status = ErrnoStatus(errno, "cannot delete spool segment", seg.path);
  }
  total_bytes_ -= seg.bytes;
  segments_.pop_front();
  return status;
}

uint64_t Spool::CountEvents(const Segment& seg, uint64_t from) {
  if (from <= seg.first_sequence) {
    return seg.events;
  }
  uint64_t offset = 0;
  for (const auto& [seq, off] : seg.index) {
    if (seq > from) {
      break;
    }
    offset = off;
  }
  absl::StatusOr<std::unique_ptr<SegmentReader>> reader =
      SegmentReader::Open(seg.path, offset);
  if (!reader.ok()) {
    return 0;
  }
  uint64_t events = 0;
  while (true) {
    absl::StatusOr<SegmentReader::Item> item = (*reader)->Next();
    if (!item.ok() || item->kind != SegmentReader::Kind::kRecord) {
      break;
    }
    if (item->header.sequence >= from) {
      events += item->header.event_count;
    }
  }
  return events;
}

absl::Status Spool::DropOldest() {
  const Segment& seg = segments_.front();
  const uint64_t from = std::max(seg.first_sequence, acked_through_ + 1);
  if (from <= seg.last_sequence) {
    const uint64_t batches = seg.last_sequence - from + 1;
    const uint64_t events = CountEvents(seg, from);
    dropped_batches_ += batches;
    dropped_events_ += events;
    Report(absl::StrFormat(
        "spool full (%d bytes): dropped unacknowledged batches %d..%d (%d "
        "batches, %d events)",
        options_.max_bytes, from, seg.last_sequence, batches, events));
  }
  RETURN_IF_ERROR(DeleteFront());
  return WriteMeta(SyncEnabled());
}

void Spool::TruncateDamaged(Segment* seg, uint64_t valid_bytes,
                            uint64_t last_good_sequence,
                            std::string_view what) {
  ++corrupt_records_;
  Report(absl::StrFormat(
      "%s: %s record at offset %d while reading: batches %d..%d discarded",
      seg->path, what, valid_bytes, last_good_sequence + 1,
      seg->last_sequence));
  if (::truncate(seg->path.c_str(), static_cast<off_t>(valid_bytes)) != 0) {
    Report(absl::StrFormat("%s: cannot truncate: %s", seg->path,
                           std::strerror(errno)));
  }
  total_bytes_ -= seg->bytes - valid_bytes;
  seg->bytes = valid_bytes;
  seg->last_sequence = last_good_sequence;
  if (&segments_.back() == seg && active_fd_ >= 0) {
    // Never append after damage: the next Append starts a new segment.
    ::close(active_fd_);
    active_fd_ = -1;
  }
}

absl::StatusOr<uint64_t> Spool::Append(std::string_view payload,
                                       uint32_t event_count) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::FailedPreconditionError("spool is closed");
  }
  if (payload.size() > options_.max_record_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("spool: batch of %d bytes exceeds max_record_bytes %d",
                        payload.size(), options_.max_record_bytes));
  }
  const uint64_t size = kRecordHeaderBytes + payload.size();
  if (next_sequence_ >= lease_end_) {
    lease_end_ = next_sequence_ + kSequenceLease;
    RETURN_IF_ERROR(WriteMeta(SyncEnabled()));
  }
  if (active_fd_ >= 0 &&
      segments_.back().bytes + size > options_.segment_bytes) {
    RETURN_IF_ERROR(SealActive());
  }
  const uint64_t needed = size + (active_fd_ >= 0 ? 0 : kSegmentHeaderBytes);
  while (total_bytes_ + needed > options_.max_bytes && !segments_.empty() &&
         !(segments_.size() == 1 && active_fd_ >= 0)) {
    RETURN_IF_ERROR(DropOldest());
  }
  if (active_fd_ < 0) {
    RETURN_IF_ERROR(CreateSegment());
  }
  Segment& seg = segments_.back();
  const uint64_t sequence = next_sequence_;
  std::string record;
  record.reserve(size);
  EncodeRecord(sequence, event_count, payload, &record);
  absl::Status status = WriteAll(active_fd_, record, seg.path);
  if (status.ok() && options_.fsync == FsyncPolicy::kEveryAppend &&
      ::fdatasync(active_fd_) != 0) {
    status = ErrnoStatus(errno, "cannot fsync spool segment", seg.path);
  }
  if (!status.ok()) {
    // Skip the sequence (the bytes may have reached the disk) and cut the
    // partial record off; if that fails, seal the segment so that nothing
    // is ever appended after damage.
    ++next_sequence_;
    if (::ftruncate(active_fd_, static_cast<off_t>(seg.bytes)) != 0) {
      ::close(active_fd_);
      active_fd_ = -1;
    }
    return status;
  }
  if (seg.index.empty() ||
      seg.bytes - seg.index.back().second >= kIndexStride) {
    seg.index.emplace_back(sequence, seg.bytes);
  }
  seg.bytes += size;
  seg.events += event_count;
  seg.last_sequence = sequence;
  total_bytes_ += size;
  ++next_sequence_;
  return sequence;
}

absl::Status Spool::Ack(uint64_t up_to_sequence) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::FailedPreconditionError("spool is closed");
  }
  if (up_to_sequence >= next_sequence_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "spool: ack of sequence %d, but only sequences below %d were issued",
        up_to_sequence, next_sequence_));
  }
  if (up_to_sequence <= acked_through_) {
    return absl::OkStatus();
  }
  acked_through_ = up_to_sequence;
  meta_dirty_ = true;
  absl::Status status;
  while (!segments_.empty() &&
         segments_.front().last_sequence <= acked_through_ &&
         !(segments_.size() == 1 && active_fd_ >= 0)) {
    if (absl::Status s = DeleteFront(); !s.ok() && status.ok()) {
      status = s;
    }
  }
  return status;
}

absl::StatusOr<std::vector<SpoolRecord>> Spool::ReadUnacked(
    uint64_t from_sequence, size_t max_records, size_t max_bytes) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::FailedPreconditionError("spool is closed");
  }
  std::vector<SpoolRecord> out;
  const uint64_t start = std::max(from_sequence, acked_through_ + 1);
  size_t bytes = 0;
  for (size_t i = 0; i < segments_.size() && out.size() < max_records;) {
    Segment& seg = segments_[i];
    if (seg.last_sequence < start || seg.last_sequence < seg.first_sequence) {
      ++i;
      continue;
    }
    // Seek to the last indexed record at or before `start`.
    uint64_t offset = 0;
    uint64_t last_good = seg.first_sequence - 1;
    for (const auto& [seq, off] : seg.index) {
      if (seq > start) {
        break;
      }
      offset = off;
      last_good = seq - 1;
    }
    absl::StatusOr<std::unique_ptr<SegmentReader>> reader =
        SegmentReader::Open(seg.path, offset);
    if (!reader.ok()) {
      if (!absl::IsNotFound(reader.status()) &&
          !absl::IsDataLoss(reader.status())) {
        return reader.status();
      }
      // The file vanished or lost its header since Open: forget it.
      ++bad_segments_;
      Report(absl::StrFormat("%s: batches %d..%d discarded",
                             reader.status().message(), seg.first_sequence,
                             seg.last_sequence));
      if (i + 1 == segments_.size() && active_fd_ >= 0) {
        ::close(active_fd_);
        active_fd_ = -1;
      }
      total_bytes_ -= seg.bytes;
      segments_.erase(segments_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    while (out.size() < max_records) {
      ASSIGN_OR_RETURN(SegmentReader::Item item, (*reader)->Next());
      if (item.kind == SegmentReader::Kind::kRecord &&
          item.offset >= seg.bytes) {
        item.kind = SegmentReader::Kind::kEnd;  // past the known records
      }
      if (item.kind == SegmentReader::Kind::kEnd) {
        if (item.offset < seg.bytes) {
          TruncateDamaged(&seg, item.offset, last_good, "missing");
        }
        break;
      }
      if (item.kind != SegmentReader::Kind::kRecord ||
          item.header.sequence != last_good + 1) {
        TruncateDamaged(&seg, item.offset, last_good,
                        item.kind == SegmentReader::Kind::kTorn ? "truncated"
                                                                : "corrupted");
        break;
      }
      last_good = item.header.sequence;
      if (item.header.sequence < start) {
        continue;
      }
      if (!out.empty() && bytes + item.payload.size() > max_bytes) {
        return out;
      }
      bytes += item.payload.size();
      out.push_back(SpoolRecord{.sequence = item.header.sequence,
                                .event_count = item.header.event_count,
                                .payload = std::string(item.payload)});
    }
    ++i;
  }
  return out;
}

absl::Status Spool::Sync() {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::FailedPreconditionError("spool is closed");
  }
  if (active_fd_ >= 0 && ::fdatasync(active_fd_) != 0) {
    return ErrnoStatus(errno, "cannot fsync spool segment",
                       segments_.back().path);
  }
  if (meta_dirty_) {
    return WriteMeta(/*sync=*/true);
  }
  return absl::OkStatus();
}

absl::Status Spool::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::OkStatus();
  }
  closed_ = true;
  absl::Status status = SealActive();
  lease_end_ = next_sequence_;
  if (absl::Status s = WriteMeta(SyncEnabled()); !s.ok() && status.ok()) {
    status = s;
  }
  return status;
}

absl::Status Spool::Reset() {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    return absl::FailedPreconditionError("spool is closed");
  }
  absl::Status status;
  while (!segments_.empty()) {
    if (absl::Status s = DeleteFront(); !s.ok() && status.ok()) {
      status = s;
    }
  }
  RETURN_IF_ERROR(status);
  epoch_ = NewEpoch();
  next_sequence_ = 1;
  lease_end_ = 1;
  acked_through_ = 0;
  dropped_batches_ = 0;
  dropped_events_ = 0;
  total_bytes_ = 0;
  return WriteMeta(SyncEnabled());
}

uint64_t Spool::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

SpoolStats Spool::stats() const {
  absl::MutexLock lock(&mu_);
  SpoolStats s;
  s.epoch = epoch_;
  s.next_sequence = next_sequence_;
  s.acked_through = acked_through_;
  for (const Segment& seg : segments_) {
    const uint64_t from = std::max(seg.first_sequence, acked_through_ + 1);
    if (from <= seg.last_sequence) {
      if (s.oldest_unacked_sequence == 0) {
        s.oldest_unacked_sequence = from;
      }
      s.unacked_batches += seg.last_sequence - from + 1;
    }
  }
  s.bytes = total_bytes_;
  s.segments = segments_.size();
  s.dropped_batches = dropped_batches_;
  s.dropped_events = dropped_events_;
  s.torn_tails = torn_tails_;
  s.corrupt_records = corrupt_records_;
  s.bad_segments = bad_segments_;
  s.meta_recovered = meta_recovered_;
  return s;
}

std::vector<std::string> Spool::TakeDamageReports() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.swap(reports_);
  return out;
}

}  // namespace rampart::agent
