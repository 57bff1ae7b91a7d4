#include "agent/enroll_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>

#include "absl/strings/str_format.h"
#include "agent/daemon/agent_config.h"
#include "common/file_util.h"
#include "common/pki/pki.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "rampart/v1/enrollment.grpc.pb.h"

namespace rampart::agent {
namespace {

// Writes `contents` to `path` with `mode` from the first byte (tmp file +
// fsync + rename), so a key is never readable by others, not even briefly.
absl::Status WritePrivateFile(const std::string& path,
                              std::string_view contents, mode_t mode) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return file_util::ErrnoStatus(errno, "cannot create", tmp);
  }
  absl::Status s = file_util::WriteAll(fd, contents, tmp);
  if (s.ok() && ::fchmod(fd, mode) != 0) {
    s = file_util::ErrnoStatus(errno, "cannot chmod", tmp);
  }
  if (s.ok() && ::fsync(fd) != 0) {
    s = file_util::ErrnoStatus(errno, "cannot fsync", tmp);
  }
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = file_util::ErrnoStatus(errno, "cannot rename to", path);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
  }
  return s;
}

// Most bytes read from a --token-file (the token is at most 128).
constexpr size_t kMaxTokenFileBytes = 4096;

absl::StatusOr<std::string> ReadStdinBounded(size_t max_bytes) {
  std::string out;
  char buf[512];
  while (out.size() <= max_bytes) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return file_util::ErrnoStatus(errno, "cannot read", "standard input");
    }
    if (n == 0) {
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("more than %d bytes", max_bytes));
}

}  // namespace

absl::StatusOr<std::string> ResolveEnrollToken(
    const EnrollCommandOptions& options) {
  if (options.token.empty() == options.token_file.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of --token and --token-file (--token-file - reads "
        "standard input)");
  }
  std::string token = options.token;
  const char* source = "--token";
  if (!options.token_file.empty()) {
    source = "--token-file";
    absl::StatusOr<std::string> text =
        options.token_file == "-" ? ReadStdinBounded(kMaxTokenFileBytes)
                                  : file_util::ReadFileBounded(
                                        options.token_file, kMaxTokenFileBytes);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--token-file %s: %s", options.token_file, text.status().message()));
    }
    std::string_view first = *text;
    first = first.substr(0, first.find('\n'));
    token = std::string(StripWhitespace(first));
  }
  if (token.empty() || token.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: the token must be 1..128 bytes", source));
  }
  for (const char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the token may hold only printable ASCII without spaces",
          source));
    }
  }
  return token;
}

absl::Status RunEnrollCommand(const EnrollCommandOptions& options) {
  RETURN_IF_ERROR(ValidateServerAddress(options.server));
  ASSIGN_OR_RETURN(const std::string token, ResolveEnrollToken(options));
  if (options.agent_id.empty() || options.agent_id.size() > 63) {
    return absl::InvalidArgumentError("--agent-id must be 1..63 bytes");
  }
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return absl::InvalidArgumentError("--state-dir must be an absolute path");
  }
  absl::StatusOr<std::string> ca =
      file_util::ReadFileBounded(options.ca_file, 1024 * 1024);
  if (!ca.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--ca-file %s: %s", options.ca_file, ca.status().message()));
  }
  ASSIGN_OR_RETURN(pki::KeyAndCsr key,
                   pki::GenerateKeyAndCsr(options.agent_id));

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ca;
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.server, grpc::SslCredentials(ssl));
  std::unique_ptr<v1::EnrollmentService::Stub> stub =
      v1::EnrollmentService::NewStub(channel);
  v1::EnrollRequest request;
  request.set_token(token);
  request.set_agent_id(options.agent_id);
  request.set_csr_pem(key.csr_pem);
  v1::EnrollResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options.timeout));
  const grpc::Status status = stub->Enroll(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrFormat("enrollment at %s refused: %s", options.server,
                        status.error_message()));
  }
  absl::StatusOr<pki::CertificateInfo> info =
      pki::ParseCertificate(response.certificate_chain_pem());
  if (!info.ok() || info->common_name != options.agent_id) {
    return absl::InternalError(
        "the server returned a certificate that is not for this agent");
  }
  const std::string dir = options.state_dir + "/tls";
  RETURN_IF_ERROR(file_util::MakeDirs(dir));
  if (::chmod(dir.c_str(), 0700) != 0) {
    return file_util::ErrnoStatus(errno, "cannot chmod", dir);
  }
  RETURN_IF_ERROR(WritePrivateFile(dir + "/agent.key", key.key_pem, 0600));
  RETURN_IF_ERROR(WritePrivateFile(dir + "/agent.pem",
                                   response.certificate_chain_pem(), 0644));
  RETURN_IF_ERROR(
      WritePrivateFile(dir + "/ca.pem", response.ca_bundle_pem(), 0644));
  return absl::OkStatus();
}

}  // namespace rampart::agent
