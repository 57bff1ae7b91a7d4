#include "agent/tail/change_notifier.h"

#include "agent/tail/inotify_notifier.h"
#include "agent/tail/polling_notifier.h"
#include "common/logging.h"

namespace rampart::agent {

std::unique_ptr<ChangeNotifier> CreateChangeNotifier(
    const std::vector<std::string>& paths,
    const ChangeNotifierOptions& options) {
  if (!options.force_polling) {
    absl::StatusOr<std::unique_ptr<InotifyNotifier>> inotify =
        InotifyNotifier::Create();
    absl::Status status = inotify.status();
    for (size_t i = 0; status.ok() && i < paths.size(); ++i) {
      status = (*inotify)->Watch(paths[i]);
    }
    if (status.ok()) {
      return std::move(*inotify);
    }
    RAMPART_LOG(Warning) << "inotify unavailable (" << status.message()
                         << "): polling log files every "
                         << absl::FormatDuration(options.poll_interval);
  }
  auto polling = std::make_unique<PollingNotifier>(options.poll_interval);
  for (const std::string& path : paths) {
    (void)polling->Watch(path);
  }
  return polling;
}

}  // namespace rampart::agent
