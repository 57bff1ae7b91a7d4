#pragma once

// Numeric limits of the rampart.v1 wire contract (docs/protocol.md
// "Limits"). proto3 cannot declare constants, so they live here, next to the
// .proto files, and are copied into rampart_proto's generated include
// directory: only the gRPC edges (which link rampart_proto) see them, like
// the generated code itself.
//
// Changing a value is a protocol change: update docs/protocol.md and
// tests/proto/proto_contract_test.cc together.

#include <cstdint>

namespace rampart::v1 {

// Largest serialized message either side accepts by default (gRPC's default
// receive limit). Exceeding it ends the stream/call with RESOURCE_EXHAUSTED.
inline constexpr int64_t kMaxMessageBytes = 4 * 1024 * 1024;

// Smallest Capabilities.max_receive_message_bytes an agent may advertise.
// Snapshot chunks and deltas are sized to fit into this even in the worst
// case, so the server never has to split below the entry-count limits.
inline constexpr int64_t kMinAgentReceiveMessageBytes = 1024 * 1024;

// Most AuthEvents in one EventBatch.
inline constexpr int kMaxEventsPerBatch = 5000;

// Longest AuthEvent.user in bytes.
inline constexpr int kMaxUserBytes = 256;

// Longest AuthEvent.log_time_text in bytes.
inline constexpr int kMaxLogTimeTextBytes = 64;

// Longest BanEntry.reason / admin reason / comment in bytes.
inline constexpr int kMaxReasonBytes = 256;

// Longest canonical prefix text ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
// /128" without the space).
inline constexpr int kMaxPrefixBytes = 43;

// Most BanEntries in one BanListSnapshot chunk.
inline constexpr int kMaxSnapshotChunkEntries = 2000;

// Most BanChanges in one BanListDelta; larger change sets are sent as a
// snapshot instead.
inline constexpr int kMaxDeltaChanges = 2000;

// Most entries in one LocalBanReport (and LocalFallback.max_bans).
inline constexpr int kMaxLocalBans = 5000;

// Most ApplyErrors in one EnforcedRevision.
inline constexpr int kMaxApplyErrors = 1000;

// Most bytes of text in one admin ExportChunk.
inline constexpr int64_t kMaxExportChunkBytes = 1024 * 1024;

// Most bytes of ImportRequest.text.
inline constexpr int64_t kMaxImportTextBytes = 3 * 1024 * 1024;

// Admin paging: default and maximum page_size.
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;

}  // namespace rampart::v1
