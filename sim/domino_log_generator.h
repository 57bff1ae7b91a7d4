#pragma once

// DominoLogGenerator writes a synthetic, deterministic HCL Domino console.log
// (the families of docs/domino-log-format.md plus realistic noise) together
// with its ground truth: one JSON object per line that a correct parser
// recognises, in exactly the format of `rampart-agent parse`:
//
//   {"line":12,"kind":"auth_failure","protocol":"smtp","ip":"198.51.100.7",
//    "user":"jdoe","time":"2024-03-06T10:15:32","dedup":false}
//
// Used by tests, benchmarks and the quickstart (`rampart-loggen`).
//
// Guarantees:
//  * Determinism: the same options give byte-identical output on any
//    platform (own PRNG and samplers, see sim/rng.h).
//  * Streaming: output is handed to ChunkSinks in chunks of about 1 MiB that
//    end at line boundaries; memory does not grow with `lines`.
//  * Exactly `lines` lines, each ending in '\n'; timestamps never decrease.
//  * Every address is a documentation address (192.0.2.0/24,
//    198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32). 192.0.2.0/24 holds the
//    server itself (192.0.2.1) and legitimate clients; attackers and scanners
//    come from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8:8000::/33.
//    203.0.113.99 is reserved as the decoy that hostile user names embed; it
//    is never the address of a line.
//
// What a line means (the contract the truth encodes):
//  * A:  "<proto>: <user> [<ip>] authentication failure using internet
//        password" -> auth_failure; user = bytes between "<proto>: " and the
//        last " [".
//  * A-lock: A + ": User is locked out" -> lockout; a user slot of exactly
//        "IP Address" (IP-based lockout) gives user "".
//  * B:  "<PROTO> Server: Authentication failed for user <user> ; connecting
//        host <host>" (also "SMTP Server [id] ..." with "[ip]", and
//        "name (ip)") -> auth_failure; user ends at the LAST
//        " ; connecting host ".
//  * C, D, E -> policy_reject, connect/disconnect, tls_failure (user "";
//        E's protocol comes from the destination port).
//  * F (only if options.successes) -> auth_success.
//  * One failed attempt writes A only, B only, or A then B in the same second
//    (B directly after A, at most one unrecognised line in between). The B
//    line of such a pair has "dedup":true. An attempt that would otherwise
//    pair by accident with an earlier line under the pairing rule (same ip,
//    user, protocol and second; A/A-lock with B; most recent unpaired
//    counterpart among the previous 64 A/B lines) is written as a single
//    line of the earlier line's family instead (a lockout then becomes a
//    plain B line), or, for HTTP (no B form), moved to the next second.
//  * With successes off no F-shaped line is written at all, so the truth is
//    unambiguous for a parser with F disabled.
//
// Thread-safety: a DominoLogGenerator is immutable after Create(); Generate()
// is const and may run concurrently on one generator with different sinks.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "sim/chunk_sink.h"
#include "sim/timestamp_format.h"

namespace rampart::sim {

// The DEBUG_THREADID prefix written before each timestamped line.
enum class ThreadIdStyle : uint8_t {
  kNone,       // no prefix
  kLinux,      // "[28325:00010-3735542592] "
  kPaddedHex,  // "[007577:000017-00007F621246D700] "
  kWindows,    // "[4674:000E-30C8] "
};

// "none", "linux", "hex", "windows".
std::string_view ThreadIdStyleName(ThreadIdStyle style);
absl::StatusOr<ThreadIdStyle> ParseThreadIdStyle(std::string_view name);

struct GeneratorOptions {
  // The only source of randomness.
  uint64_t seed = 1;
  // Exact number of lines written.
  uint64_t lines = 10000;
  // Local time of the first line (Domino writes no zone). Year 1970..2199.
  absl::CivilSecond start = absl::CivilSecond(2024, 3, 6, 0, 0, 0);
  // Mean lines per second over the whole log, > 0 (at most 1e6).
  double lines_per_second = 2.0;

  // Timestamp shape.
  DateFormat date_format = DateFormat::kDmyDash;
  ClockStyle clock = ClockStyle::k24Hour;
  // Append hundredths to the time ("09:49:47.90").
  bool hundredths = false;
  // Spaces between the timestamp and the message, 1..3; 0 = Domino's habit:
  // 3 after a 24 h time, 2 after AM/PM.
  int message_spaces = 0;
  ThreadIdStyle thread_ids = ThreadIdStyle::kNone;

