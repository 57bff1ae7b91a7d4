// Hostile-input suite, agent half (issue 16): a log-line mutator feeds a
// live rampart-agent (real binary, dry-run firewall, plaintext loopback)
// while a real rampart-server (SQLite) correlates. The mutated lines are
// what an attacker can make Domino write: random bytes, over-long lines,
// control characters, bare CRs, forged "; connecting host" and trailer
// fragments, torn writes, padding. Each forgery names the victim
// 203.0.113.99 often enough to ban it if it were believed.
//
// Checks: the agent stays up and keeps reading; the victim is never
// reported (no event with its address in the server's database) nor banned
// (not in the server's bans, not in the agent's enforced list); the real
// attacker whose lines are interleaved, and a second one writing after all
// the mutations, are banned. Seeded RNG (RAMPART_MUTATOR_SEED overrides),
// bounded line count; label "hostile" (runs in the sanitizer jobs too).
// RAMPART_MUTATOR_AGENT=<path> runs another rampart-agent binary instead.

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/firewall/enforced_state.h"
#include "gtest/gtest.h"
#include "tests/e2e/estate_process.h"
#include "tests/fakes/temp_files.h"
#include "tests/integration/dry_run_estate.h"
#include "tests/integration/process_memory.h"
#include "tests/integration/server_process.h"

namespace rampart::testing {
namespace {

constexpr char kVictim[] = "203.0.113.99";
constexpr char kAttacker[] = "198.51.100.7";      // interleaved real attack
constexpr char kLateAttacker[] = "198.51.100.8";  // after every mutation
constexpr char kForger[] = "192.0.2.66";          // writes the forgeries
constexpr int kMutatedLines = 400;

// Now, as Domino writes it (the agent is told the log is in UTC).
std::string Stamp() {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S   ", absl::Now(),
                          absl::UTCTimeZone());
}

std::string BLine(const std::string& user, const std::string& host) {
  return Stamp() + "SMTP Server: Authentication failed for user " + user +
         " ; connecting host " + host;
}

std::string ALine(const std::string& user, const std::string& ip) {
  return Stamp() + "imap: " + user + " [" + ip +
         "] authentication failure using internet password";
}

// One mutated chunk to append (may hold several lines, may lack its '\n').
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  std::string Next() {
    const std::string v = kVictim;
    switch (Below(11)) {
      case 0:  // random bytes, any value
        return RandomBytes(1 + Below(400), /*newlines=*/true) + "\n";
      case 1:  // over the tailer's 64 KiB cap, forged tail at the cut
        return BLine("x ; connecting host " + v +
                         std::string(65536 + Below(8192), ' '),
                     kForger) +
               "\n";
      case 2: {  // over the cap, non-blank padding, victim ending at 64 KiB
        std::string line =
            Stamp() + "SMTP Server: Authentication failed for user " +
            std::string(65536 - 60 - Below(8), 'A') + " ; connecting host " + v;
        return line + RandomBytes(2000 + Below(4000), false) +
               " ; connecting host " + kForger + "\n";
      }
      case 3: {  // control characters in the user field
        static constexpr char kControls[] = {'\0',   '\x1b', '\r',
                                             '\x7f', '\x08', '\x0b'};
        const std::string c(1, kControls[Below(6)]);
        return BLine("a" + c + " ; connecting host " + v, kForger) + "\n";
      }
      case 4:  // a bare CR before a copy of Domino's own line
        return BLine("x\r" + BLine("y", v), kForger) + "\n";
      case 5:  // the anchor inside the user field
        return BLine("admin ; connecting host " + v, kForger) + "\n";
      case 6:  // a forged A trailer and address in the user field
        return ALine("a [" + v +
                         "] authentication failure using internet "
                         "password",
                     kForger) +
               "\n";
      case 7: {  // a torn write: a forgery cut anywhere, the next line after
        const std::string forged = BLine("x ; connecting host " + v, kForger);
        return forged.substr(0, Below(static_cast<uint32_t>(forged.size())));
      }
      case 8:  // padding after a forged tail (as if Domino cut the line)
        return BLine("", v + std::string(5 + Below(200), ' ')) + "\n";
      case 9:  // a user field longer than any account, forged tail at the end
        return BLine(std::string(257 + Below(2000), 'u'), v) + "\n";
      default: {  // a forged line with random bytes flipped inside the user
        std::string user = "x ; connecting host " + v;
        for (int i = 0; i < 3; ++i) {
          user[Below(static_cast<uint32_t>(user.size()))] =
              static_cast<char>(Below(256));
        }
        std::string line = BLine(user, kForger);
        for (char& c : line) {
          c = c == '\n' ? ' ' : c;
        }
        return line + "\n";
      }
    }
  }

  uint32_t Below(uint32_t n) {
    return static_cast<uint32_t>(rng_() % static_cast<uint64_t>(n));
  }

 private:
  std::string RandomBytes(size_t n, bool newlines) {
    std::string out(n, ' ');
    for (char& c : out) {
      c = static_cast<char>(Below(256));
      if (!newlines && c == '\n') {
        c = '.';
      }
    }
    return out;
  }

