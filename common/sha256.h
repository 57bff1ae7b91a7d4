#pragma once

// SHA-256 and secret generation for credentials the server stores only as
// hashes (admin API tokens). Backed by OpenSSL's libcrypto.
// Thread-safety: pure functions, thread-safe.

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rampart {

// Lower-case hex SHA-256 of `data` (64 characters).
std::string Sha256Hex(std::string_view data);

// `bytes` bytes from the operating system's CSPRNG, as lower-case hex.
// Unavailable if the generator fails. REQUIRES: 1 <= bytes <= 1024.
absl::StatusOr<std::string> RandomHex(size_t bytes);

// Equality without an early exit, for comparing secrets or their hashes.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace rampart
