// rampart-agent: one per Domino server. This file only parses the command
// line and wires the modules together.

#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "agent/daemon/agent_app.h"
#include "agent/daemon/agent_config.h"
#include "agent/enroll_command.h"
#include "agent/parse_command.h"
#include "common/clock.h"
#include "common/http/http_endpoint.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/version.h"

namespace {

// `rampart-agent run`: resolves the configuration, starts the agent and
// waits for SIGTERM/SIGINT, then shuts down cleanly (spool flushed, tail
// positions saved, firewall rules left in place unless configured).
int RunAgent(const rampart::agent::AgentFlags& flags) {
  absl::StatusOr<rampart::agent::AgentConfig> config =
      rampart::agent::ResolveAgentConfig(flags);
  if (!config.ok()) {
    std::fprintf(stderr, "rampart-agent: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  // Block the stop signals before any thread starts, so that only sigwait
  // below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  rampart::metrics::Registry metrics;
  rampart::agent::AgentEnvironment env{.clock = &rampart::RealClock::Get(),
                                       .metrics = &metrics};
  absl::StatusOr<std::unique_ptr<rampart::agent::AgentApp>> app =
      rampart::agent::AgentApp::Create(*config, env);
  if (!app.ok()) {
    std::fprintf(stderr, "rampart-agent: %s\n",
                 std::string(app.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = (*app)->Start(); !s.ok()) {
    std::fprintf(stderr, "rampart-agent: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  // The metrics endpoint (metrics.listen; off by default). Its own thread;
  // Registry::Render is thread-safe.
  std::unique_ptr<rampart::http::HttpEndpoint> http;
  if (!config->metrics.host.empty()) {
    absl::StatusOr<std::unique_ptr<rampart::http::HttpEndpoint>> started =
        rampart::http::HttpEndpoint::Start(
            rampart::http::HttpEndpointOptions{.host = config->metrics.host,
                                               .port = config->metrics.port},
            rampart::http::HttpHandlers{
                .metrics = [&metrics] { return metrics.Render(); }});
    if (!started.ok()) {
      std::fprintf(stderr, "rampart-agent: metrics endpoint: %s\n",
                   std::string(started.status().message()).c_str());
      (void)(*app)->Stop();
      return 1;
    }
    http = std::move(*started);
    RAMPART_LOG(Info) << "metrics endpoint listening on http://"
                      << (config->metrics.host.find(':') != std::string::npos
                              ? "[" + config->metrics.host + "]"
                              : config->metrics.host)
                      << ":" << http->port() << "/metrics";
  }
  RAMPART_LOG(Info) << "rampart-agent " << rampart::kVersion << " running as "
                    << config->agent_id;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  RAMPART_LOG(Info) << "signal " << sig << ": stopping";
  if (http != nullptr) {
    http->Stop();
  }
  const absl::Status stopped = (*app)->Stop();
  return stopped.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rampart-agent: reads the Domino console log and enforces Rampart "
      "bans on this server"};
  app.set_version_flag("--version", std::string(rampart::kVersion));
  app.require_subcommand(1);

  rampart::agent::ParseCommandOptions parse;
  std::string date_order = "auto";
  bool no_tls = false;
  bool no_sessions = false;
  CLI::App* parse_cmd = app.add_subcommand(
      "parse",
      "Print one JSON object per recognised line of Domino console.log files");
  parse_cmd
      ->add_option("--date-order", date_order,
                   "Order of the date fields (notes.ini DateOrder)")
      ->check(CLI::IsMember({"auto", "mdy", "dmy", "ymd"}))
      ->default_str("auto");
  parse_cmd->add_flag("--successes", parse.parser.successes,
                      "Also recognise successful logins (family F)");
  parse_cmd->add_flag("--no-tls", no_tls,
                      "Ignore TLS handshake failures (family E)");
  parse_cmd->add_flag("--no-sessions", no_sessions,
                      "Ignore connect/disconnect lines (family D)");
  parse_cmd->add_flag("--stats", parse.stats,
                      "Print per-file counters to stderr");
  parse_cmd->add_option("FILE", parse.files, "console.log files")->required();

  rampart::agent::AgentFlags run;
  CLI::App* run_cmd = app.add_subcommand(
      "run", "Run the agent daemon: tail, spool, report, enforce");
  run_cmd->add_option("--config", run.config_path, "YAML configuration file");
  run_cmd->add_option("--server", run.servers,
                      "Server HOST:PORT (repeatable; replaces `servers`)");
  run_cmd->add_option("--agent-id", run.agent_id,
                      "Agent id (default: the host name)");
  run_cmd->add_option("--log", run.logs,
                      "console.log path (repeatable; replaces `logs`)");
  run_cmd->add_option("--state-dir", run.state_dir,
                      "State directory (default /var/lib/rampart-agent)");
  run_cmd->add_option("--firewall", run.firewall,
                      "nftables|ipset|windows-netsh|exec|dry-run");
  run_cmd->add_flag("--insecure", run.insecure,
                    "Plaintext to a server started with --insecure (no "
                    "client certificate; loopback tests only)");
  run_cmd->add_option(
      "--ca-file", run.ca_file,
      "CA bundle for the server (default <state-dir>/tls/ca.pem)");
  run_cmd->add_option("--cert", run.cert_file,
                      "Agent certificate (default <state-dir>/tls/agent.pem)");
  run_cmd->add_option("--key", run.key_file,
                      "Agent key (default <state-dir>/tls/agent.key)");
  run_cmd->add_option_function<std::string>(
      "--metrics-listen",
      [&run](const std::string& v) { run.metrics_listen = v; },
      "Serve /metrics and /healthz on PORT, :PORT or "
      "HOST:PORT (loopback unless "
      "--metrics-allow-non-loopback; \"\" = off)");
  run_cmd->add_flag("--metrics-allow-non-loopback",
                    run.metrics_allow_non_loopback,
                    "Allow a non-loopback --metrics-listen address");

  rampart::agent::EnrollCommandOptions enroll;
  CLI::App* enroll_cmd = app.add_subcommand(
      "enroll",
      "Exchange a one-time token (rampartctl agents enroll NAME) for this "
      "agent's client certificate, written to <state-dir>/tls/");
  enroll_cmd->add_option("--server", enroll.server, "Server HOST:PORT")
      ->required();
  enroll_cmd
      ->add_option("--ca-file", enroll.ca_file,
                   "CA bundle that signed the server certificate")
      ->required();
  CLI::Option* token_opt = enroll_cmd->add_option(
      "--token", enroll.token,
      "The one-time token (visible to other users in ps; prefer "
      "--token-file)");
  enroll_cmd
      ->add_option("--token-file", enroll.token_file,
                   "File whose first line is the one-time token; - reads it "
                   "from standard input")
      ->excludes(token_opt);
  enroll_cmd
      ->add_option("--agent-id", enroll.agent_id,
                   "Agent id the token was issued for")
      ->required();
  enroll_cmd->add_option("--state-dir", enroll.state_dir,
                         "State directory (default /var/lib/rampart-agent)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (run_cmd->parsed()) {
    return RunAgent(run);
  }
  if (enroll_cmd->parsed()) {
    if (absl::Status s = rampart::agent::RunEnrollCommand(enroll); !s.ok()) {
      std::fprintf(stderr, "rampart-agent enroll: %s\n",
                   std::string(s.message()).c_str());
      return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
    }
    std::fprintf(stderr,
                 "rampart-agent enroll: enrolled as %s; certificate and key "
                 "in %s/tls\n",
                 enroll.agent_id.c_str(), enroll.state_dir.c_str());
    return 0;
  }
  if (parse_cmd->parsed()) {
    parse.parser.date_order = rampart::agent::ParseDateOrder(date_order)
                                  .value_or(rampart::agent::DateOrder::kAuto);
    parse.parser.tls_failures = !no_tls;
    parse.parser.sessions = !no_sessions;
    return rampart::agent::RunParseCommand(parse, stdout, stderr);
  }
  return 2;
}
