/* SPDX-License-Identifier: MIT */
/*
 * The event-source interface, owned by core.
 *
 * An event source turns changes of the address space that the library's
 * callers do not report themselves into invalidation windows: the kernel's
 * userfaultfd events (source/uffd.c), fork()'s write protection
 * (source/fork.c), or a scripted source in the tests (tests/fake-source.h).
 * Core calls a source only through these tables and never knows who
 * implements them, as the kernel's mm core calls mmu_notifier hooks; a
 * source calls core's public and internal API (windows, uhmm_mm_close()).
 *
 * Dependencies run one way: devices -> cache -> range -> core <- sources
 * -> prim (tests/layers.sh checks the #include lines).
 */
#ifndef UHMM_CORE_SOURCE_H
#define UHMM_CORE_SOURCE_H

#include <pthread.h>
#include <stdbool.h>

#include "uhmm.h"
#include "core/lock.h"

/*
 * The happens-before clock (docs/design.md, invariant 8): read_begin's
 * promise, so core's. A source that learns of a change only after the
 * changing thread may have gone on - userfaultfd releases the thread as
 * soon as its event is *read*, before anything was invalidated - numbers
 * each read with a ticket taken before it:
 *
 *	source:    t = uhmm_clock_read_start()   read()   windows   uhmm_clock_done(t)
 *	                                           |
 *	munmap():  ... blocked ... released -------+--> returns --> read_begin()
 *
 * read_begin() loads read_ticket and waits until done_ticket reaches it:
 * a munmap() that returned was read in a batch whose ticket was taken
 * before, so its invalidation is complete before read_begin() loads the
 * subscription's seq. Reads started later do not hold it up. Tickets are
 * taken by one thread (the source's reader) and done in order.
 *
 * Model (models/notifier.pml): the ticket step of proctype uffd_reader
 * (variant BAD_TICKET_AFTER_READ), the dispatcher's publish step, and
 * read_begin()'s ticket wait (variants BAD_NO_TICKET_WAIT and, for the
 * dispatcher's own reads, BAD_DISPATCHER_WAITS), checked by hb_missed.
 */
#define UHMM_CLOCK_RANGES 64

struct uhmm_clock_range {
	unsigned long ticket;		/* the read it came from */
	unsigned long start, end;	/* what its event changes */
};

struct uhmm_event_clock {
	unsigned long read_ticket;	/* [reader] to write; atomic */
	struct uhmm_mutex done_lock;	/* never taken by the reader */
	pthread_cond_t done_cond;	/* broadcast when done_ticket moves;
					 * a source may wait on it for its
					 * own progress too (under done_lock) */
	unsigned long done_ticket;	/* [done_lock] to write; atomic */

	/*
	 * [reader] to write, atomic: what each read's events change, for
	 * a wait that concerns one range only (uhmm_clock_wait_range()).
	 * ranged_ticket is the last read whose ranges are in the ring; a
	 * ring entry overwritten while its read may not be done yet raises
	 * lost_ticket; ranges_seq is odd while the reader writes the ring.
	 */
	unsigned long ranged_ticket;
	unsigned long lost_ticket;
	unsigned long ranges_seq;
	unsigned long ranges_head;	/* [reader] entries ever written */
	struct uhmm_clock_range ranges[UHMM_CLOCK_RANGES];
};

void uhmm_clock_init(struct uhmm_event_clock *c);

/* The reader, before each read(): the new read's ticket. */
static inline unsigned long uhmm_clock_read_start(struct uhmm_event_clock *c)
{
	unsigned long t = c->read_ticket + 1;

	__atomic_store_n(&c->read_ticket, t, __ATOMIC_SEQ_CST);
	return t;
}

/*
 * The reader, after read t: the ranges its events change (n of them,
 * possibly none), before the dispatcher may see the read.
 */
void uhmm_clock_read_ranges(struct uhmm_event_clock *c, unsigned long t,
			    const struct uhmm_clock_range *ranges, size_t n);

/* The dispatcher, once every window of read t (and before) is done. */
void uhmm_clock_done(struct uhmm_event_clock *c, unsigned long t);
/* The same under done_lock, for a source that publishes more with it;
 * the caller broadcasts done_cond after unlocking. */
