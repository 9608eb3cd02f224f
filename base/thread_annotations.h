// Lock rules in declarations, checked by clang's thread-safety analysis
// (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
//
// A member says which mutex guards it (GUARDED_BY), a function says which
// mutex its caller must hold (REQUIRES) or must not hold (EXCLUDES), and a
// mutex says which others may be held while it is taken (ACQUIRED_AFTER).
// Built with clang and -Wthread-safety (scripts/check-thread-safety.sh),
// breaking one of these rules is a compile error; with any other compiler
// the macros expand to nothing and cost nothing.
//
// The analysis is local to one function and knows nothing of what a lambda
// or a callback runs under; where it cannot follow a correct lock, the
// function says so with NO_THREAD_SAFETY_ANALYSIS and a comment giving the
// reason. docs/design.md, "Locks", lists every mutex and the order.
#pragma once

#if defined(__clang__)
#define DAXREF_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define DAXREF_THREAD_ANNOTATION(x)
#endif

// ---- on types ----
// The class is a lock (a "capability"); `name` shows in diagnostics.
#define CAPABILITY(name) DAXREF_THREAD_ANNOTATION(capability(name))
// The class holds a lock for its own lifetime (an RAII guard).
#define SCOPED_CAPABILITY DAXREF_THREAD_ANNOTATION(scoped_lockable)

// ---- on data ----
// Read only with `mu` held, shared or exclusive; written only with it
// held exclusive.
#define GUARDED_BY(mu) DAXREF_THREAD_ANNOTATION(guarded_by(mu))
// The same for what a pointer (or smart pointer) points at.
#define PT_GUARDED_BY(mu) DAXREF_THREAD_ANNOTATION(pt_guarded_by(mu))

// ---- on mutexes: the order ----
// This mutex is taken only after (inside) the listed ones, never before.
#define ACQUIRED_AFTER(...) DAXREF_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
// This mutex is taken only before (outside) the listed ones.
#define ACQUIRED_BEFORE(...) DAXREF_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))

// ---- on functions ----
// The caller holds these exclusive / at least shared, on entry and on return.
#define REQUIRES(...) DAXREF_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) DAXREF_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
// The function takes these (exclusive / shared) and returns holding them.
#define ACQUIRE(...) DAXREF_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) DAXREF_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
// The function returns having let go of these (held exclusive / shared /
// either way on entry).
#define RELEASE(...) DAXREF_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) DAXREF_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) DAXREF_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
// Takes the lock only when it returns `ret` (the first argument).
#define TRY_ACQUIRE(...) DAXREF_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) DAXREF_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
// The caller must not hold these: the function takes them itself.
#define EXCLUDES(...) DAXREF_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// Checks at run time that the lock is held, and tells the analysis so.
#define ASSERT_CAPABILITY(x) DAXREF_THREAD_ANNOTATION(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) DAXREF_THREAD_ANNOTATION(assert_shared_capability(x))
// The function returns (a reference to) this lock.
#define RETURN_CAPABILITY(x) DAXREF_THREAD_ANNOTATION(lock_returned(x))

// The function is not checked. Only with a comment saying why the locking
// is right and why the analysis cannot see it.
#define NO_THREAD_SAFETY_ANALYSIS DAXREF_THREAD_ANNOTATION(no_thread_safety_analysis)
