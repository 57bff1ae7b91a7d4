#pragma once

// The PostgreSQL migrations (migrations/postgres/V*.sql), embedded at build
// time by cmake/RampartEmbedSql.cmake into pg_migrations.cc (generated).
// Thread-safety: immutable.

#include <vector>

#include "server/store/migrations.h"

namespace rampart::server {

// All known migrations, ascending by version.
const std::vector<Migration>& PgMigrations();

}  // namespace rampart::server
