#include "agent/firewall/enforced_state.h"

#include <charconv>
#include <optional>

#include "absl/strings/str_format.h"
#include "agent/firewall/enforced_state_store.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

constexpr std::string_view kMagic = "rampart-enforced-bans";
constexpr int kVersion = 1;

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

std::string Hex16(uint64_t v) { return absl::StrFormat("%016x", v); }

// A cursor over the lines of the file.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}

  // The next line without its '\n'; nullopt at the end or when the last line
  // has no '\n' (a truncated file).
  std::optional<std::string_view> Next() {
    const size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) {
      return std::nullopt;
    }
    std::string_view line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    ++line_no_;
    return line;
  }
  size_t pos() const { return pos_; }
  int line_no() const { return line_no_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int line_no_ = 0;
};

template <typename T>
bool ParseNumber(std::string_view s, T* v) {
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Splits "key value" and checks the key.
bool KeyValue(std::string_view line, std::string_view key,
              std::string_view* value) {
  if (!ConsumePrefix(&line, key) || !ConsumePrefix(&line, " ")) {
    return false;
  }
  *value = line;
  return true;
}

absl::Status Bad(const LineReader& r, std::string_view what) {
  return absl::DataLossError(
      absl::StrFormat("enforced-bans state, line %d: %s", r.line_no(), what));
}

}  // namespace

std::string EncodeEnforcedState(const EnforcedState& state) {
  std::string out;
  out.reserve(64 + state.items.size() * 48);
  out.append(kMagic);
  out.append(" ");
  AppendInt(&out, kVersion);
  out.append("\nepoch ");
  AppendUint(&out, state.epoch);
  out.append("\nrevision ");
  AppendUint(&out, state.revision);
  out.append("\ncount ");
  AppendUint(&out, state.items.size());
  out.append("\n");
  for (const BanItem& item : state.items) {
    AppendUint(&out, item.id);
    out.append(" ");
    item.prefix.address().AppendTo(&out);
    out.append("/");
    AppendInt(&out, item.prefix.length());
    out.append(" ");
    if (item.expires.has_value()) {
      AppendInt(&out, absl::ToUnixMicros(*item.expires));
    } else {
      out.append("-");
    }
    out.append("\n");
  }
  const uint64_t sum = Fnv1a64(out);
  out.append("checksum ");
  out.append(Hex16(sum));
  out.append("\n");
  return out;
}

absl::StatusOr<EnforcedState> DecodeEnforcedState(std::string_view text) {
  LineReader r(text);
  std::optional<std::string_view> line = r.Next();
  std::string_view value;
  if (!line.has_value() || !KeyValue(*line, kMagic, &value)) {
    return Bad(r, "not a rampart enforced-bans file");
  }
  int version = 0;
  if (!ParseNumber(value, &version)) {
    return Bad(r, "bad version");
  }
  if (version != kVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "enforced-bans state has version %d; this agent reads version %d",
        version, kVersion));
  }
  EnforcedState state;
  uint64_t count = 0;
  struct Field {
    std::string_view key;
    uint64_t* dst;
  };
  for (const Field& f :
       {Field{"epoch", &state.epoch}, Field{"revision", &state.revision},
        Field{"count", &count}}) {
    line = r.Next();
    if (!line.has_value() || !KeyValue(*line, f.key, &value) ||
        !ParseNumber(value, f.dst)) {
      return Bad(r, absl::StrFormat("expected \"%s <number>\"", f.key));
    }
  }
  // Each entry line is at least 8 bytes ("1 ::/0 -"); reject absurd counts
  // before reserving.
  if (count > text.size() / 8) {
    return Bad(r, "count larger than the file");
  }
  state.items.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    line = r.Next();
    if (!line.has_value()) {
      return Bad(r, "truncated");
    }
    std::string_view rest = *line;
    const size_t sp1 = rest.find(' ');
    const size_t sp2 =
        sp1 == std::string_view::npos ? sp1 : rest.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
      return Bad(r, "expected \"<id> <prefix> <expires>\"");
    }
    BanItem item;
    if (!ParseNumber(rest.substr(0, sp1), &item.id)) {
      return Bad(r, "bad id");
    }
    absl::StatusOr<IpPrefix> prefix =
        IpPrefix::FromString(rest.substr(sp1 + 1, sp2 - sp1 - 1));
    if (!prefix.ok()) {
      return Bad(r, std::string(prefix.status().message()));
    }
    item.prefix = *prefix;
    const std::string_view exp = rest.substr(sp2 + 1);
    if (exp != "-") {
      int64_t micros = 0;
      if (!ParseNumber(exp, &micros)) {
        return Bad(r, "bad expiry");
      }
      item.expires = absl::FromUnixMicros(micros);
    }
    state.items.push_back(item);
  }
  const size_t body_end = r.pos();
  line = r.Next();
  if (!line.has_value() || !KeyValue(*line, "checksum", &value)) {
    return Bad(r, "missing checksum");
  }
  if (value != Hex16(Fnv1a64(text.substr(0, body_end)))) {
    return Bad(r, "checksum mismatch");
  }
  if (r.pos() != text.size()) {
    return Bad(r, "trailing data after checksum");
  }
  return state;
}

absl::Status WriteEnforcedState(const std::string& path,
                                const EnforcedState& state, bool sync) {
  return EnforcedStateStore(path, sync).WriteSnapshot(state);
}

absl::StatusOr<EnforcedState> ReadEnforcedState(const std::string& path) {
  return EnforcedStateStore(path, false).Load();
}

}  // namespace rampart::agent
