#pragma once

// Parsing and validating the file given to `rampartctl import` before
// anything is sent. The file is hostile input (lists downloaded from threat
// feeds, spreadsheets): sizes are bounded, every problem is reported with
// its 1-based line number, and addresses are validated with IpPrefix so a
// typo never reaches the server. The server re-validates everything.
// Thread-safety: pure functions.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::ctl {

// The two formats of ImportRequest (admin.proto ImportFormat).
enum class ImportFileFormat {
  // `<ip-or-cidr> [# reason]` per line; blank and comment-only lines skipped.
  kPlain,
  // RFC 4180 CSV with a header naming at least `prefix`; columns as written
  // by `export --format csv`: id, prefix, created_at, expires_at, origin,
  // scope, escalation_level, reason.
  kCsv,
};

// Bounds applied while parsing; defaults match the server's limits.
struct ImportFileLimits {
  // Largest file: ImportRequest.text is at most 3 MiB.
  size_t max_bytes = 3 * 1024 * 1024;
  // Longest line (or CSV record), in bytes without the line end.
  size_t max_line_bytes = 4096;
  // Most lines, blank and comment lines included.
  size_t max_lines = 500000;
  // Longest reason, in bytes (BanEntry.reason).
  size_t max_reason_bytes = 256;
  // Most per-line errors kept in ImportFile::errors (all are counted).
  size_t max_reported_errors = 20;
};

// One address to ban, as found in the file.
struct ImportFileEntry {
  // 1-based line where the line / record starts.
  uint32_t line = 0;
  // Canonical prefix text (a host prefix prints as a bare address).
  std::string prefix;
  // Reason from the line (text after '#', or the CSV `reason` column);
  // empty if none.
  std::string reason;
  // CSV `expires_at`, if given.
  std::optional<absl::Time> expires_at;
};

// A problem with one line.
struct ImportFileError {
  uint32_t line = 0;
  std::string message;
};

// A parsed file. It may be sent only if error_count == 0.
struct ImportFile {
  ImportFileFormat format = ImportFileFormat::kPlain;
  // The text to send: the input with a leading UTF-8 byte order mark
  // removed, otherwise unchanged, so the server's line numbers are the
  // file's line numbers.
  std::string text;
  // Every valid address line, in file order.
  std::vector<ImportFileEntry> entries;
  // The first `max_reported_errors` problems, in line order.
  std::vector<ImportFileError> errors;
  // All problems found.
  size_t error_count = 0;
};

// Returns kCsv if the first line that is neither blank nor a '#' comment is
// a CSV header naming a `prefix` column, kPlain otherwise.
ImportFileFormat DetectImportFormat(std::string_view text);

// Parses `text` as `format`. Returns the file with per-line problems in
// errors/error_count; returns InvalidArgument, naming the limit or line, for
// problems that make the whole file unusable: more than max_bytes or
// max_lines, or (CSV) a missing, duplicate or unknown header column.
absl::StatusOr<ImportFile> ParseImportFile(std::string_view text,
                                           ImportFileFormat format,
                                           const ImportFileLimits& limits = {});

}  // namespace rampart::ctl
