#pragma once

// IP addresses and prefixes, parsed strictly and printed canonically.
// Thread-safety: value types; const methods are safe to call concurrently.

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rampart {

// IpAddress holds an IPv4 or IPv6 address. IPv4 is stored in its IPv4-mapped
// IPv6 form (::ffff:a.b.c.d) so that ordering and prefix arithmetic work on
// one 128-bit representation; family() tells which it is.
class IpAddress {
 public:
  enum class Family : uint8_t { kV4 = 4, kV6 = 6 };

  // The unspecified IPv4 address 0.0.0.0.
  IpAddress() : IpAddress(V4(0)) {}

  static IpAddress V4(uint32_t host_order);
  static IpAddress V6(const std::array<uint8_t, 16>& bytes);

  // Parses and normalises `text`: IPv4 dotted quad (no leading zeros, every
  // octet <= 255) or any RFC 4291 IPv6 text form. A `%zone` suffix is
  // stripped and IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. Returns
  // nullopt for anything else, including masked addresses such as
  // `xxx.xxx.xxx.xxx`. Linear time; never reads past `text`.
  static std::optional<IpAddress> Parse(std::string_view text);

  // As Parse(), with an InvalidArgument status naming the input on failure.
  static absl::StatusOr<IpAddress> FromString(std::string_view text);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  bool is_v6() const { return family_ == Family::kV6; }
  // 128-bit representation (IPv4 in mapped form), network byte order.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  // REQUIRES: is_v4().
  uint32_t v4() const;
  // Address width in bits: 32 or 128.
  int bits() const { return is_v4() ? 32 : 128; }

  // Loopback: 127.0.0.0/8 or ::1.
  bool IsLoopback() const;
  // 0.0.0.0 or ::.
  bool IsUnspecified() const;

  // Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest run of
  // two or more zero groups compressed).
  std::string ToString() const;
  // Appends ToString() to `out` without a temporary.
  void AppendTo(std::string* out) const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend std::strong_ordering operator<=>(const IpAddress& a,
                                          const IpAddress& b) {
    if (auto c = a.bytes_ <=> b.bytes_; c != 0) {
      return c;
    }
    return a.family_ <=> b.family_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& ip) {
    return H::combine(std::move(h), ip.bytes_, ip.family_);
  }

 private:
  IpAddress(const std::array<uint8_t, 16>& bytes, Family family)
      : bytes_(bytes), family_(family) {}

  std::array<uint8_t, 16> bytes_;
  Family family_;
};

// IpPrefix is an address block (CIDR): an address with its host bits cleared
// and a prefix length (0..32 for IPv4, 0..128 for IPv6).
class IpPrefix {
 public:
  // Returns the block of `length` bits containing `addr`; `length` is
  // clamped to the family's width.
  static IpPrefix Of(const IpAddress& addr, int length);
  // The single-address block (/32 or /128).
  static IpPrefix Host(const IpAddress& addr) { return Of(addr, addr.bits()); }

  // Parses `a.b.c.d/n`, `x::y/n` or a bare address (a host prefix). Host bits
  // set below the prefix are an error ("198.51.100.7/24" is rejected) so that
  // a typo never widens a ban silently.
  static absl::StatusOr<IpPrefix> FromString(std::string_view text);

  const IpAddress& address() const { return address_; }
  int length() const { return length_; }
  bool is_host() const { return length_ == address_.bits(); }
  bool Contains(const IpAddress& addr) const;
  bool Contains(const IpPrefix& other) const;

  // "198.51.100.0/24"; a host prefix prints as the bare address.
  std::string ToString() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend std::strong_ordering operator<=>(const IpPrefix& a,
                                          const IpPrefix& b) {
    if (auto c = a.address_ <=> b.address_; c != 0) {
      return c;
    }
    return a.length_ <=> b.length_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const IpPrefix& p) {
    return H::combine(std::move(h), p.address_, p.length_);
  }

 private:
  IpPrefix(const IpAddress& address, int length)
      : address_(address), length_(length) {}

  IpAddress address_;
  int length_;
};

}  // namespace rampart
