#pragma once

// PairDeduplicator collapses the two lines Domino may write for ONE failed
// login: the internet-password line (family A / A-lock) and the server task
// line (family B), same IP, user, protocol and second, in either order.
//
// Each line pairs at most once, with the most recent unpaired counterpart
// among the last kWindow A/B lines, so two real attempts in the same second
// (A B A B) still count twice. Memory is bounded by kWindow entries.
//
// Thread-safety: not thread-safe; one instance per log file.

#include <array>
#include <cstddef>
#include <string>

#include "agent/domino/domino_parser.h"

namespace rampart::agent {

class PairDeduplicator {
 public:
  static constexpr size_t kWindow = 64;

  // Observes a recognised line in log order. Returns true if the line is the
  // second line of an A+B pair (and so must not be counted again). Lines of
  // other families are ignored and return false.
  bool Observe(const ParsedLine& line);

  // Forgets everything (e.g. after log rotation).
  void Reset();

 private:
  struct Entry {
    bool used = false;
    bool paired = false;
    bool task_family = false;  // B (true) or A (false)
    Protocol protocol = Protocol::kUnknown;
    bool has_ip = false;
    IpAddress ip;
    absl::CivilSecond time;
    std::string user;  // capacity is reused; bounded by the line length cap
  };

  std::array<Entry, kWindow> ring_;
  size_t next_ = 0;  // slot the next line is written to
};

}  // namespace rampart::agent
