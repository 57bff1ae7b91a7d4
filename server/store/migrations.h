#pragma once

// Numbered schema migrations shared by the SQL stores (SqliteStore, PgStore):
// each store embeds its own migrations/<engine>/V<n>__<name>.sql files at
// build time (cmake/RampartEmbedSql.cmake) as a list of Migration, so a
// server binary needs no SQL files at run time, and checks what a database
// already has against that list with PlanMigrations(). A store applies the
// pending migrations in one exclusive transaction at start-up and records
// each in `schema_migrations(version, name, applied_at)`.
//
// Thread-safety: value types and pure functions.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rampart::server {

// One migration file, V<version>__<name>.sql.
struct Migration {
  int version = 0;   // >= 1; applied in increasing order
  std::string name;  // the part after "__", without ".sql"
  std::string sql;   // one or more statements
};

// A migration recorded in a database's schema_migrations table.
struct AppliedMigration {
  int version = 0;
  std::string name;
};

// Compares the migrations recorded in a database (`applied`, any order) with
// the ones this binary knows (`known`, ascending by version) and returns the
// known migrations still to apply, ascending. Returns kFailedPrecondition,
// naming both versions, if the database has a migration this binary does not
// know (it was written by a newer Rampart) or one whose name differs from
// this binary's migration of the same version.
absl::StatusOr<std::vector<const Migration*>> PlanMigrations(
    const std::vector<Migration>& known,
    const std::vector<AppliedMigration>& applied);

// Parses a migration file name: "V001__create_events.sql" -> {1,
// "create_events", sql}. The version is 1 to 9 decimal digits, >= 1; the
// name is one or more of [A-Za-z0-9_] (the rule cmake/RampartEmbedSql.cmake
// enforces at build time). Returns kInvalidArgument for anything else,
// including a directory part.
absl::StatusOr<Migration> MigrationFromFile(std::string_view file_name,
                                            std::string sql);

// Checks that an embedded list is usable: versions >= 1 and strictly
// increasing (hence unique), names and SQL non-empty. Returns kInternal
// naming the first problem (a broken embedded list is a build defect).
absl::Status ValidateMigrations(const std::vector<Migration>& migrations);

// "V001__init": a migration's label for messages.
std::string MigrationLabel(int version, std::string_view name);

}  // namespace rampart::server
