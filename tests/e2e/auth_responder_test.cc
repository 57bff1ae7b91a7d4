// Unit tests of the end-to-end estate's fake Domino host: each protocol over
// loopback with the exact console.log lines it must write, hostile input, and
// a cross-check that the repository's parser recognises every line.

#include "tests/e2e/auth_responder/auth_responder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/domino/domino_parser.h"
#include "agent/domino/pair_deduplicator.h"
#include "agent/firewall/subprocess.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/auth_responder/console_log.h"

namespace rampart::e2e {
namespace {

using ::testing::ElementsAre;

// 2024-03-06 15:04:05 UTC.
absl::Time kStart = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 15, 4, 5),
                                    absl::UTCTimeZone());

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out = absl::StrSplit(Slurp(path), '\n');
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

// A blocking loopback client with a receive timeout.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  void Send(std::string_view s) {
    (void)!::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
  }
  // Reads until `until` appears in what was received (or EOF / 5 s).
  std::string ReadUntil(std::string_view until) {
    while (buf_.find(until) == std::string::npos) {
      if (!Fill()) break;
    }
    const size_t at = buf_.find(until);
    if (at == std::string::npos) {
      return std::exchange(buf_, "");
    }
    std::string out = buf_.substr(0, at + until.size());
    buf_.erase(0, at + until.size());
    return out;
  }
  std::string ReadBytes(size_t n) {
    while (buf_.size() < n && Fill()) {
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, out.size());
    return out;
  }
  // True if the server closed the connection (EOF) within 5 s.
  bool Closed() {
    while (Fill()) {
    }
    return eof_;
  }

 private:
  bool Fill() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return false;
    char tmp[4096];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

class AuthResponderTest : public ::testing::Test {
 protected:
  void SetUp() override { Begin(DateStyle::kDmy); }

