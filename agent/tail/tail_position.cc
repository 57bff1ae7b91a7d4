#include "agent/tail/tail_position.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "agent/tail/content_hash.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

constexpr std::string_view kMagic = "rampart-tail-position 1";
constexpr uint64_t kMaxRecords = 65536;

void AppendRecords(const std::vector<LineRecord>& records, std::string* out) {
  for (const LineRecord& r : records) {
    absl::StrAppendFormat(out, "r %d %d %08x\n", r.start, r.length, r.hash);
  }
}

// A cursor over the lines of the text; each parse call consumes one line.
class Parser {
 public:
  explicit Parser(std::string_view text) : rest_(text) {}

  // Splits the next line into its space-separated fields; false at the end.
  bool Line(std::vector<std::string_view>* fields) {
    fields->clear();
    if (rest_.empty()) {
      return false;
    }
    const size_t nl = rest_.find('\n');
    if (nl == std::string_view::npos) {
      return false;
    }
    std::string_view line = rest_.substr(0, nl);
    rest_.remove_prefix(nl + 1);
    while (!line.empty()) {
      const size_t sp = line.find(' ');
      fields->push_back(line.substr(0, sp));
      if (sp == std::string_view::npos) {
        break;
      }
      line.remove_prefix(sp + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
};

bool ParseU64(std::string_view s, int base, uint64_t* v) {
  if (s.empty() || s.size() > 20) {
    return false;
  }
  uint64_t r = 0;
  for (const char c : s) {
    uint64_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    if (r > (UINT64_MAX - d) / static_cast<uint64_t>(base)) {
      return false;
    }
    r = r * static_cast<uint64_t>(base) + d;
  }
  *v = r;
  return true;
}

bool ParseU32(std::string_view s, int base, uint32_t* v) {
  uint64_t r = 0;
  if (!ParseU64(s, base, &r) || r > UINT32_MAX) {
    return false;
  }
  *v = static_cast<uint32_t>(r);
  return true;
}

// Parses "<key> <value>" with a decimal value.
bool KeyU64(Parser* p, std::string_view key, uint64_t* v) {
  std::vector<std::string_view> f;
  return p->Line(&f) && f.size() == 2 && f[0] == key && ParseU64(f[1], 10, v);
}

// Parses "<key> <length> <hash hex>".
bool KeyFingerprint(Parser* p, std::string_view key, uint32_t* length,
                    uint64_t* hash) {
  std::vector<std::string_view> f;
  return p->Line(&f) && f.size() == 3 && f[0] == key &&
         ParseU32(f[1], 10, length) && ParseU64(f[2], 16, hash);
}

bool Records(Parser* p, uint64_t count, std::vector<LineRecord>* out) {
  if (count > kMaxRecords) {
    return false;
  }
  std::vector<std::string_view> f;
  uint64_t previous_end = 0;
  for (uint64_t i = 0; i < count; ++i) {
    LineRecord r;
    if (!p->Line(&f) || f.size() != 4 || f[0] != "r" ||
        !ParseU64(f[1], 10, &r.start) || !ParseU32(f[2], 10, &r.length) ||
        !ParseU32(f[3], 16, &r.hash) || r.length == 0 ||
        r.start < previous_end || r.start > UINT64_MAX - r.length) {
      return false;
    }
    previous_end = r.end();
    out->push_back(r);
  }
  return true;
}

}  // namespace

std::string EncodeTailPosition(const TailPosition& p) {
  std::string out(kMagic);
  absl::StrAppendFormat(&out,
                        "\ndevice %d\ninode %d\noffset %d\nlong_line %d\nhead "
                        "%d %016x\ntail %d %016x\nlines %d\n",
                        p.device, p.inode, p.offset, p.in_long_line ? 1 : 0,
                        p.head_length, p.head_hash, p.tail_length, p.tail_hash,
                        p.lines.size());
  AppendRecords(p.lines, &out);
  absl::StrAppendFormat(&out, "guard %d %d\n", p.guard_end, p.guard.size());
  AppendRecords(p.guard, &out);
  absl::StrAppendFormat(
      &out, "guard_copy %d %s\n", p.guard_copy_start,
      p.guard_copy.empty() ? "-" : absl::Base64Escape(ToAbsl(p.guard_copy)));
  absl::StrAppendFormat(&out, "checksum %016x\n", ContentHash64(out));
  return out;
}

absl::StatusOr<TailPosition> DecodeTailPosition(std::string_view text,
                                                std::string_view source) {
  const auto bad = [source](std::string_view why) {
    return absl::DataLossError(
        absl::StrFormat("tail position %s: %s", source, why));
  };
  const size_t at = text.rfind("checksum ");
  if (at == std::string_view::npos || (at > 0 && text[at - 1] != '\n')) {
    return bad("no checksum (truncated?)");
  }
  {
    Parser tail(text.substr(at));
    std::vector<std::string_view> f;
    uint64_t sum = 0;
    if (!tail.Line(&f) || f.size() != 2 || !ParseU64(f[1], 16, &sum) ||
        tail.Line(&f) || sum != ContentHash64(text.substr(0, at))) {
      return bad("checksum mismatch");
    }
  }
  Parser p(text.substr(0, at));
  std::vector<std::string_view> f;
  TailPosition pos;
  if (!p.Line(&f) || f.size() != 2 || f[0] != "rampart-tail-position" ||
      f[1] != "1") {
    return bad("not a version 1 position file");
  }
  uint64_t long_flag = 0, count = 0;
  if (!KeyU64(&p, "device", &pos.device) || !KeyU64(&p, "inode", &pos.inode) ||
      !KeyU64(&p, "offset", &pos.offset)) {
    return bad("malformed header");
  }
  if (!KeyU64(&p, "long_line", &long_flag) || long_flag > 1) {
    return bad("malformed long_line");
  }
  pos.in_long_line = long_flag == 1;
  if (!KeyFingerprint(&p, "head", &pos.head_length, &pos.head_hash) ||
      !KeyFingerprint(&p, "tail", &pos.tail_length, &pos.tail_hash) ||
      pos.head_length > pos.offset || pos.tail_length > pos.offset) {
    return bad("malformed fingerprints");
  }
  if (!KeyU64(&p, "lines", &count) || !Records(&p, count, &pos.lines)) {
    return bad("malformed lines");
  }
  if (!p.Line(&f) || f.size() != 3 || f[0] != "guard" ||
      !ParseU64(f[1], 10, &pos.guard_end) || !ParseU64(f[2], 10, &count) ||
      !Records(&p, count, &pos.guard)) {
    return bad("malformed guard");
  }
  if (!p.Line(&f) || f.size() != 3 || f[0] != "guard_copy" ||
      !ParseU64(f[1], 10, &pos.guard_copy_start) ||
      (f[2] != "-" && !absl::Base64Unescape(ToAbsl(f[2]), &pos.guard_copy))) {
    return bad("malformed guard_copy");
  }
  if (p.Line(&f)) {
    return bad("trailing data");
  }
  return pos;
}

}  // namespace rampart::agent