void uhmm_clock_done_locked(struct uhmm_event_clock *c, unsigned long t);

/* This thread dispatches c's reads: it never waits for them (it would
 * wait for itself). */
void uhmm_clock_set_dispatcher(const struct uhmm_event_clock *c);

/*
 * Wait under done_lock until *counter - the clock's done_ticket, or a
 * counter a source writes under done_lock and announces with done_cond -
 * reaches ticket, or until deadline_ns (CLOCK_MONOTONIC, 0: none): 0 or
 * -ETIMEDOUT.
 */
int uhmm_clock_wait_for(struct uhmm_event_clock *c,
			const unsigned long *counter, unsigned long ticket,
			unsigned long long deadline_ns);

/*
 * Wait until every read started before the call is done, or until
 * deadline_ns (CLOCK_MONOTONIC, 0: none): 0 or -ETIMEDOUT. Two loads when
 * no read is in flight.
 */
int uhmm_clock_wait_slow(struct uhmm_event_clock *c, unsigned long ticket,
			 unsigned long long deadline_ns);
/*
 * uhmm_clock_wait() for a caller that looks at [start, end) only: it waits
 * only if a read started before the call is not done and changes that
 * range, or may (its ranges are not known yet, or were lost).
 */
int uhmm_clock_wait_range(struct uhmm_event_clock *c, unsigned long start,
			  unsigned long end, unsigned long long deadline_ns);
bool uhmm_clock_pending_range_slow(struct uhmm_event_clock *c,
				   unsigned long read, unsigned long done,
				   unsigned long start, unsigned long end);

/* Some read is not done: the two loads uhmm_clock_pending_range() starts
 * with, for a caller that takes the rare case elsewhere. */
static inline bool uhmm_clock_busy(struct uhmm_event_clock *c)
{
	unsigned long read = __atomic_load_n(&c->read_ticket, __ATOMIC_SEQ_CST);

	return __atomic_load_n(&c->done_ticket, __ATOMIC_ACQUIRE) != read;
}

/*
 * Would uhmm_clock_wait_range() wait? Never blocks, takes no lock: two
 * loads when every read is done, a scan of the log otherwise.
 */
static inline bool uhmm_clock_pending_range(struct uhmm_event_clock *c,
					    unsigned long start,
					    unsigned long end)
{
	unsigned long read = __atomic_load_n(&c->read_ticket, __ATOMIC_SEQ_CST);
	unsigned long done = __atomic_load_n(&c->done_ticket, __ATOMIC_ACQUIRE);

	return done != read &&
	       uhmm_clock_pending_range_slow(c, read, done, start, end);
}

static inline int uhmm_clock_wait(struct uhmm_event_clock *c,
				  unsigned long long deadline_ns)
{
	unsigned long t = __atomic_load_n(&c->read_ticket, __ATOMIC_SEQ_CST);

	if (__atomic_load_n(&c->done_ticket, __ATOMIC_ACQUIRE) != t)
		return uhmm_clock_wait_slow(c, t, deadline_ns);
	return 0;
}

/*
 * What core knows of a source. A source embeds it (first) in its own
 * structure and hands it to core on attach.
 */
struct uhmm_source {
	const struct uhmm_source_ops *ops;
	struct uhmm_event_clock clock;
};

/* uhmm_source_ops.flags */
enum {
	/*
	 * What the source watches is exactly the mappings registered with
	 * a userfaultfd in write-protect mode, so a page-table snapshot can
	 * tell a watched page from an unwatched one in the same read
	 * (PAGEMAP_SCAN's PAGE_IS_WPALLOWED): range fault then checks every
	 * page it returns (range/fault.c, snapshot_scan()).
	 */
	UHMM_SOURCE_WATCHES_UFFD_WP = 1u << 0,
};

