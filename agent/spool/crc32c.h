#pragma once

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
// spool records. A small byte-at-a-time table implementation: spool records
// are batches of at most a few megabytes, so speed is not a concern, and it
// keeps the agent free of a zlib/crc32c dependency (zlib's crc32 is the
// IEEE polynomial, not this one).
//
// Thread-safety: pure functions, thread-safe.

#include <cstdint>
#include <string_view>

namespace rampart::agent {

// Returns the CRC-32C of `data` appended to a stream whose CRC so far is
// `crc` (0 for a fresh stream). Crc32c(b, Crc32c(a)) == Crc32c(a + b).
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace rampart::agent
