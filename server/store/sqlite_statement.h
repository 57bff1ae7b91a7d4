#pragma once

// SqliteStatement: an owned, prepared SQLite statement (RAII over
// sqlite3_stmt*), with typed binds and column reads; SqliteError(): the
// mapping of SQLite result codes to absl::Status used by SqliteStore.
//
// Thread-safety: not thread-safe. A statement belongs to one connection and
// is used only under the lock that guards that connection (SqliteStore::mu_).

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rampart::server {

// Maps a SQLite result code (primary or extended) to a canonical status:
//   SQLITE_BUSY_SNAPSHOT                -> kAborted (retry the transaction)
//   other SQLITE_BUSY, SQLITE_LOCKED    -> kUnavailable (another connection
//                                          held its lock past busy_timeout:
//                                          retry later)
//   SQLITE_CONSTRAINT_PRIMARYKEY/UNIQUE -> kAlreadyExists
//   other SQLITE_CONSTRAINT_*           -> kInvalidArgument
//   SQLITE_CANTOPEN, SQLITE_READONLY,
//   SQLITE_PERM, SQLITE_AUTH            -> kFailedPrecondition (the file
//                                          cannot be opened or written)
//   SQLITE_FULL                         -> kResourceExhausted (disk full)
//   anything else (SQLITE_IOERR_*, SQLITE_CORRUPT, SQLITE_NOTADB, ...)
//                                       -> kInternal
// The message names `context`, the SQLite error text (from `db` if it is
// non-null and still holds this error, else sqlite3_errstr) and the numeric
// code, e.g. "sqlite Commit: UNIQUE constraint failed: alerts.id (code 1555)".
// REQUIRES: rc is an error code (not SQLITE_OK, SQLITE_ROW or SQLITE_DONE).
absl::Status SqliteError(sqlite3* db, int rc, std::string_view context);

// Closes a connection; for std::unique_ptr<sqlite3, SqliteCloser>.
struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;

class SqliteStatement {
 public:
  // Prepares `sql`, which must be exactly one statement (trailing blanks
  // allowed), as a persistent statement on `db`. `sql` must outlive the
  // statement (a constexpr string). Returns the mapped SQLite error on
  // failure, or kInternal if `sql` has more than one statement.
  static absl::StatusOr<std::unique_ptr<SqliteStatement>> Prepare(
      sqlite3* db, const char* sql);

  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Parameters are numbered from 1 (?1 ... ?N in the SQL). A bind error
  // (e.g. index out of range) is remembered and returned by the next Step().
  // NOTE: text and blob values are bound WITHOUT a copy (SQLITE_STATIC): the
  // bytes must stay valid until the statement is reset.
  void BindInt64(int index, int64_t value);
  void BindDouble(int index, double value);
  void BindText(int index, std::string_view value);
  void BindBlob(int index, std::string_view bytes);
  void BindBlob(int index, const void* data, size_t size);
  void BindNull(int index);

  // Runs one step: true if a row is available, false when the statement is
  // done. On error returns SqliteError() with the statement's SQL as context.
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring any rows (for INSERT/UPDATE/DDL/PRAGMA).
  absl::Status Run();

  // Column reads of the current row; columns are numbered from 0.
  bool IsNull(int column) const;
  int64_t Int64(int column) const;
  double Double(int column) const;
  // Text or blob bytes exactly as stored (embedded NULs kept).
  std::string Bytes(int column) const;
  std::string_view BytesView(int column) const;

  // Rows changed by the last completed INSERT/UPDATE/DELETE on this
  // statement's connection.
  int64_t Changes() const;

  // Resets the statement (ending any implicit read it holds open) and clears
  // its bindings and remembered bind error.
  void Reset();

  const char* sql() const { return sql_; }

 private:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, const char* sql)
      : db_(db), stmt_(stmt), sql_(sql) {}
  void NoteBind(int rc, int index);

  sqlite3* const db_;
  sqlite3_stmt* const stmt_;
  const char* const sql_;
  absl::Status bind_error_;
};

// Resets a statement when it goes out of scope, so that no statement is left
// mid-way (an un-reset SELECT keeps a read transaction open, which pins the
// WAL and makes a later write on the same connection fail with
// SQLITE_BUSY_SNAPSHOT). Movable; does not own the statement.
class ScopedStatement {
 public:
  explicit ScopedStatement(SqliteStatement* statement)
      : statement_(statement) {}
  ScopedStatement(ScopedStatement&& other) noexcept
      : statement_(other.statement_) {
    other.statement_ = nullptr;
  }
  ScopedStatement& operator=(ScopedStatement&&) = delete;
  ~ScopedStatement() {
    if (statement_ != nullptr) {
      statement_->Reset();
    }
  }
  SqliteStatement* operator->() const { return statement_; }
  SqliteStatement& operator*() const { return *statement_; }

 private:
  SqliteStatement* statement_;
};

}  // namespace rampart::server
