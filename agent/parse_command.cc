#include "agent/parse_command.h"

#include "absl/strings/str_cat.h"
#include "agent/domino/line_reader.h"
#include "agent/domino/pair_deduplicator.h"
#include "common/json_writer.h"
#include "common/time_format.h"

namespace rampart::agent {
namespace {

constexpr size_t kFlushBytes = 1 << 20;

bool Flush(std::string* buf, std::FILE* out) {
  const bool ok = std::fwrite(buf->data(), 1, buf->size(), out) == buf->size();
  buf->clear();
  return ok;
}

}  // namespace

void AppendParsedLineJson(std::string* out, uint64_t line_number,
                          const ParsedLine& line, bool dedup,
                          std::string_view file) {
  out->append("{\"line\":");
  absl::StrAppend(out, line_number);
  out->append(",\"kind\":\"");
  out->append(EventKindName(line.kind));
  out->append("\",\"protocol\":\"");
  out->append(ProtocolName(line.protocol));
  out->append("\",\"ip\":\"");
  if (line.ip.has_value()) {
    line.ip->AppendTo(out);
  }
  out->append("\",\"user\":");
  AppendJsonString(out, line.user);
  out->append(",\"time\":\"");
  if (line.has_time) {
    AppendIsoTime(out, line.time);
  }
  out->append(dedup ? "\",\"dedup\":true" : "\",\"dedup\":false");
  if (line.suspicion != Suspicion::kNone) {
    out->append(",\"suspect\":\"");
    out->append(SuspicionName(line.suspicion));
    out->push_back('"');
  }
  if (!file.empty()) {
    out->append(",\"file\":");
    AppendJsonString(out, file);
  }
  out->push_back('}');
}

int RunParseCommand(const ParseCommandOptions& options, std::FILE* out,
                    std::FILE* err) {
  int exit_code = 0;
  const bool name_files = options.files.size() > 1;
  std::string buf;
  buf.reserve(kFlushBytes + 4096);
  for (const std::string& path : options.files) {
    absl::StatusOr<std::unique_ptr<LineReader>> reader = LineReader::Open(path);
    if (!reader.ok()) {
      std::fprintf(err, "rampart-agent parse: %s\n",
                   std::string(reader.status().message()).c_str());
      exit_code = 1;
      continue;
    }
    DominoParser parser(options.parser);
    PairDeduplicator dedup;
    ParsedLine parsed;
    uint64_t recognised = 0, duplicates = 0;
    std::string_view line;
    bool truncated = false;
    while (true) {
      absl::StatusOr<bool> more = (*reader)->Next(&line, &truncated);
      if (!more.ok()) {
        std::fprintf(err, "rampart-agent parse: %s (after line %llu)\n",
                     std::string(more.status().message()).c_str(),
                     static_cast<unsigned long long>((*reader)->line_number()));
        exit_code = 1;
        break;
      }
      if (!*more) {
        break;
      }
      // A cut line's end is not Domino's (an attacker's user name could end
      // it with a forged address): never parsed, only counted.
      if (truncated || !parser.Parse(line, &parsed)) {
        continue;
      }
      const bool is_dup = dedup.Observe(parsed);
      ++recognised;
      duplicates += is_dup ? 1 : 0;
      AppendParsedLineJson(&buf, (*reader)->line_number(), parsed, is_dup,
                           name_files ? std::string_view(path) : "");
      buf.push_back('\n');
      if (buf.size() >= kFlushBytes && !Flush(&buf, out)) {
        std::fprintf(err, "rampart-agent parse: write error on output\n");
        return 1;
      }
    }
    if (options.stats) {
      if (!Flush(&buf, out)) {
        return 1;
      }
      std::fprintf(
          err,
          "%s: lines=%llu recognised=%llu dedup=%llu truncated=%llu "
          "date_order=%s\n",
          path.c_str(),
          static_cast<unsigned long long>((*reader)->line_number()),
          static_cast<unsigned long long>(recognised),
          static_cast<unsigned long long>(duplicates),
          static_cast<unsigned long long>((*reader)->truncated_lines()),
          std::string(DateOrderName(parser.effective_date_order())).c_str());
    }
  }
  if (!Flush(&buf, out) || std::fflush(out) != 0) {
    std::fprintf(err, "rampart-agent parse: write error on output\n");
    return 1;
  }
  return exit_code;
}

}  // namespace rampart::agent
