#include "common/pki/pki.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <ctime>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rampart::pki {
namespace {

// RAII for OpenSSL objects.
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct ReqFree {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Req = std::unique_ptr<X509_REQ, ReqFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using Bn = std::unique_ptr<BIGNUM, BnFree>;
using Ext = std::unique_ptr<X509_EXTENSION, ExtFree>;

// The most recent OpenSSL error as text (and clears the queue).
std::string OpenSslError() {
  const unsigned long code = ERR_peek_last_error();  // NOLINT(runtime/int)
  std::string text = "unknown error";
  if (code != 0) {
    char buf[256] = {};
    ERR_error_string_n(code, buf, sizeof(buf));
    text = buf;
  }
  ERR_clear_error();
  return text;
}

Bio MemBio(std::string_view data) {
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);  // NOLINT(runtime/int)
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

absl::StatusOr<absl::Time> AsnTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "certificate has an invalid validity time");
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

std::string CommonName(X509_NAME* name) {
  if (name == nullptr) {
    return "";
  }
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) {
    return "";
  }
  ASN1_STRING* data =
      X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) {
    ERR_clear_error();
    return "";
  }
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return cn;
}

std::string Hex(const unsigned char* data, size_t n) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(data), n));
}

absl::StatusOr<CertificateInfo> Info(X509* cert) {
  CertificateInfo info;
  info.common_name = CommonName(X509_get_subject_name(cert));
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  Bn bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (bn == nullptr) {
    return absl::InvalidArgumentError("certificate has an invalid serial");
  }
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) {
    return absl::ResourceExhaustedError("out of memory");
  }
  info.serial_hex = hex;
  OPENSSL_free(hex);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) {
    return absl::InternalError("cannot hash certificate: " + OpenSslError());
  }
  info.sha256_hex = Hex(md, md_len);
  auto nb = AsnTime(X509_get0_notBefore(cert));
  auto na = AsnTime(X509_get0_notAfter(cert));
  if (!nb.ok()) return nb.status();
  if (!na.ok()) return na.status();
  info.not_before = *nb;
  info.not_after = *na;
  return info;
}

// Accepts ECDSA P-256/P-384, Ed25519, RSA >= 3072.
absl::Status CheckKey(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group),
                                         &len) != 1) {
        ERR_clear_error();
        return absl::InvalidArgumentError("CSR has an unreadable EC key");
      }
      const std::string_view g(group, len);
      if (g == "prime256v1" || g == "P-256" || g == "secp384r1" ||
          g == "P-384") {
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(absl::StrFormat(
          "CSR key curve %s is not accepted (use P-256 or P-384)",
          std::string(g)));
    }
    case EVP_PKEY_ED25519:
      return absl::OkStatus();
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(key) >= 3072) {
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(
          absl::StrFormat("CSR RSA key has %d bits; at least 3072 required",
                          EVP_PKEY_get_bits(key)));
    default:
      return absl::InvalidArgumentError(
          "CSR key type is not accepted (ECDSA P-256/P-384, Ed25519 or RSA "
          ">= 3072)");
  }
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ext ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot add certificate extension: ", OpenSslError()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr(std::string_view agent_id) {
  if (agent_id.empty() || agent_id.size() > kMaxIdentityBytes) {
    return absl::InvalidArgumentError("agent id must be 1-128 bytes");
  }
  Pkey key(EVP_EC_gen("P-256"));
  if (key == nullptr) {
    return absl::InternalError("cannot generate a P-256 key: " +
                               OpenSslError());
  }
  Req req(X509_REQ_new());
  if (req == nullptr || X509_REQ_set_version(req.get(), 0) != 1) {
    return absl::ResourceExhaustedError("out of memory");
  }
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_NAME_add_entry_by_NID(
          name, NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(agent_id.data()),
          static_cast<int>(agent_id.size()), -1, 0) != 1) {
    return absl::InvalidArgumentError("agent id is not a valid common name: " +
                                      OpenSslError());
  }
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError("cannot sign the CSR: " + OpenSslError());
  }
  Bio key_bio(BIO_new(BIO_s_mem()));
  Bio csr_bio(BIO_new(BIO_s_mem()));
  if (key_bio == nullptr || csr_bio == nullptr ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0,
                               nullptr, nullptr) != 1 ||
      PEM_write_bio_X509_REQ(csr_bio.get(), req.get()) != 1) {
    return absl::InternalError("cannot encode key or CSR: " + OpenSslError());
  }
  return KeyAndCsr{.key_pem = BioContents(key_bio.get()),
                   .csr_pem = BioContents(csr_bio.get())};
}

absl::StatusOr<CertificateInfo> ParseCertificate(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError("certificate PEM is too large");
  }
  Bio bio = MemBio(pem);
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)
                : nullptr);
  if (cert == nullptr) {
    return absl::InvalidArgumentError("not a PEM certificate: " +
                                      OpenSslError());
  }
  return Info(cert.get());
}

struct CertificateAuthority::Handles {
  Cert cert;
  Pkey key;
};

CertificateAuthority::CertificateAuthority(std::unique_ptr<Handles> handles,
                                           std::string ca_pem)
    : handles_(std::move(handles)), ca_pem_(std::move(ca_pem)) {}
CertificateAuthority::~CertificateAuthority() = default;

