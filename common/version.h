#pragma once

#include <string_view>

namespace rampart {

// Rampart release version, shared by all binaries and reported to the server.
inline constexpr std::string_view kVersion = "0.1.0";

}  // namespace rampart
