#include "server/store/pg_status.h"

#include <pqxx/except>

#include "absl/strings/str_format.h"

namespace rampart::server {

absl::Status StatusFromPqxxException(std::exception_ptr error,
                                     std::string_view operation) {
  try {
    std::rethrow_exception(error);
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(
        absl::StrFormat("%s: PostgreSQL connection: %s", operation, e.what()));
  } catch (const pqxx::serialization_failure& e) {
    return absl::AbortedError(
        absl::StrFormat("%s: serialization failure: %s", operation, e.what()));
  } catch (const pqxx::deadlock_detected& e) {
    return absl::AbortedError(
        absl::StrFormat("%s: deadlock detected: %s", operation, e.what()));
  } catch (const pqxx::unique_violation& e) {
    return absl::AlreadyExistsError(
        absl::StrFormat("%s: unique violation (SQLSTATE %s): %s", operation,
                        e.sqlstate(), e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    return absl::UnknownError(absl::StrFormat(
        "%s: commit outcome unknown, re-read before retrying: %s", operation,
        e.what()));
  } catch (const pqxx::statement_completion_unknown& e) {
    return absl::UnknownError(absl::StrFormat(
        "%s: statement outcome unknown, re-read before retrying: %s", operation,
        e.what()));
  } catch (const pqxx::sql_error& e) {
    return absl::InternalError(absl::StrFormat(
        "%s: SQLSTATE %s: %s", operation,
        e.sqlstate().empty() ? "?????" : e.sqlstate(), e.what()));
  } catch (const pqxx::transaction_rollback& e) {
    // libpqxx 6.4 does not carry the SQLSTATE here; class 40 other than
    // 40001/40P01/40003 (e.g. 40002, a deferred constraint at COMMIT).
    return absl::InternalError(absl::StrFormat(
        "%s: SQLSTATE 40xxx transaction rolled back: %s", operation, e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrFormat("%s: PostgreSQL client: %s", operation, e.what()));
  } catch (...) {
    return absl::InternalError(
        absl::StrFormat("%s: unknown exception", operation));
  }
}

}  // namespace rampart::server
