#pragma once

// Minimal JSON *output* helpers for line-oriented, hot-path output (the
// `parse` CLI prints millions of objects). Reading JSON uses nlohmann_json.

#include <string>
#include <string_view>

namespace rampart {

// Appends `s` to `out` as a quoted JSON string. Input bytes are hostile: valid
// UTF-8 is copied through; control characters, `"` and `\` are escaped; every
// byte that is not part of a valid UTF-8 sequence is decoded as Latin-1
// (legacy Domino code pages), so the output is always valid UTF-8 JSON and no
// byte is silently dropped. Linear time.
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace rampart
