#include "common/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart {
namespace {

// Longest textual IPv6 address (with embedded IPv4) is 45 bytes.
constexpr size_t kMaxAddressText = 45;
// Zone identifiers (`%eth0`) are bounded so hostile input stays cheap.
constexpr size_t kMaxZoneText = 64;

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0,    0,
                                                     0, 0, 0, 0, 0xff, 0xff};

bool IsV4Mapped(const std::array<uint8_t, 16>& b) {
  return std::memcmp(b.data(), kV4MappedPrefix.data(), 12) == 0;
}

void AppendHex16(std::string* out, unsigned v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[4];
  int n = 0;
  for (int shift = 12; shift >= 0; shift -= 4) {
    unsigned nibble = (v >> shift) & 0xf;
    if (n == 0 && nibble == 0 && shift != 0) {
      continue;
    }
    buf[n++] = kHex[nibble];
  }
  out->append(buf, static_cast<size_t>(n));
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  std::array<uint8_t, 16> b{};
  std::memcpy(b.data(), kV4MappedPrefix.data(), 12);
  b[12] = static_cast<uint8_t>(host_order >> 24);
  b[13] = static_cast<uint8_t>(host_order >> 16);
  b[14] = static_cast<uint8_t>(host_order >> 8);
  b[15] = static_cast<uint8_t>(host_order);
  return IpAddress(b, Family::kV4);
}

IpAddress IpAddress::V6(const std::array<uint8_t, 16>& bytes) {
  return IpAddress(bytes, IsV4Mapped(bytes) ? Family::kV4 : Family::kV6);
}

uint32_t IpAddress::v4() const {
  return (uint32_t{bytes_[12]} << 24) | (uint32_t{bytes_[13]} << 16) |
         (uint32_t{bytes_[14]} << 8) | uint32_t{bytes_[15]};
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText + 1 + kMaxZoneText) {
    return std::nullopt;
  }
  bool v6 = text.find(':') != std::string_view::npos;
  if (v6) {
    if (size_t pct = text.find('%'); pct != std::string_view::npos) {
      if (pct + 1 == text.size()) {
        return std::nullopt;  // "fe80::1%" has an empty zone
      }
      text = text.substr(0, pct);
    }
  }
  if (text.size() > kMaxAddressText) {
    return std::nullopt;
  }
  char buf[kMaxAddressText + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (!v6) {
    in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) != 1) {
      return std::nullopt;
    }
    return V4(ntohl(a4.s_addr));
  }
  std::array<uint8_t, 16> b;
  if (inet_pton(AF_INET6, buf, b.data()) != 1) {
    return std::nullopt;
  }
  return V6(b);
}

absl::StatusOr<IpAddress> IpAddress::FromString(std::string_view text) {
  if (auto ip = Parse(text); ip.has_value()) {
    return *ip;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "not a valid IPv4 or IPv6 address: \"%s\"", Abbreviate(text)));
}

bool IpAddress::IsLoopback() const {
  if (is_v4()) {
    return bytes_[12] == 127;
  }
  static constexpr std::array<uint8_t, 16> kLoop = {0, 0, 0, 0, 0, 0, 0, 0,
                                                    0, 0, 0, 0, 0, 0, 0, 1};
  return bytes_ == kLoop;
}

bool IpAddress::IsUnspecified() const {
  if (is_v4()) {
    return v4() == 0;
  }
  static constexpr std::array<uint8_t, 16> kZero = {};
  return bytes_ == kZero;
}

std::string IpAddress::ToString() const {
  std::string s;
  AppendTo(&s);
  return s;
}

void IpAddress::AppendTo(std::string* out) const {
  if (is_v4()) {
    absl::StrAppend(out, bytes_[12], ".", bytes_[13], ".", bytes_[14], ".",
                    bytes_[15]);
    return;
  }
  unsigned groups[8];
  for (int i = 0; i < 8; ++i) {
    groups[i] = (unsigned{bytes_[2 * i]} << 8) | bytes_[2 * i + 1];
  }
  // RFC 5952 4.2: compress the longest run (first on ties) of >= 2 zeros.
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0) {
      ++j;
    }
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) {
    best = -1;
  }
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out->append("::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) {
      out->push_back(':');
    }
    AppendHex16(out, groups[i]);
  }
}

IpPrefix IpPrefix::Of(const IpAddress& addr, int length) {
  const int width = addr.bits();
  if (length < 0) {
    length = 0;
  }
  if (length > width) {
    length = width;
  }
  std::array<uint8_t, 16> b = addr.bytes();
  // Bit position in the 128-bit form where host bits start.
  const int keep = (128 - width) + length;
  for (int i = 0; i < 16; ++i) {
    const int bit0 = i * 8;
    if (bit0 >= keep) {
      b[i] = 0;
    } else if (bit0 + 8 > keep) {
      b[i] &= static_cast<uint8_t>(0xff << (8 - (keep - bit0)));
    }
  }
  return IpPrefix(addr.is_v4() ? IpAddress::V4((uint32_t{b[12]} << 24) |
                                               (uint32_t{b[13]} << 16) |
                                               (uint32_t{b[14]} << 8) | b[15])
                               : IpAddress::V6(b),
                  length);
}

absl::StatusOr<IpPrefix> IpPrefix::FromString(std::string_view text) {
  size_t slash = text.find('/');
  absl::StatusOr<IpAddress> addr = IpAddress::FromString(text.substr(0, slash));
  if (!addr.ok()) {
    return addr.status();
  }
  if (slash == std::string_view::npos) {
    return Host(*addr);
  }
  std::string_view len_text = text.substr(slash + 1);
  int length = 0;
  bool digits_ok = !len_text.empty() && len_text.size() <= 3;
  for (char c : len_text) {
    digits_ok = digits_ok && c >= '0' && c <= '9';
    if (!digits_ok) {
      break;  // never accumulate non-digits (signed overflow on long input)
    }
    length = length * 10 + (c - '0');
  }
  if (!digits_ok || length > addr->bits()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid prefix length in \"%s\": must be 0..%d",
                        Abbreviate(text), addr->bits()));
  }
  IpPrefix p = Of(*addr, length);
  if (p.address() != *addr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"%s\" has host bits set; did you mean %s?",
                        Abbreviate(text), p.ToString()));
  }
  return p;
}

bool IpPrefix::Contains(const IpAddress& addr) const {
  if (addr.family() != address_.family()) {
    return false;
  }
  return Of(addr, length_).address_ == address_;
}

bool IpPrefix::Contains(const IpPrefix& other) const {
  return other.length_ >= length_ && Contains(other.address_);
}

std::string IpPrefix::ToString() const {
  std::string s = address_.ToString();
  if (!is_host()) {
    absl::StrAppend(&s, "/", length_);
  }
  return s;
}

}  // namespace rampart