struct uhmm_source_ops {
	unsigned int flags;	/* UHMM_SOURCE_* */
	/*
	 * Attach mm, just opened: from now on its changes reach it as
	 * windows. Sets *srcp. 0, or what uhmm_mm_open() returns for it
	 * (-EPERM, -ENOSYS, -EOPNOTSUPP, -ENOMEM, -EAGAIN).
	 */
	int (*attach)(struct uhmm_mm *mm, struct uhmm_source **srcp);
	/* mm was released (no more windows): forget it and everything
	 * watched for its subscriptions. */
	void (*detach)(struct uhmm_source *src, struct uhmm_mm *mm);
	/*
	 * Watch sub's range for mm (sub is being inserted: sub->mm is not
	 * set yet). uhmm_interval_notifier_insert()
	 * returns its error; on error nothing stays watched for sub.
	 */
	int (*arm)(struct uhmm_source *src, struct uhmm_mm *mm,
		   struct uhmm_interval_notifier *sub);
	/* Watch what is now in [start, end) of sub's range, also mappings
	 * created since; a no-op once sub is disarmed. */
	int (*rearm)(struct uhmm_source *src, struct uhmm_interval_notifier *sub,
		     unsigned long start, unsigned long end);
	/* Is every page of [start, end) watched? uhmm_mm_check_armed(),
	 * and -EBUSY for its -EAGAIN while a change of the range may not be
	 * dispatched yet (the mapping may predate the arming). */
	int (*check_armed)(struct uhmm_source *src,
			   struct uhmm_interval_notifier *sub,
			   unsigned long start, unsigned long end);
	/* Stop watching for sub (being removed). */
	void (*disarm)(struct uhmm_source *src, struct uhmm_interval_notifier *sub);
	/*
	 * sub's deferred removal took effect (no window calls it again):
	 * call uhmm_notifier_removed(sub) soon on the source's own thread,
	 * outside every lock. Never waits, allocates nothing. NULL: core
	 * calls it in the thread that ended the removal.
	 */
	void (*defer)(struct uhmm_source *src, struct uhmm_interval_notifier *sub);
	/* Wait until every change made before the call has been dispatched:
	 * 0, or -EDEADLK from the source's own thread. */
	int (*sync)(struct uhmm_source *src);
	/*
	 * Strict mode (uhmm.h, UHMM_MM_STRICT), before the clock wait: wait
	 * until no change that began before the call is still unread - not
	 * even one the kernel has not queued yet - or until deadline_ns
	 * (0: none): 0 or -ETIMEDOUT. From the source's own dispatching
	 * thread or an invalidate callback, 0 at once. NULL: the source has
	 * nothing in flight that it has not read.
	 */
	int (*settle)(struct uhmm_source *src, unsigned long long deadline_ns);
	/* Check, once per process, that settle() works here: 0, or
	 * -EOPNOTSUPP; -ENOMEM or -EAGAIN if it could not tell yet. NULL:
	 * nothing to check. */
	int (*strict_init)(struct uhmm_source *src);
};

/*
 * Finish the deferred removal of sub (uhmm_source_ops.defer): stop
 * watching for it, drop its reference on the mm, call its done function.
 */
void uhmm_notifier_removed(struct uhmm_interval_notifier *sub);

/*
 * Open an mm fed by the source ops (NULL: none - the caller reports every
 * change with uhmm_mm_invalidate()). uhmm_mm_open() is this with the
 * library's sources (source/open.c).
 */
int uhmm_mm_open_source(struct uhmm_mm **mmp, unsigned int flags,
			const struct uhmm_source_ops *ops);

/*
 * fork(): core holds every mm lock across it (mm.c); a source that
 * brackets it with windows registers these, called in this order:
 *   prepare(mms)  all mms of the process (linked by all_next), under
 *                 core's all_lock, which stays held until parent/child
 *   open()        open windows; no mm lock held (callbacks run)
 *   check()       under every mm lock: true if nothing was missed; if
 *                 false, core drops the mm locks and calls open() again
 *   parent()      in the parent, mm locks dropped: close the windows
 *   child()       in the child: the windows were the parent's; forget
 *                 them, and the source's own state that was the parent's
 * One set per process: a second registration replaces nothing (-EBUSY).
 */
struct uhmm_fork_ops {
	void (*prepare)(struct uhmm_mm *mms);
	void (*open)(void);
	bool (*check)(void);
	void (*parent)(void);
	void (*child)(void);
};

int uhmm_fork_ops_register(const struct uhmm_fork_ops *ops);

#endif
