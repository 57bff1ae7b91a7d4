#pragma once

// The SQLite migrations (migrations/sqlite/V*.sql), embedded at build time by
// cmake/RampartEmbedSql.cmake into sqlite_migrations.cc (generated).
// Thread-safety: immutable.

#include <vector>

#include "server/store/migrations.h"

namespace rampart::server {

// All known migrations, ascending by version.
const std::vector<Migration>& SqliteMigrations();

}  // namespace rampart::server
