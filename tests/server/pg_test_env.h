#pragma once

// Test support for PostgreSQL-backed tests (pg_store_test and the PgStore
// entry of the store contract suite).
//
// The database comes from RAMPART_TEST_PG_DSN (scripts/test-postgres.sh
// start prints one). Without it PostgreSQL tests are skipped, except when the
// environment variable CI is set: then they fail, so CI can never pass by
// silently skipping the real database.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace rampart::server {

// RAMPART_TEST_PG_DSN, or "" if unset.
inline std::string PgTestDsn() {
  const char* dsn = std::getenv("RAMPART_TEST_PG_DSN");
  return dsn == nullptr ? std::string() : std::string(dsn);
}

// Call from SetUp(): returns the DSN, or "" after recording a skip (or, under
// CI, a fatal failure). Either way gtest then does not run the test body.
//   if (dsn_ = RequirePgTestDsn(); dsn_.empty()) return;
inline std::string RequirePgTestDsn() {
  std::string dsn = PgTestDsn();
  if (!dsn.empty()) {
    return dsn;
  }
  // FAIL() and GTEST_SKIP() return from the lambda only; what matters is
  // the recorded result, which makes gtest skip the test body.
  if (std::getenv("CI") != nullptr) {
    [] {
      FAIL() << "CI is set but RAMPART_TEST_PG_DSN is not: .ci/run starts "
                "a cluster with scripts/test-postgres.sh";
    }();
  } else {
    [] {
      GTEST_SKIP() << "RAMPART_TEST_PG_DSN not set; run `export "
                      "RAMPART_TEST_PG_DSN=$(scripts/test-postgres.sh "
                      "start)`";
    }();
  }
  return "";
}

// A schema name unique to this process and call, for PgStoreOptions::schema
// (at most 63 bytes, lower case). Drop it with PgStore::DropSchemaForTest().
inline std::string UniquePgTestSchema() {
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string schema = absl::StrFormat("t_%d_%d_%s", getpid(), counter++,
                                       info == nullptr ? "" : info->name());
  for (char& c : schema) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      c = '_';
    }
  }
  schema.resize(std::min<size_t>(schema.size(), 63));
  return schema;
}

}  // namespace rampart::server
