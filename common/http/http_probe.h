#pragma once

// ProbeHttp: the client side of the HTTP side port, for
// `rampart-server healthcheck` (the container HEALTHCHECK: the slim runtime
// image has no curl). One GET with a bounded connect and read timeout; only
// a 200 answer is healthy.
//
// Thread-safety: a pure function over its own connection.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace rampart::http {

// The address a local probe should use for a listening address: a wildcard
// listen host (0.0.0.0, ::, empty) becomes the loopback of its family.
std::string ProbeHostFor(std::string_view listen_host);

// GETs http://HOST:PORT/PATH (host without brackets, IPv6 allowed) and
// returns OK for status 200, Unavailable naming the address and the reason
// (connection refused, timeout, status and first line of the body)
// otherwise. `path` must start with '/'. `timeout` bounds the connect and
// the read separately.
absl::Status ProbeHttp(std::string_view host, int port, std::string_view path,
                       absl::Duration timeout);

}  // namespace rampart::http
