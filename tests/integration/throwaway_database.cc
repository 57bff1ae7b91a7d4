#include "tests/integration/throwaway_database.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>

#include "absl/strings/str_format.h"
#include "pqxx/pqxx"

namespace rampart::testing {

absl::StatusOr<std::unique_ptr<ThrowawayDatabase>> ThrowawayDatabase::Create(
    const std::string& base_dsn, const std::string& prefix) {
  static std::atomic<int> counter{0};
  const std::string name =
      absl::StrFormat("rampart_%s_%d_%d", prefix, getpid(), counter++);
  try {
    pqxx::connection c(base_dsn);
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + name);
    tx.exec("CREATE DATABASE " + name);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrFormat("creating database %s: %s", name, e.what()));
  }
  return std::unique_ptr<ThrowawayDatabase>(
      new ThrowawayDatabase(base_dsn, name));
}

ThrowawayDatabase::~ThrowawayDatabase() {
  try {
    pqxx::connection c(base_dsn_);
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropping %s: %s\n", name_.c_str(), e.what());
  }
}

}  // namespace rampart::testing