  void Begin(DateStyle style, ResponderOptions options = {}) {
    responder_.reset();
    log_.reset();
    char tmpl[] = "/tmp/rampart-responder-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/console.log";
    auto log = ConsoleLog::Open(path_, style, clock_);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    options.smtp_port = options.imap_port = options.pop3_port =
        options.ldap_port = options.http_port = 0;
    options.credentials = {{"jdoe", "s3cret"}, {"cn=admin,o=acme", "ldappw"}};
    auto r = AuthResponder::Start(options, *log_);
    ASSERT_TRUE(r.ok()) << r.status();
    responder_ = std::move(*r);
  }
  void TearDown() override {
    responder_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Stops the responder so every connection's lines are written.
  std::vector<std::string> Finish() {
    responder_->Stop();
    return Lines(path_);
  }
  int Port(Protocol p) { return responder_->port(p); }

  SimulatedClock clock_{kStart};
  std::string dir_, path_;
  std::unique_ptr<ConsoleLog> log_;
  std::unique_ptr<AuthResponder> responder_;
};

std::string B64(std::string_view s) { return absl::Base64Escape(ToAbsl(s)); }

TEST_F(AuthResponderTest, SmtpAuthLoginAndPlain) {
  Client c(Port(Protocol::kSmtp));
  ASSERT_TRUE(c.connected());
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("220 "));
  c.Send("EHLO attacker\r\n");
  EXPECT_THAT(c.ReadUntil("250 8BITMIME\r\n"),
              ::testing::HasSubstr("250-AUTH LOGIN PLAIN"));
  c.Send("AUTH LOGIN\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n"), "334 VXNlcm5hbWU6\r\n");
  c.Send(B64("jdoe") + "\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n"), "334 UGFzc3dvcmQ6\r\n");
  c.Send(B64("wrong") + "\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("535 "));
  c.Send("AUTH PLAIN " + B64(std::string("\0jdoe\0s3cret", 12)) + "\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("235 "));
  c.Send("AUTH PLAIN\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n"), "334 \r\n");
  c.Send(B64(std::string("\0Bad Guy [x]; y\0pw", 18)) + "\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("535 "));
  c.Send("QUIT\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("221 "));
  EXPECT_THAT(
      Finish(),
      ElementsAre(
          "06.03.2024 15:04:05   SMTP Server: 127.0.0.1 connected",
          "06.03.2024 15:04:05   smtp: jdoe [127.0.0.1] authentication "
          "failure using internet password",
          "06.03.2024 15:04:05   SMTP Server: Authentication failed for user "
          "jdoe ; connecting host 127.0.0.1",
          "06.03.2024 15:04:05   SMTP Server: Authentication succeeded for "
          "user jdoe ; connecting host 127.0.0.1",
          "06.03.2024 15:04:05   smtp: Bad Guy [x]; y [127.0.0.1] "
          "authentication failure using internet password",
          "06.03.2024 15:04:05   SMTP Server: Authentication failed for user "
          "Bad Guy [x]; y ; connecting host 127.0.0.1",
          "06.03.2024 15:04:05   SMTP Server: 127.0.0.1 disconnected. 0 "
          "message[s] received"));
  EXPECT_EQ(log_->attempts(), 3);
}

TEST_F(AuthResponderTest, ImapLoginWithMdyDates) {
  Begin(DateStyle::kMdy);
  clock_.Advance(absl::Hours(9));  // 00:04:05 next day -> "12:04:05 AM"
  Client c(Port(Protocol::kImap));
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("* OK "));
  c.Send("a1 CAPABILITY\r\n");
  EXPECT_THAT(c.ReadUntil("a1 OK CAPABILITY completed\r\n"),
              ::testing::HasSubstr("* CAPABILITY IMAP4rev1"));
  c.Send("a2 login \"jdoe\" \"bad \\\"pw\"\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("a2 NO "));
  c.Send("a3 LOGIN jdoe s3cret\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n"), "a3 OK LOGIN completed\r\n");
  c.Send("a4 LOGOUT\r\n");
  EXPECT_THAT(c.ReadUntil("a4 OK LOGOUT completed\r\n"),
              ::testing::HasSubstr("* BYE"));
  const std::string prefix =
      absl::StrCat("[", ::getpid(), ":00012-7F01] 03/07/2024 12:04:05 AM  ");
  EXPECT_THAT(
      Finish(),
      ElementsAre(prefix + "imap: jdoe [127.0.0.1] authentication failure "
                           "using internet password",
                  prefix + "IMAP Server: jdoe logged in from 127.0.0.1"));
}

TEST_F(AuthResponderTest, Pop3UserPassWithYmdDates) {
  Begin(DateStyle::kYmd);
  Client c(Port(Protocol::kPop3));
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("+OK "));
  c.Send("CAPA\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n.\r\n"), ::testing::HasSubstr("USER"));
  c.Send("PASS early\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("-ERR"));
  c.Send("USER jdoe\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n"), "+OK\r\n");
  c.Send("PASS nope\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("-ERR"));
  c.Send("USER jdoe\r\nPASS s3cret\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n"), "+OK\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("+OK Logged in"));
  c.Send("QUIT\r\n");
  EXPECT_THAT(c.ReadUntil("\r\n"), ::testing::StartsWith("+OK"));
  EXPECT_THAT(Finish(),
              ElementsAre("2024-03-06 15:04:05   pop3: jdoe [127.0.0.1] "
                          "authentication failure using internet password",
                          "2024-03-06 15:04:05   POP3 Server: jdoe logged in; "
                          "connecting host 127.0.0.1"));
}

std::string LdapBindRequest(int id, std::string_view dn, std::string_view pw) {
  std::string op = {'\x02', '\x01', '\x03', '\x04',
                    static_cast<char>(dn.size())};
  op += dn;
  op += '\x80';
  op += static_cast<char>(pw.size());
  op += pw;
  std::string msg = {'\x02', '\x01', static_cast<char>(id), '\x60',
                     static_cast<char>(op.size())};
  msg += op;
  return std::string{'\x30', static_cast<char>(msg.size())} + msg;
}

TEST_F(AuthResponderTest, LdapSimpleBind) {
  Client c(Port(Protocol::kLdap));
  c.Send(LdapBindRequest(1, "cn=admin,o=acme", "guess"));
  // hydra reads the result code at byte 9 of this minimal encoding.
  EXPECT_EQ(
      c.ReadBytes(14),
      std::string("\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x31\x04\x00\x04\x00",
                  14));
  c.Send(LdapBindRequest(2, "cn=admin,o=acme", "ldappw"));
  EXPECT_EQ(
      c.ReadBytes(14),
      std::string("\x30\x0c\x02\x01\x02\x61\x07\x0a\x01\x00\x04\x00\x04\x00",
                  14));
  c.Send(std::string("\x30\x05\x02\x01\x03\x42\x00", 7));  // unbind
  EXPECT_TRUE(c.Closed());
  EXPECT_THAT(Finish(),
              ElementsAre("06.03.2024 15:04:05   ldap: cn=admin,o=acme "
                          "[127.0.0.1] authentication failure using "
                          "internet password"));
}

