// Tests for the Domino console.log workload generator (sim/). These check the
// generator against its own contract (shapes, truth, determinism, addresses,
// pairing); whether the project's parser agrees with the truth is checked on
// the parser's side.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/civil_time.h"
#include "common/hash.h"
#include "common/ip_address.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/chunk_sink.h"
#include "sim/domino_log_generator.h"
#include "sim/rng.h"
#include "sim/timestamp_format.h"

namespace rampart::sim {
namespace {

using ::testing::HasSubstr;

// --- helpers ---------------------------------------------------------------

GeneratedLog Generate(const GeneratorOptions& options) {
  absl::StatusOr<GeneratedLog> out = GenerateToStrings(options);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *std::move(out) : GeneratedLog{};
}

std::vector<std::string_view> SplitLines(const std::string& text) {
  std::vector<std::string_view> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) {
      end = text.size();
    }
    lines.emplace_back(text.data() + begin, end - begin);
    begin = end + 1;
  }
  return lines;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Reads a JSON string starting at s[*pos] == '"'; advances past it.
std::optional<std::string> ReadJsonString(std::string_view s, size_t* pos) {
  if (*pos >= s.size() || s[*pos] != '"') {
    return std::nullopt;
  }
  std::string out;
  size_t i = *pos + 1;
  while (i < s.size() && s[i] != '"') {
    if (s[i] != '\\') {
      out.push_back(s[i++]);
      continue;
    }
    if (++i >= s.size()) {
      return std::nullopt;
    }
    const char e = s[i++];
    switch (e) {
      case '"':
      case '\\':
      case '/':
        out.push_back(e);
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        if (i + 4 > s.size()) {
          return std::nullopt;
        }
        AppendUtf8(&out, static_cast<uint32_t>(std::stoul(
                             std::string(s.substr(i, 4)), nullptr, 16)));
        i += 4;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  if (i >= s.size()) {
    return std::nullopt;
  }
  *pos = i + 1;
  return out;
}

struct TruthRecord {
  uint64_t line = 0;
  std::string kind;
  std::string protocol;
  std::string ip;
  std::string user;  // decoded
  bool user_escaped = false;
  std::string time;
  bool dedup = false;
  std::string suspect;  // "" unless the parser drops the address
};

// Parses one truth line, insisting on the exact key order of `parse`.
std::optional<TruthRecord> ParseTruth(std::string_view s) {
  TruthRecord r;
  size_t pos = 0;
  const auto expect = [&](std::string_view lit) {
    if (s.substr(pos, lit.size()) != lit) {
      return false;
    }
    pos += lit.size();
    return true;
  };
  if (!expect("{\"line\":")) {
    return std::nullopt;
  }
  size_t digits = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    r.line = r.line * 10 + static_cast<uint64_t>(s[pos++] - '0');
    ++digits;
  }
  if (digits == 0) {
    return std::nullopt;
  }
  std::optional<std::string> v;
  if (!expect(",\"kind\":") || !(v = ReadJsonString(s, &pos))) {
    return std::nullopt;
  }
  r.kind = *v;
  if (!expect(",\"protocol\":") || !(v = ReadJsonString(s, &pos))) {
    return std::nullopt;
  }
  r.protocol = *v;
  if (!expect(",\"ip\":") || !(v = ReadJsonString(s, &pos))) {
    return std::nullopt;
  }
  r.ip = *v;
  const size_t user_begin = pos;
  if (!expect(",\"user\":") || !(v = ReadJsonString(s, &pos))) {
    return std::nullopt;
  }
  r.user = *v;
  r.user_escaped =
      s.substr(user_begin, pos - user_begin).find('\\') != std::string::npos;
  if (!expect(",\"time\":") || !(v = ReadJsonString(s, &pos))) {
    return std::nullopt;
  }
  r.time = *v;
  if (expect(",\"dedup\":true")) {
    r.dedup = true;
  } else if (!expect(",\"dedup\":false")) {
    return std::nullopt;
  }
  if (expect(",\"suspect\":")) {
    if (!(v = ReadJsonString(s, &pos)) || v->empty()) {
      return std::nullopt;
    }
    r.suspect = *v;
  }
  if (!expect("}")) {
    return std::nullopt;
  }
  if (pos != s.size()) {
    return std::nullopt;
  }
  return r;
}

std::vector<TruthRecord> ParseAllTruth(const std::string& truth) {
  std::vector<TruthRecord> records;
  for (std::string_view line : SplitLines(truth)) {
    std::optional<TruthRecord> r = ParseTruth(line);
    EXPECT_TRUE(r.has_value()) << "bad truth line: " << line;
    if (r) {
      records.push_back(std::move(*r));
    }
  }
  return records;
}

// The documented timestamp layout, read back for the known options (not a
// Domino parser: the layout is fixed by the options under test).
struct Stamp {
  absl::CivilSecond time;
  size_t spaces = 0;       // blanks between timestamp and message
  size_t message_pos = 0;  // index of the message
};

int Digits(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') {
      return -1;
    }
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<Stamp> ReadStamp(std::string_view line,
                               const GeneratorOptions& o) {
  size_t p = 0;
  if (o.thread_ids != ThreadIdStyle::kNone && !line.empty() && line[0] == '[') {
    const size_t close = line.find("] ");
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    p = close + 2;
  }
  const size_t min_len = p + 19 + (o.hundredths ? 3 : 0) +
                         (o.clock == ClockStyle::k12Hour ? 3 : 0) + 1;
  if (line.size() < min_len || line[p] < '0' || line[p] > '9') {
    return std::nullopt;
  }
  int y, m, d;
  char sep1, sep2;
  switch (o.date_format) {
    case DateFormat::kDmyDash:
    case DateFormat::kDmyDot:
      d = Digits(line, p, 2);
      m = Digits(line, p + 3, 2);
      y = Digits(line, p + 6, 4);
      sep1 = line[p + 2];
      sep2 = line[p + 5];
      break;
    case DateFormat::kMdySlash:
    case DateFormat::kMdyDash:
      m = Digits(line, p, 2);
      d = Digits(line, p + 3, 2);
      y = Digits(line, p + 6, 4);
      sep1 = line[p + 2];
      sep2 = line[p + 5];
      break;
    case DateFormat::kYmdDash:
    default:
      y = Digits(line, p, 4);
      m = Digits(line, p + 5, 2);
      d = Digits(line, p + 8, 2);
      sep1 = line[p + 4];
      sep2 = line[p + 7];
      break;
  }
  const char want_sep = o.date_format == DateFormat::kDmyDot     ? '.'
                        : o.date_format == DateFormat::kMdySlash ? '/'
                                                                 : '-';
  if (y < 0 || m < 1 || m > 12 || d < 1 || d > 31 || sep1 != want_sep ||
      sep2 != want_sep || line[p + 10] != ' ') {
    return std::nullopt;
  }
  p += 11;
  int hh = Digits(line, p, 2);
  const int mm = Digits(line, p + 3, 2);
  const int ss = Digits(line, p + 6, 2);
  if (hh < 0 || mm < 0 || ss < 0 || line[p + 2] != ':' || line[p + 5] != ':') {
    return std::nullopt;
  }
  p += 8;
  if (o.hundredths) {
    if (line[p] != '.' || Digits(line, p + 1, 2) < 0) {
      return std::nullopt;
    }
    p += 3;
  }
  if (o.clock == ClockStyle::k12Hour) {
    const std::string_view mer = line.substr(p, 3);
    if ((mer != " AM" && mer != " PM") || hh < 1 || hh > 12) {
      return std::nullopt;
    }
    hh = hh % 12 + (mer == " PM" ? 12 : 0);
    p += 3;
  } else if (hh > 23) {
    return std::nullopt;
  }
  Stamp st;
  st.time = absl::CivilSecond(y, m, d, hh, mm, ss);
  while (p < line.size() && line[p] == ' ') {
    ++p;
    ++st.spaces;
  }
  st.message_pos = p;
  return st;
}

// Maps a UTF-8 string whose code points are all <= U+00FF back to one byte
// per code point (how AppendJsonString decodes invalid bytes); returns `s`
// unchanged otherwise.
std::string Latin1Bytes(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < s.size()) {
      out.push_back(static_cast<char>(((c & 0x03) << 6) |
                                      (static_cast<uint8_t>(s[++i]) & 0x3F)));
    } else {
      return s;
    }
  }
  return out;
}

