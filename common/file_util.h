#pragma once

// Small POSIX file helpers shared by the agent's tailer, spool and
// enforcement layer: errno -> absl::Status, crash-safe whole-file
// replacement, bounded reads, directory fsync, a stable checksum.
//
// Thread-safety: thread-safe (no shared state).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rampart::file_util {

// "<what> <path>: <strerror>" with ENOENT -> NotFound, EACCES/EPERM/EROFS ->
// PermissionDenied, ENOSPC/EDQUOT -> ResourceExhausted, else Unavailable.
absl::Status ErrnoStatus(int err, std::string_view what, std::string_view path);

// Creates `dir` and its parents (mode 0750) if missing.
absl::Status MakeDirs(const std::string& dir);

// Replaces `path` by `contents` atomically: writes `path`.tmp in the same
// directory, fsyncs it (when `sync`), renames it over `path`, then fsyncs the
// directory (when `sync`). Readers see the old or the new file, never a mix.
absl::Status WriteFileAtomically(const std::string& path,
                                 std::string_view contents, bool sync);

// The whole file; NotFound if it does not exist, DataLoss if it is larger
// than `max_bytes`.
absl::StatusOr<std::string> ReadFileBounded(const std::string& path,
                                            size_t max_bytes);

// Reads a whole file of at most `max_bytes` into `*contents`. NotFound if
// it does not exist, DataLoss if it is larger than max_bytes.
absl::Status ReadSmallFile(const std::string& path, size_t max_bytes,
                           std::string* contents);

// fsyncs the directory `dir` so that creations, renames and unlinks in it
// are durable.
absl::Status SyncDir(const std::string& dir);

// Writes all of `data` to `fd` at its file position, retrying short writes
// and EINTR. `path` is only used in error messages.
absl::Status WriteAll(int fd, std::string_view data, std::string_view path);

}  // namespace rampart::file_util
