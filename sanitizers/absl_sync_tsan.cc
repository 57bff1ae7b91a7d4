// ThreadSanitizer annotations for Debian's Abseil synchronization library.
//
// libabsl_synchronization.so from Debian is not built with -fsanitize=thread,
// so TSan does not see absl::Mutex (its fast paths are atomics, its slow
// paths raw futex calls) and reports every access guarded by one as a race.
// Linked into each executable of a RAMPART_SANITIZE=thread build (and only
// there), this file interposes the library's public entry points: each
// wrapper tells TSan what the call means (__tsan_mutex_* / acquire /
// release) and forwards to the real function (dlsym(RTLD_NEXT)). Calls made
// by other shared libraries (gRPC, and absl itself: Notification uses Mutex)
// reach the wrappers too, through their PLT.
//
// Limits: Notification::HasBeenNotified() is inline (an acquire load of a
// flag the library stores), so a bare HasBeenNotified() poll is not seen as
// synchronization; use WaitForNotification*(). Await and CondVar::Wait are
// modelled as unlock + lock of the (exclusively held) mutex.

#include <dlfcn.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/barrier.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#define RAMPART_STR2(x) #x
#define RAMPART_STR(x) RAMPART_STR2(x)

namespace {

// The real function `_ZN4absl<ns><suffix>` (`_ZNK` for const members).
template <typename F>
F Real(const char* prefix, const char* suffix) {
  const std::string ns = RAMPART_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      std::string(prefix) + "4absl" + std::to_string(ns.size()) + ns + suffix;
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "absl_sync_tsan: %s not found\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Time;

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

void PreLock(void* mu, unsigned flags) { __tsan_mutex_pre_lock(mu, flags); }
void PostLock(void* mu, unsigned flags) {
  __tsan_mutex_post_lock(mu, flags, 0);
}
void PreUnlock(void* mu, unsigned flags) { __tsan_mutex_pre_unlock(mu, flags); }
void PostUnlock(void* mu, unsigned flags) {
  __tsan_mutex_post_unlock(mu, flags);
}
// A wait that releases the (exclusively held) mutex and holds it again on
// return.
void PreWait(void* mu) {
  PreUnlock(mu, 0);
  PostUnlock(mu, 0);
  PreLock(mu, 0);
}

// The address range of the executable's loaded segments: Rampart's code and
// the gRPC/protobuf/absl header code compiled into it, as opposed to the
// shared libraries Debian ships uninstrumented.
struct AddressRange {
  uintptr_t lo = UINTPTR_MAX;
  uintptr_t hi = 0;
};

AddressRange ExecutableRange() {
  AddressRange range;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* r = static_cast<AddressRange*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD) {
            const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
            r->lo = std::min(r->lo, lo);
            r->hi = std::max(r->hi, lo + ph.p_memsz);
          }
        }
        return 1;  // glibc lists the executable first
      },
      &range);
  return range;
}

// True if `return_address` is in the executable, false if it is in a shared
// library.
bool CalledFromExecutable(const void* return_address) {
  static const AddressRange range = ExecutableRange();
  const auto a = reinterpret_cast<uintptr_t>(return_address);
  return a >= range.lo && a < range.hi;
}

// Some entry points call others through the PLT (AwaitWithTimeout ->
// AwaitWithDeadline, CondVar::WaitWithTimeout -> WaitWithDeadline, ...), which
// land in these wrappers again: only the outermost Mutex/CondVar wrapper of a
// thread annotates.
thread_local int depth = 0;
class Scope {
 public:
  Scope() : outer_(depth++ == 0) {}
  ~Scope() { --depth; }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  bool outer() const { return outer_; }

 private:
  const bool outer_;
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5Mutex4LockEv");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, 0);
  }
  real(this);
  if (scope.outer()) {
    PostLock(this, 0);
  }
}

void Mutex::ReaderLock() {
  static const auto real =
      Real<void (*)(Mutex*)>("_ZN", "5Mutex10ReaderLockEv");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, kRead);
  }
  real(this);
  if (scope.outer()) {
    PostLock(this, kRead);
  }
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("_ZN", "5Mutex7TryLockEv");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, kTry);
  }
  const bool locked = real(this);
  if (scope.outer()) {
    PostLock(this, locked ? kTry : kTry | kTryFailed);
  }
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real =
      Real<bool (*)(Mutex*)>("_ZN", "5Mutex13ReaderTryLockEv");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, kTry | kRead);
  }
  const bool locked = real(this);
  if (scope.outer()) {
    PostLock(this, locked ? kTry | kRead : kTry | kRead | kTryFailed);
  }
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5Mutex6UnlockEv");
  const Scope scope;
  if (scope.outer()) {
    PreUnlock(this, 0);
  }
  real(this);
  if (scope.outer()) {
    PostUnlock(this, 0);
  }
}

