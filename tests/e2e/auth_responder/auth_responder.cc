#include "tests/e2e/auth_responder/auth_responder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/ip_address.h"
#include "common/strings.h"

namespace rampart::e2e {
namespace {

constexpr size_t kMaxLdapMessage = 4096;
constexpr size_t kMaxHttpHeaderBytes = 8192;
constexpr size_t kMaxHttpBody = 65536;

// One client connection: bounded line and byte reads against a deadline.
class Conn {
 public:
  Conn(int fd, absl::Time deadline, size_t max_line)
      : fd_(fd), deadline_(deadline), max_line_(max_line) {}

  // Reads one line without "\r\n"/"\n". False on EOF, error, deadline or a
  // line longer than max_line (the connection is then done).
  bool ReadLine(std::string* line) {
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        if (nl > max_line_) return false;
        *line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line->empty() && line->back() == '\r') line->pop_back();
        return true;
      }
      if (buf_.size() > max_line_ || !Fill()) return false;
    }
  }
  // Reads exactly n bytes.
  bool ReadBytes(size_t n, std::string* out) {
    while (buf_.size() < n) {
      if (!Fill()) return false;
    }
    *out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }
  bool Write(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

 private:
  bool Fill() {
    const int64_t left = absl::ToInt64Milliseconds(deadline_ - absl::Now());
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r <= 0) return false;
    char tmp[4096];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  const int fd_;
  const absl::Time deadline_;
  const size_t max_line_;
  std::string buf_;
};

// A verdict for one login, logged once.
class Checker {
 public:
  Checker(const ResponderOptions& options, ConsoleLog& log, Protocol protocol,
          std::string peer)
      : options_(options),
        log_(log),
        protocol_(protocol),
        peer_(std::move(peer)) {}
  bool Check(const std::string& user, const std::string& password) {
    const auto it = options_.credentials.find(user);
    const bool ok = it != options_.credentials.end() && it->second == password;
    log_.Attempt(protocol_, user, peer_, ok);
    return ok;
  }

 private:
  const ResponderOptions& options_;
  ConsoleLog& log_;
  const Protocol protocol_;
  const std::string peer_;
};

std::string Upper(std::string_view s) {
  return absl::AsciiStrToUpper(ToAbsl(s));
}

// Splits "VERB rest" (verb upper-cased).
std::pair<std::string, std::string> Verb(const std::string& line) {
  const size_t sp = line.find(' ');
  if (sp == std::string::npos) return {Upper(line), ""};
  return {Upper(std::string_view(line).substr(0, sp)), line.substr(sp + 1)};
}

std::string B64Decode(std::string_view s) {
  std::string out;
  if (!absl::Base64Unescape(ToAbsl(s), &out)) return "";
  return out;
}

void ServeSmtp(Conn& c, const ResponderOptions& o, Checker& check) {
  if (!c.Write(absl::StrCat("220 ", o.hostname, " ESMTP Service ready\r\n"))) {
    return;
  }
  std::string line;
  while (c.ReadLine(&line)) {
    auto [verb, rest] = Verb(line);
    std::string reply;
    if (verb == "EHLO") {
      reply = absl::StrCat("250-", o.hostname,
                           "\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n");
    } else if (verb == "HELO") {
      reply = absl::StrCat("250 ", o.hostname, "\r\n");
    } else if (verb == "AUTH") {
      auto [mech, initial] = Verb(rest);
      std::string user, pass;
      if (mech == "PLAIN") {
        if (initial.empty()) {
          if (!c.Write("334 \r\n") || !c.ReadLine(&initial)) return;
        }
        if (initial == "*") {
          c.Write("501 5.0.0 Authentication cancelled\r\n");
          continue;
        }
        // authzid NUL authcid NUL passwd
        const std::vector<std::string> parts =
            absl::StrSplit(B64Decode(initial), '\0');
        if (parts.size() != 3) {
          c.Write("501 5.5.2 Cannot decode response\r\n");
          continue;
        }
        user = parts[1];
        pass = parts[2];
      } else if (mech == "LOGIN") {
        std::string u64 = initial, p64;
        if (u64.empty()) {
          if (!c.Write("334 VXNlcm5hbWU6\r\n") || !c.ReadLine(&u64)) return;
        }
        if (!c.Write("334 UGFzc3dvcmQ6\r\n") || !c.ReadLine(&p64)) return;
        if (u64 == "*" || p64 == "*") {
          c.Write("501 5.0.0 Authentication cancelled\r\n");
          continue;
        }
        user = B64Decode(u64);
        pass = B64Decode(p64);
      } else {
        c.Write("504 5.5.4 Unrecognized authentication type\r\n");
        continue;
      }
      reply = check.Check(user, pass)
                  ? "235 2.7.0 Authentication successful\r\n"
                  : "535 5.7.8 Authentication credentials invalid\r\n";
    } else if (verb == "QUIT") {
      c.Write("221 2.0.0 Bye\r\n");
      return;
    } else if (verb == "RSET" || verb == "NOOP") {
      reply = "250 2.0.0 OK\r\n";
    } else {
      reply = "502 5.5.2 Command not recognized\r\n";
    }
    if (!c.Write(reply)) return;
  }
}

