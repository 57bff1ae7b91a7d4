#pragma once

// ChangeNotifier tells the tailer thread when a watched log file may have
// changed, so it can poll promptly instead of on a fixed period. It is only
// a latency hint: the thread polls every Tailer after each Wait, whatever it
// returned, so a missed or spurious notification costs latency, never data.
//
// Implementations: InotifyNotifier (Linux inotify on the files' directories)
// and PollingNotifier (a fixed period; the fallback when inotify is
// unavailable, e.g. out of watches, or not wanted, e.g. on network file
// systems). CreateChangeNotifier picks one.
//
// Thread-safety: Watch and Wait are called from one thread (the tailer
// thread); Wake may be called from any thread.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::agent {

class ChangeNotifier {
 public:
  virtual ~ChangeNotifier() = default;

  // Starts watching `path`, a file that need not exist yet (its creation,
  // renames and writes are all reported). Errors carry the path and the OS
  // reason.
  virtual absl::Status Watch(const std::string& path) = 0;

  // Blocks until a watched file may have changed, Wake() was called, or
  // `timeout` elapsed. Returns true if something may have changed (or on
  // Wake), false otherwise; both may be approximate (see class comment).
  virtual absl::StatusOr<bool> Wait(absl::Duration timeout) = 0;

  // Makes the current, or else the next, Wait return true promptly (e.g.
  // for shutdown). Thread-safe.
  virtual void Wake() = 0;
};

struct ChangeNotifierOptions {
  // Period of the polling fallback. Default 250 ms.
  absl::Duration poll_interval = absl::Milliseconds(250);
  // Use polling even where inotify works. Default false.
  bool force_polling = false;
};

// Returns an InotifyNotifier watching `paths`, or a PollingNotifier if
// inotify is not available or a watch cannot be added (the reason is
// logged). Never fails.
std::unique_ptr<ChangeNotifier> CreateChangeNotifier(
    const std::vector<std::string>& paths,
    const ChangeNotifierOptions& options);

}  // namespace rampart::agent
