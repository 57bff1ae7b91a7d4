#include "ctl/import_file.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/ip_address.h"
#include "common/strings.h"
#include "ctl/text.h"

namespace rampart::ctl {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// The columns `export --format csv` writes; the only ones accepted.
constexpr std::array<std::string_view, 8> kCsvColumns = {
    "id",     "prefix", "created_at",       "expires_at",
    "origin", "scope",  "escalation_level", "reason"};

constexpr std::array<std::string_view, 4> kScopes = {"all_ports", "mail",
                                                     "directory", "web"};

// Collects per-line errors up to the reporting limit.
class ErrorSink {
 public:
  ErrorSink(ImportFile* file, size_t max_reported)
      : file_(file), max_reported_(max_reported) {}

  void Add(uint32_t line, std::string message) {
    ++file_->error_count;
    if (file_->errors.size() < max_reported_) {
      file_->errors.push_back({line, std::move(message)});
    }
  }

 private:
  ImportFile* file_;
  size_t max_reported_;
};

// Splits `text` into physical lines (without "\n" and a trailing "\r").
std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = text.substr(start, end - start);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

// Checks what every line of either format must satisfy: bounded length,
// valid UTF-8, no control characters other than tab. Returns false (after
// reporting) if the line fails.
bool CheckPhysicalLine(uint32_t number, std::string_view line,
                       const ImportFileLimits& limits, ErrorSink& errors) {
  if (line.size() > limits.max_line_bytes) {
    errors.Add(number, absl::StrFormat("line is %d bytes long; at most %d",
                                       line.size(), limits.max_line_bytes));
    return false;
  }
  if (!IsValidUtf8(line)) {
    errors.Add(number, "not valid UTF-8");
    return false;
  }
  for (size_t i = 0; i < line.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      errors.Add(number, absl::StrFormat("control character 0x%02x at column "
                                         "%d",
                                         c, i + 1));
      return false;
    }
  }
  return true;
}

// Validates an address field; on success returns the canonical prefix.
std::optional<std::string> CheckPrefix(uint32_t number, std::string_view text,
                                       ErrorSink& errors) {
  absl::StatusOr<IpPrefix> prefix = IpPrefix::FromString(text);
  if (!prefix.ok()) {
    errors.Add(number, std::string(prefix.status().message()));
    return std::nullopt;
  }
  return prefix->ToString();
}

bool CheckReason(uint32_t number, std::string_view reason,
                 const ImportFileLimits& limits, ErrorSink& errors) {
  if (reason.size() > limits.max_reason_bytes) {
    errors.Add(number, absl::StrFormat("reason is %d bytes long; at most %d",
                                       reason.size(), limits.max_reason_bytes));
    return false;
  }
  return true;
}

void ParsePlain(const std::vector<std::string_view>& lines,
                const ImportFileLimits& limits, ImportFile& file,
                ErrorSink& errors) {
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto number = static_cast<uint32_t>(i + 1);
    const std::string_view line = lines[i];
    const size_t hash = line.find('#');
    const std::string_view address = StripWhitespace(line.substr(0, hash));
    const std::string_view reason =
        hash == std::string_view::npos ? std::string_view()
                                       : StripWhitespace(line.substr(hash + 1));
    if (address.empty()) {
      continue;  // blank or comment-only
    }
    if (std::any_of(address.begin(), address.end(), IsAsciiSpace)) {
      errors.Add(number, absl::StrFormat("expected one IP or CIDR, optionally "
                                         "followed by \"# reason\"; got \"%s\"",
                                         Abbreviate(address, 60)));
      continue;
    }
    std::optional<std::string> prefix = CheckPrefix(number, address, errors);
    if (!prefix.has_value() || !CheckReason(number, reason, limits, errors)) {
      continue;
    }
    file.entries.push_back({.line = number,
                            .prefix = *std::move(prefix),
                            .reason = std::string(reason)});
  }
}

// One CSV record and the line it starts on.
struct CsvRecord {
  uint32_t line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 reader over the whole text. Quoted fields may span lines; CRLF
// and LF line ends are accepted. A malformed record is reported and the
// reader resynchronises at the next line.
class CsvReader {
 public:
  CsvReader(std::string_view text, const ImportFileLimits& limits,
            ErrorSink& errors)
      : text_(text), limits_(limits), errors_(errors) {}