// IMAP astring: atom or quoted string with \\ and \" escapes. Advances *s.
bool ImapString(std::string_view* s, std::string* out) {
  while (!s->empty() && s->front() == ' ') s->remove_prefix(1);
  out->clear();
  if (s->empty()) return false;
  if (s->front() == '"') {
    s->remove_prefix(1);
    while (!s->empty()) {
      char ch = s->front();
      s->remove_prefix(1);
      if (ch == '"') return true;
      if (ch == '\\') {
        if (s->empty()) return false;
        ch = s->front();
        s->remove_prefix(1);
      }
      out->push_back(ch);
    }
    return false;
  }
  const size_t sp = s->find(' ');
  *out = std::string(s->substr(0, sp));
  s->remove_prefix(sp == std::string_view::npos ? s->size() : sp);
  return true;
}

void ServeImap(Conn& c, const ResponderOptions& o, Checker& check) {
  if (!c.Write(absl::StrCat("* OK ", o.hostname,
                            " Domino IMAP4 Server ready\r\n"))) {
    return;
  }
  std::string line;
  while (c.ReadLine(&line)) {
    auto [tag, rest] = Verb(line);
    tag = line.substr(0, line.find(' '));
    auto [verb, args] = Verb(rest);
    std::string reply;
    if (verb == "CAPABILITY") {
      reply = absl::StrCat("* CAPABILITY IMAP4rev1\r\n", tag,
                           " OK CAPABILITY completed\r\n");
    } else if (verb == "LOGIN") {
      std::string_view a = args;
      std::string user, pass;
      if (!ImapString(&a, &user) || !ImapString(&a, &pass)) {
        reply = absl::StrCat(tag, " BAD Invalid arguments\r\n");
      } else if (check.Check(user, pass)) {
        reply = absl::StrCat(tag, " OK LOGIN completed\r\n");
      } else {
        reply =
            absl::StrCat(tag, " NO [AUTHENTICATIONFAILED] Login failed\r\n");
      }
    } else if (verb == "LOGOUT") {
      c.Write(absl::StrCat("* BYE logging out\r\n", tag,
                           " OK LOGOUT completed\r\n"));
      return;
    } else if (verb == "NOOP") {
      reply = absl::StrCat(tag, " OK NOOP completed\r\n");
    } else {
      reply = absl::StrCat(tag, " BAD Unknown command\r\n");
    }
    if (!c.Write(reply)) return;
  }
}

void ServePop3(Conn& c, const ResponderOptions& o, Checker& check) {
  if (!c.Write(absl::StrCat("+OK ", o.hostname, " POP3 server ready\r\n"))) {
    return;
  }
  std::string line;
  std::string user;
  bool have_user = false;
  while (c.ReadLine(&line)) {
    auto [verb, arg] = Verb(line);
    std::string reply;
    if (verb == "CAPA") {
      reply = "+OK Capability list follows\r\nUSER\r\n.\r\n";
    } else if (verb == "USER") {
      user = arg;
      have_user = true;
      reply = "+OK\r\n";
    } else if (verb == "PASS") {
      if (!have_user) {
        reply = "-ERR USER first\r\n";
      } else {
        reply = check.Check(user, arg) ? "+OK Logged in\r\n"
                                       : "-ERR Authentication failed\r\n";
        have_user = false;
      }
    } else if (verb == "QUIT") {
      c.Write("+OK Bye\r\n");
      return;
    } else {
      reply = "-ERR Unknown command\r\n";
    }
    if (!c.Write(reply)) return;
  }
}

