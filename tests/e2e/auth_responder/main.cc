// rampart-auth-responder: one fake Domino host for the end-to-end estate test
// (tests/e2e). Serves SMTP/IMAP/POP3/LDAP/HTTP logins on --address, writes
// Domino console.log lines to --log and runs until SIGTERM/SIGINT. This file
// only parses the command line and wires AuthResponder.

#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "tests/e2e/auth_responder/auth_responder.h"
#include "tests/e2e/auth_responder/console_log.h"

int main(int argc, char** argv) {
  CLI::App app{"Fake Domino login surfaces that write console.log lines"};
  rampart::e2e::ResponderOptions options;
  std::string log_path;
  std::string date_style = "dmy";
  std::vector<std::string> credentials;
  bool no_sessions = false;
  int deadline_s = 30;
  app.add_option("--address", options.address, "Address to bind")
      ->default_str("127.0.0.1");
  app.add_option("--smtp-port", options.smtp_port, "-1 disables, 0 any");
  app.add_option("--imap-port", options.imap_port, "-1 disables, 0 any");
  app.add_option("--pop3-port", options.pop3_port, "-1 disables, 0 any");
  app.add_option("--ldap-port", options.ldap_port, "-1 disables, 0 any");
  app.add_option("--http-port", options.http_port, "-1 disables, 0 any");
  app.add_option("--credential", credentials, "USER:PASSWORD (repeatable)");
  app.add_option("--log", log_path, "console.log to append to")->required();
  app.add_option("--date-style", date_style, "dmy | mdy | ymd")
      ->check(CLI::IsMember({"dmy", "mdy", "ymd"}));
  app.add_option("--hostname", options.hostname, "Name in greetings");
  app.add_flag("--no-smtp-sessions", no_sessions,
               "Do not log SMTP connect/disconnect lines");
  app.add_option("--max-connections", options.max_connections)
      ->check(CLI::Range(1, 10000));
  app.add_option("--deadline-seconds", deadline_s, "Per connection")
      ->check(CLI::Range(1, 3600));
  CLI11_PARSE(app, argc, argv);
  options.smtp_sessions = !no_sessions;
  options.connection_deadline = absl::Seconds(deadline_s);
  for (const std::string& c : credentials) {
    const size_t colon = c.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::fprintf(stderr, "--credential must be USER:PASSWORD\n");
      return 2;
    }
    options.credentials[c.substr(0, colon)] = c.substr(colon + 1);
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto log = rampart::e2e::ConsoleLog::Open(
      log_path, *rampart::e2e::ParseDateStyle(date_style),
      rampart::RealClock::Get());
  if (!log.ok()) {
    std::fprintf(stderr, "%s\n", std::string(log.status().message()).c_str());
    return 1;
  }
  auto responder = rampart::e2e::AuthResponder::Start(options, **log);
  if (!responder.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(responder.status().message()).c_str());
    return 1;
  }
  using rampart::Protocol;
  std::fprintf(
      stderr,
      "auth-responder listening on %s smtp=%d imap=%d pop3=%d "
      "ldap=%d http=%d\n",
      options.address.c_str(), (*responder)->port(Protocol::kSmtp),
      (*responder)->port(Protocol::kImap), (*responder)->port(Protocol::kPop3),
      (*responder)->port(Protocol::kLdap), (*responder)->port(Protocol::kHttp));
  int sig = 0;
  sigwait(&stop, &sig);
  (*responder)->Stop();
  return 0;
}
