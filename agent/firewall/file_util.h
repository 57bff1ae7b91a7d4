#pragma once

// POSIX file helpers for the enforcement layer: errno -> absl::Status and
// crash-safe whole-file replacement (enforced state, netsh scripts).
//
// Thread-safety: thread-safe (no shared state).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rampart::agent::firewall_internal {

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

// 64-bit FNV-1a of `data`: a stable checksum (same on every platform and
// run), for corruption detection and netsh chunk hashes; not cryptographic.
uint64_t Fnv1a64(std::string_view data);

}  // namespace rampart::agent::firewall_internal