// Reads one BER length at `*s`. False if malformed or > kMaxLdapMessage.
bool BerLength(std::string_view* s, size_t* len) {
  if (s->empty()) return false;
  const auto first = static_cast<unsigned char>(s->front());
  s->remove_prefix(1);
  if (first < 0x80) {
    *len = first;
    return true;
  }
  const int n = first & 0x7f;
  if (n < 1 || n > 2 || s->size() < static_cast<size_t>(n)) return false;
  size_t v = 0;
  for (int i = 0; i < n; ++i) {
    v = (v << 8) | static_cast<unsigned char>(s->front());
    s->remove_prefix(1);
  }
  if (v > kMaxLdapMessage) return false;
  *len = v;
  return true;
}

// Reads one TLV with tag `tag`; its value goes to *value.
bool BerTlv(std::string_view* s, unsigned char tag, std::string_view* value) {
  if (s->empty() || static_cast<unsigned char>(s->front()) != tag) {
    return false;
  }
  s->remove_prefix(1);
  size_t len = 0;
  if (!BerLength(s, &len) || len > s->size()) return false;
  *value = s->substr(0, len);
  s->remove_prefix(len);
  return true;
}

bool BerInt(std::string_view v, int64_t* out) {
  if (v.empty() || v.size() > 4) return false;
  int64_t x = (static_cast<unsigned char>(v[0]) & 0x80) ? -1 : 0;
  for (const char ch : v) x = (x << 8) | static_cast<unsigned char>(ch);
  *out = x;
  return true;
}

void ServeLdap(Conn& c, Checker& check) {
  while (true) {
    std::string head;
    if (!c.ReadBytes(2, &head) || static_cast<unsigned char>(head[0]) != 0x30) {
      return;
    }
    const auto l0 = static_cast<unsigned char>(head[1]);
    size_t len = l0;
    if (l0 >= 0x80) {
      const int n = l0 & 0x7f;
      std::string more;
      if (n < 1 || n > 2 || !c.ReadBytes(static_cast<size_t>(n), &more)) {
        return;
      }
      len = 0;
      for (const char ch : more)
        len = (len << 8) | static_cast<unsigned char>(ch);
    }
    std::string body;
    if (len > kMaxLdapMessage || !c.ReadBytes(len, &body)) return;
    absl::StatusOr<LdapBind> bind = DecodeLdapMessage(body);
    if (!bind.ok() || bind->unbind) return;
    const int code = check.Check(bind->name, bind->password) ? 0 : 49;
    if (!c.Write(EncodeLdapBindResponse(bind->message_id, code))) return;
  }
}

