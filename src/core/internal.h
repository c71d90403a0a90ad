/* SPDX-License-Identifier: MIT */
/*
 * The address-space core: struct uhmm_mm and what its two halves
 * (mm.c: lifetime, notifier.c: interval notifiers and windows) share.
 * No system calls here besides pthreads; kernel-facing code lives in prim/.
 */
#ifndef UHMM_CORE_INTERNAL_H
#define UHMM_CORE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "uhmm.h"
#include "core/lock.h"
#include "core/itree.h"
#include "core/source.h"

/*
 * The address space.
 *
 * Two reference counts, as in the kernel's mm_struct:
 *   users - "the address space is alive". Held by uhmm_mm_open() and each
 *           uhmm_mm_get(); when it drops to zero the mm is released (every
 *           subscription gets UHMM_EVENT_RELEASE) and no new window or
 *           subscription is accepted.
 *   count - "the memory of this object is valid". All users together hold
 *           one; every inserted subscription holds one, so a subscription
 *           can always be removed, even long after the last user closed.
 *
 * The collision-retry lock (see notifier.c for the full picture):
 *   invalidate_seq is even when no window that hit a subscription is open,
 *   odd while one is; subscription seqs are always odd. The tree is
 *   "frozen" while invalidate_seq is odd: windows walk it without the lock,
 *   so inserts and removes are deferred to the end of the last window.
 */
struct uhmm_mm {
	struct uhmm_mutex lock;	/* protects everything marked [lock] */
	pthread_cond_t wq;	/* broadcast when invalidate_seq goes even */

	/* [lock] to write; read lock-free by read_begin (atomic). */
	unsigned long invalidate_seq;
	/* [lock] windows open now, whether or not they hit anything. */
	unsigned long active_invalidate_ranges;
	/* [lock] to modify, and only while not frozen. */
	struct uhmm_itree itree;
	/* [lock] subscriptions whose insert or remove waits for the window
	 * to end, linked through deferred_next. */
	struct uhmm_interval_notifier *deferred_list;
	/* [lock] set once at release: no more windows or inserts. */
	bool dead;
	/* [lock] inserts checking that their range is mapped: a window
	 * that opens over one meanwhile marks it (see insert_flags()). */
	struct uhmm_insert_check *insert_checks;

	int users;		/* atomic */
	long count;		/* atomic */
	unsigned int flags;	/* UHMM_MM_*, fixed at open */
	bool strict;		/* strict mode (uhmm.h), fixed at open */

	/* The event source that feeds it, NULL with UHMM_MM_NO_MONITOR;
	 * fixed at open. source_next is the source's to link its mms. */
	struct uhmm_source *source;
	struct uhmm_mm *source_next;

	/* [all_lock] every mm of the process, for fork (see mm.c). */
	struct uhmm_mm *all_next, **all_pprev;
	/* uhmm_fork_gen at open: an mm belongs to the process that opened
	 * it; in a fork child the copy is dead (-ECHILD). */
	unsigned long fork_gen;
	bool child_released;	/* [lock] the child delivered RELEASE */
};

/* An insert with UHMM_INSERT_REQUIRE_MAPPED, from before it arms until it
 * links its subscription into the tree; on the insert's stack. */
struct uhmm_insert_check {
	unsigned long start, last;
	bool hit;			/* [mm->lock] a window opened over it */
	struct uhmm_insert_check *next;	/* [mm->lock] */
};

/*
 * The first step of every call on mm: 0 if mm is this process's. On a fork
 * child's copy it delivers UHMM_EVENT_RELEASE to the subscriptions (once,
 * on the first call) and returns -ECHILD.
 */
int uhmm_mm_enter(struct uhmm_mm *mm);

/* Bumped in every fork child. */
extern unsigned long uhmm_fork_gen;
/* fork() calls seen since load, in parent or child (atomic). */
extern unsigned long uhmm_forks;

/* Is mm a fork child's copy of its parent's mm? */
static inline bool uhmm_mm_forked(const struct uhmm_mm *mm)
{
	return __builtin_expect(mm->fork_gen !=
				__atomic_load_n(&uhmm_fork_gen,
						__ATOMIC_RELAXED), 0);
}