  // Expected share of lines that are attackers' failure lines (A, A-lock,
  // B), 0..1. The realised share varies a little (attacker activity is a
  // timed process). > 0 requires attackers > 0.
  double attack_ratio = 0.05;
  // Distinct attacker addresses, 0..100000. Attacker 0 always bursts; the
  // others burst (55%), try slowly (25%) or password-spray (20%).
  int attackers = 20;
  // Share of attacker (and scanner) addresses that are IPv6, 0..1. IPv4
  // attackers are capped at the 507 addresses of the two attacker /24s; the
  // rest become IPv6.
  double ipv6_ratio = 0.1;
  // Share of attacker attempts whose user name is hostile (empty, spaces,
  // '@', '[', ']', ';', an embedded " ; connecting host 203.0.113.99",
  // non-ASCII, invalid UTF-8, control characters, ~300 bytes, "IP Address").
  double hostile_user_ratio = 0.02;
  // Share of attacker attempts written with a masked or invalid address
  // ("xxx.xxx.xxx.xxx", "111.222.333.444", "[]"); their truth ip is "".
  double masked_ip_ratio = 0.01;
  // Share of addresses in recognised lines written in a non-canonical but
  // valid form ("::ffff:198.51.100.7", "2001:DB8:0:0:0:0:0:1",
  // "2001:db8::7%eth0"); the truth always has the canonical form.
  double ip_variant_ratio = 0.02;
  // How an smtp/imap/pop3/ldap failed attempt is written: A then B with
  // probability pair_ratio, A only with inet_only_ratio, else B only. HTTP
  // has no B line (always A). Sum <= 1.
  double pair_ratio = 0.3;
  double inet_only_ratio = 0.35;
  // Share of attacker attempts written as A-lock (alone, never paired).
  double lockout_ratio = 0.05;
  // Write family F (successful logins): legitimate users' logins and, rarely,
  // an attacker's success after failures. Off: no F-shaped line at all.
  bool successes = false;

  // Domino server names: the first is the server writing this log, the
  // others its replication peers (noise lines only). Non-empty; each 1..100
  // printable ASCII bytes.
  std::vector<std::string> servers = {"Mail01/Acme", "Hub/Acme"};
  // Mail domain of the attacked organisation (user names, noise).
  std::string mail_domain = "example.com";
};

// Validates `options`; InvalidArgument naming the first bad field.
absl::Status ValidateGeneratorOptions(const GeneratorOptions& options);

// What one Generate() run wrote.
struct GeneratorStats {
  uint64_t lines = 0;
  // Truth records (recognised lines), total and by EventKind value (1..7).
  uint64_t recognised_lines = 0;
  std::array<uint64_t, 8> recognised_by_kind{};
  // Attackers' failure lines (A, A-lock, B) and attempts.
  uint64_t attack_lines = 0;
  uint64_t attack_attempts = 0;
  // A+B attempts written in full; equals the number of "dedup":true records.
  uint64_t pairs = 0;
  // Recognised failure lines with truth ip "" (masked or invalid address).
  uint64_t masked_ip_lines = 0;
  // Recognised lines whose user came from the hostile list.
  uint64_t hostile_user_lines = 0;
  // Attempts that would have paired by accident with an earlier line: written
  // as a single line of the other family instead, or (when that cannot help)
  // moved to the next second.
  uint64_t pair_avoidance_rewrites = 0;
  uint64_t pair_avoidance_shifts = 0;
  // Pairing-rule results that differ from the generator's intent. Always 0
  // unless the generator is broken (checked by the tests).
  uint64_t unexpected_dedup = 0;
  // Time of the first and last timestamped line.
  absl::CivilSecond first_time;
  absl::CivilSecond last_time;
};

class DominoLogGenerator {
 public:
  // Returns a generator for validated `options`, or InvalidArgument.
  static absl::StatusOr<std::unique_ptr<DominoLogGenerator>> Create(
      const GeneratorOptions& options);

  // Writes options().lines lines of console.log to `log` and, if non-null,
  // the JSONL truth to `truth` and a per-address JSONL summary to `summary`
  // (one object per address with at least one recognised line, written at
  // the end: {"ip","role","style","failure_lines","attempts","lockouts",
  // "policy_rejects","tls_failures","connects","disconnects","successes",
  // "first","last"}; role is attacker|scanner|legit, style burst|slow|spray
  // for attackers; "attempts" counts auth_failure and lockout lines without
  // "dedup":true; lines with a masked address count for no address).
  // Returns the stats, or the first error a sink returned (output is then
  // incomplete). Memory is bounded by the options, not by `lines`.
  absl::StatusOr<GeneratorStats> Generate(ChunkSink& log, ChunkSink* truth,
                                          ChunkSink* summary = nullptr) const;

  const GeneratorOptions& options() const { return options_; }

 private:
  explicit DominoLogGenerator(const GeneratorOptions& options)
      : options_(options) {}

  const GeneratorOptions options_;
};

// Convenience for tests and small runs: everything in memory.
struct GeneratedLog {
  std::string log;
  std::string truth;
  std::string summary;
  GeneratorStats stats;
};
absl::StatusOr<GeneratedLog> GenerateToStrings(const GeneratorOptions& options);

}  // namespace rampart::sim
