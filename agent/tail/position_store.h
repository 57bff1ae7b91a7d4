#pragma once

// PositionStore keeps one TailPosition per log file in a state directory,
// as "<dir>/<key>.pos", each replaced atomically (temp file + fsync +
// rename + directory fsync), so a crash leaves the old or the new position,
// never a torn one.
//
// Thread-safety: thread-compatible; Save/Load of different keys may run
// concurrently, the same key must not be saved from two threads at once.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/tail/tail_position.h"

namespace rampart::agent {

class PositionStore {
 public:
  // Uses `dir`, creating it (with parents) if missing. Errors carry the path
  // and the OS reason.
  static absl::StatusOr<std::unique_ptr<PositionStore>> Open(std::string dir);

  // A stable key for a log path: its sanitised file name plus a hash of the
  // whole path, e.g. "console.log-1a2b3c4d5e6f7081". Distinct paths get
  // distinct keys.
  static std::string KeyForPath(std::string_view path);

  // Returns the saved position, std::nullopt if none was saved. A position
  // file that is unreadable as a position returns DataLoss (the caller
  // decides whether to start afresh). InvalidArgument for a bad key.
  absl::StatusOr<std::optional<TailPosition>> Load(std::string_view key) const;

  // Saves `position` durably (see class comment). InvalidArgument for a bad
  // key (keys are 1-128 bytes of [A-Za-z0-9._-]); I/O errors carry the path.
  absl::Status Save(std::string_view key, const TailPosition& position);

  const std::string& dir() const { return dir_; }

 private:
  explicit PositionStore(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<std::string> PathFor(std::string_view key) const;

  const std::string dir_;
};

}  // namespace rampart::agent
