#include "common/sha256.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <vector>

#include "absl/status/status.h"

namespace rampart {
namespace {

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  // EVP_Digest with a built-in algorithm cannot fail short of memory
  // exhaustion; an empty result then never matches a stored hash.
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(),
                 nullptr) != 1) {
    return "";
  }
  return Hex(digest.data(), size);
}

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  if (bytes == 0 || bytes > 1024) {
    return absl::InvalidArgumentError("RandomHex: bytes must be in [1, 1024]");
  }
  std::vector<unsigned char> buffer(bytes);
  if (RAND_bytes(buffer.data(), static_cast<int>(bytes)) != 1) {
    return absl::UnavailableError("the random number generator failed");
  }
  std::string out = Hex(buffer.data(), bytes);
  OPENSSL_cleanse(buffer.data(), buffer.size());
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace rampart
