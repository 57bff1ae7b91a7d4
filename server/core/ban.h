#pragma once

// Bans, allowlist entries and the ban-list journal: domain types shared by the
// correlator and the stores. Thread-safety: value types.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "common/ip_address.h"

namespace rampart::server {

enum class BanOrigin : uint8_t {
  kAuto = 1,    // decided by the correlator from a single address's score
  kPrefix = 2,  // decided by prefix aggregation
  kManual = 3,  // an administrator (rampartctl bans add)
  kImport = 4,  // bulk import
};
std::string_view BanOriginName(BanOrigin origin);
std::optional<BanOrigin> ParseBanOrigin(std::string_view name);

struct Ban {
  // Unique, assigned by the correlator (monotonic; never reused).
  uint64_t id = 0;
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  absl::Time created = absl::UnixEpoch();
  // Absolute expiry; absl::InfiniteFuture() for a permanent ban.
  absl::Time expires = absl::InfiniteFuture();
  BanOrigin origin = BanOrigin::kAuto;
  // 0 for a first offence, n for the (n+1)-th ban of this prefix.
  int level = 0;
  // Human-readable explanation ("score 12.4 >= 10 from 3 servers ...").
  std::string reason;
  // Who decided: "correlator" or the admin identity.
  std::string actor;

  bool ActiveAt(absl::Time t) const { return t < expires; }
  friend bool operator==(const Ban&, const Ban&) = default;
};

// One entry of the ban-list journal. Every change of the active list is an
// entry with the next revision; expiry is implicit (bans carry `expires`, and
// agents' kernel sets expire them) and so needs no entry.
struct JournalEntry {
  enum class Op : uint8_t { kAdd = 1, kRemove = 2, kUpdate = 3 };
  uint64_t revision = 0;
  Op op = Op::kAdd;
  // The ban after the change (for kRemove: the ban as it was removed).
  Ban ban;
  absl::Time at = absl::UnixEpoch();
  friend bool operator==(const JournalEntry&, const JournalEntry&) = default;
};
std::string_view JournalOpName(JournalEntry::Op op);

struct AllowEntry {
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  // nullopt: never expires.
  std::optional<absl::Time> expires;
  std::string comment;
  std::string actor;
  absl::Time created = absl::UnixEpoch();
  bool ActiveAt(absl::Time t) const { return !expires || t < *expires; }
  friend bool operator==(const AllowEntry&, const AllowEntry&) = default;
};

}  // namespace rampart::server
