#pragma once

// Small helpers on IpPrefix for containers ordered by prefix (std::map,
// absl::btree_map): a prefix's last address, and the key range of the
// prefixes it contains.
//
// IpPrefix orders by address (IPv4 in its mapped form, so all IPv4 sorts
// together), then by length. So the prefixes inside P are exactly those with
// P.address() <= Q.address() <= LastAddress(P), the same family and
// Q.length() >= P.length(); a covering prefix of P is Of(P.address(), l) for
// some l < P.length().
//
// Thread-safety: pure functions.

#include <array>

#include "common/ip_address.h"

namespace rampart::agent {

// The highest address of `p` (host bits all ones).
inline IpAddress LastAddress(const IpPrefix& p) {
  std::array<uint8_t, 16> b = p.address().bytes();
  const int keep = (128 - p.address().bits()) + p.length();
  for (int i = 0; i < 16; ++i) {
    const int bit0 = i * 8;
    if (bit0 >= keep) {
      b[i] = 0xff;
    } else if (bit0 + 8 > keep) {
      b[i] |= static_cast<uint8_t>(0xff >> (keep - bit0));
    }
  }
  return IpAddress::V6(b);
}

// True if one of `a`, `b` contains the other (CIDR blocks either nest or are
// disjoint).
inline bool Overlaps(const IpPrefix& a, const IpPrefix& b) {
  return a.Contains(b) || b.Contains(a);
}

// Index 0 for IPv4, 1 for IPv6: for per-family arrays.
inline int FamilyIndex(const IpAddress& a) { return a.is_v4() ? 0 : 1; }

}  // namespace rampart::agent