  std::mt19937_64 rng_;
};

// Prefixes in the agent's persisted enforced list (state file + journal),
// as IpPrefix::ToString() writes them (a host prefix without "/32").
std::vector<std::string> AgentEnforced(const std::string& state_dir) {
  std::vector<std::string> out;
  absl::StatusOr<agent::EnforcedState> s =
      agent::ReadEnforcedState(state_dir + "/enforced-bans.state");
  if (s.ok()) {
    for (const agent::BanItem& item : s->items) {
      out.push_back(item.prefix.ToString());
    }
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// COUNT(*) of `sql` with one text parameter, on the server's SQLite file.
int64_t Count(const std::string& db_path, const std::string& sql,
              const std::string& arg) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  int64_t n = -1;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_bind_text(st, 1, arg.c_str(), -1, SQLITE_TRANSIENT) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

TEST(LogMutatorTest, LiveAgentNeverBlamesTheVictimAndStillBansAttackers) {
  uint64_t seed = 16;
  if (const char* s = std::getenv("RAMPART_MUTATOR_SEED")) {
    seed = std::strtoull(s, nullptr, 10);
  }
  std::printf("mutator seed %llu\n", static_cast<unsigned long long>(seed));
  TempDir dir("rampart-mutator");
  absl::StatusOr<DryRunEstate> estate = StartDryRunEstate(dir, "mutator-01");
  ASSERT_TRUE(estate.ok()) << estate.status();
  const std::string& db = estate->db;
  const std::string& log = estate->log;
  const std::string& state = estate->state;
  ServerProcess* const server = estate->server.get();
  // RAMPART_MUTATOR_AGENT runs another agent binary (an older release, to
  // show what this suite catches).
  const char* other = std::getenv("RAMPART_MUTATOR_AGENT");
  const std::string agent_bin = other != nullptr ? other : RAMPART_AGENT_BIN;
  auto agent = e2e::Child::Spawn({agent_bin, "run", "--config", estate->config},
                                 dir.path() + "/agent.log");
  ASSERT_TRUE(agent.ok()) << agent.status();
  e2e::Child& a = **agent;
  // Connected (the first list arrives) before any line is written.
  ASSERT_TRUE(a.WaitForLog("connected to ", absl::Seconds(120))) << a.log();

  Mutator m(seed);
  int real = 0;
  for (int i = 0; i < kMutatedLines; ++i) {
    AppendToFile(log, m.Next());
    if (i % 20 == 10) {
      // A real attack line, whole, after a newline (a torn write before it
      // would otherwise glue onto it).
      AppendToFile(log, "\n" + BLine("admin", kAttacker) + "\n");
      ++real;
    }
  }
  for (int i = 0; i < 15; ++i) {
    AppendToFile(log, "\n" + ALine("postmaster", kLateAttacker) + "\n");
  }
  ASSERT_GE(real, 15);

  // Both attackers are banned and enforced by the agent.
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  std::vector<std::string> enforced;
  while (absl::Now() < deadline) {
    enforced = AgentEnforced(state);
    if (Contains(enforced, std::string(kAttacker)) &&
        Contains(enforced, std::string(kLateAttacker))) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(Contains(enforced, std::string(kAttacker)))
      << a.log().substr(0, 20000);
  EXPECT_TRUE(Contains(enforced, std::string(kLateAttacker)));
  for (const std::string& p : enforced) {
    EXPECT_NE(p.rfind("203.0.113.", 0), 0u) << "victim range enforced: " << p;
  }
  EXPECT_TRUE(a.Running()) << "the agent died:\n" << a.log();
  const int64_t rss = VmRssKiB(a.pid());
  std::printf("agent RSS after %d mutated lines: %lld KiB\n", kMutatedLines,
              static_cast<long long>(rss));
  EXPECT_LT(rss, 1024 * 1024) << "agent memory not bounded";
  EXPECT_NE(a.log().find("ignoring a line of"), std::string::npos)
      << "drops must be logged";

  EXPECT_TRUE(a.Stop(SIGTERM, absl::Seconds(60)));
  const std::string agent_log = a.log();
  if (agent_log.find("Sanitizer") != std::string::npos) {
    // ctest fails the test on this line (FAIL_REGULAR_EXPRESSION).
    std::printf("agent log:\n%s\n", agent_log.c_str());
  }
  absl::StatusOr<int> exit = server->Terminate();
  ASSERT_TRUE(exit.ok()) << exit.status();
  // The server never saw the victim's address, and banned the attackers.
  EXPECT_EQ(Count(db, "SELECT COUNT(*) FROM events WHERE ip = ?1", kVictim), 0);
  EXPECT_EQ(Count(db, "SELECT COUNT(*) FROM bans WHERE prefix LIKE ?1",
                  "203.0.113.%"),
            0);
  EXPECT_GT(Count(db, "SELECT COUNT(*) FROM events WHERE ip = ?1", kAttacker),
            0);
  EXPECT_GT(Count(db, "SELECT COUNT(*) FROM bans WHERE prefix = ?1",
                  std::string(kAttacker)),
            0);
}

}  // namespace
}  // namespace rampart::testing
