#pragma once

// FileChunkSink writes chunks to a file or to standard output.
//
// Thread-safety: not thread-safe.

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sim/chunk_sink.h"

namespace rampart::sim {

class FileChunkSink : public ChunkSink {
 public:
  // Creates (or truncates) `path` for writing; "-" means standard output.
  // Returns the OS reason with the path on failure (NotFound,
  // PermissionDenied, ...).
  static absl::StatusOr<std::unique_ptr<FileChunkSink>> Open(
      const std::string& path);

  // Closes the file if Close() was not called (errors are then lost).
  ~FileChunkSink() override;
  FileChunkSink(const FileChunkSink&) = delete;
  FileChunkSink& operator=(const FileChunkSink&) = delete;

  // ChunkSink. Returns a DataLoss/Unavailable-style error naming the path when
  // the write fails (disk full, closed pipe).
  absl::Status Write(std::string_view chunk) override;

  // Flushes and closes the file (standard output is flushed only). Reports
  // errors that buffered writes only reveal now. Idempotent.
  absl::Status Close();

 private:
  FileChunkSink(std::FILE* file, std::string path, bool owned)
      : file_(file), path_(std::move(path)), owned_(owned) {}

  std::FILE* file_;
  const std::string path_;
  const bool owned_;
};

}  // namespace rampart::sim
