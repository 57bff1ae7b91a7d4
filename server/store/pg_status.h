#pragma once

// Maps libpqxx exceptions to absl::Status (CONVENTIONS.md item 5). Only the
// PostgreSQL store includes this; no pqxx exception escapes it.
//
//   pqxx::broken_connection (incl. too_many_connections)  -> kUnavailable
//   pqxx::serialization_failure, pqxx::deadlock_detected  -> kAborted
//   pqxx::unique_violation                                -> kAlreadyExists
//   pqxx::in_doubt_error,
//   pqxx::statement_completion_unknown                    -> kUnknown
//   any other pqxx::sql_error                             -> kInternal
//                                                   (SQLSTATE in the message)
//   anything else (other pqxx::failure, usage/conversion
//   errors, std::exception)                               -> kInternal
//
// Thread-safety: a pure function.

#include <exception>
#include <string_view>

#include "absl/status/status.h"

namespace rampart::server {

// Returns the status for the exception in `error` (non-null), raised while
// doing `operation` (a short phrase such as "Commit"; it prefixes the
// message).
absl::Status StatusFromPqxxException(std::exception_ptr error,
                                     std::string_view operation);

}  // namespace rampart::server
