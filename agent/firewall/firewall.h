#pragma once

// Firewall: the agent's enforcement backends behind one interface
// (docs/agent.md, "Enforcement").
//
// A backend holds a set of blocked address prefixes, each with an optional
// absolute expiry, and drops traffic from them. The Enforcer (enforcer.h)
// owns the ban list the server sent, filters it through the Guard and hands
// backends a *normalised* set: unique, non-overlapping prefixes (a prefix
// covered by a wider one is never passed), none expired. Backends therefore
// never merge or split prefixes; they only install, list and remove them.
//
// Implementations: NftablesFirewall (libnftables), IpsetFirewall
// (ipset + iptables/ip6tables), NetshFirewall (a PowerShell script for
// Windows hosts), ExecFirewall (a user command per batch), DryRunFirewall
// (log only). CreateFirewall() (firewall_factory.h) picks one by name.
//
// Thread-safety: every implementation is thread-safe (each serialises its
// calls on an internal mutex), but calls are expected from one thread, the
// Enforcer's. See docs/threading.md.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"

namespace rampart::agent {

// One blocked prefix as a backend holds it.
struct FirewallEntry {
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  // Absolute expiry; nullopt = permanent. Backends with kernel timeouts
  // (nftables, ipset) install `expires - now` so the kernel lifts the ban
  // even if the agent is not running.
  std::optional<absl::Time> expires;

  friend bool operator==(const FirewallEntry&, const FirewallEntry&) = default;
};

// Which destination ports of this host a ban blocks.
struct PortScope {
  // True: every packet from a banned source is dropped, whatever the
  // protocol and port. False: only TCP to `tcp_ports`.
  bool all_ports = true;
  // REQUIRES (when !all_ports): 1..64 ports, each 1..65535.
  std::vector<uint16_t> tcp_ports;

  // Everything (the default).
  static PortScope AllPorts() { return PortScope{}; }
  // Domino's mail, directory and web ports: SMTP 25/465/587, POP3 110/995,
  // IMAP 143/993, LDAP 389/636, HTTP 80/443, NRPC 1352.
  static PortScope DominoPorts() {
    return PortScope{.all_ports = false,
                     .tcp_ports = {25, 80, 110, 143, 389, 443, 465, 587, 636,
                                   993, 995, 1352}};
  }
  // InvalidArgument if the port list breaks the REQUIRES above.
  absl::Status Validate() const;
};

// The enforcement backend interface.
class Firewall {
 public:
  virtual ~Firewall() = default;

  // Backend name as accepted by CreateFirewall ("nftables", "ipset", ...).
  virtual std::string_view Name() const = 0;

  // Creates whatever the backend needs (table, sets, chain and rules; an
  // output directory) if missing and (re)writes its rules, keeping the
  // blocked entries that are already installed. Idempotent; the Enforcer
  // calls it at start and before every drift repair, so rules deleted behind
  // the agent's back come back. kUnavailable/kInternal on backend failure,
  // kPermissionDenied without the needed privileges.
  virtual absl::Status Install() = 0;

  // Replaces the whole blocked set by `entries`, atomically where the
  // backend can (nftables: one transaction; ipset: a set swap per address
  // family). Also creates missing structures as Install() does.
  // REQUIRES: `entries` unique, non-overlapping, not expired.
  // On error the previous set is still in force (nftables, ipset) or the
  // state is unknown (exec): the caller re-applies a snapshot later.
  virtual absl::Status ApplySnapshot(
      const std::vector<FirewallEntry>& entries) = 0;

  // Removes `removes`, then adds `adds`, atomically where the backend can
  // (nftables: one transaction). Removing an absent prefix is not an error.
  // An added prefix that is already present gets the new expiry only if it
  // is also listed in `removes` (the Enforcer lists updated entries in
  // both). REQUIRES: the resulting set is non-overlapping.
  // On error the caller falls back to ApplySnapshot.
  virtual absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                                  const std::vector<IpPrefix>& removes) = 0;

  // What is enforced right now, in any order. Expiries are informational
  // (kernels report them rounded; ipset reports permanent entries for bans
  // longer than its timeout limit). kFailedPrecondition if the backend's
  // structures are missing or hold something it did not write (a foreign
  // or misplaced element): the caller then re-applies a snapshot.
  virtual absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() = 0;

  // Removes everything the backend created (table, rules, sets, generated
  // rules). Idempotent: OK if nothing is installed.
  virtual absl::Status RemoveAll() = 0;
};

}  // namespace rampart::agent
