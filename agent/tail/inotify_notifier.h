#pragma once

// InotifyNotifier: a ChangeNotifier on Linux inotify. It watches the
// directory of each file (so creation and rename of the file are seen, not
// only writes to it) and reports events whose name is a watched file name.
// A directory watch that disappears (directory removed or renamed) is
// re-added on each Wait; until it is back, Wait behaves like polling.
// Thread-safety: see ChangeNotifier.

#include <map>
#include <memory>
#include <set>
#include <string>

#include "agent/tail/change_notifier.h"

namespace rampart::agent {

class InotifyNotifier final : public ChangeNotifier {
 public:
  // Returns Unavailable / ResourceExhausted (with the OS reason) if inotify
  // or eventfd cannot be created.
  static absl::StatusOr<std::unique_ptr<InotifyNotifier>> Create();
  ~InotifyNotifier() override;

  // ChangeNotifier
  // Fails (NotFound, ResourceExhausted for the watch limit, ...) if the
  // directory of `path` cannot be watched.
  absl::Status Watch(const std::string& path) override;
  absl::StatusOr<bool> Wait(absl::Duration timeout) override;
  void Wake() override;

 private:
  InotifyNotifier(int inotify_fd, int wake_fd)
      : inotify_fd_(inotify_fd), wake_fd_(wake_fd) {}
  absl::Status AddWatch(const std::string& dir);
  // Reads pending events; returns true if one concerns a watched file.
  absl::StatusOr<bool> Drain();

  const int inotify_fd_;
  const int wake_fd_;
  // Directory -> names of watched files in it.
  std::map<std::string, std::set<std::string>> names_;
  // Watch descriptor -> directory.
  std::map<int, std::string> watches_;
  // Directories whose watch is gone and must be re-added.
  std::set<std::string> lost_;
};

}  // namespace rampart::agent
