#pragma once

// ThrowawayDatabase: a PostgreSQL database created for one test suite or
// benchmark run on the server of a base DSN (RAMPART_TEST_PG_DSN) and
// dropped WITH (FORCE) on destruction, so a real rampart-server process can
// be pointed at an empty database with `--db db_flag()`.
//
// Thread-safety: one owner.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace rampart::testing {

class ThrowawayDatabase {
 public:
  // Creates rampart_<prefix>_<pid>_<n> (dropping a leftover of that name).
  // Unavailable with the libpqxx message (the DSN is never quoted).
  static absl::StatusOr<std::unique_ptr<ThrowawayDatabase>> Create(
      const std::string& base_dsn, const std::string& prefix);
  ~ThrowawayDatabase();

  ThrowawayDatabase(const ThrowawayDatabase&) = delete;
  ThrowawayDatabase& operator=(const ThrowawayDatabase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& base_dsn() const { return base_dsn_; }
  // libpq key=value form; the later dbname= overrides the base DSN's.
  std::string dsn() const { return base_dsn_ + " dbname=" + name_; }
  // The server's --db value.
  std::string db_flag() const { return "postgresql:" + dsn(); }

 private:
  ThrowawayDatabase(std::string base_dsn, std::string name)
      : base_dsn_(std::move(base_dsn)), name_(std::move(name)) {}

  const std::string base_dsn_;
  const std::string name_;
};

}  // namespace rampart::testing
