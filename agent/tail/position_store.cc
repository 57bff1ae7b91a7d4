#include "agent/tail/position_store.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_format.h"
#include "agent/tail/content_hash.h"
#include "common/file_util.h"

namespace rampart::agent {
namespace {

constexpr size_t kMaxKeyBytes = 128;
// Two lists of at most 65536 records of at most ~40 bytes, plus headers.
constexpr size_t kMaxPositionFileBytes = 8u << 20;

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

}  // namespace

absl::StatusOr<std::unique_ptr<PositionStore>> PositionStore::Open(
    std::string dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("position store: empty directory");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return file_util::ErrnoStatus(ec.value(),
                                  "cannot create position directory", dir);
  }
  return std::unique_ptr<PositionStore>(new PositionStore(std::move(dir)));
}

std::string PositionStore::KeyForPath(std::string_view path) {
  std::string_view base = path;
  if (const size_t slash = base.rfind('/'); slash != std::string_view::npos) {
    base.remove_prefix(slash + 1);
  }
  std::string key;
  for (const char c : base.substr(0, 64)) {
    key.push_back(IsKeyChar(c) ? c : '_');
  }
  if (key.empty() || key[0] == '.') {
    key.insert(0, "log");
  }
  absl::StrAppendFormat(&key, "-%016x", ContentHash64(path));
  return key;
}

absl::StatusOr<std::string> PositionStore::PathFor(std::string_view key) const {
  if (key.empty() || key.size() > kMaxKeyBytes || key[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad position key \"%s\"", key));
  }
  for (const char c : key) {
    if (!IsKeyChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("bad position key \"%s\"", key));
    }
  }
  return absl::StrFormat("%s/%s.pos", dir_, key);
}

absl::StatusOr<std::optional<TailPosition>> PositionStore::Load(
    std::string_view key) const {
  absl::StatusOr<std::string> path = PathFor(key);
  if (!path.ok()) {
    return path.status();
  }
  std::string text;
  const absl::Status read =
      file_util::ReadSmallFile(*path, kMaxPositionFileBytes, &text);
  if (absl::IsNotFound(read)) {
    return std::optional<TailPosition>();
  }
  if (!read.ok()) {
    return read;
  }
  absl::StatusOr<TailPosition> pos = DecodeTailPosition(text, *path);
  if (!pos.ok()) {
    return pos.status();
  }
  return std::optional<TailPosition>(std::move(*pos));
}

absl::Status PositionStore::Save(std::string_view key,
                                 const TailPosition& position) {
  absl::StatusOr<std::string> path = PathFor(key);
  if (!path.ok()) {
    return path.status();
  }
  return file_util::WriteFileAtomically(*path, EncodeTailPosition(position),
                                        /*sync=*/true);
}

}  // namespace rampart::agent
