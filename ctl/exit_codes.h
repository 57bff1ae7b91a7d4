#pragma once

// Process exit codes of rampartctl (docs/rampartctl.md "Exit codes"). Scripts
// rely on them: never renumber, only add.

namespace rampart::ctl {

enum ExitCode : int {
  // The command did what was asked.
  kExitOk = 0,
  // The server rejected the call (INVALID_ARGUMENT, FAILED_PRECONDITION,
  // ALREADY_EXISTS, ...), a call timed out on a reachable
  // server (the outcome of a change is then unknown), the server answered
  // something malformed, or output could not be written.
  kExitError = 1,
  // Bad command line or input file (unknown flag, invalid address, duration
  // or reason, unreadable or invalid import file). Nothing was sent.
  kExitUsage = 2,
  // The server could not be reached, or answered UNAVAILABLE (draining, store
  // down). Nothing was changed; retrying later is safe.
  kExitUnreachable = 3,
  // The ban, allowlist entry or agent named does not exist (NOT_FOUND).
  kExitNotFound = 4,
  // `import` committed, but some lines were rejected by the server (see the
  // per-line report).
  kExitPartial = 5,
  // The server refused the caller: no, an unknown or a revoked token
  // (UNAUTHENTICATED), or a role too weak for the command
  // (PERMISSION_DENIED). Nothing was changed.
  kExitDenied = 6,
};

}  // namespace rampart::ctl
