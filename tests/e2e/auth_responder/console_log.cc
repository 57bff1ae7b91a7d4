#include "tests/e2e/auth_responder/console_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/strings.h"

namespace rampart::e2e {

absl::StatusOr<DateStyle> ParseDateStyle(std::string_view text) {
  if (text == "dmy") return DateStyle::kDmy;
  if (text == "mdy") return DateStyle::kMdy;
  if (text == "ymd") return DateStyle::kYmd;
  return absl::InvalidArgumentError(
      absl::StrCat("date style must be dmy, mdy or ymd, got \"",
                   std::string(text.substr(0, 32)), "\""));
}

std::string FormatLinePrefix(DateStyle style, absl::CivilSecond t, int pid) {
  switch (style) {
    case DateStyle::kDmy:
      return absl::StrFormat("%02d.%02d.%04d %02d:%02d:%02d   ", t.day(),
                             t.month(), t.year(), t.hour(), t.minute(),
                             t.second());
    case DateStyle::kMdy: {
      const int h12 = t.hour() % 12 == 0 ? 12 : t.hour() % 12;
      return absl::StrFormat(
          "[%d:00012-7F01] %02d/%02d/%04d %02d:%02d:%02d %s  ", pid, t.month(),
          t.day(), t.year(), h12, t.minute(), t.second(),
          t.hour() < 12 ? "AM" : "PM");
    }
    case DateStyle::kYmd:
      return absl::StrFormat("%04d-%02d-%02d %02d:%02d:%02d   ", t.year(),
                             t.month(), t.day(), t.hour(), t.minute(),
                             t.second());
  }
  return "";
}

std::vector<std::string> AttemptMessages(Protocol protocol,
                                         std::string_view user,
                                         std::string_view ip, bool success) {
  std::vector<std::string> out;
  if (!success) {
    out.push_back(absl::StrCat(ToAbsl(ProtocolName(protocol)), ": ",
                               ToAbsl(user), " [", ToAbsl(ip),
                               "] authentication failure using internet "
                               "password"));
    if (protocol == Protocol::kSmtp) {
      out.push_back(absl::StrCat("SMTP Server: Authentication failed for user ",
                                 ToAbsl(user), " ; connecting host ",
                                 ToAbsl(ip)));
    }
    return out;
  }
  switch (protocol) {
    case Protocol::kSmtp:
      out.push_back(absl::StrCat("SMTP Server: Authentication succeeded for ",
                                 "user ", ToAbsl(user), " ; connecting host ",
                                 ToAbsl(ip)));
      break;
    case Protocol::kImap:
      out.push_back(absl::StrCat("IMAP Server: ", ToAbsl(user),
                                 " logged in from ", ToAbsl(ip)));
      break;
    case Protocol::kPop3:
      out.push_back(absl::StrCat("POP3 Server: ", ToAbsl(user),
                                 " logged in; connecting host ", ToAbsl(ip)));
      break;
    default:
      break;
  }
  return out;
}

std::string SanitizeUser(std::string_view user) {
  std::string out;
  for (const char c : user) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) {
      continue;
    }
    if (out.size() == kMaxUserBytes) {
      break;
    }
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ConsoleLog>> ConsoleLog::Open(
    const std::string& path, DateStyle style, const Clock& clock) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<ConsoleLog>(new ConsoleLog(fd, style, clock));
}

ConsoleLog::~ConsoleLog() { ::close(fd_); }

int ConsoleLog::Attempt(Protocol protocol, std::string_view user,
                        std::string_view ip, bool success) {
  const std::vector<std::string> messages =
      AttemptMessages(protocol, SanitizeUser(user), ip, success);
  {
    absl::MutexLock lock(&mu_);
    ++attempts_;
  }
  Write(messages);
  return static_cast<int>(messages.size());
}

void ConsoleLog::Session(std::string_view ip, bool connected) {
  Write({connected ? absl::StrCat("SMTP Server: ", ToAbsl(ip), " connected")
                   : absl::StrCat("SMTP Server: ", ToAbsl(ip),
                                  " disconnected. 0 message[s] received")});
}

int64_t ConsoleLog::attempts() const {
  absl::MutexLock lock(&mu_);
  return attempts_;
}

void ConsoleLog::Write(const std::vector<std::string>& messages) {
  if (messages.empty()) {
    return;
  }
  absl::MutexLock lock(&mu_);
  const absl::CivilSecond now =
      absl::ToCivilSecond(clock_.Now(), absl::UTCTimeZone());
  const std::string prefix = FormatLinePrefix(style_, now, ::getpid());
  std::string text;
  for (const std::string& m : messages) {
    absl::StrAppend(&text, prefix, m, "\n");
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // a full disk loses lines; the e2e test would notice
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace rampart::e2e
