#pragma once

// `rampart-agent enroll`: trades a one-time token (from `rampartctl agents
// enroll NAME`) for the agent's client certificate (docs/security.md):
// generates an ECDSA P-256 key and a CSR with CN = agent id, calls
// EnrollmentService.Enroll over TLS (server verified against --ca-file; no
// client certificate yet) and writes into <state_dir>/tls/:
//   agent.key  the private key (0600; it never leaves the host)
//   agent.pem  the certificate chain
//   ca.pem     the CA bundle the server returned (trust for `run`)
// which is where `rampart-agent run` looks by default.
// Thread-safety: call from one thread.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::agent {

struct EnrollCommandOptions {
  std::string server;   // HOST:PORT
  std::string ca_file;  // PEM bundle that signed the server certificate
  std::string token;    // the one-time token (--token; visible in ps)
  // --token-file: a file whose first line is the token, or "-" for stdin.
  // Exactly one of token / token_file must be given.
  std::string token_file;
  std::string agent_id;  // must match the token's agent
  std::string state_dir = "/var/lib/rampart-agent";
  absl::Duration timeout = absl::Seconds(30);
};

// The token `options` name: `token`, or the first line of `token_file`
// ("-": standard input), surrounding whitespace stripped. kInvalidArgument
// if neither or both are given, the file cannot be read, or the token is
// not 1..128 bytes of printable ASCII. Reads at most 4 KiB.
absl::StatusOr<std::string> ResolveEnrollToken(
    const EnrollCommandOptions& options);

// Returns OK once the three files are written; the gRPC status of a refused
// enrollment (UNAUTHENTICATED: bad token, ...) with the server's message.
absl::Status RunEnrollCommand(const EnrollCommandOptions& options);

}  // namespace rampart::agent
