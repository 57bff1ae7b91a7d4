#include "agent/firewall/linux_network_address_source.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>

#include "common/file_util.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

// Whitespace-separated fields of one line.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsAsciiSpace(line[i])) {
      ++i;
    }
    const size_t start = i;
    while (i < line.size() && !IsAsciiSpace(line[i])) {
      ++i;
    }
    if (i > start) {
      out.push_back(line.substr(start, i - start));
    }
  }
  return out;
}

// Calls f(line) for every line of `text`.
template <typename F>
void ForEachLine(std::string_view text, F f) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) {
      break;
    }
    text.remove_prefix(nl + 1);
  }
}

bool ParseHex(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 16) {
    return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

bool ParseHex16(std::string_view s, std::array<uint8_t, 16>* out) {
  if (s.size() != 32) {
    return false;
  }
  for (size_t i = 0; i < 16; ++i) {
    uint64_t b = 0;
    if (!ParseHex(s.substr(2 * i, 2), &b)) {
      return false;
    }
    (*out)[i] = static_cast<uint8_t>(b);
  }
  return true;
}

// Reads `path`; a missing file is empty text.
absl::StatusOr<std::string> ReadOptional(const std::string& path) {
  absl::StatusOr<std::string> text =
      file_util::ReadFileBounded(path, kMaxFileBytes);
  if (absl::IsNotFound(text.status())) {
    return std::string();
  }
  if (!text.ok()) {
    return absl::UnavailableError(std::string(text.status().message()));
  }
  return text;
}

}  // namespace

std::vector<IpAddress> ParseProcNetRoute(std::string_view text) {
  constexpr uint64_t kRtfGateway = 0x2;
  std::vector<IpAddress> out;
  ForEachLine(text, [&](std::string_view line) {
    const std::vector<std::string_view> f = Fields(line);
    uint64_t dest = 0, gw = 0, flags = 0, mask = 0;
    if (f.size() < 8 || !ParseHex(f[1], &dest) || !ParseHex(f[2], &gw) ||
        !ParseHex(f[3], &flags) || !ParseHex(f[7], &mask)) {
      return;  // the header, or a malformed line
    }
    if (dest != 0 || mask != 0 || (flags & kRtfGateway) == 0 || gw == 0 ||
        gw > 0xffffffffu) {
      return;
    }
    // The kernel prints the network-order word as a host integer.
    out.push_back(IpAddress::V4(ntohl(static_cast<uint32_t>(gw))));
  });
  return out;
}

std::vector<IpAddress> ParseProcNetIpv6Route(std::string_view text) {
  std::vector<IpAddress> out;
  ForEachLine(text, [&](std::string_view line) {
    const std::vector<std::string_view> f = Fields(line);
    std::array<uint8_t, 16> dest{}, hop{};
    uint64_t plen = 0;
    if (f.size() < 5 || !ParseHex16(f[0], &dest) || !ParseHex(f[1], &plen) ||
        !ParseHex16(f[4], &hop)) {
      return;
    }
    if (plen != 0 || hop == std::array<uint8_t, 16>{}) {
      return;
    }
    out.push_back(IpAddress::V6(hop));
  });
  return out;
}

std::vector<IpAddress> ParseResolvConf(std::string_view text) {
  std::vector<IpAddress> out;
  ForEachLine(text, [&](std::string_view line) {
    const std::vector<std::string_view> f = Fields(line);
    if (f.size() < 2 || f[0] != "nameserver") {
      return;
    }
    std::string_view value = f[1];
    if (const size_t pct = value.find('%'); pct != std::string_view::npos) {
      value = value.substr(0, pct);
    }
    if (std::optional<IpAddress> ip = IpAddress::Parse(value)) {
      out.push_back(*ip);
    }
  });
  return out;
}

absl::StatusOr<std::vector<IpAddress>>
LinuxNetworkAddressSource::DefaultGateways() {
  absl::StatusOr<std::string> v4 = ReadOptional(paths_.route);
  if (!v4.ok()) {
    return v4.status();
  }
  absl::StatusOr<std::string> v6 = ReadOptional(paths_.ipv6_route);
  if (!v6.ok()) {
    return v6.status();
  }
  std::vector<IpAddress> out = ParseProcNetRoute(*v4);
  for (const IpAddress& a : ParseProcNetIpv6Route(*v6)) {
    out.push_back(a);
  }
  return out;
}

absl::StatusOr<std::vector<IpAddress>>
LinuxNetworkAddressSource::DnsResolvers() {
  absl::StatusOr<std::string> text = ReadOptional(paths_.resolv_conf);
  if (!text.ok()) {
    return text.status();
  }
  return ParseResolvConf(*text);
}

}  // namespace rampart::agent
