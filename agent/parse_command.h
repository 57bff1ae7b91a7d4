#pragma once

// `rampart-agent parse`: prints one JSON object per recognised line of each
// file, for operators checking what Rampart sees in their logs and for tests.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "agent/domino/domino_parser.h"

namespace rampart::agent {

struct ParseCommandOptions {
  DominoParserOptions parser;
  std::vector<std::string> files;
  // Print per-file counters to the error stream at the end.
  bool stats = false;
};

// Appends one JSON object (no newline) for a recognised line:
// {"line":N,"kind":...,"protocol":...,"ip":...,"user":...,"time":...,
//  "dedup":...} plus "file" when `file` is non-empty.
void AppendParsedLineJson(std::string* out, uint64_t line_number,
                          const ParsedLine& line, bool dedup,
                          std::string_view file);

// Runs the command: writes JSON lines to `out`, diagnostics to `err`.
// Every file is processed even if an earlier one cannot be read. Returns the
// process exit code: 0 if every file was read completely, 1 otherwise.
int RunParseCommand(const ParseCommandOptions& options, std::FILE* out,
                    std::FILE* err);

}  // namespace rampart::agent
