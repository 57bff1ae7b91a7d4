#pragma once

// The rampartctl command line: `rampartctl [--server HOST:PORT] [--json]
// [--timeout 10s] COMMAND ...` (docs/rampartctl.md). Parses and validates
// everything (addresses, durations, reasons, the import file) before any
// call is made, so a usage error never reaches the server; then connects and
// runs the command through AdminCommands.
// Thread-safety: RunCtl may be called concurrently (each call builds its own
// parser and channel).

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "rampart/v1/admin.grpc.pb.h"

namespace rampart::ctl {

// What rampartctl takes from its process environment. main() fills it in;
// library code never reads the environment itself (CONVENTIONS.md item 7).
struct CtlEnvironment {
  // $RAMPART_SERVER ("" if unset): the server when --server is not given
  // (default 127.0.0.1:7443 if both are missing).
  std::string server;
  // $RAMPART_TOKEN ("" if unset): the admin token when neither --token nor
  // --token-file is given.
  std::string token;
  // $RAMPART_CA_FILE, $RAMPART_CERT, $RAMPART_KEY ("" if unset): TLS
  // material when --ca-file / --cert / --key are not given.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // "Now" for relative times and for --since DURATION; null = the real
  // clock. Not owned.
  const Clock* clock = nullptr;
  // Standard input for `import -`; null = `-` is refused. Not owned.
  std::istream* in = nullptr;
};

// Runs one rampartctl invocation. `args` excludes the program name. Output
// goes to `out`, diagnostics to `err`. Returns the process exit code
// (exit_codes.h); never throws.
int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err, const CtlEnvironment& env = {});

// As RunCtl, but makes every call through `stub` instead of connecting to
// --server (which is still validated). For tests with mock stubs; an
// UNAVAILABLE status is then reported as "server unavailable".
int RunCtlWithStub(const std::vector<std::string>& args,
                   v1::AdminService::StubInterface& stub, std::ostream& out,
                   std::ostream& err, const CtlEnvironment& env = {});

}  // namespace rampart::ctl