std::string Iso(const absl::CivilSecond& t) {
  std::string s;
  AppendIsoTime(&s, t);
  return s;
}

bool IsDocumentationAddress(const IpAddress& ip) {
  static const std::vector<IpPrefix> kDoc = [] {
    std::vector<IpPrefix> v;
    for (const char* p : {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                          "2001:db8::/32"}) {
      v.push_back(*IpPrefix::FromString(p));
    }
    return v;
  }();
  for (const IpPrefix& p : kDoc) {
    if (p.Contains(ip)) {
      return true;
    }
  }
  return false;
}

// A rich configuration: every family, hostile input and address form.
GeneratorOptions RichOptions() {
  return GeneratorOptions{
      .seed = 11,
      .lines = 200000,
      .lines_per_second = 20,
      .attack_ratio = 0.3,
      .attackers = 40,
      .ipv6_ratio = 0.3,
      .hostile_user_ratio = 0.2,
      .masked_ip_ratio = 0.05,
      .ip_variant_ratio = 0.05,
      .lockout_ratio = 0.05,
      .successes = true,
  };
}

// True if `s` starts with `shape`, where 'D' stands for a decimal digit, 'H'
// for an upper-case hex digit and every other character for itself.
bool StartsWithShape(std::string_view s, std::string_view shape) {
  if (s.size() < shape.size()) {
    return false;
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    const char c = s[i];
    const bool digit = c >= '0' && c <= '9';
    if (shape[i] == 'D'   ? !digit
        : shape[i] == 'H' ? !(digit || (c >= 'A' && c <= 'F'))
                          : c != shape[i]) {
      return false;
    }
  }
  return true;
}

