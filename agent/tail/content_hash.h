#pragma once

// A stable 64-bit content hash (FNV-1a) for tail fingerprints and line
// records. Stable across processes and versions because it is persisted
// (absl::Hash is salted per process and must not be used here). Not
// collision-resistant against an adversary; the inputs are offsets into a
// log whose bytes an attacker controls only partly, and a collision costs
// at most a missed wrap detection or a delayed line.
//
// Thread-safety: pure functions, thread-safe.

#include <cstdint>
#include <string_view>

#include "common/hash.h"

namespace rampart::agent {

inline constexpr uint64_t kFnv64Offset = kFnv1a64Offset;

// FNV-1a of `data` (common/hash.h), continuing from `seed` (kFnv64Offset
// for a fresh hash).
inline uint64_t ContentHash64(std::string_view data,
                              uint64_t seed = kFnv64Offset) {
  return Fnv1a64(data, seed);
}

// 32-bit fold of ContentHash64, for the per-line records.
inline uint32_t ContentHash32(std::string_view data) {
  const uint64_t h = ContentHash64(data);
  return static_cast<uint32_t>(h ^ (h >> 32));
}

}  // namespace rampart::agent
