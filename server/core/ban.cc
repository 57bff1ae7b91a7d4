#include "server/core/ban.h"

namespace rampart::server {

std::string_view BanOriginName(BanOrigin origin) {
  switch (origin) {
    case BanOrigin::kAuto:
      return "auto";
    case BanOrigin::kPrefix:
      return "prefix";
    case BanOrigin::kManual:
      return "manual";
    case BanOrigin::kImport:
      return "import";
  }
  return "auto";
}

std::optional<BanOrigin> ParseBanOrigin(std::string_view name) {
  for (BanOrigin o : {BanOrigin::kAuto, BanOrigin::kPrefix, BanOrigin::kManual,
                      BanOrigin::kImport}) {
    if (BanOriginName(o) == name) {
      return o;
    }
  }
  return std::nullopt;
}

std::string_view JournalOpName(JournalEntry::Op op) {
  switch (op) {
    case JournalEntry::Op::kAdd:
      return "add";
    case JournalEntry::Op::kRemove:
      return "remove";
    case JournalEntry::Op::kUpdate:
      return "update";
  }
  return "add";
}

}  // namespace rampart::server