// --- Rng -------------------------------------------------------------------

TEST(RngTest, NegLogUnitMatchesLog) {
  for (uint64_t bits :
       {uint64_t{0}, uint64_t{1} << 11, uint64_t{12345} << 20,
        uint64_t{1} << 62, uint64_t{3} << 62, ~uint64_t{0},
        uint64_t{0x9E3779B97F4A7C15}, uint64_t{0x123456789ABCDEF0}}) {
    const double u =
        (static_cast<double>(bits >> 11) + 1.0) / 9007199254740992.0;
    EXPECT_NEAR(Rng::NegLogUnit(bits), -std::log(u), 1e-12) << bits;
  }
  EXPECT_EQ(Rng::NegLogUnit(~uint64_t{0}), 0.0);  // u == 1
}

TEST(RngTest, ExponentialHasTheRequestedMean) {
  Rng rng(7);
  double sum = 0;
  constexpr int kN = 200000;
  for (int i = 0; i < kN; ++i) {
    sum += rng.Exponential(3.0);
  }
  EXPECT_NEAR(sum / kN, 3.0, 0.05);
}

TEST(RngTest, BelowStaysInRangeAndChanceHonoursExtremes) {
  Rng rng(1);
  for (int i = 0; i < 10000; ++i) {
    EXPECT_LT(rng.Below(7), 7u);
    EXPECT_FALSE(rng.Chance(Rng::Threshold(0.0)));
    EXPECT_TRUE(rng.Chance(Rng::Threshold(1.0)));
  }
}

// --- timestamp formats -----------------------------------------------------

TEST(TimestampFormatTest, RendersEveryFormatAndTheTwelveHourClock) {
  const absl::CivilSecond t(2024, 3, 6, 0, 15, 33);
  const auto render = [&](DateFormat f, ClockStyle c, int centis) {
    std::string s;
    AppendDominoTimestamp(&s, t, f, c, centis);
    return s;
  };
  EXPECT_EQ(render(DateFormat::kDmyDash, ClockStyle::k24Hour, -1),
            "06-03-2024 00:15:33");
  EXPECT_EQ(render(DateFormat::kDmyDot, ClockStyle::k24Hour, 90),
            "06.03.2024 00:15:33.90");
  EXPECT_EQ(render(DateFormat::kMdySlash, ClockStyle::k12Hour, -1),
            "03/06/2024 12:15:33 AM");
  EXPECT_EQ(render(DateFormat::kMdyDash, ClockStyle::k12Hour, 5),
            "03-06-2024 12:15:33.05 AM");
  EXPECT_EQ(render(DateFormat::kYmdDash, ClockStyle::k24Hour, -1),
            "2024-03-06 00:15:33");
  std::string noon;
  AppendDominoTimestamp(&noon, absl::CivilSecond(2024, 3, 6, 12, 0, 0),
                        DateFormat::kYmdDash, ClockStyle::k12Hour, -1);
  EXPECT_EQ(noon, "2024-03-06 12:00:00 PM");
  std::string evening;
  AppendDominoTimestamp(&evening, absl::CivilSecond(2024, 3, 6, 23, 5, 0),
                        DateFormat::kYmdDash, ClockStyle::k12Hour, -1);
  EXPECT_EQ(evening, "2024-03-06 11:05:00 PM");
}

TEST(TimestampFormatTest, NamesRoundTrip) {
  for (DateFormat f :
       {DateFormat::kDmyDash, DateFormat::kDmyDot, DateFormat::kMdySlash,
        DateFormat::kMdyDash, DateFormat::kYmdDash}) {
    EXPECT_EQ(*ParseDateFormat(DateFormatName(f)), f);
  }
  EXPECT_EQ(*ParseClockStyle("12h"), ClockStyle::k12Hour);
  EXPECT_FALSE(ParseDateFormat("dmy").ok());
  EXPECT_FALSE(ParseClockStyle("13h").ok());
  for (ThreadIdStyle s : {ThreadIdStyle::kNone, ThreadIdStyle::kLinux,
                          ThreadIdStyle::kPaddedHex, ThreadIdStyle::kWindows}) {
    EXPECT_EQ(*ParseThreadIdStyle(ThreadIdStyleName(s)), s);
  }
  EXPECT_FALSE(ParseThreadIdStyle("solaris").ok());
}

// --- options ---------------------------------------------------------------

