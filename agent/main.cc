// rampart-agent: one per Domino server. This file only parses the command
// line and wires the modules together.

#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "agent/parse_command.h"
#include "common/version.h"

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
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
