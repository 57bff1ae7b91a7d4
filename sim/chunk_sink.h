#pragma once

// ChunkSink receives generated text in chunks. The simulator only ever hands
// over chunks that end at a line boundary, so a sink may forward each chunk
// with one write and a reader never sees half a line.
//
// Thread-safety: implementations need not be thread-safe; the generator calls
// a sink from the thread that runs it.

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace rampart::sim {

class ChunkSink {
 public:
  virtual ~ChunkSink() = default;

  // Consumes `chunk` (which is only valid during the call). Returns OK, or an
  // error that makes the generator stop and return that error.
  virtual absl::Status Write(std::string_view chunk) = 0;
};

// Appends every chunk to a caller-owned string (tests, small runs).
class StringChunkSink : public ChunkSink {
 public:
  // `out` must outlive the sink.
  explicit StringChunkSink(std::string* out) : out_(out) {}

  // ChunkSink
  absl::Status Write(std::string_view chunk) override {
    out_->append(chunk);
    return absl::OkStatus();
  }

 private:
  std::string* const out_;
};

}  // namespace rampart::sim
