#include "agent/firewall/enforced_state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>
#include <optional>
#include <string_view>

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/logging.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

void AppendPrefix(std::string* out, const IpPrefix& p) {
  p.address().AppendTo(out);
  out->push_back('/');
  out->append(std::to_string(p.length()));
}

template <typename T>
bool ParseNumber(std::string_view s, T* v) {
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    const size_t sp = line.find(' ');
    out.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) {
      break;
    }
    line.remove_prefix(sp + 1);
  }
  return out;
}

struct DeltaRecord {
  uint64_t epoch = 0, from = 0, to = 0;
  std::vector<BanChange> changes;
};

// Parses the record at the start of `*text` and advances past it; nullopt
// if it is torn or corrupt.
std::optional<DeltaRecord> NextRecord(std::string_view* text) {
  std::string_view rest = *text;
  const auto next_line = [&rest]() -> std::optional<std::string_view> {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) {
      return std::nullopt;
    }
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return line;
  };
  std::optional<std::string_view> line = next_line();
  if (!line.has_value()) {
    return std::nullopt;
  }
  std::vector<std::string_view> f = Fields(*line);
  DeltaRecord r;
  uint64_t count = 0;
  if (f.size() != 5 || f[0] != "delta" || !ParseNumber(f[1], &r.epoch) ||
      !ParseNumber(f[2], &r.from) || !ParseNumber(f[3], &r.to) ||
      !ParseNumber(f[4], &count) || count > text->size()) {
    return std::nullopt;
  }
  for (uint64_t i = 0; i < count; ++i) {
    line = next_line();
    if (!line.has_value()) {
      return std::nullopt;
    }
    f = Fields(*line);
    BanChange c;
    if (f.size() == 4 && f[0] == "+") {
      absl::StatusOr<IpPrefix> p = IpPrefix::FromString(f[2]);
      if (!ParseNumber(f[1], &c.item.id) || !p.ok()) {
        return std::nullopt;
      }
      c.op = BanChange::Op::kUpdate;
      c.item.prefix = *p;
      if (f[3] != "-") {
        int64_t micros = 0;
        if (!ParseNumber(f[3], &micros)) {
          return std::nullopt;
        }
        c.item.expires = absl::FromUnixMicros(micros);
      }
    } else if (f.size() == 2 && f[0] == "-" && ParseNumber(f[1], &c.item.id)) {
      c.op = BanChange::Op::kRemove;
    } else {
      return std::nullopt;
    }
    r.changes.push_back(c);
  }
  const size_t body = text->size() - rest.size();
  line = next_line();
  if (!line.has_value() ||
      *line != absl::StrFormat("end %016x", Fnv1a64(text->substr(0, body)))) {
    return std::nullopt;
  }
  *text = rest;
  return r;
}

}  // namespace

EnforcedStateStore::EnforcedStateStore(std::string state_path, bool sync)
    : state_path_(std::move(state_path)), sync_(sync) {}

std::string EnforcedStateStore::EncodeDelta(
    uint64_t epoch, uint64_t from_revision, uint64_t to_revision,
    const std::vector<BanChange>& changes) {
  std::string s = absl::StrFormat("delta %d %d %d %d\n", epoch, from_revision,
                                  to_revision, changes.size());
  for (const BanChange& c : changes) {
    if (c.op == BanChange::Op::kRemove) {
      absl::StrAppendFormat(&s, "- %d\n", c.item.id);
      continue;
    }
    absl::StrAppendFormat(&s, "+ %d ", c.item.id);
    AppendPrefix(&s, c.item.prefix);
    if (c.item.expires.has_value()) {
      absl::StrAppendFormat(&s, " %d\n", absl::ToUnixMicros(*c.item.expires));
    } else {
      s += " -\n";
    }
  }
  absl::StrAppendFormat(&s, "end %016x\n", Fnv1a64(s));
  return s;
}

