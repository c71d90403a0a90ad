/* SPDX-License-Identifier: MIT */
/*
 * The library's mutexes, and the rules for taking them.
 *
 * Debug builds (UHMM_DEBUG) record each mutex's owner, so a function that
 * must run under a lock - its name ends in _locked - asserts it at its top
 * with uhmm_lock_assert_held(), as the kernel asserts with lockdep; a
 * release build compiles the record and the checks away. ThreadSanitizer
 * (the TSan build of the suite) checks the order below at run time.
 *
 * Lock order, outer first. A lock may be taken while holding those above
 * it on its line, never the other way round:
 *
 *   all_lock (core/mm.c: fork, the list of mms)
 *     -> [fork windows' callbacks: device locks] -> every mm->lock
 *   rc->lock (cache: the tree, reg and dereg)
 *     -> arm_lock (insert's and remove's arming) -> prim's locks
 *     -> mm->lock (insert, remove)
 *     -> r->lock or rc->dead_lock, never both
 *     -> the device's own locks (ops->reg, ops->dereg: uring dev->lock)
 *   arm_lock (source/uffd.c) -> prim's locks (maps_lock, pagemap_lock)
 *   source_lock (source/uffd.c: creating the source) -> done_lock
 *
 * Leaves, taken with nothing else held after them: mm->lock (callbacks,
 * source ops and device code never run under it), a clock's done_lock,
 * the source's mms_lock, a region's r->lock and rc->dead_lock, prim's.
 *
 * Callbacks (interval notifier ops->invalidate) run with no library lock
 * held, on the dispatcher thread for kernel events; they may take r->lock
 * and rc->dead_lock (the cache's), and the device's own locks.
 * The event source's reader takes no lock at all (source/source.h).
 */
#ifndef UHMM_CORE_LOCK_H
#define UHMM_CORE_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct uhmm_mutex {
	pthread_mutex_t m;
#ifdef UHMM_DEBUG
	pthread_t owner;	/* atomic: valid while held */
	bool held;		/* atomic */
#endif
};

#define UHMM_MUTEX_INIT { .m = PTHREAD_MUTEX_INITIALIZER }

#ifdef UHMM_DEBUG
static inline void uhmm_lock_acquired(struct uhmm_mutex *l)
{
	__atomic_store_n(&l->owner, pthread_self(), __ATOMIC_RELAXED);
	__atomic_store_n(&l->held, true, __ATOMIC_RELAXED);
}

static inline void uhmm_lock_releasing(struct uhmm_mutex *l)
{
	__atomic_store_n(&l->held, false, __ATOMIC_RELAXED);
}

static inline bool uhmm_lock_held(struct uhmm_mutex *l)
{
	return __atomic_load_n(&l->held, __ATOMIC_RELAXED) &&
	       pthread_equal(__atomic_load_n(&l->owner, __ATOMIC_RELAXED),
			     pthread_self());
}

#define uhmm_lock_assert_held(l)                                               \
	do {                                                                   \
		if (!uhmm_lock_held(l)) {                                      \
			fprintf(stderr, "uhmm: %s: %s not held (%s:%d)\n",     \
				__func__, #l, __FILE__, __LINE__);             \
			abort();                                               \
		}                                                              \
	} while (0)
#else
static inline void uhmm_lock_acquired(struct uhmm_mutex *l) { (void)l; }
static inline void uhmm_lock_releasing(struct uhmm_mutex *l) { (void)l; }
#define uhmm_lock_assert_held(l) ((void)(l))
#endif

/* 0, or pthread_mutex_init()'s error (none on Linux, with no attributes). */
static inline int uhmm_mutex_init(struct uhmm_mutex *l)
{
	uhmm_lock_releasing(l);
	return pthread_mutex_init(&l->m, NULL);
}

static inline void uhmm_mutex_destroy(struct uhmm_mutex *l)
{
	pthread_mutex_destroy(&l->m);
}

/*
 * How many uhmm locks this thread holds. A change reported before it
 * happens (source/change.c) takes uhmm's locks in the thread that makes
 * it, which may be a signal handler that interrupted uhmm itself: it
 * then leaves the change to the kernel's event instead of waiting for a
 * lock its own thread holds.
 */
extern __thread unsigned int uhmm_locks_held;

static inline void uhmm_mutex_lock(struct uhmm_mutex *l)
{
	uhmm_locks_held++;	/* before: a signal may come at any point */
	pthread_mutex_lock(&l->m);
	uhmm_lock_acquired(l);
}

static inline void uhmm_mutex_unlock(struct uhmm_mutex *l)
{
	uhmm_lock_assert_held(l);
	uhmm_lock_releasing(l);
	pthread_mutex_unlock(&l->m);
	uhmm_locks_held--;	/* after, likewise */
}

static inline void uhmm_cond_wait(pthread_cond_t *c, struct uhmm_mutex *l)
{
	uhmm_lock_assert_held(l);
	uhmm_lock_releasing(l);
	pthread_cond_wait(c, &l->m);
	uhmm_lock_acquired(l);
}

/* 0 or ETIMEDOUT (a positive errno, as pthread_cond_timedwait). */
static inline int uhmm_cond_timedwait(pthread_cond_t *c, struct uhmm_mutex *l,
				      const struct timespec *ts)
{
	int ret;

	uhmm_lock_assert_held(l);
	uhmm_lock_releasing(l);
	ret = pthread_cond_timedwait(c, &l->m, ts);
	uhmm_lock_acquired(l);
	return ret;
}

#endif