/*
 * In a fork child, on the first touch of an inherited mm: deliver
 * UHMM_EVENT_RELEASE to its subscriptions, once (notifier.c).
 */
void uhmm_notifier_release_child(struct uhmm_mm *mm);

/* Subscription states (uhmm_interval_notifier.state), all under mm->lock. */
enum {
	UHMM_SUB_UNLINKED = 0,	  /* never inserted, or removed */
	UHMM_SUB_LINKED,	  /* in the tree */
	UHMM_SUB_DEFERRED_INSERT, /* on the deferred list, not yet in the tree */
	UHMM_SUB_DEFERRED_REMOVE, /* in the tree and on the deferred list */
};

/* uhmm_notifier_range.private_ bits. */
enum {
	UHMM_WINDOW_OPEN = 1u << 0,	/* between start and end */
	UHMM_WINDOW_CALLBACK_BUG = 1u << 1, /* blockable callback said false */
};

/*
 * One past the last byte of sub's range. A range reaching the top of the
 * address space has no end; no mapping reaches it either, so ~0UL does.
 */
static inline unsigned long uhmm_sub_end(const struct uhmm_interval_notifier *sub)
{
	return sub->node.last == ~0UL ? ~0UL : sub->node.last + 1;
}

/* Initial mm seq, even; a subscription inserted when idle gets seq - 1. */
#define UHMM_SEQ_INIT 2UL

void uhmm_mm_grab(struct uhmm_mm *mm);
void uhmm_mm_drop(struct uhmm_mm *mm);

/* notifier.c: deliver UHMM_EVENT_RELEASE to every subscription, once. */
void uhmm_notifier_release(struct uhmm_mm *mm);

/* notifier.c: read_begin with a CLOCK_MONOTONIC deadline (0: none);
 * 0 and *seqp set, or -ETIMEDOUT. */
int uhmm_interval_read_begin_until(struct uhmm_interval_notifier *sub,
				   unsigned long long deadline_ns,
				   unsigned long *seqp);

/* notifier.c: is this thread inside an invalidate callback? */
bool uhmm_in_callback(void);

/* Test hook: the mm's current sequence number. */
unsigned long uhmm_mm_seq(struct uhmm_mm *mm);

/*
 * Debug-build assertion for caller bugs that would otherwise deadlock or
 * corrupt silently. Release builds compile it away and rely on the rule
 * documented in uhmm.h.
 */
#ifdef UHMM_DEBUG
#define UHMM_BUG_ON(cond, msg)                                                 \
	do {                                                                   \
		if (cond) {                                                    \
			fprintf(stderr, "uhmm: %s (%s:%d)\n", msg, __FILE__,   \
				__LINE__);                                     \
			abort();                                               \
		}                                                              \
	} while (0)
#else
#define UHMM_BUG_ON(cond, msg) ((void)0)
#endif

/*
 * Debug-build check of an internal invariant (seq parity, a counter that
 * must not underflow): if it fails, uhmm itself is wrong. Debug builds
 * abort with the condition, so the suite's sanitizer runs fail loudly;
 * release builds compile it away.
 */
#ifdef UHMM_DEBUG
#define UHMM_WARN_ON(cond)                                                     \
	do {                                                                   \
		if (cond) {                                                    \
			fprintf(stderr, "uhmm: internal invariant broken: "    \
				"%s (%s:%d)\n", #cond, __FILE__, __LINE__);    \
			abort();                                               \
		}                                                              \
	} while (0)
#else
#define UHMM_WARN_ON(cond) ((void)0)
#endif

/*
 * Condition variables that timed waits use take CLOCK_MONOTONIC deadlines
 * (uhmm_now_ns()), immune to changes of the wall clock.
 */
static inline int uhmm_cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int ret;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	ret = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return ret;
}

/* CLOCK_MONOTONIC now, in nanoseconds (the vDSO: no system call). */
static inline unsigned long long uhmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL +
	       (unsigned long long)ts.tv_nsec;
}

