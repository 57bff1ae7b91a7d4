#include "server/store/migrations.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart::server {

absl::StatusOr<std::vector<const Migration*>> PlanMigrations(
    const std::vector<Migration>& known,
    const std::vector<AppliedMigration>& applied) {
  const int newest_known = known.empty() ? 0 : known.back().version;
  int current = 0;
  for (const AppliedMigration& a : applied) {
    const auto it = std::find_if(
        known.begin(), known.end(),
        [&](const Migration& m) { return m.version == a.version; });
    if (it == known.end()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "database schema has migration V%03d__%s, unknown to this binary "
          "(newest known: V%03d); upgrade Rampart",
          a.version, a.name, newest_known));
    }
    if (it->name != a.name) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "database migration V%03d is \"%s\", this binary's is \"%s\"",
          a.version, a.name, it->name));
    }
    current = std::max(current, a.version);
  }
  std::vector<const Migration*> pending;
  for (const Migration& m : known) {
    if (m.version > current) {
      pending.push_back(&m);
    }
  }
  return pending;
}

absl::StatusOr<Migration> MigrationFromFile(std::string_view file_name,
                                            std::string sql) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrFormat(
        "migration file name must be V<version>__<name>.sql, got \"%s\"",
        Abbreviate(file_name)));
  };
  std::string_view rest = file_name;
  if (!ConsumePrefix(&rest, "V") || !rest.ends_with(".sql")) {
    return invalid();
  }
  rest.remove_suffix(4);
  const size_t sep = rest.find("__");
  if (sep == 0 || sep == std::string_view::npos || sep > 9) {
    return invalid();
  }
  int version = 0;
  for (char c : rest.substr(0, sep)) {
    if (c < '0' || c > '9') {
      return invalid();
    }
    version = version * 10 + (c - '0');
  }
  const std::string_view name = rest.substr(sep + 2);
  if (version < 1 || name.empty()) {
    return invalid();
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return invalid();
    }
  }
  return Migration{
      .version = version, .name = std::string(name), .sql = std::move(sql)};
}

absl::Status ValidateMigrations(const std::vector<Migration>& migrations) {
  int previous = 0;
  for (const Migration& m : migrations) {
    if (m.version <= previous) {
      return absl::InternalError(absl::StrFormat(
          "embedded migrations out of order: %s after version %d",
          MigrationLabel(m.version, m.name), previous));
    }
    if (m.name.empty() || m.sql.empty()) {
      return absl::InternalError(
          absl::StrFormat("embedded migration %s has an empty name or no SQL",
                          MigrationLabel(m.version, m.name)));
    }
    previous = m.version;
  }
  return absl::OkStatus();
}

std::string MigrationLabel(int version, std::string_view name) {
  return absl::StrFormat("V%03d__%s", version, name);
}

}  // namespace rampart::server
