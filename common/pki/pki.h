#pragma once

// Agent identity on the OpenSSL edge: everything Rampart does with keys,
// certificate signing requests and certificates, so no other module includes
// an OpenSSL header (docs/security.md, "Transport and agent identity").
//
//   agent:  GenerateKeyAndCsr(agent_id) -> key PEM (kept, 0600) + CSR PEM
//   server: CertificateAuthority::Create(ca cert, ca key)
//           ->SignCsr(csr, agent_id, now, ttl) -> leaf PEM, serial, SHA-256
//   both:   ParseCertificate(pem) -> CN, serial, fingerprint, not_after
//   tokens: NewEnrollmentToken() (32 random bytes, base64url) and
//           HashEnrollmentToken() (hex SHA-256: what the store keeps),
//           ConstantTimeEquals() to compare hashes.
//
// Every input is hostile: sizes are bounded, every error is a Status with a
// clear message (InvalidArgument for bad input), nothing throws or aborts.
// Thread-safety: free functions are thread-safe; CertificateAuthority is
// immutable after Create and safe to share.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::pki {

// Largest CSR accepted (EnrollRequest.csr_pem).
inline constexpr size_t kMaxCsrPemBytes = 16 * 1024;
// Largest certificate / key / bundle PEM read.
inline constexpr size_t kMaxPemBytes = 256 * 1024;
// Longest agent identity (Hello.agent_id).
inline constexpr size_t kMaxIdentityBytes = 128;

// A new ECDSA P-256 private key (PKCS#8 PEM) and a PKCS#10 CSR for it with
// subject CN=agent_id, signed with SHA-256.
struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr(std::string_view agent_id);

// What Rampart needs to know about a certificate.
struct CertificateInfo {
  std::string common_name;  // subject CN ("" if none)
  std::string serial_hex;   // upper-case hex, no leading zeros
  std::string sha256_hex;   // lower-case hex of SHA-256 over the DER
  absl::Time not_before = absl::InfinitePast();
  absl::Time not_after = absl::InfinitePast();
};

// The first certificate in `pem`. InvalidArgument if there is none or it
// does not parse.
absl::StatusOr<CertificateInfo> ParseCertificate(std::string_view pem);

// A signed leaf certificate.
struct SignedCertificate {
  std::string certificate_pem;  // the leaf
  CertificateInfo info;
};

// The enrollment CA: signs agent CSRs. Immutable.
class CertificateAuthority {
 public:
  // `cert_pem` is the CA certificate (a bundle: the first one signs),
  // `key_pem` its private key (PEM, unencrypted). InvalidArgument if either
  // does not parse or the key does not belong to the certificate.
  static absl::StatusOr<std::unique_ptr<CertificateAuthority>> Create(
      std::string_view cert_pem, std::string_view key_pem);
  ~CertificateAuthority();

  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  // Verifies `csr_pem` (size <= kMaxCsrPemBytes, self-signature valid, key
  // ECDSA P-256/P-384, Ed25519 or RSA >= 3072 bits, subject CN equal to
  // `agent_id`) and issues a client certificate: subject CN=agent_id only,
  // random 128-bit serial, valid [now - 5m, now + ttl] (capped at the CA's
  // own expiry), basicConstraints CA:FALSE, keyUsage digitalSignature,
  // extendedKeyUsage clientAuth. InvalidArgument with the reason otherwise.
  absl::StatusOr<SignedCertificate> SignCsr(std::string_view csr_pem,
                                            std::string_view agent_id,
                                            absl::Time now,
                                            absl::Duration ttl) const;

  // The CA certificate(s) as given to Create.
  const std::string& ca_pem() const { return ca_pem_; }

 private:
  struct Handles;
  CertificateAuthority(std::unique_ptr<Handles> handles, std::string ca_pem);
  std::unique_ptr<Handles> handles_;
  std::string ca_pem_;
};

// 32 random bytes from the OS CSPRNG, base64url without padding (43 chars).
absl::StatusOr<std::string> NewEnrollmentToken();
// Lower-case hex SHA-256 of `token`.
std::string HashEnrollmentToken(std::string_view token);
// Equal strings, in time independent of where they differ (lengths are not
// secret).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace rampart::pki
