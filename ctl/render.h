#pragma once

// Turning AdminService messages into what rampartctl prints: the JSON shapes
// documented in docs/rampartctl.md "JSON output" and the cells of text
// tables. Conventions (the same for every command):
// - times are RFC 3339 UTC strings ("2024-11-23T09:13:05Z", fractional
//   seconds only when non-zero), null when absent (e.g. a permanent ban's
//   expires_at);
// - lengths of time are integer seconds in fields named *_seconds;
// - enum values are the lower-case name without the enum prefix
//   (BAN_ORIGIN_AUTO -> "auto"); a value this build does not know prints as
//   its number in decimal text ("17");
// - user names (bytes) are strings: valid UTF-8 as is, other bytes decoded
//   as Latin-1;
// - ids and counters are JSON numbers.
// Thread-safety: pure functions.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "ctl/output.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/timestamp.pb.h"
#include "rampart/v1/admin.pb.h"

namespace rampart::ctl {

absl::Time ToTime(const google::protobuf::Timestamp& t);
absl::Duration ToDuration(const google::protobuf::Duration& d);
void SetDuration(absl::Duration d, google::protobuf::Duration* out);
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out);

// "2024-11-23T09:13:05Z" (fractional seconds only when non-zero).
std::string FormatUtc(absl::Time t);
std::string FormatTimestamp(const google::protobuf::Timestamp& t);

// Relative to `now`: "in 1h59m", "5m ago", "now" (within a second).
std::string FormatRelative(absl::Time t, absl::Time now);

// A score or multiplier with two decimals: "12.40".
std::string FormatScore(double value);

// Lower-case enum value name without its prefix ("auto", "all_ports"), or
// the number as text if unknown. Works for every rampart.v1 enum: the prefix
// is the name of the enum's *_UNSPECIFIED value.
std::string EnumName(const google::protobuf::EnumDescriptor* descriptor,
                     int value);
template <typename E>
std::string EnumName(E value) {
  return EnumName(google::protobuf::GetEnumDescriptor<E>(),
                  static_cast<int>(value));
}

// JSON building blocks.
Json JsonTime(bool present, const google::protobuf::Timestamp& t);
int64_t DurationSeconds(const google::protobuf::Duration& d);

// JSON objects for the shared admin types (field lists in
// docs/rampartctl.md).
Json BanToJson(const v1::BanEntry& ban);
Json AllowToJson(const v1::AllowEntry& entry);
Json EventRecordToJson(const v1::AuthEventRecord& record);
Json AgentToJson(const v1::AgentInfo& agent);
Json AccountToJson(const v1::AccountInfo& account);
Json AlertToJson(const v1::Alert& alert);
Json AuditToJson(const v1::AuditRecord& record);
Json StatusToJson(const v1::StatusResponse& status);
Json GetBanToJson(const v1::GetBanResponse& response);
Json LookupIpToJson(const v1::LookupIpResponse& response);
Json ReportToJson(const v1::ReportResponse& report);
Json ImportToJson(const v1::ImportResponse& response, bool dry_run);

// Table cells for a ban's expiry: "permanent", "in 1h59m", "expired 5m ago".
std::string ExpiryCell(const v1::BanEntry& ban, absl::Time now);
std::string ExpiryCell(bool has_expiry, const google::protobuf::Timestamp& t,
                       absl::Time now);

// An agent's lag for tables: "-" when current, else "3 rev, 2m10s".
std::string LagCell(const v1::AgentInfo& agent);

}  // namespace rampart::ctl
