#pragma once

// Domain types of the ban list as the agent's enforcement layer sees it:
// the gRPC edge converts BanEntry / BanChange protos into these
// (agent/grpc/conversions.h); nothing here depends on generated code.
//
// Thread-safety: value types.

#include <cstdint>
#include <optional>

#include "absl/time/time.h"
#include "common/ip_address.h"

namespace rampart::agent {

// One ban of the server's list (BanEntry without the informational fields).
struct BanItem {
  // BanEntry.id: unique, > 0 for server bans. The Enforcer keys its state by
  // id; several ids may carry the same prefix (their union is enforced).
  uint64_t id = 0;
  IpPrefix prefix = IpPrefix::Host(IpAddress());
  // BanEntry.expires_at; nullopt = permanent.
  std::optional<absl::Time> expires;

  friend bool operator==(const BanItem&, const BanItem&) = default;
};

// One change of a BanListDelta.
struct BanChange {
  enum class Op {
    kAdd,     // a new id (an existing id is replaced, as kUpdate)
    kRemove,  // remove the id (unknown ids are ignored: already expired)
    kUpdate,  // replace the id's entry (an unknown id is added)
  };
  Op op = Op::kAdd;
  BanItem item;
};

}  // namespace rampart::agent