void ServeHttp(Conn& c, Checker& check) {
  while (true) {
    std::string request_line;
    if (!c.ReadLine(&request_line)) return;
    if (request_line.empty()) continue;
    const bool http10 = absl::EndsWith(request_line, "HTTP/1.0");
    std::string auth;
    bool close = http10;
    size_t content_length = 0;
    size_t header_bytes = 0;
    std::string h;
    while (true) {
      if (!c.ReadLine(&h)) return;
      header_bytes += h.size() + 2;
      if (header_bytes > kMaxHttpHeaderBytes) return;
      if (h.empty()) break;
      const size_t colon = h.find(':');
      if (colon == std::string::npos) continue;
      const std::string name = Upper(std::string_view(h).substr(0, colon));
      std::string value(absl::StripAsciiWhitespace(
          ToAbsl(std::string_view(h).substr(colon + 1))));
      if (name == "AUTHORIZATION") {
        auth = value;
      } else if (name == "CONNECTION") {
        const std::string v = Upper(value);
        close = v == "CLOSE" ? true : (v == "KEEP-ALIVE" ? false : close);
      } else if (name == "CONTENT-LENGTH") {
        if (!absl::SimpleAtoi(ToAbsl(value), &content_length) ||
            content_length > kMaxHttpBody) {
          return;
        }
      }
    }
    std::string ignored;
    if (content_length > 0 && !c.ReadBytes(content_length, &ignored)) return;
    bool ok = false;
    if (absl::StartsWithIgnoreCase(ToAbsl(auth), "basic ")) {
      const std::string decoded = B64Decode(std::string_view(auth).substr(6));
      const size_t colon = decoded.find(':');
      const std::string user = decoded.substr(0, colon);
      const std::string pass =
          colon == std::string::npos ? "" : decoded.substr(colon + 1);
      ok = check.Check(user, pass);
    }
    const std::string body = ok ? "OK\n" : "Unauthorized\n";
    std::string reply = absl::StrCat(
        ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 401 Unauthorized\r\n",
        ok ? "" : "WWW-Authenticate: Basic realm=\"Domino\"\r\n",
        "Content-Type: text/plain\r\nContent-Length: ", body.size(), "\r\n",
        close ? "Connection: close\r\n" : "", "\r\n", body);
    if (!c.Write(reply) || close) return;
  }
}

}  // namespace

absl::StatusOr<LdapBind> DecodeLdapMessage(std::string_view body) {
  std::string_view s = body;
  std::string_view v;
  LdapBind out;
  if (!BerTlv(&s, 0x02, &v) || !BerInt(v, &out.message_id)) {
    return absl::InvalidArgumentError("LDAP: bad messageID");
  }
  if (!s.empty() && static_cast<unsigned char>(s.front()) == 0x42) {
    out.unbind = true;
    return out;
  }
  std::string_view op;
  if (!BerTlv(&s, 0x60, &op)) {
    return absl::InvalidArgumentError("LDAP: not a BindRequest");
  }
  int64_t version = 0;
  std::string_view name, password;
  if (!BerTlv(&op, 0x02, &v) || !BerInt(v, &version) || version < 2 ||
      version > 3 || !BerTlv(&op, 0x04, &name) ||
      !BerTlv(&op, 0x80, &password)) {
    return absl::InvalidArgumentError("LDAP: not a simple bind");
  }
  out.name = std::string(name);
  out.password = std::string(password);
  return out;
}

std::string EncodeLdapBindResponse(int64_t message_id, int result_code) {
  std::string id;
  int64_t m = message_id;
  do {
    id.insert(id.begin(), static_cast<char>(m & 0xff));
    m >>= 8;
  } while (m != 0 && m != -1);
  if (message_id >= 0 && (static_cast<unsigned char>(id[0]) & 0x80)) {
    id.insert(id.begin(), '\0');
  }
  std::string op = {'\x0a', '\x01', static_cast<char>(result_code),
                    '\x04', '\x00', '\x04',
                    '\x00'};
  std::string inner;
  inner += '\x02';
  inner += static_cast<char>(id.size());
  inner += id;
  inner += '\x61';
  inner += static_cast<char>(op.size());
  inner += op;
  std::string out = {'\x30', static_cast<char>(inner.size())};
  return out + inner;
}

