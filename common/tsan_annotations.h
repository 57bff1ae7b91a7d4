#pragma once

// Happens-before annotations for ThreadSanitizer, for orderings that a
// library guarantees but establishes inside uninstrumented code (Debian's
// gRPC), where TSan cannot see them. Without -fsanitize=thread
// (RAMPART_SANITIZE=thread) they compile to nothing. See
// docs/development.md "Sanitizers and fuzzing".

#if defined(__SANITIZE_THREAD__)
#define RAMPART_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RAMPART_TSAN 1
#endif
#endif

#ifdef RAMPART_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace rampart {

// Everything the calling thread did so far happens before everything a
// thread does after a later TsanAcquire(key). `key` is only an address.
inline void TsanRelease(const void* key) {
#ifdef RAMPART_TSAN
  __tsan_release(const_cast<void*>(key));
#else
  static_cast<void>(key);
#endif
}

// See TsanRelease().
inline void TsanAcquire(const void* key) {
#ifdef RAMPART_TSAN
  __tsan_acquire(const_cast<void*>(key));
#else
  static_cast<void>(key);
#endif
}

}  // namespace rampart