TEST(GeneratorOptionsTest, RejectsBadValues) {
  EXPECT_TRUE(ValidateGeneratorOptions(GeneratorOptions{}).ok());
  const std::vector<GeneratorOptions> bad = {
      {.attack_ratio = 1.5},
      {.attack_ratio = -0.1},
      {.attack_ratio = 0.1, .attackers = 0},
      {.attackers = -1},
      {.ipv6_ratio = 2},
      {.hostile_user_ratio = std::nan("")},
      {.pair_ratio = 0.7, .inet_only_ratio = 0.7},
      {.lines_per_second = 0},
      {.message_spaces = 4},
      {.start = absl::CivilSecond(1969, 12, 31, 0, 0, 0)},
      {.lines = 10'000'000'000ULL, .lines_per_second = 0.001},
      {.servers = {}},
      {.servers = {"Mail01/Acme\n"}},
      {.mail_domain = "exa mple.com"},
  };
  for (const GeneratorOptions& o : bad) {
    const absl::Status s = ValidateGeneratorOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_FALSE(DominoLogGenerator::Create(o).ok());
  }
}

// --- determinism and size --------------------------------------------------

TEST(GeneratorTest, SameOptionsSameBytesDifferentSeedDifferentBytes) {
  GeneratorOptions o = RichOptions();
  o.lines = 30000;
  const GeneratedLog a = Generate(o);
  const GeneratedLog b = Generate(o);
  EXPECT_EQ(a.log, b.log);
  EXPECT_EQ(a.truth, b.truth);
  EXPECT_EQ(a.summary, b.summary);
  o.seed = 12;
  const GeneratedLog c = Generate(o);
  EXPECT_NE(a.log, c.log);
  EXPECT_NE(a.truth, c.truth);
}

// Guards cross-platform determinism and accidental output changes. If the
// generator is changed on purpose, print the new hash and update it here.
TEST(GeneratorTest, GoldenOutput) {
  GeneratorOptions o = RichOptions();
  o.lines = 5000;
  o.thread_ids = ThreadIdStyle::kLinux;
  o.hundredths = true;
  const GeneratedLog g = Generate(o);
  EXPECT_EQ(Fnv1a64(g.log), 0x010ef8037c7cd7c2ULL)
      << std::hex << Fnv1a64(g.log);
  EXPECT_EQ(Fnv1a64(g.truth), 0x6b928c3e3e12ea9bULL)
      << std::hex << Fnv1a64(g.truth);
}

TEST(GeneratorTest, WritesExactlyTheRequestedLines) {
  for (uint64_t n : {0, 1, 2, 3, 7, 1000, 54321}) {
    for (double attack : {0.0, 0.5, 1.0}) {
      const GeneratorOptions o = {
          .seed = n, .lines = n, .attack_ratio = attack, .attackers = 3};
      const GeneratedLog g = Generate(o);
      EXPECT_EQ(
          static_cast<uint64_t>(std::count(g.log.begin(), g.log.end(), '\n')),
          n)
          << "attack " << attack;
      EXPECT_EQ(g.stats.lines, n);
      if (n > 0) {
        EXPECT_EQ(g.log.back(), '\n');
      }
    }
  }
}

TEST(GeneratorTest, StreamsWholeLinesInBoundedChunksAndStopsOnSinkError) {
  class RecordingSink : public ChunkSink {
   public:
    absl::Status Write(std::string_view chunk) override {
      EXPECT_FALSE(chunk.empty());
      EXPECT_EQ(chunk.back(), '\n');
      EXPECT_LT(chunk.size(), size_t{2} << 20);
      ++chunks;
      return absl::OkStatus();
    }
    int chunks = 0;
  };
  auto gen = DominoLogGenerator::Create({.lines = 100000});
  ASSERT_TRUE(gen.ok());
  RecordingSink log, truth;
  ASSERT_TRUE((*gen)->Generate(log, &truth).ok());
  EXPECT_GT(log.chunks, 3);

  class FailingSink : public ChunkSink {
   public:
    absl::Status Write(std::string_view) override {
      return absl::ResourceExhaustedError("disk full");
    }
  };
  FailingSink failing;
  const auto stats = (*gen)->Generate(failing, nullptr);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(GeneratorTest, AttackRatioIsRoughlyHonoured) {
  for (double ratio : {0.05, 0.3}) {
    const GeneratedLog g = Generate(
        {.seed = 3, .lines = 200000, .attack_ratio = ratio, .attackers = 50});
    const double got =
        static_cast<double>(g.stats.attack_lines) / g.stats.lines;
    EXPECT_NEAR(got, ratio, ratio * 0.3) << ratio;
  }
}

// --- truth -----------------------------------------------------------------

void CheckTruthAgainstLog(const GeneratorOptions& o, const GeneratedLog& g) {
  ASSERT_TRUE(IsValidUtf8(g.truth));
  const std::vector<std::string_view> lines = SplitLines(g.log);
  const std::vector<TruthRecord> records = ParseAllTruth(g.truth);
  ASSERT_EQ(records.size(), g.stats.recognised_lines);
  uint64_t previous = 0;
  for (const TruthRecord& r : records) {
    ASSERT_GT(r.line, previous);
    ASSERT_LE(r.line, lines.size());
    previous = r.line;
    const std::string_view line = lines[r.line - 1];
    SCOPED_TRACE(std::string(line));
    const std::optional<Stamp> st = ReadStamp(line, o);
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(r.time, Iso(st->time));
    const std::string_view msg = line.substr(st->message_pos);
    const std::string proto_upper = [&] {
      std::string u = r.protocol;
      for (char& c : u) {
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
      }
      return u;
    }();
    if (r.kind == "auth_failure") {
      const bool inet =
          msg.starts_with(r.protocol + ": ") &&
          msg.ends_with(" authentication failure using internet password");
      const bool task =
          msg.starts_with(proto_upper + " Server") &&
          msg.find("Authentication failed for user ") != std::string::npos;
      EXPECT_TRUE(inet || task);
    } else if (r.kind == "lockout") {
      EXPECT_TRUE(msg.starts_with(r.protocol + ": "));
      EXPECT_TRUE(msg.ends_with(
          " authentication failure using internet password: User is "
          "locked out"));
      if (r.user.empty()) {
        EXPECT_TRUE(
            msg.substr(r.protocol.size() + 2).starts_with("IP Address [") ||
            msg.substr(r.protocol.size() + 2).starts_with(" ["));
      }
    } else if (r.kind == "policy_reject") {
      EXPECT_TRUE(msg.starts_with("SMTP Server"));
      EXPECT_THAT(msg, HasSubstr("rejected for policy reasons"));
    } else if (r.kind == "connect") {
      EXPECT_TRUE(msg.starts_with(proto_upper + " Server: "));
      EXPECT_TRUE(msg.ends_with(" connected"));
    } else if (r.kind == "disconnect") {
      EXPECT_TRUE(msg.starts_with(proto_upper + " Server: "));
      EXPECT_THAT(msg, HasSubstr(" disconnected"));
    } else if (r.kind == "tls_failure") {
      EXPECT_TRUE(msg.starts_with("TLS/SSL connection " + r.ip + "("));
      EXPECT_THAT(msg, HasSubstr(" failed with "));
    } else if (r.kind == "auth_success") {
      ASSERT_TRUE(o.successes);
      EXPECT_TRUE(msg.starts_with(proto_upper + " Server: "));
      EXPECT_TRUE(
          msg.find("Authentication succeeded for user ") != std::string::npos ||
          msg.find(" logged in from ") != std::string::npos ||
          msg.find(" logged in; connecting host ") != std::string::npos);
    } else {
      ADD_FAILURE() << "unknown kind " << r.kind;
    }
    EXPECT_THAT(
        std::vector<std::string>({"smtp", "imap", "pop3", "ldap", "http"}),
        ::testing::Contains(r.protocol));
    if (!r.ip.empty()) {
      const std::optional<IpAddress> ip = IpAddress::Parse(r.ip);
      ASSERT_TRUE(ip.has_value()) << r.ip;
      EXPECT_EQ(ip->ToString(), r.ip) << "truth ip is not canonical";
      EXPECT_TRUE(IsDocumentationAddress(*ip)) << r.ip;
      EXPECT_NE(r.ip, "203.0.113.99") << "the decoy is never a line's address";
    } else {
      EXPECT_TRUE(r.kind == "auth_failure" || r.kind == "lockout" ||
                  !r.suspect.empty())
          << r.kind;
    }
    if (!r.user.empty() && !r.user_escaped) {
      // Invalid UTF-8 bytes come back as Latin-1 code points.
      EXPECT_THAT(msg, ::testing::AnyOf(HasSubstr(r.user),
                                        HasSubstr(Latin1Bytes(r.user))));
    }
  }
}

TEST(GeneratorTest, TruthRecordsPointAtLinesOfTheirShape) {
  const GeneratorOptions o = RichOptions();
  const GeneratedLog g = Generate(o);
  CheckTruthAgainstLog(o, g);
  // Every kind is there.
  for (size_t k = 1; k <= 7; ++k) {
    EXPECT_GT(g.stats.recognised_by_kind[k], 0u) << k;
  }
}

TEST(GeneratorTest, TruthMatchesEveryTimestampVariant) {
  for (DateFormat f :
       {DateFormat::kDmyDash, DateFormat::kDmyDot, DateFormat::kMdySlash,
        DateFormat::kMdyDash, DateFormat::kYmdDash}) {
    for (ClockStyle c : {ClockStyle::k24Hour, ClockStyle::k12Hour}) {
      for (ThreadIdStyle p :
           {ThreadIdStyle::kNone, ThreadIdStyle::kLinux,
            ThreadIdStyle::kPaddedHex, ThreadIdStyle::kWindows}) {
        GeneratorOptions o = RichOptions();
        o.lines = 4000;
        o.lines_per_second = 0.08;  // ~14 h: crosses noon and the new year
        o.start = absl::CivilSecond(2024, 12, 31, 11, 30, 0);
        o.date_format = f;
        o.clock = c;
        o.thread_ids = p;
        o.hundredths = p == ThreadIdStyle::kLinux;
        SCOPED_TRACE(std::string(DateFormatName(f)) + " " +
                     std::string(ClockStyleName(c)) + " " +
                     std::string(ThreadIdStyleName(p)));
        CheckTruthAgainstLog(o, Generate(o));
      }
    }
  }
}

// --- shapes ----------------------------------------------------------------

TEST(GeneratorTest, TimestampsNeverDecreaseAndHaveTheConfiguredShape) {
  for (DateFormat f :
       {DateFormat::kDmyDash, DateFormat::kDmyDot, DateFormat::kMdySlash,
        DateFormat::kMdyDash, DateFormat::kYmdDash}) {
    for (ClockStyle c : {ClockStyle::k24Hour, ClockStyle::k12Hour}) {
      for (ThreadIdStyle p :
           {ThreadIdStyle::kNone, ThreadIdStyle::kLinux,
            ThreadIdStyle::kPaddedHex, ThreadIdStyle::kWindows}) {
        for (int spaces : {0, 1}) {
          GeneratorOptions o = RichOptions();
          o.lines = 3000;
          o.lines_per_second = 0.2;  // spans several hours and a midnight
          o.start = absl::CivilSecond(2024, 2, 28, 23, 0, 0);
          o.date_format = f;
          o.clock = c;
          o.thread_ids = p;
          o.message_spaces = spaces;
          o.hundredths = spaces == 1;
          SCOPED_TRACE(std::string(DateFormatName(f)) + " " +
                       std::string(ClockStyleName(c)) + " " +
                       std::string(ThreadIdStyleName(p)));
          const GeneratedLog g = Generate(o);
          std::optional<absl::CivilSecond> last;
          bool saw_12_am = false;
          int untimed = 0;
          for (std::string_view line : SplitLines(g.log)) {
            const std::optional<Stamp> st = ReadStamp(line, o);
            if (!st.has_value()) {
              // Only banner lines have no timestamp, and no prefix either.
              EXPECT_TRUE(line.starts_with("HCL Domino") ||
                          line.starts_with("Copyright"))
                  << line;
              ++untimed;
              continue;
            }
            if (last.has_value()) {
              ASSERT_GE(st->time, *last) << line;
            }
            last = st->time;
            const bool hex_code =
                line.substr(st->message_pos).starts_with("0") &&
                st->spaces == 1;
            const size_t want =
                spaces != 0 ? 1 : (c == ClockStyle::k12Hour ? 2 : 3);
            if (!hex_code) {
              EXPECT_EQ(st->spaces, want) << line;
            }
            if (c == ClockStyle::k12Hour && st->time.hour() == 0) {
              saw_12_am = true;
            }
            switch (p) {
              case ThreadIdStyle::kNone:
                EXPECT_NE(line[0], '[');
                break;
              case ThreadIdStyle::kLinux:
                EXPECT_TRUE(StartsWithShape(line, "[DDDD:DDDDD-DDDDDDDDDD] ") ||
                            StartsWithShape(line, "[DDDDD:DDDDD-DDDDDDDDDD] "))
                    << line;
                break;
              case ThreadIdStyle::kPaddedHex:
                EXPECT_TRUE(
                    StartsWithShape(line, "[DDDDDD:DDDDDD-HHHHHHHHHHHHHHHH] "))
                    << line;
                break;
              case ThreadIdStyle::kWindows:
                EXPECT_TRUE(StartsWithShape(line, "[HHHH:HHHH-HHHH] ")) << line;
                break;
            }
          }
          EXPECT_GE(untimed, 2);  // the start-up banner
          EXPECT_EQ(c == ClockStyle::k12Hour, saw_12_am);
          ASSERT_TRUE(last.has_value());
          EXPECT_EQ(*last, g.stats.last_time);
          EXPECT_GT(*last, absl::CivilSecond(2024, 2, 29, 0, 0, 0));
        }
      }
    }
  }
}

int Count(const std::string& text, std::string_view needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(GeneratorTest, EveryFamilyVariantAndNoiseKindAppears) {
  const GeneratedLog g = Generate(RichOptions());
  const std::vector<std::string_view> needles = {
      // A, per protocol, and A-lock (with and without "IP Address").
      "   smtp: ",
      "   imap: ",
      "   pop3: ",
      "   ldap: ",
      "   http: ",
      "] authentication failure using internet password\n",
      "] authentication failure using internet password: User is locked "
      "out\n",
      ": IP Address [",
      // B and its variants.
      "SMTP Server: Authentication failed for user ",
      "IMAP Server: Authentication failed for user ",
      "POP3 Server: Authentication failed for user ",
      "LDAP Server: Authentication failed for user ",
      "] Authentication failed for user ",
      " ; connecting host [",
      " ; connecting host mail.example.net (",
      // C, D, E.
      "SMTP Server [",
      "] Connection from [",
      "SMTP Server: Connection from [",
      " rejected for policy reasons.",
      " connected\n",
      ") connected\n",
      " disconnected. ",
      "IMAP Server: 1",
      "POP3 Server: 1",
      " disconnected\n",
      "TLS/SSL connection ",
      "(443) failed with ",
      "(993) failed with ",
      // F.
      "SMTP Server: Authentication succeeded for user ",
      " logged in from ",
      " logged in; connecting host ",
      // Noise.
      "Router: Message ",
      "Router: Transferr",
      "Opened session for ",
      "Closed session for ",
      "AMgr: ",
      "Starting replication with server ",
      "HTTP Web Server: ",
      " logged out\n",
      "HCL Domino (r) Server",
      "Copyright (c) HCL",
      "   Updating views in ",
      " 07:92: 0A:0A\n",
      "SMTP Server: Message ",
      // Hostile users and addresses.
      "J\u00fcrgen M\u00fcller",
      "adm\xFFin",
      "for user  ; connecting host ",
      " ; connecting host 203.0.113.99 ; connecting host ",
      "root [203.0.113.99] [",
      "\t",
      "\x1B[31m",
      "\"quoted\"",
      "[xxx.xxx.xxx.xxx]",
      "[111.222.333.444]",
      " [] authentication",
      "connecting host []",
      // Address forms.
      "::ffff:198.51.100.",
      "::ffff:203.0.113.",
      "%eth0",
      "2001:DB8:",
      " 2001:db8:",
  };
  for (std::string_view n : needles) {
    EXPECT_GT(Count(g.log, n), 0) << "missing: " << n;
  }
  // A user of a few hundred bytes.
  bool long_user = false;
  for (const TruthRecord& r : ParseAllTruth(g.truth)) {
    long_user |= r.user.size() >= 200;
  }
  EXPECT_TRUE(long_user);
  EXPECT_GT(g.stats.masked_ip_lines, 0u);
  EXPECT_GT(g.stats.hostile_user_lines, 0u);
}

TEST(GeneratorTest, NoSuccessShapesWhenSuccessesAreOff) {
  GeneratorOptions o = RichOptions();
  o.successes = false;
  const GeneratedLog g = Generate(o);
  // Hostile names may quote the F phrases inside other lines, so look at the
  // shapes, not the phrases.
  for (std::string_view line : SplitLines(g.log)) {
    EXPECT_EQ(line.find("Server: Authentication succeeded"),
              std::string_view::npos);
    if ((line.find("IMAP Server: ") != std::string_view::npos ||
         line.find("POP3 Server: ") != std::string_view::npos) &&
        line.find("Server: Authentication failed for user ") ==
            std::string_view::npos) {
      EXPECT_EQ(line.find(" logged in"), std::string_view::npos) << line;
    }
  }
  EXPECT_EQ(g.stats.recognised_by_kind[static_cast<size_t>(7)], 0u);
  EXPECT_EQ(Count(g.truth, "\"kind\":\"auth_success\""), 0);
}

TEST(GeneratorTest, EveryAddressIsADocumentationAddress) {
  GeneratorOptions o = RichOptions();
  o.thread_ids = ThreadIdStyle::kPaddedHex;
  o.hundredths = true;
  const GeneratedLog g = Generate(o);
  const auto is_token_char = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || c == '.' || c == ':' || c == '%';
  };
  int v4 = 0, v6 = 0;
  const std::string& s = g.log;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_token_char(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && is_token_char(s[j])) {
      ++j;
    }
    std::string_view token(s.data() + i, j - i);
    i = j;
    while (!token.empty() && token.back() == '.') {
      token.remove_suffix(1);
    }
    const size_t dots = std::count(token.begin(), token.end(), '.');
    const size_t colons = std::count(token.begin(), token.end(), ':');
    const bool dotted_digits =
        dots == 3 && colons == 0 &&
        token.find_first_not_of("0123456789.") == std::string_view::npos;
    if (dotted_digits) {
      if (token == "111.222.333.444") {
        continue;  // the deliberately invalid address
      }
      const std::optional<IpAddress> ip = IpAddress::Parse(token);
      ASSERT_TRUE(ip.has_value()) << token;
      EXPECT_TRUE(IsDocumentationAddress(*ip)) << token;
      ++v4;
      continue;
    }
    if (colons >= 2) {
      const std::optional<IpAddress> ip = IpAddress::Parse(token);
      if (token.find("::") != std::string_view::npos ||
          token.starts_with("2001:")) {
        ASSERT_TRUE(ip.has_value()) << token;
      }
      if (ip.has_value()) {
        EXPECT_TRUE(IsDocumentationAddress(*ip)) << token;
        ++v6;
      }
    }
  }
  EXPECT_GT(v4, 10000);
  EXPECT_GT(v6, 1000);
}

// --- pairs -----------------------------------------------------------------

// Re-derives the pairing rule from the log and the truth and checks that every
// pair the rule finds is one the generator meant: B right after its A.
void CheckPairs(const GeneratorOptions& o, const GeneratedLog& g) {
  const std::vector<std::string_view> lines = SplitLines(g.log);
  struct Entry {
    const TruthRecord* r;
    bool task;
    bool paired;
  };
  std::vector<Entry> window;  // most recent last, at most 64
  const TruthRecord* previous_ab = nullptr;
  bool previous_was_a = false;
  uint64_t dedups = 0;
  const std::vector<TruthRecord> records = ParseAllTruth(g.truth);
  for (const TruthRecord& r : records) {
    if (r.kind != "auth_failure" && r.kind != "lockout") {
      continue;
    }
    const std::optional<Stamp> st = ReadStamp(lines[r.line - 1], o);
    ASSERT_TRUE(st.has_value());
    const std::string_view msg = lines[r.line - 1].substr(st->message_pos);
    const bool task = msg.size() > 4 && msg[0] >= 'A' && msg[0] <= 'Z';
    bool expect_dedup = false;
    for (auto it = window.rbegin(); it != window.rend(); ++it) {
      if (it->paired || it->task == task || it->r->protocol != r.protocol ||
          it->r->time != r.time || it->r->ip != r.ip || it->r->user != r.user) {
        continue;
      }
      it->paired = true;
      expect_dedup = true;
      break;
    }
    ASSERT_EQ(r.dedup, expect_dedup) << "line " << r.line;
    if (r.dedup) {
      ++dedups;
      // Intended pairs only: A immediately followed by its B.
      ASSERT_TRUE(task) << "line " << r.line;
      ASSERT_NE(previous_ab, nullptr);
      EXPECT_TRUE(previous_was_a);
      EXPECT_EQ(previous_ab->ip, r.ip);
      EXPECT_EQ(previous_ab->user, r.user);
      EXPECT_EQ(previous_ab->time, r.time);
      EXPECT_EQ(previous_ab->protocol, r.protocol);
      EXPECT_LE(r.line - previous_ab->line, 2u);
    }
    window.push_back({&r, task, r.dedup});
    if (window.size() > 64) {
      window.erase(window.begin());
    }
    previous_ab = &r;
    previous_was_a = !task;
  }
  EXPECT_EQ(dedups, g.stats.pairs);
  EXPECT_EQ(g.stats.unexpected_dedup, 0u);
}

TEST(GeneratorTest, NoAccidentalPairs) {
  // One attacker hammering a few names: separate attempts often share ip,
  // user, protocol and second, so the generator must move them apart.
  const GeneratorOptions o = {.seed = 5,
                              .lines = 100000,
                              .lines_per_second = 100,
                              .attack_ratio = 0.9,
                              .attackers = 1,
                              .masked_ip_ratio = 0.05,
                              .pair_ratio = 0.4,
                              .inet_only_ratio = 0.3};
  const GeneratedLog g = Generate(o);
  EXPECT_GT(g.stats.pairs, 1000u);
  EXPECT_GT(g.stats.pair_avoidance_rewrites, 100u);
  CheckPairs(o, g);
}

TEST(GeneratorTest, PairsAreExactInTheRichRun) {
  const GeneratorOptions o = RichOptions();
  const GeneratedLog g = Generate(o);
  EXPECT_GT(g.stats.pairs, 100u);
  CheckPairs(o, g);
}

// --- summary ---------------------------------------------------------------

uint64_t JsonNumber(std::string_view line, std::string_view key) {
  const std::string k = "\"" + std::string(key) + "\":";
  const size_t pos = line.find(k);
  EXPECT_NE(pos, std::string_view::npos) << key;
  if (pos == std::string_view::npos) {
    return 0;
  }
  return std::stoull(std::string(line.substr(pos + k.size())));
}

TEST(GeneratorTest, SummaryCountsMatchTheTruth) {
  const GeneratedLog g = Generate(RichOptions());
  uint64_t attempts = 0, tls = 0, attacker_rows = 0;
  for (std::string_view line : SplitLines(g.summary)) {
    attempts += JsonNumber(line, "attempts");
    tls += JsonNumber(line, "tls_failures");
    attacker_rows += line.find("\"role\":\"attacker\"") != std::string::npos;
  }
  uint64_t want_attempts = 0, want_tls = 0;
  for (const TruthRecord& r : ParseAllTruth(g.truth)) {
    if ((r.kind == "auth_failure" || r.kind == "lockout") && !r.ip.empty() &&
        !r.dedup) {
      ++want_attempts;
    }
    want_tls += r.kind == "tls_failure";
  }
  EXPECT_EQ(attempts, want_attempts);
  EXPECT_EQ(tls, want_tls);
  EXPECT_GT(attacker_rows, 20u);
}

}  // namespace
}  // namespace rampart::sim