TEST_F(AuthResponderTest, LdapHostileInputIsBounded) {
  EXPECT_FALSE(DecodeLdapMessage("").ok());
  EXPECT_FALSE(DecodeLdapMessage(std::string("\x02\x01\x01\x60\x7f", 5)).ok());
  EXPECT_FALSE(DecodeLdapMessage(std::string("\x02\x09\x01", 3)).ok());
  EXPECT_FALSE(
      DecodeLdapMessage(std::string("\x02\x01\x01\x60\x84\xff\xff\xff\xff", 9))
          .ok());
  EXPECT_EQ(EncodeLdapBindResponse(200, 49),
            std::string("\x30\x0d\x02\x02\x00\xc8\x61\x07\x0a\x01\x31\x04\x00"
                        "\x04\x00",
                        15));
  Client c(Port(Protocol::kLdap));
  c.Send(std::string("\x30\x84\x7f\xff\xff\xff", 6));  // 2 GiB claimed
  EXPECT_TRUE(c.Closed());
  EXPECT_TRUE(Finish().empty());
}

TEST_F(AuthResponderTest, HttpBasicAuth) {
  Client c(Port(Protocol::kHttp));
  c.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(c.ReadUntil("Unauthorized\n"),
              ::testing::HasSubstr("WWW-Authenticate: Basic"));
  c.Send("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
         B64("anna.berg@example.com:x") + "\r\n\r\n");
  EXPECT_THAT(c.ReadUntil("Unauthorized\n"),
              ::testing::StartsWith("HTTP/1.1 401"));
  c.Send("GET / HTTP/1.1\r\nAuthorization: basic " + B64("jdoe:s3cret") +
         "\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(c.ReadUntil("OK\n"), ::testing::StartsWith("HTTP/1.1 200 OK"));
  EXPECT_TRUE(c.Closed());
  EXPECT_THAT(Finish(),
              ElementsAre("06.03.2024 15:04:05   http: anna.berg@example.com "
                          "[127.0.0.1] authentication failure using internet "
                          "password"));
}

TEST_F(AuthResponderTest, OverlongLineClosesTheConnection) {
  Client c(Port(Protocol::kPop3));
  c.ReadUntil("\r\n");
  c.Send("USER " + std::string(100000, 'x') + "\r\n");
  EXPECT_TRUE(c.Closed());
  Client h(Port(Protocol::kHttp));
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 1000; ++i) many += "X-Filler: 0123456789abcdef\r\n";
  h.Send(many);
  EXPECT_TRUE(h.Closed());
  EXPECT_TRUE(Finish().empty());
}

TEST_F(AuthResponderTest, ConnectionDeadlineAndLimit) {
  ResponderOptions o;
  o.connection_deadline = absl::Milliseconds(200);
  o.max_connections = 1;
  Begin(DateStyle::kDmy, o);
  Client first(Port(Protocol::kImap));
  EXPECT_THAT(first.ReadUntil("\r\n"), ::testing::StartsWith("* OK"));
  Client second(Port(Protocol::kImap));  // over the limit: closed at once
  EXPECT_TRUE(second.Closed());
  EXPECT_TRUE(first.Closed());  // silent past its deadline
  EXPECT_GE(responder_->rejected_connections(), 1);
}

// Debian's hydra, the attacker of the estate test, works against every
// protocol: it finds the password after the wrong guesses, each logged.
TEST_F(AuthResponderTest, HydraFindsThePasswordWithEveryModule) {
  if (::access("/usr/bin/hydra", X_OK) != 0) {
    if (std::getenv("CI") != nullptr) {
      FAIL() << "hydra missing under CI (scripts/install-deps.sh test)";
    }
    GTEST_SKIP() << "hydra not installed";
  }
  struct Case {
    const char* module;
    Protocol protocol;
    const char* user;
    const char* password;
    const char* target_suffix;
  };
  const Case cases[] = {
      {"smtp", Protocol::kSmtp, "jdoe", "s3cret", ""},
      {"imap", Protocol::kImap, "jdoe", "s3cret", ""},
      {"pop3", Protocol::kPop3, "jdoe", "s3cret", ""},
      {"ldap2", Protocol::kLdap, "cn=admin,o=acme", "ldappw", ""},
      {"http-get", Protocol::kHttp, "jdoe", "s3cret", "/"},
  };
  for (const Case& c : cases) {
    const std::string list = dir_ + "/" + c.module + ".txt";
    {
      std::ofstream out(list);
      out << "guess1\nguess2\n" << c.password << "\nguess3\n";
    }
    const std::string before = Slurp(path_);
    absl::StatusOr<agent::CommandResult> r = agent::RunCommand(
        {"/usr/bin/env", "-C", dir_, "/usr/bin/hydra", "-I", "-t", "1", "-f",
         "-l", c.user, "-P", list,
         absl::StrCat(c.module, "://127.0.0.1:", Port(c.protocol),
                      c.target_suffix)},
        {.timeout = absl::Seconds(60)});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(absl::StrContains(r->output, "1 valid password found"))
        << c.module << ":\n"
        << r->output;
    const std::string logged = Slurp(path_).substr(before.size());
    const std::string failure = absl::StrCat(
        ToAbsl(ProtocolName(c.protocol)), ": ", c.user,
        " [127.0.0.1] authentication failure using internet password");
    size_t n = 0;
    for (size_t at = logged.find(failure); at != std::string::npos;
         at = logged.find(failure, at + 1)) {
      ++n;
    }
    EXPECT_EQ(n, 2u) << c.module << ":\n" << logged;
  }
}