  // Reads the next well-formed record; returns false at the end of text.
  bool Next(CsvRecord* record) {
    while (pos_ < text_.size()) {
      if (ReadRecord(record)) {
        return true;
      }
    }
    return false;
  }

 private:
  // Reads one record starting at pos_. Returns false if it was malformed
  // (reported; pos_ is moved past the offending line) or blank.
  bool ReadRecord(CsvRecord* record) {
    record->line = line_;
    record->fields.assign(1, std::string());
    const size_t start = pos_;
    bool in_quotes = false;
    bool after_quote = false;
    while (pos_ < text_.size()) {
      if (pos_ - start > limits_.max_line_bytes) {
        return Fail(record->line, absl::StrFormat("record longer than %d bytes",
                                                  limits_.max_line_bytes));
      }
      const char c = text_[pos_];
      std::string& field = record->fields.back();
      if (in_quotes) {
        if (c == '"') {
          if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
            field.push_back('"');
            pos_ += 2;
          } else {
            in_quotes = false;
            after_quote = true;
            ++pos_;
          }
          continue;
        }
        if (c == '\n') {
          ++line_;
        }
        field.push_back(c);
        ++pos_;
        continue;
      }
      if (c == ',') {
        record->fields.emplace_back();
        after_quote = false;
        ++pos_;
      } else if (c == '\n' || (c == '\r' && pos_ + 1 < text_.size() &&
                               text_[pos_ + 1] == '\n')) {
        pos_ += c == '\r' ? 2 : 1;
        ++line_;
        break;
      } else if (c == '"') {
        if (!field.empty() || after_quote) {
          return Fail(record->line, "quote inside an unquoted field");
        }
        in_quotes = true;
        ++pos_;
      } else {
        if (after_quote) {
          return Fail(record->line, "text after a closing quote");
        }
        field.push_back(c);
        ++pos_;
      }
    }
    if (in_quotes) {
      return Fail(record->line, "unterminated quoted field");
    }
    // A blank line is no record.
    return !(record->fields.size() == 1 &&
             StripWhitespace(record->fields[0]).empty() && !after_quote);
  }

  // Reports `message` and skips to the start of the next physical line.
  bool Fail(uint32_t line, std::string message) {
    errors_.Add(line, std::move(message));
    const size_t nl = text_.find('\n', pos_);
    pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
    // Recount: a quoted field may have consumed newlines already.
    line_ = 1 + static_cast<uint32_t>(
                    std::count(text_.begin(), text_.begin() + pos_, '\n'));
    return false;
  }

  std::string_view text_;
  const ImportFileLimits& limits_;
  ErrorSink& errors_;
  size_t pos_ = 0;
  uint32_t line_ = 1;
};

// Maps header columns to their index; InvalidArgument for a bad header.
absl::StatusOr<std::vector<std::string>> ParseCsvHeader(
    const CsvRecord& header) {
  std::vector<std::string> columns;
  for (const std::string& raw : header.fields) {
    std::string name = AsciiLower(StripWhitespace(raw));
    if (std::find(kCsvColumns.begin(), kCsvColumns.end(), name) ==
        kCsvColumns.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "line %d: unknown CSV column \"%s\" (expected a header of "
          "id,prefix,created_at,expires_at,origin,scope,escalation_level,"
          "reason; only prefix is required)",
          header.line, Abbreviate(SanitizeForTerminal(raw), 40)));
    }
    if (std::find(columns.begin(), columns.end(), name) != columns.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "line %d: duplicate CSV column \"%s\"", header.line, name));
    }
    columns.push_back(std::move(name));
  }
  if (std::find(columns.begin(), columns.end(), "prefix") == columns.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "line %d: the CSV header has no \"prefix\" column", header.line));
  }
  return columns;
}

