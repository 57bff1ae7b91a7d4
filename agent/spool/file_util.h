#pragma once

// Small POSIX file helpers for the spool: errno -> absl::Status mapping and
// crash-safe whole-file replacement.
//
// Thread-safety: thread-safe (no shared state).

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace rampart::agent::spool_internal {

// Maps `err` (an errno value) to a status whose message is
// "<what> <path>: <strerror>": ENOENT -> NotFound, EACCES/EPERM ->
// PermissionDenied, ENOSPC/EDQUOT -> ResourceExhausted, else Unavailable.
absl::Status ErrnoStatus(int err, std::string_view what, std::string_view path);

// Writes `contents` to `path` atomically: a temporary file in the same
// directory is written, fsynced (when `sync`), renamed over `path`, and the
// directory is fsynced (when `sync`). Readers see the old or the new file,
// never a mix.
absl::Status WriteFileAtomically(const std::string& path,
                                 std::string_view contents, bool sync);

// Reads a whole file of at most `max_bytes`. NotFound if it does not exist,
// DataLoss if it is larger than max_bytes.
absl::Status ReadSmallFile(const std::string& path, size_t max_bytes,
                           std::string* contents);

// fsyncs the directory `dir` so that creations, renames and unlinks in it
// are durable.
absl::Status SyncDir(const std::string& dir);

// Writes all of `data` to `fd` at its file position, retrying short writes
// and EINTR. `path` is only used in error messages.
absl::Status WriteAll(int fd, std::string_view data, std::string_view path);

}  // namespace rampart::agent::spool_internal