absl::StatusOr<std::unique_ptr<CertificateAuthority>>
CertificateAuthority::Create(std::string_view cert_pem,
                             std::string_view key_pem) {
  if (cert_pem.size() > kMaxPemBytes || key_pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError("CA certificate or key is too large");
  }
  auto handles = std::make_unique<Handles>();
  Bio cert_bio = MemBio(cert_pem);
  handles->cert.reset(
      cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)
               : nullptr);
  if (handles->cert == nullptr) {
    return absl::InvalidArgumentError(
        "CA certificate: not a PEM certificate: " + OpenSslError());
  }
  Bio key_bio = MemBio(key_pem);
  handles->key.reset(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr,
                                                       nullptr, nullptr)
                             : nullptr);
  if (handles->key == nullptr) {
    return absl::InvalidArgumentError(
        "CA key: not an unencrypted PEM private key: " + OpenSslError());
  }
  if (X509_check_private_key(handles->cert.get(), handles->key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "CA key does not belong to the CA certificate");
  }
  return std::unique_ptr<CertificateAuthority>(
      new CertificateAuthority(std::move(handles), std::string(cert_pem)));
}

absl::StatusOr<SignedCertificate> CertificateAuthority::SignCsr(
    std::string_view csr_pem, std::string_view agent_id, absl::Time now,
    absl::Duration ttl) const {
  if (csr_pem.empty() || csr_pem.size() > kMaxCsrPemBytes) {
    return absl::InvalidArgumentError("CSR must be 1 byte to 16 KiB of PEM");
  }
  if (agent_id.empty() || agent_id.size() > kMaxIdentityBytes) {
    return absl::InvalidArgumentError("agent id must be 1-128 bytes");
  }
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("certificate lifetime must be positive");
  }
  Bio bio = MemBio(csr_pem);
  Req req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr)
              : nullptr);
  if (req == nullptr) {
    return absl::InvalidArgumentError("not a PEM certificate request: " +
                                      OpenSslError());
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());  // owned by req
  if (pub == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR has no usable public key");
  }
  if (absl::Status s = CheckKey(pub); !s.ok()) {
    return s;
  }
  if (X509_REQ_verify(req.get(), pub) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR signature does not verify");
  }
  const std::string cn = CommonName(X509_REQ_get_subject_name(req.get()));
  if (cn != agent_id) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CSR subject CN %s does not match the agent id %s",
                        absl::CHexEscape(cn.substr(0, kMaxIdentityBytes)),
                        absl::CHexEscape(std::string(agent_id))));
  }

  Cert cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1) {
    return absl::ResourceExhaustedError("out of memory");
  }
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) {
    return absl::InternalError("no randomness for the serial: " +
                               OpenSslError());
  }
  serial_bytes[0] &= 0x7f;  // positive
  serial_bytes[0] |= 0x40;  // and never shorter than 16 bytes
  Bn serial(BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr));
  if (serial == nullptr ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) ==
          nullptr) {
    return absl::ResourceExhaustedError("out of memory");
  }
  X509_NAME* subject = X509_NAME_new();
  if (subject == nullptr) {
    return absl::ResourceExhaustedError("out of memory");
  }
  const bool named =
      X509_NAME_add_entry_by_NID(
          subject, NID_commonName, MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(agent_id.data()),
          static_cast<int>(agent_id.size()), -1, 0) == 1 &&
      X509_set_subject_name(cert.get(), subject) == 1;
  X509_NAME_free(subject);
  if (!named) {
    return absl::InvalidArgumentError("agent id is not a valid common name: " +
                                      OpenSslError());
  }
  X509* ca = handles_->cert.get();
  absl::Time not_after = now + ttl;
  if (auto ca_info = Info(ca); ca_info.ok() && ca_info->not_after < not_after) {
    not_after = ca_info->not_after;
  }
  const time_t nb = absl::ToTimeT(now - absl::Minutes(5));
  const time_t na = absl::ToTimeT(not_after);
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca)) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), nb) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), na) == nullptr ||
      X509_set_pubkey(cert.get(), pub) != 1) {
    return absl::InternalError("cannot fill the certificate: " +
                               OpenSslError());
  }
  if (absl::Status s = AddExtension(cert.get(), ca, NID_basic_constraints,
                                    "critical,CA:FALSE");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = AddExtension(cert.get(), ca, NID_key_usage,
                                    "critical,digitalSignature");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          AddExtension(cert.get(), ca, NID_ext_key_usage, "clientAuth");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          AddExtension(cert.get(), ca, NID_authority_key_identifier, "keyid");
      !s.ok()) {
    return s;
  }
  // Ed25519 CA keys sign without a separate digest.
  const EVP_MD* md =
      EVP_PKEY_get_base_id(handles_->key.get()) == EVP_PKEY_ED25519
          ? nullptr
          : EVP_sha256();
  if (X509_sign(cert.get(), handles_->key.get(), md) <= 0) {
    return absl::InternalError("cannot sign the certificate: " +
                               OpenSslError());
  }
  Bio out(BIO_new(BIO_s_mem()));
  if (out == nullptr || PEM_write_bio_X509(out.get(), cert.get()) != 1) {
    return absl::InternalError("cannot encode the certificate: " +
                               OpenSslError());
  }
  SignedCertificate signed_cert;
  signed_cert.certificate_pem = BioContents(out.get());
  auto info = Info(cert.get());
  if (!info.ok()) {
    return info.status();
  }
  signed_cert.info = *std::move(info);
  return signed_cert;
}

absl::StatusOr<std::string> NewEnrollmentToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("no randomness for the token: " +
                               OpenSslError());
  }
  std::string token;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)),
      &token);
  return token;
}

std::string HashEnrollmentToken(std::string_view token) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         md);
  return Hex(md, sizeof(md));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace rampart::pki
