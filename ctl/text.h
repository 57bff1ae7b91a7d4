#pragma once

// Making hostile text safe to show. User names come verbatim from attackers'
// login attempts and reasons/comments from imports, so nothing the server
// sends is printed raw: a user name holding "\x1b]52;..." must not reach a
// terminal as an escape sequence. Thread-safety: pure functions.

#include <cstddef>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace rampart::ctl {

// Text for a table cell or CSV field: valid printable UTF-8 is copied;
// backslash becomes "\\"; C0 controls, DEL, C1 controls (U+0080..U+009F) and
// every byte not part of valid UTF-8 become "\xNN" (per byte); bidirectional
// overrides and isolates (U+202A..U+202E, U+2066..U+2069) become "\u{NNNN}".
// The result is valid UTF-8 without control characters.
std::string SanitizeForTerminal(std::string_view s);

// Text for a JSON string: valid UTF-8 is copied and every other byte is
// decoded as Latin-1 (legacy Domino code pages), like common/json_writer.h,
// so no byte is dropped and the result is valid UTF-8. JSON escaping of
// control characters is left to the JSON writer.
std::string BytesToUtf8(std::string_view s);

// Display width of sanitized text in terminal columns: the number of code
// points (East Asian wide characters are counted as one).
size_t DisplayWidth(std::string_view utf8);

}  // namespace rampart::ctl
