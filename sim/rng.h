#pragma once

// Rng is the simulator's only source of randomness: xoshiro256** seeded with
// splitmix64, plus the few samplers the generator needs. Everything here is
// written with integer operations and IEEE-754 +, -, *, / only (the library is
// compiled with -ffp-contract=off), so a seed yields the same numbers with any
// compiler, standard library or CPU. std::*_distribution and libm's log() are
// deliberately not used: their results are implementation-defined.
//
// Thread-safety: not thread-safe; use one Rng per thread.

#include <bit>
#include <cstdint>

namespace rampart::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& word : s_) {
      seed += 0x9E3779B97F4A7C15ULL;  // splitmix64
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      word = z ^ (z >> 31);
    }
  }

  // The next 64 random bits (xoshiro256**).
  uint64_t Next() {
    const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }

  // Uniform integer in [0, n); 0 when n == 0. Multiply-shift (bias below
  // 2^-32, irrelevant for simulation).
  uint32_t Below(uint32_t n) {
    return static_cast<uint32_t>(((Next() >> 32) * n) >> 32);
  }

  // Uniform integer in [lo, hi]. REQUIRES: lo <= hi, hi - lo < 2^32 - 1.
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + Below(static_cast<uint32_t>(hi - lo + 1));
  }

  // Uniform double in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform double in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  // A probability turned into a threshold for Chance(); p is clamped to
  // [0, 1]. Compute once, outside hot loops.
  static uint64_t Threshold(double p) {
    if (!(p > 0.0)) {
      return 0;
    }
    if (p >= 1.0) {
      return uint64_t{1} << 53;
    }
    return static_cast<uint64_t>(p * 0x1.0p53);
  }

  // True with the probability given to Threshold().
  bool Chance(uint64_t threshold) { return (Next() >> 11) < threshold; }

  // Exponentially distributed double with the given mean (>= 0).
  double Exponential(double mean) { return mean * NegLogUnit(Next()); }

  // -ln(u) for u = ((bits >> 11) + 1) / 2^53, i.e. u in (0, 1]. Portable:
  // range reduction by powers of two (exact) and the atanh series, accurate to
  // about 1e-15 relative. Public for tests.
  static double NegLogUnit(uint64_t bits) {
    constexpr double kLn2 = 0.693147180559945309417232121458;
    constexpr double kSqrt2 = 1.41421356237309504880168872421;
    const uint64_t v = (bits >> 11) + 1;  // 1 .. 2^53
    int e = std::bit_width(v) - 1;        // v in [2^e, 2^(e+1))
    double m = static_cast<double>(v) / static_cast<double>(uint64_t{1} << e);
    if (m > kSqrt2) {  // m in [sqrt(2)/2, sqrt(2)) keeps the series short
      m *= 0.5;
      ++e;
    }
    const double s = (m - 1.0) / (m + 1.0);  // |s| <= 0.1716
    const double s2 = s * s;
    const double series =
        1.0 +
        s2 * (1.0 / 3 +
              s2 * (1.0 / 5 +
                    s2 * (1.0 / 7 +
                          s2 * (1.0 / 9 +
                                s2 * (1.0 / 11 +
                                      s2 * (1.0 / 13 + s2 * (1.0 / 15)))))));
    const double ln_u = 2.0 * s * series + static_cast<double>(e - 53) * kLn2;
    return ln_u < 0.0 ? -ln_u : 0.0;
  }

 private:
  uint64_t s_[4];
};

}  // namespace rampart::sim
