#include "sim/file_chunk_sink.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace rampart::sim {
namespace {

absl::Status ErrnoStatus(int err, std::string_view what,
                         std::string_view path) {
  std::string message =
      absl::StrFormat("%s %s: %s", what, path, std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileChunkSink>> FileChunkSink::Open(
    const std::string& path) {
  if (path == "-") {
    return std::unique_ptr<FileChunkSink>(
        new FileChunkSink(stdout, "<stdout>", /*owned=*/false));
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return ErrnoStatus(errno, "cannot create", path);
  }
  return std::unique_ptr<FileChunkSink>(
      new FileChunkSink(f, path, /*owned=*/true));
}

FileChunkSink::~FileChunkSink() { Close().IgnoreError(); }

absl::Status FileChunkSink::Write(std::string_view chunk) {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("write to closed file %s", path_));
  }
  if (std::fwrite(chunk.data(), 1, chunk.size(), file_) != chunk.size()) {
    return ErrnoStatus(errno, "cannot write", path_);
  }
  return absl::OkStatus();
}

absl::Status FileChunkSink::Close() {
  if (file_ == nullptr) {
    return absl::OkStatus();
  }
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fflush(f) != 0) {
    const int err = errno;
    if (owned_) {
      std::fclose(f);
    }
    return ErrnoStatus(err, "cannot write", path_);
  }
  if (owned_ && std::fclose(f) != 0) {
    return ErrnoStatus(errno, "cannot close", path_);
  }
  return absl::OkStatus();
}

}  // namespace rampart::sim
