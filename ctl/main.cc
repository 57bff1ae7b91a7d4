// rampartctl: the administrator's command line over the admin gRPC API. This
// file only parses the command line and wires the modules together.

#include <string>

#include "CLI/CLI.hpp"
#include "common/version.h"

int main(int argc, char** argv) {
  CLI::App app{"rampartctl: administer a Rampart estate"};
  app.set_version_flag("--version", std::string(rampart::kVersion));
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  std::fputs(app.help().c_str(), stdout);
  return 0;
}