/* An absolute CLOCK_MONOTONIC deadline in nanoseconds, as a timespec. */
static inline struct timespec uhmm_deadline_ts(unsigned long long deadline_ns)
{
	return (struct timespec){
		.tv_sec = (time_t)(deadline_ns / 1000000000ULL),
		.tv_nsec = (long)(deadline_ns % 1000000000ULL),
	};
}

/* The structure of type that contains member at ptr. */
#define uhmm_container_of(ptr, type, member)                                   \
	((type *)((char *)(ptr) - offsetof(type, member)))

/*
 * The mm's event source, for range/ and cache/ (which know no source).
 *
 * Wait until the events the source read so far that change [start, end)
 * are dispatched (core/source.h, the clock; events whose read is still in
 * progress, or whose ranges the clock's log lost, count as changing it) -
 * and, if strict, first until no event at all is in flight
 * (uhmm_source_ops.settle) - or until deadline_ns (CLOCK_MONOTONIC, 0:
 * none): 0 or -ETIMEDOUT. Two loads when nothing is pending (and one
 * probe if strict); 0 at once for an explicit mm. [0, ULONG_MAX) waits
 * for every event read.
 */
static inline int uhmm_mm_wait_events(struct uhmm_mm *mm, bool strict,
				      unsigned long start, unsigned long end,
				      unsigned long long deadline_ns)
{
	struct uhmm_source *src = mm->source;
	int ret;

	if (!src)
		return 0;
	if (strict && src->ops->settle) {
		ret = src->ops->settle(src, deadline_ns);
		if (ret)
			return ret;
	}
	return uhmm_clock_wait_range(&src->clock, start, end, deadline_ns);
}

/* Are events already read, and not yet dispatched, changing [start, end)
 * (or may they)? Never blocks. */
static inline bool uhmm_mm_events_pending(struct uhmm_mm *mm,
					  unsigned long start,
					  unsigned long end)
{
	return mm->source &&
	       uhmm_clock_pending_range(&mm->source->clock, start, end);
}

/*
 * Make strict mode usable on mm: the source's self-test, once per process
 * (uhmm_source_ops.strict_init). 0, -EOPNOTSUPP, -ENOMEM or -EAGAIN.
 */
int uhmm_mm_strict_init(struct uhmm_mm *mm);

/* Watch what is now in [start, end) of sub's range (also mappings
 * created since): 0, or the source's arm error. 0 for an explicit mm. */
int uhmm_mm_rearm(struct uhmm_interval_notifier *sub, unsigned long start,
		  unsigned long end);

/*
 * Check that every page of [start, end), in sub's range, lies in a
 * mapping the mm's source watches, so that its unmap will be heard: call
 * it after read_begin, before trusting what was read there. A mapping
 * created in a hole after the range was armed is not (creating a mapping
 * sends no event); it is armed now. Returns
 *   0        every page does - or sub's mm was released (nothing is
 *            watched for it), or the mm is explicit
 *   -EAGAIN  some page lay in a mapping that was not watched; it is now:
 *            read_begin and read again
 *   -ENOENT  none such, but some page lies in no mapping (or in one that
 *            PAGEMAP_SCAN skips, VM_PFNMAP): a mapping created there
 *            later is not watched either, so what is read there must be
 *            checked again after it is read
 *   -ENOTTY  the kernel has no PAGEMAP_SCAN (before Linux 6.7): the check
 *            cannot be made, and a mapping created in a hole after arming
 *            can be read without ever being watched
 *   or an error of uhmm_mm_rearm().
 * The uffd source reads PAGEMAP_SCAN's WPALLOWED: registered with *a*
 * userfaultfd in write-protect asynchronous mode, so a mapping another
 * such userfaultfd registered in a hole after arming passes for watched.
 */
int uhmm_mm_check_armed(struct uhmm_interval_notifier *sub,
			unsigned long start, unsigned long end);

#define READ_ONCE_ACQ(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define WRITE_ONCE_REL(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

#endif
