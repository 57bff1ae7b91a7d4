#pragma once

// The PostgreSQL migrations (migrations/postgres/V*.sql), embedded at build
// time by cmake/RampartEmbedSql.cmake. Thread-safety: immutable.

#include <string>
#include <vector>

#if __has_include("server/store/migrations.h")
// The Migration helper shared with SqliteStore.
#include "server/store/migrations.h"
#else
namespace rampart::server {
// Same shape as server/store/migrations.h's Migration (written with the
// SQLite store); this fallback goes away once that header is in.
struct Migration {
  int version = 0;
  std::string name;
  std::string sql;
};
}  // namespace rampart::server
#endif

namespace rampart::server {

// All known migrations, ascending by version.
const std::vector<Migration>& PgMigrations();

}  // namespace rampart::server