absl::StatusOr<std::unique_ptr<AuthResponder>> AuthResponder::Start(
    const ResponderOptions& options, ConsoleLog& log) {
  absl::StatusOr<IpAddress> addr = IpAddress::FromString(options.address);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<AuthResponder> r(new AuthResponder(options, log));
  if (::pipe2(r->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  const std::pair<Protocol, int> wanted[] = {
      {Protocol::kSmtp, options.smtp_port},
      {Protocol::kImap, options.imap_port},
      {Protocol::kPop3, options.pop3_port},
      {Protocol::kLdap, options.ldap_port},
      {Protocol::kHttp, options.http_port}};
  for (const auto& [protocol, port] : wanted) {
    if (port < 0) continue;
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (addr->is_v4()) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(static_cast<uint16_t>(port));
      sin->sin_addr.s_addr = htonl(addr->v4());
      len = sizeof(sockaddr_in);
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(static_cast<uint16_t>(port));
      std::memcpy(sin6->sin6_addr.s6_addr, addr->bytes().data(), 16);
      len = sizeof(sockaddr_in6);
    }
    const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(fd, 128) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      const std::string err = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return absl::UnavailableError(
          absl::StrCat("listen ", ToAbsl(ProtocolName(protocol)), " on ",
                       options.address, ":", port, ": ", err));
    }
    const int bound =
        ntohs(ss.ss_family == AF_INET
                  ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                  : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    r->listeners_.push_back({protocol, fd, bound});
  }
  r->accept_thread_ = std::thread([p = r.get()] { p->AcceptLoop(); });
  return r;
}

AuthResponder::~AuthResponder() {
  Stop();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

int AuthResponder::port(Protocol protocol) const {
  for (const Listener& l : listeners_) {
    if (l.protocol == protocol) return l.port;
  }
  return -1;
}

void AuthResponder::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [fd, t] : connections_) ::shutdown(fd, SHUT_RDWR);
  }
  const char b = 1;
  (void)!::write(wake_[1], &b, 1);
  if (accept_thread_.joinable()) accept_thread_.join();
  for (const Listener& l : listeners_) ::close(l.fd);
  // Every connection was shut down above; each one's thread moves itself
  // to finished_ as it ends.
  std::vector<std::thread> done;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::map<int, std::thread>* c) { return c->empty(); },
        &connections_));
    done.swap(finished_);
  }
  for (std::thread& t : done) t.join();
}

void AuthResponder::AcceptLoop() {
  std::vector<pollfd> fds;
  for (const Listener& l : listeners_) fds.push_back({l.fd, POLLIN, 0});
  fds.push_back({wake_[0], POLLIN, 0});
  while (true) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds.back().revents != 0) return;
    {
      // Join threads of finished connections.
      std::vector<std::thread> done;
      {
        absl::MutexLock lock(&mu_);
        done.swap(finished_);
      }
      for (std::thread& t : done) t.join();
    }
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) == 0) continue;
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      const int fd = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&ss),
                               &len, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::string peer;
      if (ss.ss_family == AF_INET) {
        peer = IpAddress::V4(
                   ntohl(reinterpret_cast<sockaddr_in*>(&ss)->sin_addr.s_addr))
                   .ToString();
      } else {
        std::array<uint8_t, 16> b;
        std::memcpy(b.data(),
                    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr.s6_addr,
                    16);
        // Normalises ::ffff:a.b.c.d like Domino's log would show the client.
        peer = IpAddress::Parse(IpAddress::V6(b).ToString())
                   .value_or(IpAddress::V6(b))
                   .ToString();
      }
      absl::MutexLock lock(&mu_);
      if (stopping_ || connections_.size() >=
                           static_cast<size_t>(options_.max_connections)) {
        ++rejected_;
        ::close(fd);
        continue;
      }
      const Protocol protocol = listeners_[i].protocol;
      connections_.emplace(fd, std::thread([this, protocol, fd, peer] {
                             Serve(protocol, fd, peer);
                           }));
    }
  }
}

void AuthResponder::Serve(Protocol protocol, int fd, std::string peer) {
  Conn conn(fd, absl::Now() + options_.connection_deadline,
            options_.max_line_bytes);
  Checker check(options_, log_, protocol, peer);
  switch (protocol) {
    case Protocol::kSmtp:
      if (options_.smtp_sessions) log_.Session(peer, true);
      ServeSmtp(conn, options_, check);
      if (options_.smtp_sessions) log_.Session(peer, false);
      break;
    case Protocol::kImap:
      ServeImap(conn, options_, check);
      break;
    case Protocol::kPop3:
      ServePop3(conn, options_, check);
      break;
    case Protocol::kLdap:
      ServeLdap(conn, check);
      break;
    case Protocol::kHttp:
      ServeHttp(conn, check);
      break;
    default:
      break;
  }
  absl::MutexLock lock(&mu_);
  ::close(fd);
  auto it = connections_.find(fd);
  if (it != connections_.end()) {
    finished_.push_back(std::move(it->second));
    connections_.erase(it);
  }
}

}  // namespace rampart::e2e
