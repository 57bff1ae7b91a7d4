// libFuzzer target for the server config loader (server/config/): the YAML
// bounds pass, the schema reader, durations, listen addresses and database
// targets. Beyond "no crash, no sanitizer report, no exception" it checks
// properties: errors are InvalidArgument (or ResourceExhausted) and name the
// source; an accepted config dumps (ServerConfigToYaml) to YAML that loads
// back to the same dump; parsed durations, addresses and database targets
// print to text that parses back to the same value; a logged database target
// is a fixed point of redaction.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/config/server_config.h"

namespace {

using rampart::server::DatabaseTarget;
using rampart::server::FormatConfigDuration;
using rampart::server::HostPort;
using rampart::server::LoadServerConfig;
using rampart::server::ParseConfigDuration;
using rampart::server::ParseDatabaseTarget;
using rampart::server::ParseHostPort;
using rampart::server::ServerConfig;
using rampart::server::ServerConfigToYaml;

void Check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

void CheckLoader(std::string_view text) {
  const absl::StatusOr<ServerConfig> config = LoadServerConfig(text, "fuzz");
  if (!config.ok()) {
    const absl::StatusCode code = config.status().code();
    Check(code == absl::StatusCode::kInvalidArgument ||
          code == absl::StatusCode::kResourceExhausted);
    Check(config.status().message().substr(0, 4) == "fuzz");
    return;
  }
  const std::string yaml = ServerConfigToYaml(*config);
  const absl::StatusOr<ServerConfig> again = LoadServerConfig(yaml, "dump");
  Check(again.ok());
  Check(ServerConfigToYaml(*again) == yaml);
}

void CheckScalars(std::string_view text) {
  if (const absl::StatusOr<absl::Duration> d = ParseConfigDuration(text);
      d.ok()) {
    const absl::StatusOr<absl::Duration> again =
        ParseConfigDuration(FormatConfigDuration(*d));
    Check(again.ok() && *again == *d);
  }
  if (const absl::StatusOr<HostPort> hp = ParseHostPort(text); hp.ok()) {
    const absl::StatusOr<HostPort> again = ParseHostPort(hp->ToString());
    Check(again.ok() && *again == *hp);
  }
  if (const absl::StatusOr<DatabaseTarget> db = ParseDatabaseTarget(text);
      db.ok()) {
    const std::string logged = db->ToLogString();
    const absl::StatusOr<DatabaseTarget> again = ParseDatabaseTarget(logged);
    Check(again.ok() && again->ToLogString() == logged);
    Check(again->kind == db->kind);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckLoader(text);
  if (size <= 4096) {
    CheckScalars(text);
  }
  return 0;
}