void Mutex::ReaderUnlock() {
  static const auto real =
      Real<void (*)(Mutex*)>("_ZN", "5Mutex12ReaderUnlockEv");
  const Scope scope;
  if (scope.outer()) {
    PreUnlock(this, kRead);
  }
  real(this);
  if (scope.outer()) {
    PostUnlock(this, kRead);
  }
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex8LockWhenERKNS0_9ConditionE");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, 0);
  }
  real(this, cond);
  if (scope.outer()) {
    PostLock(this, 0);
  }
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, kRead);
  }
  real(this, cond);
  if (scope.outer()) {
    PostLock(this, kRead);
  }
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN", "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, 0);
  }
  const bool result = real(this, cond, timeout);
  if (scope.outer()) {
    PostLock(this, 0);
  }
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN", "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, 0);
  }
  const bool result = real(this, cond, deadline);
  if (scope.outer()) {
    PostLock(this, 0);
  }
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN",
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, kRead);
  }
  const bool result = real(this, cond, timeout);
  if (scope.outer()) {
    PostLock(this, kRead);
  }
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN", "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Scope scope;
  if (scope.outer()) {
    PreLock(this, kRead);
  }
  const bool result = real(this, cond, deadline);
  if (scope.outer()) {
    PostLock(this, kRead);
  }
  return result;
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN", "5Mutex5AwaitERKNS0_9ConditionE");
  const Scope scope;
  if (scope.outer()) {
    PreWait(this);
  }
  real(this, cond);
  if (scope.outer()) {
    PostLock(this, 0);
  }
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN", "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Scope scope;
  if (scope.outer()) {
    PreWait(this);
  }
  const bool result = real(this, cond, timeout);
  if (scope.outer()) {
    PostLock(this, 0);
  }
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN", "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Scope scope;
  if (scope.outer()) {
    PreWait(this);
  }
  const bool result = real(this, cond, deadline);
  if (scope.outer()) {
    PostLock(this, 0);
  }
  return result;
}

// Destruction is annotated (TSan then reports a destroy that races with a
// use) only for mutexes our code destroys. A mutex that libgrpc destroys
// (channels, endpoints, its thread pool) is reached by the destroying thread
// through gRPC's own reference counts, atomics in uninstrumented code, so
// TSan would report every such destroy as racing with the last lock. Its
// memory is still freed through the intercepted free(), which resets TSan's
// state for it.
Mutex::~Mutex() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN", "5MutexD2Ev");
  const Scope scope;
  if (scope.outer() && CalledFromExecutable(__builtin_return_address(0))) {
    __tsan_mutex_destroy(this, 0);
  }
  real(this);
}

void CondVar::Wait(Mutex* mu) {
  static const auto real =
      Real<void (*)(CondVar*, Mutex*)>("_ZN", "7CondVar4WaitEPNS0_5MutexE");
  const Scope scope;
  if (scope.outer()) {
    PreWait(mu);
  }
  real(this, mu);
  if (scope.outer()) {
    PostLock(mu, 0);
  }
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN", "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  const Scope scope;
  if (scope.outer()) {
    PreWait(mu);
  }
  const bool result = real(this, mu, timeout);
  if (scope.outer()) {
    PostLock(mu, 0);
  }
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "_ZN", "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  const Scope scope;
  if (scope.outer()) {
    PreWait(mu);
  }
  const bool result = real(this, mu, deadline);
  if (scope.outer()) {
    PostLock(mu, 0);
  }
  return result;
}

void Notification::Notify() {
  static const auto real =
      Real<void (*)(Notification*)>("_ZN", "12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real = Real<void (*)(const Notification*)>(
      "_ZNK", "12Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "_ZNK", "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) {
    __tsan_acquire(const_cast<Notification*>(this));
  }
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "_ZNK", "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) {
    __tsan_acquire(const_cast<Notification*>(this));
  }
  return notified;
}

bool BlockingCounter::DecrementCount() {
  static const auto real = Real<bool (*)(BlockingCounter*)>(
      "_ZN", "15BlockingCounter14DecrementCountEv");
  __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  static const auto real =
      Real<void (*)(BlockingCounter*)>("_ZN", "15BlockingCounter4WaitEv");
  real(this);
  __tsan_acquire(this);
}

bool Barrier::Block() {
  static const auto real = Real<bool (*)(Barrier*)>("_ZN", "7Barrier5BlockEv");
  __tsan_release(this);
  const bool last = real(this);
  __tsan_acquire(this);
  return last;
}

ABSL_NAMESPACE_END
}  // namespace absl
