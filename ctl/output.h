#pragma once

// Rendering building blocks for rampartctl: aligned text tables, labelled
// fields, RFC 4180 CSV and JSON documents. Nothing here knows about protos
// (render.h does). Every cell of a Table or Fields block, and every text
// field of a CSV row, is passed through SanitizeForTerminal, so callers may
// hand in hostile server text unchanged.
// Thread-safety: the classes are not thread-safe; the functions are pure.

#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace rampart::ctl {

// JSON documents keep insertion order, so the output order is the documented
// order (docs/rampartctl.md "JSON output").
using Json = nlohmann::ordered_json;

// How a command prints its result.
enum class OutputFormat {
  kTable,  // aligned text for people (default)
  kJson,   // one JSON document (--json)
  kCsv,    // RFC 4180 (--csv, `report` only)
};

// Table is a left/right-aligned text table with an upper-case header row.
// Columns are separated by two spaces and padded to their widest cell; the
// last column is not padded, so free text (reasons) belongs there.
class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);

  // Adds a row. Missing trailing cells are empty; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // Writes the header and every row, each line ending in '\n'.
  void Render(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Fields is a block of "Label:  value" lines with values aligned.
class Fields {
 public:
  void Add(std::string_view label, std::string_view value);
  void Render(std::ostream& out) const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

// Writes one CSV record (RFC 4180: fields quoted when they contain a comma,
// quote, CR or LF; quotes doubled; CRLF line end). Fields are written as
// given: use CsvText for hostile text.
void WriteCsvRow(std::ostream& out, const std::vector<std::string>& fields);

// A hostile text field for CSV: sanitized (SanitizeForTerminal) and, if it
// starts with '=', '+', '-' or '@', prefixed with a single quote so that a
// spreadsheet does not evaluate it as a formula (OWASP "CSV injection").
std::string CsvText(std::string_view text);

// Writes `doc` as pretty-printed JSON (2-space indent) and a newline. Any
// invalid UTF-8 that slipped into a string is replaced by U+FFFD rather than
// failing the command.
void WriteJson(std::ostream& out, const Json& doc);

// Writes `doc` as one compact JSON line (for streams: JSON Lines).
void WriteJsonLine(std::ostream& out, const Json& doc);

}  // namespace rampart::ctl