// Every line the responder writes, in each date style, is recognised by the
// agent's parser with the right kind, protocol, user and address; an SMTP
// failure's A and B lines count once.
TEST(ConsoleLogParserCrossCheck, EveryLineIsRecognised) {
  struct Style {
    DateStyle style;
    agent::DateOrder order;
  };
  for (const Style s : {Style{DateStyle::kDmy, agent::DateOrder::kDmy},
                        Style{DateStyle::kMdy, agent::DateOrder::kMdy},
                        Style{DateStyle::kYmd, agent::DateOrder::kYmd}}) {
    for (int hour : {0, 9, 12, 23}) {
      const absl::CivilSecond when(2024, 11, 23, hour, 7, 9);
      agent::DominoParser parser(
          {.date_order = s.order, .successes = true, .sessions = true});
      agent::PairDeduplicator dedup;
      for (const Protocol p :
           {Protocol::kSmtp, Protocol::kImap, Protocol::kPop3, Protocol::kLdap,
            Protocol::kHttp}) {
        for (const bool success : {false, true}) {
          for (const std::string& user :
               {std::string("jdoe"), std::string("Bad Guy [1.2.3.4]; x"),
                std::string("cn=admin,o=acme"),
                std::string("anna@example.com")}) {
            int counted = 0;
            for (const char* ip : {"203.0.113.5", "2001:db8::7"}) {
              counted = 0;
              for (const std::string& m :
                   AttemptMessages(p, SanitizeUser(user), ip, success)) {
                const std::string line =
                    FormatLinePrefix(s.style, when, 4242) + m;
                agent::ParsedLine out;
                ASSERT_TRUE(parser.Parse(line, &out)) << line;
                EXPECT_EQ(out.kind, success ? EventKind::kAuthSuccess
                                            : EventKind::kAuthFailure)
                    << line;
                EXPECT_EQ(out.protocol, p) << line;
                EXPECT_EQ(out.user, user) << line;
                ASSERT_TRUE(out.ip.has_value()) << line;
                EXPECT_EQ(out.ip->ToString(), std::string(ip)) << line;
                ASSERT_TRUE(out.has_time) << line;
                EXPECT_EQ(out.time, when) << line;
                if (!dedup.Observe(out)) ++counted;
              }
              if (!success || p == Protocol::kSmtp || p == Protocol::kImap ||
                  p == Protocol::kPop3) {
                EXPECT_EQ(counted, 1) << ProtocolName(p) << " " << success;
              }
            }
          }
        }
      }
      for (const bool connected : {true, false}) {
        const std::string line =
            FormatLinePrefix(s.style, when, 1) +
            (connected ? "SMTP Server: 203.0.113.5 connected"
                       : "SMTP Server: 203.0.113.5 disconnected. 0 message[s] "
                         "received");
        agent::ParsedLine out;
        ASSERT_TRUE(parser.Parse(line, &out)) << line;
        EXPECT_EQ(out.kind,
                  connected ? EventKind::kConnect : EventKind::kDisconnect);
        EXPECT_EQ(out.ip->ToString(), "203.0.113.5");
      }
    }
  }
}

TEST(ConsoleLogTest, SanitizeUserDropsControlBytesAndCaps) {
  EXPECT_EQ(SanitizeUser("a\r\nb\x7f\tc"), "abc");
  EXPECT_EQ(SanitizeUser(std::string(1000, 'u')).size(), kMaxUserBytes);
  EXPECT_EQ(SanitizeUser("Jürgen [x]"), "Jürgen [x]");
}

}  // namespace
}  // namespace rampart::e2e