absl::Status ParseCsv(std::string_view text, const ImportFileLimits& limits,
                      ImportFile& file, ErrorSink& errors) {
  CsvReader reader(text, limits, errors);
  CsvRecord record;
  if (!reader.Next(&record)) {
    if (file.error_count > 0) {
      return absl::OkStatus();  // the header line itself was malformed
    }
    return absl::InvalidArgumentError("the CSV file has no header line");
  }
  absl::StatusOr<std::vector<std::string>> columns = ParseCsvHeader(record);
  if (!columns.ok()) {
    return columns.status();
  }
  while (reader.Next(&record)) {
    const uint32_t number = record.line;
    if (record.fields.size() != columns->size()) {
      errors.Add(number,
                 absl::StrFormat("%d fields; the header has %d",
                                 record.fields.size(), columns->size()));
      continue;
    }
    ImportFileEntry entry{.line = number};
    bool ok = true;
    for (size_t i = 0; i < columns->size() && ok; ++i) {
      const std::string& column = (*columns)[i];
      const std::string_view value = StripWhitespace(record.fields[i]);
      if (column == "prefix") {
        if (value.empty()) {
          errors.Add(number, "empty prefix");
          ok = false;
        } else if (auto p = CheckPrefix(number, value, errors); p) {
          entry.prefix = *std::move(p);
        } else {
          ok = false;
        }
      } else if (column == "expires_at" && !value.empty()) {
        absl::Time t;
        std::string why;
        if (!absl::ParseTime(absl::RFC3339_full, ToAbsl(value), &t, &why)) {
          errors.Add(number,
                     absl::StrFormat("expires_at \"%s\" is not an RFC 3339 "
                                     "time (e.g. 2025-01-31T12:00:00Z)",
                                     Abbreviate(value, 40)));
          ok = false;
        } else {
          entry.expires_at = t;
        }
      } else if (column == "scope" && !value.empty()) {
        if (std::find(kScopes.begin(), kScopes.end(), value) == kScopes.end()) {
          errors.Add(number,
                     absl::StrFormat("unknown scope \"%s\" (all_ports, mail, "
                                     "directory or web)",
                                     Abbreviate(value, 40)));
          ok = false;
        }
      } else if (column == "reason") {
        ok = CheckReason(number, value, limits, errors);
        entry.reason = std::string(value);
      }
    }
    if (ok) {
      file.entries.push_back(std::move(entry));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ImportFileFormat DetectImportFormat(std::string_view text) {
  ConsumePrefix(&text, kUtf8Bom);
  for (std::string_view line : SplitLines(text)) {
    line = StripWhitespace(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    size_t start = 0;
    while (start <= line.size()) {
      size_t comma = line.find(',', start);
      if (comma == std::string_view::npos) {
        comma = line.size();
      }
      std::string_view name =
          StripWhitespace(line.substr(start, comma - start));
      if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
        name = name.substr(1, name.size() - 2);
      }
      if (AsciiLower(name) == "prefix") {
        return ImportFileFormat::kCsv;
      }
      start = comma + 1;
    }
    return ImportFileFormat::kPlain;
  }
  return ImportFileFormat::kPlain;
}

absl::StatusOr<ImportFile> ParseImportFile(std::string_view text,
                                           ImportFileFormat format,
                                           const ImportFileLimits& limits) {
  ConsumePrefix(&text, kUtf8Bom);
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the file is %d bytes; one import takes at most %d bytes (split the "
        "list into several files)",
        text.size(), limits.max_bytes));
  }
  const std::vector<std::string_view> lines = SplitLines(text);
  if (lines.size() > limits.max_lines) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the file has %d lines; one import takes at most %d",
                        lines.size(), limits.max_lines));
  }
  ImportFile file{.format = format, .text = std::string(text)};
  ErrorSink errors(&file, limits.max_reported_errors);
  for (size_t i = 0; i < lines.size(); ++i) {
    CheckPhysicalLine(static_cast<uint32_t>(i + 1), lines[i], limits, errors);
  }
  if (file.error_count > 0) {
    // Line boundaries or encoding are broken; parsing further would only
    // produce follow-on errors.
    return file;
  }
  if (format == ImportFileFormat::kPlain) {
    ParsePlain(lines, limits, file, errors);
  } else if (absl::Status s = ParseCsv(file.text, limits, file, errors);
             !s.ok()) {
    return s;
  }
  return file;
}

}  // namespace rampart::ctl