absl::StatusOr<EnforcedState> EnforcedStateStore::Load() {
  absl::StatusOr<std::string> text =
      file_util::ReadFileBounded(state_path(), kMaxEnforcedStateBytes);
  if (!text.ok()) {
    return text.status();
  }
  state_bytes_ = text->size();
  absl::StatusOr<EnforcedState> state = DecodeEnforcedState(*text);
  if (!state.ok()) {
    return absl::Status(
        state.status().code(),
        absl::StrFormat("%s: %s", state_path(), state.status().message()));
  }
  journal_bytes_ = 0;
  journal_damaged_ = false;
  absl::StatusOr<std::string> journal =
      file_util::ReadFileBounded(journal_path(), kMaxEnforcedStateBytes);
  if (!journal.ok()) {
    if (!absl::IsNotFound(journal.status())) {
      RAMPART_LOG(Warning) << "ignoring the ban journal: "
                           << std::string(journal.status().message());
      journal_damaged_ = true;
    }
    return state;
  }
  journal_bytes_ = journal->size();
  std::map<uint64_t, BanItem> items;
  for (const BanItem& b : state->items) {
    items[b.id] = b;
  }
  std::string_view rest = *journal;
  int replayed = 0;
  while (!rest.empty()) {
    std::optional<DeltaRecord> r = NextRecord(&rest);
    if (!r.has_value()) {
      RAMPART_LOG(Warning) << journal_path()
                           << ": torn or corrupt record after " << replayed
                           << " deltas; replay stops there";
      journal_damaged_ = true;
      break;
    }
    if (r->epoch != state->epoch || r->from != state->revision) {
      journal_damaged_ = true;  // stale or unchained: compact soon
      continue;
    }
    for (const BanChange& c : r->changes) {
      if (c.op == BanChange::Op::kRemove) {
        items.erase(c.item.id);
      } else {
        items[c.item.id] = c.item;
      }
    }
    state->revision = r->to;
    ++replayed;
  }
  state->items.clear();
  for (const auto& [id, b] : items) {
    state->items.push_back(b);
  }
  return state;
}

absl::Status EnforcedStateStore::WriteSnapshot(const EnforcedState& state) {
  const std::string text = EncodeEnforcedState(state);
  if (absl::Status s =
          file_util::WriteFileAtomically(state_path(), text, sync_);
      !s.ok()) {
    return s;
  }
  state_bytes_ = text.size();
  if (::unlink(journal_path().c_str()) != 0 && errno != ENOENT) {
    return file_util::ErrnoStatus(errno, "cannot remove", journal_path());
  }
  journal_bytes_ = 0;
  journal_damaged_ = false;
  // The unlink is made durable by the next directory fsync (the next
  // snapshot or the journal's creation); a resurrected journal only holds
  // records that no longer chain, which Load() skips.
  return absl::OkStatus();
}

absl::Status EnforcedStateStore::AppendDelta(
    uint64_t epoch, uint64_t from_revision, uint64_t to_revision,
    const std::vector<BanChange>& changes) {
  const std::string record =
      EncodeDelta(epoch, from_revision, to_revision, changes);
  const std::string path = journal_path();
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    return file_util::ErrnoStatus(errno, "cannot open", path);
  }
  absl::Status status;
  std::string_view data = record;
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      status = file_util::ErrnoStatus(errno, "cannot append to", path);
      break;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (status.ok() && sync_ && ::fdatasync(fd) != 0) {
    status = file_util::ErrnoStatus(errno, "cannot fdatasync", path);
  }
  ::close(fd);
  if (!status.ok()) {
    journal_damaged_ = true;  // maybe a partial record: compact next time
    return status;
  }
  if (journal_bytes_ == 0 && sync_) {
    // A new journal file: make its directory entry durable.
    const size_t slash = state_path_.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : state_path_.substr(0, slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  journal_bytes_ += record.size();
  return absl::OkStatus();
}

bool EnforcedStateStore::ShouldCompact() const {
  const uint64_t limit =
      std::max<uint64_t>(uint64_t{1} << 20, state_bytes_ / 2);
  return journal_damaged_ || journal_bytes_ > limit;
}

}  // namespace rampart::agent
