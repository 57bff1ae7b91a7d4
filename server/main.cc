// rampart-server: the central correlator and ban distributor. This file only
// parses the command line, handles signals and wires ServerApp (server/app).
//
//   rampart-server [--config FILE] [--listen HOST:PORT]
//                  [--http-listen HOST:PORT] [--db sqlite:PATH|postgresql://..]
//                  [--insecure [--allow-insecure-non-loopback]]
//   rampart-server migrate [--config FILE] [--db ...]
//   rampart-server healthcheck [--config FILE] [--http HOST:PORT] [--ready]
//   rampart-server token create NAME --role admin|operator|read-only
//                  [--config FILE] [--db ...]
//   rampart-server token list [--config FILE] [--db ...]
//   rampart-server token revoke NAME [--config FILE] [--db ...]
//
// Exit codes: 0 clean shutdown, 1 runtime failure (store, ports), 2 usage or
// configuration error. healthcheck: 0 healthy, 1 not, 2 usage.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http/http_probe.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/app/server_app.h"
#include "server/config/server_config.h"
#include "server/core/admin_auth.h"

namespace {

void AddConfigFlags(CLI::App& app, rampart::server::ServerFlags& flags,
                    bool listen_flags) {
  app.add_option("--config", flags.config,
                 "YAML configuration file (docs/configuration.md)");
  app.add_option("--db", flags.db,
                 "database: sqlite:PATH (default sqlite:rampart.db) or "
                 "postgresql://...");
  if (listen_flags) {
    app.add_option("--listen", flags.listen,
                   "gRPC address for agents and rampartctl (default "
                   "127.0.0.1:7443)");
    app.add_option("--http-listen", flags.http_listen,
                   "HTTP address for /metrics, /healthz, /readyz (default "
                   "127.0.0.1:9443)");
    app.add_option("--bootstrap-token-file", flags.bootstrap_token_file,
                   "file holding the secret of the admin token "
                   "\"bootstrap\" (admin.bootstrap_token_file)");
    app.add_flag("--insecure", flags.insecure,
                 "plaintext gRPC without agent identity (loopback tests and "
                 "the quickstart only; docs/security.md)");
    app.add_flag("--allow-insecure-non-loopback",
                 flags.allow_insecure_non_loopback,
                 "permit --insecure on a listen address that is not loopback");
  }
}

// `rampart-server healthcheck`: GET /healthz (or /readyz) on the HTTP side
// port named by --http, else by the configuration's http_listen (a wildcard
// host is probed on loopback). The container HEALTHCHECK; no curl needed.
int HealthCheck(const rampart::server::ServerFlags& flags,
                const std::string& http, bool ready, int timeout_seconds) {
  rampart::server::HostPort target;
  if (!http.empty()) {
    auto parsed = rampart::server::ParseHostPort(http);
    if (!parsed.ok()) {
      std::fprintf(stderr, "rampart-server healthcheck: --http: %s\n",
                   std::string(parsed.status().message()).c_str());
      return 2;
    }
    target = *parsed;
  } else {
    auto config = rampart::server::ResolveServerConfig(flags);
    if (!config.ok()) {
      std::fprintf(stderr, "rampart-server healthcheck: %s\n",
                   std::string(config.status().message()).c_str());
      return 2;
    }
    target = config->http_listen;
  }
  const absl::Status status = rampart::http::ProbeHttp(
      rampart::http::ProbeHostFor(target.host), target.port,
      ready ? "/readyz" : "/healthz", absl::Seconds(timeout_seconds));
  if (!status.ok()) {
    std::fprintf(stderr, "rampart-server healthcheck: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// `rampart-server token ...`: works on the database directly (like
// migrate), so the first admin token can exist before the server runs.
int RunToken(const rampart::server::ServerFlags& flags, const std::string& verb,
             const std::string& name, const std::string& role_text) {
  using namespace rampart::server;
  auto config = ResolveServerConfig(flags);
  if (!config.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  auto store = OpenStore(config->database);
  if (!store.ok()) {
    std::fprintf(stderr, "rampart-server token: %s: %s\n",
                 config->database.ToLogString().c_str(),
                 std::string(store.status().message()).c_str());
    return 1;
  }
  AdminAuthenticator auth(AdminAuthenticator::Options{}, **store,
                          rampart::RealClock::Get());
  // Token changes are audited like admin API changes (the name is validated
  // to [A-Za-z0-9._-], the role is one of three words: both JSON-safe).
  const auto audit = [&](const char* action, std::string before,
                         std::string after) {
    CommitRecord record;
    record.audit.push_back(AuditRecord{
        .time = rampart::RealClock::Get().Now(),
        .actor = absl::StrFormat("local:uid=%d", static_cast<int>(getuid())),
        .action = action,
        .target = name,
        .before = std::move(before),
        .after = std::move(after)});
    if (absl::Status s = (*store)->Commit(record); !s.ok()) {
      std::fprintf(stderr, "rampart-server token: audit record: %s\n",
                   std::string(s.message()).c_str());
    }
  };
  const auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "rampart-server token %s: %s\n", verb.c_str(),
                 std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  };
  if (verb == "create") {
    std::optional<AdminRole> role = ParseRole(role_text);
    if (!role) {
      std::fprintf(stderr,
                   "rampart-server token create: --role must be admin, "
                   "operator or read-only\n");
      return 2;
    }
    auto created = auth.CreateToken(name, *role);
    if (!created.ok()) {
      return fail(created.status());
    }
    audit("token.create", "",
          absl::StrFormat(R"({"name":"%s","role":"%s"})", name, role_text));
    // The secret on stdout (once, for scripts); the rest on stderr.
    std::printf("%s\n", created->secret.c_str());
    std::fprintf(stderr,
                 "rampart-server token create: token \"%s\" (%s) created; "
                 "the secret above is shown only now\n",
                 name.c_str(), role_text.c_str());
    return 0;
  }
  if (verb == "revoke") {
    if (absl::Status s = auth.RevokeToken(name); !s.ok()) {
      return fail(s);
    }
    audit("token.revoke", absl::StrFormat(R"({"name":"%s"})", name), "");
    std::fprintf(stderr, "rampart-server token revoke: token \"%s\" revoked\n",
                 name.c_str());
    return 0;
  }
  auto tokens = auth.ListTokens();
  if (!tokens.ok()) {
    return fail(tokens.status());
  }
  std::printf("%-24s %-10s %-21s %s\n", "NAME", "ROLE", "CREATED", "REVOKED");
  for (const ApiToken& t : *tokens) {
    std::printf("%-24s %-10s %-21s %s\n", t.name.c_str(),
                std::string(RoleName(t.role)).c_str(),
                TimeText(t.created).c_str(),
                t.revoked ? TimeText(*t.revoked).c_str() : "-");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using rampart::server::ServerFlags;
  CLI::App app{
      "rampart-server: correlates authentication failures from every Domino "
      "server and pushes bans to all agents"};
  app.set_version_flag("--version", std::string(rampart::kVersion));
  ServerFlags flags;
  AddConfigFlags(app, flags, /*listen_flags=*/true);
  ServerFlags migrate_flags;
  CLI::App* migrate = app.add_subcommand(
      "migrate", "apply pending database migrations and exit");
  AddConfigFlags(*migrate, migrate_flags, /*listen_flags=*/false);
  ServerFlags health_flags;
  std::string health_http;
  bool health_ready = false;
  int health_timeout = 3;
  CLI::App* health = app.add_subcommand(
      "healthcheck",
      "GET /healthz on the HTTP port; exit 0 if it answers 200, else 1");
  health->add_option("--config", health_flags.config,
                     "take the address from this file's server.http_listen");
  health->add_option("--http", health_http,
                     "HOST:PORT to probe (default: http_listen of --config, "
                     "127.0.0.1:9443)");
  health->add_flag("--ready", health_ready,
                   "probe /readyz (store reachable, not draining) instead");
  health->add_option("--timeout", health_timeout, "seconds, 1..60")
      ->check(CLI::Range(1, 60))
      ->default_str("3");
  ServerFlags token_flags;
  CLI::App* token = app.add_subcommand(
      "token", "manage admin API tokens in the database and exit");
  token->require_subcommand(1);
  std::string token_name;
  std::string token_role;
  CLI::App* token_create = token->add_subcommand(
      "create", "create a token and print its secret once");
  token_create->add_option("name", token_name, "token name ([A-Za-z0-9._-])")
      ->required();
  token_create->add_option("--role", token_role, "admin, operator or read-only")
      ->required();
  CLI::App* token_list = token->add_subcommand("list", "list tokens");
  CLI::App* token_revoke = token->add_subcommand("revoke", "revoke a token");
  token_revoke->add_option("name", token_name, "token name")->required();
  for (CLI::App* sub : {token_create, token_list, token_revoke}) {
    AddConfigFlags(*sub, token_flags, /*listen_flags=*/false);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (health->parsed()) {
    if (!health_flags.config) {
      health_flags.config = flags.config;
    }
    return HealthCheck(health_flags, health_http, health_ready, health_timeout);
  }
  if (token->parsed()) {
    if (!token_flags.config) {
      token_flags.config = flags.config;
    }
    if (!token_flags.db) {
      token_flags.db = flags.db;
    }
    const std::string verb = token_create->parsed()   ? "create"
                             : token_revoke->parsed() ? "revoke"
                                                      : "list";
    return RunToken(token_flags, verb, token_name, token_role);
  }

  if (migrate->parsed()) {
    if (!migrate_flags.config) {
      migrate_flags.config = flags.config;
    }
    if (!migrate_flags.db) {
      migrate_flags.db = flags.db;
    }
    auto config = rampart::server::ResolveServerConfig(migrate_flags);
    if (!config.ok()) {
      std::fprintf(stderr, "rampart-server: %s\n",
                   std::string(config.status().message()).c_str());
      return 2;
    }
    auto store = rampart::server::OpenStore(config->database);
    if (!store.ok()) {
      std::fprintf(stderr, "rampart-server migrate: %s: %s\n",
                   config->database.ToLogString().c_str(),
                   std::string(store.status().message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "rampart-server migrate: %s is up to date\n",
                 config->database.ToLogString().c_str());
    return 0;
  }

  auto config = rampart::server::ResolveServerConfig(flags);
  if (!config.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (absl::Status s = rampart::server::ValidateTransport(*config); !s.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }

  // SIGTERM/SIGINT are handled by one thread with sigwait(); block them in
  // every thread (threads started later inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client vanishing mid-write must not kill the server.
  signal(SIGPIPE, SIG_IGN);

  auto server =
      rampart::server::ServerApp::Start(*config, rampart::RealClock::Get());
  if (!server.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  // Machine-readable for scripts and tests (ports may be chosen by the OS).
  rampart::server::HostPort grpc_at = config->listen;
  grpc_at.port = (*server)->grpc_port();
  rampart::server::HostPort http_at = config->http_listen;
  http_at.port = (*server)->http_port();
  std::fprintf(stderr,
               "rampart-server %s: serving agents and admin on %s, HTTP on "
               "%s, database %s\n",
               std::string(rampart::kVersion).c_str(),
               grpc_at.ToString().c_str(), http_at.ToString().c_str(),
               config->database.ToLogString().c_str());

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    RAMPART_LOG(Info) << "signal " << sig << ": draining";
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_thread.join();
  RAMPART_LOG(Info) << "stopped";
  return 0;
}
