#include "server/store/sqlite_statement.h"

#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart::server {

absl::Status SqliteError(sqlite3* db, int rc, std::string_view context) {
  const int primary = rc & 0xff;
  const char* text = (db != nullptr && sqlite3_extended_errcode(db) == rc)
                         ? sqlite3_errmsg(db)
                         : sqlite3_errstr(rc);
  const std::string message = absl::StrFormat(
      "sqlite %s: %s (code %d)", Abbreviate(context, 120), text, rc);
  switch (primary) {
    case SQLITE_BUSY:
      if (rc == SQLITE_BUSY_SNAPSHOT) {
        // A read transaction's snapshot went stale before it could write:
        // waiting cannot help, the transaction must be retried.
        return absl::AbortedError(message);
      }
      return absl::UnavailableError(message);
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
          rc == SQLITE_CONSTRAINT_UNIQUE) {
        return absl::AlreadyExistsError(message);
      }
      return absl::InvalidArgumentError(message);
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::FailedPreconditionError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      // SQLITE_IOERR_*, SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_ERROR, ...
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::unique_ptr<SqliteStatement>> SqliteStatement::Prepare(
    sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  const int rc =
      sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return SqliteError(db, rc, sql);
  }
  for (; tail != nullptr && *tail != '\0'; ++tail) {
    if (!IsAsciiSpace(*tail) && *tail != ';') {
      sqlite3_finalize(stmt);
      return absl::InternalError(absl::StrFormat(
          "sqlite: more than one statement in \"%s\"", Abbreviate(sql, 120)));
    }
  }
  if (stmt == nullptr) {
    return absl::InternalError(absl::StrFormat("sqlite: no statement in \"%s\"",
                                               Abbreviate(sql, 120)));
  }
  return std::unique_ptr<SqliteStatement>(new SqliteStatement(db, stmt, sql));
}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

void SqliteStatement::NoteBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = SqliteError(
        db_, rc, absl::StrFormat("bind ?%d of \"%s\"", index, sql_));
  }
}

void SqliteStatement::BindInt64(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value), index);
}

void SqliteStatement::BindDouble(int index, double value) {
  NoteBind(sqlite3_bind_double(stmt_, index, value), index);
}

void SqliteStatement::BindText(int index, std::string_view value) {
  NoteBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                               SQLITE_STATIC, SQLITE_UTF8),
           index);
}

void SqliteStatement::BindBlob(int index, std::string_view bytes) {
  BindBlob(index, bytes.data(), bytes.size());
}

void SqliteStatement::BindBlob(int index, const void* data, size_t size) {
  // A zero-length blob must still be a blob, not NULL: sqlite3_bind_blob64
  // binds NULL for a null pointer, so point at a static byte instead.
  static constexpr char kEmpty = 0;
  NoteBind(sqlite3_bind_blob64(stmt_, index, size == 0 ? &kEmpty : data, size,
                               SQLITE_STATIC),
           index);
}

void SqliteStatement::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_, index), index);
}

absl::StatusOr<bool> SqliteStatement::Step() {
  if (!bind_error_.ok()) {
    return bind_error_;
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return SqliteError(db_, rc, sql_);
}

absl::Status SqliteStatement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) {
      return row.status();
    }
    if (!*row) {
      return absl::OkStatus();
    }
  }
}

bool SqliteStatement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t SqliteStatement::Int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

double SqliteStatement::Double(int column) const {
  return sqlite3_column_double(stmt_, column);
}

std::string_view SqliteStatement::BytesView(int column) const {
  // sqlite3_column_blob first, then sqlite3_column_bytes: the documented
  // safe order (no text conversion in between).
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) {
    return std::string_view();
  }
  return std::string_view(static_cast<const char*>(data),
                          static_cast<size_t>(size));
}

std::string SqliteStatement::Bytes(int column) const {
  return std::string(BytesView(column));
}

int64_t SqliteStatement::Changes() const { return sqlite3_changes64(db_); }

void SqliteStatement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = absl::OkStatus();
}

}  // namespace rampart::server
