// libFuzzer target for the Domino log parser and everything it feeds: line
// splitting, every parser option, the A+B pair collapse, the JSON output and
// address canonicalisation. Beyond "no crash, no sanitizer report" it checks
// properties: parsing is deterministic, canonical addresses re-parse to
// themselves, and JSON output is always valid UTF-8.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/domino/domino_parser.h"
#include "agent/domino/pair_deduplicator.h"
#include "common/ip_address.h"
#include "common/json_writer.h"

namespace {

using rampart::IpAddress;
using rampart::agent::DateOrder;
using rampart::agent::DominoParser;
using rampart::agent::DominoParserOptions;
using rampart::agent::PairDeduplicator;
using rampart::agent::ParsedLine;

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80           ? 1
               : (c >> 5) == 0x6  ? 2
               : (c >> 4) == 0xE  ? 3
               : (c >> 3) == 0x1E ? 4
                                  : 0;
    if (n == 0 || i + n > s.size()) {
      return false;
    }
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        return false;
      }
    }
    i += n;
  }
  return true;
}

void Check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  // The first byte picks the options, the rest is the log text.
  const uint8_t sel = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1),
                              size - 1);
  const DominoParserOptions options{
      .date_order = static_cast<DateOrder>(sel & 3),
      .successes = (sel & 4) != 0,
      .tls_failures = (sel & 8) == 0,
      .sessions = (sel & 16) == 0,
  };
  DominoParser parser(options);
  DominoParser twin(options);
  PairDeduplicator dedup;
  std::string json;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    const std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    ParsedLine p, q;
    const bool recognised = parser.Parse(line, &p);
    Check(recognised == twin.Parse(line, &q));
    if (!recognised) {
      continue;
    }
    // The user is a view into the line.
    Check(p.user.empty() ||
          (p.user.data() >= line.data() &&
           p.user.data() + p.user.size() <= line.data() + line.size()));
    Check(p.user == q.user && p.ip == q.ip && p.has_time == q.has_time &&
          p.suspicion == q.suspicion);
    // A suspect line never carries an address (docs/parser.md).
    Check(p.suspicion == rampart::agent::Suspicion::kNone || !p.ip.has_value());
    if (p.ip.has_value()) {
      const std::string canon = p.ip->ToString();
      const std::optional<IpAddress> again = IpAddress::Parse(canon);
      Check(again.has_value() && *again == *p.ip && again->ToString() == canon);
    }
    (void)dedup.Observe(p);
    json.clear();
    rampart::AppendJsonString(&json, p.user);
    Check(ValidUtf8(json));
  }
  return 0;
}
