// rampartctl: the administrator's command line over the admin gRPC API
// (docs/rampartctl.md). This file only reads the process environment and
// hands over to the rampart_ctl library.

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "ctl/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  rampart::ctl::CtlEnvironment env;
  if (const char* server = std::getenv("RAMPART_SERVER"); server != nullptr) {
    env.server = server;
  }
  if (const char* token = std::getenv("RAMPART_TOKEN"); token != nullptr) {
    env.token = token;
  }
  for (auto [name, field] : {std::pair{"RAMPART_CA_FILE", &env.ca_file},
                             std::pair{"RAMPART_CERT", &env.cert_file},
                             std::pair{"RAMPART_KEY", &env.key_file}}) {
    if (const char* value = std::getenv(name); value != nullptr) {
      *field = value;
    }
  }
  env.in = &std::cin;
  return rampart::ctl::RunCtl(args, std::cout, std::cerr, env);
}
