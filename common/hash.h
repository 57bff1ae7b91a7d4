#pragma once

// 64-bit FNV-1a: a stable, non-cryptographic hash (the same on every
// platform, run and version, unlike absl::Hash, which is salted per
// process), for values that are persisted or compared across processes:
// checksums of the agent's state files, netsh chunk names, tail
// fingerprints, paging-token fingerprints and import batch ids. Not
// collision-resistant against an adversary.
//
// Thread-safety: pure functions, thread-safe.

#include <cstdint>
#include <string_view>

namespace rampart {

inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ull;
inline constexpr uint64_t kFnv1a64Prime = 0x100000001b3ull;

// FNV-1a of `data`, continuing from `seed` (kFnv1a64Offset, the default,
// for a fresh hash): Fnv1a64(b, Fnv1a64(a)) == Fnv1a64(a + b).
constexpr uint64_t Fnv1a64(std::string_view data,
                           uint64_t seed = kFnv1a64Offset) {
  uint64_t h = seed;
  for (const char c : data) {
    h ^= static_cast<uint8_t>(c);
    h *= kFnv1a64Prime;
  }
  return h;
}

}  // namespace rampart
