/* SPDX-License-Identifier: MIT */
/*
 * The kernel event source: one userfaultfd per process, shared by every
 * monitored uhmm_mm, and the two threads that turn its events into
 * invalidation windows.
 */
#ifndef UHMM_SOURCE_H
#define UHMM_SOURCE_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>

#include "uhmm.h"
#include "core/itree.h"
#include "core/source.h"

/*
 * Two threads serve the source. The reader only reads: it runs no user
 * code, takes no lock and frees nothing, so it can never end up waiting
 * for an event it has to read itself, nor for a thread that is waiting
 * for it (a thread that munmaps - possibly from a signal handler, in the
 * middle of any uhmm call - sleeps until the reader has read its event).
 * The dispatcher runs the invalidation windows, and with them the
 * subscribers' callbacks, which may therefore unmap or free anything: the
 * reader reads that event too, while the callback waits.
 *
 * Happens-before (docs/design.md, invariant 8): each read is a batch
 * numbered with core's clock (core/source.h), its ticket taken before
 * read(); the dispatcher marks it done once its windows have run.
 *
 * The reader hands batches to the dispatcher through two lock-free
 * stacks (pending, and spare batches coming back) and an eventfd, and
 * allocates batch memory with mmap(), never malloc(): every lock in the
 * process may be held by a thread that is about to unmap.
 *
 * REMOVE (madvise discard) is the other way round: the kernel reads the
 * event *before* it zaps the pages (uffd.c, "Discards"), so its windows
 * stay open past the clock's done ticket, until the zap is over or a
 * grace period has passed. uhmm_mm_sync() waits for those too.
 */
#define UHMM_BATCH_MSGS 32
#define UHMM_KNOWN_VMAS 64

struct uhmm_batch {
	struct uhmm_batch *next;
	unsigned long ticket;
	unsigned long sync_seen;	/* sync requests it answers */
	unsigned long settle_seen;	/* settle requests it answers */
	unsigned long long read_ns;	/* when it was read */
	size_t n;
	struct uffd_msg msgs[UHMM_BATCH_MSGS];
};

struct uhmm_remove_window;

struct uffd_source {
	struct uhmm_source base;	/* core's view: ops and clock */
	int uffd;
	int wake_fd;		/* eventfd: uhmm_mm_sync() wakes the reader */
	int dispatch_fd;	/* eventfd: the reader wakes the dispatcher */

	/* Reader to dispatcher, lock-free (atomic exchange): batches read,
	 * newest first; and back, spare batches for the reader. */
	struct uhmm_batch *pending;
	struct uhmm_batch *spare;
	struct uhmm_batch *reader_spare;	/* [reader] */

	unsigned long sync_requested;	/* atomic: bumped by uhmm_mm_sync() */
	/* [base.clock.done_lock] requests answered by a full pass; waited
	 * on by uhmm_mm_sync(), with the clock's done_cond. */
	unsigned long sync_done;

	/* Strict mode (source_settle()): bumped by a lookup that found an
	 * event in flight; answered, with the clock's done_cond, once the
	 * reader saw none in flight after a read. */
	unsigned long settle_requested;	/* atomic */
	unsigned long settle_done;	/* [base.clock.done_lock] */
	/* Subscriptions armed: none, nothing to probe for. Atomic. */
	unsigned long narmed;

	/* Subscriptions whose deferred removal took effect, for the
	 * dispatcher to finish (source_defer()); lock-free, through
	 * deferred_next. */
	struct uhmm_interval_notifier *removed;

	/* [dispatcher] REMOVE windows waiting for their zap. */
	struct uhmm_remove_window *removes;
	void *barrier_page;		/* see uhmm_prim_mmap_barrier() */
	unsigned long sync_pending;	/* [dispatcher] answered once the
					 * removes above have closed */

	struct uhmm_mutex mms_lock;
	struct uhmm_mm *mms;	/* [mms_lock] attached, via source_next */

	/*
	 * [arm_lock] The armed set: one node per subscription of an attached
	 * mm. Registration is by whole mappings (VMAs), so that arming never
	 * splits one; a mapping is unregistered once no node overlaps it.
	 * arm_lock is held across the register/unregister system calls.
	 */
	struct uhmm_mutex arm_lock;
	struct uhmm_itree arms;
	/*
	 * [arm_lock] Mappings known to be registered, whole, so that arming
	 * and checking a range inside one costs no system call (uffd.c,
	 * "Known mappings"). end == 0: a free slot.
	 */
	struct uhmm_known_vma {
		unsigned long start, end;
		/* The subscription on whose behalf it was registered: its
		 * hull covers it. */
		const struct uhmm_interval_notifier *owner;
	} known[UHMM_KNOWN_VMAS];
	unsigned int known_next;	/* [arm_lock] the slot to reuse next */

	/* Statistics, atomic. */
	unsigned long events;		/* read from the kernel */
	unsigned long callback_bugs;	/* blockable callbacks that refused */
	unsigned long arm_errors;	/* re-arming after an event failed */
	unsigned long removes_zapped;	/* REMOVE windows closed after the zap */
	unsigned long removes_expired;	/* ... closed at the grace period */
	unsigned long settles;		/* lookups that waited for the reader */
	unsigned long probe_errors;	/* the reader's probe failed */
	unsigned long changes_before;	/* changes taken over (change.c) */
};

static inline struct uffd_source *uffd_of(struct uhmm_source *base)
{
	return uhmm_container_of(base, struct uffd_source, base);
}

/*
 * The kernel event source, shared by every monitored mm of the process,
 * created on first attach. Its attach fails with -EPERM/-ENOSYS
 * (userfaultfd forbidden or absent), -EOPNOTSUPP (a needed feature is
 * missing), -ENOMEM or -EAGAIN. Arming registers whole mappings:
 * -EBUSY when one is registered with another userfaultfd, -EOPNOTSUPP
 * when one cannot be (vdso, vvar, MAP_DROPPABLE). check_armed: see
 * uhmm_mm_check_armed().
 */
extern const struct uhmm_source_ops uhmm_uffd_source_ops;

/*
 * A change the calling thread is about to make itself, reported before
 * it happens (uffd.c, "changes reported before they happen"; the system
 * call wrappers are in change.c). The caller fills the ranges (page
 * aligned, at most 2: mremap's source and destination) with their events,
 * and whether to take them out of the userfaultfd first (what the kernel
 * would report: unmap, discard, mmap over); after the call, what to
 * re-arm (what is still mapped there, or mapped anew).
 */
#define UHMM_CHANGE_MAX_WINDOWS 8

struct uhmm_change_window {
	struct uhmm_mm *mm;		/* a user reference is held */
	struct uhmm_notifier_range range;
};

struct uhmm_change {
	int nranges;
	struct {
		unsigned long start, end;
		enum uhmm_event event;
	} range[2];
	bool unregister;
	int nrearm;
	struct {
		unsigned long start, end;
	} rearm[2];
	/* Private. */
	struct uffd_source *src;
	int nwindows;
	struct uhmm_change_window window[UHMM_CHANGE_MAX_WINDOWS];
};

/*
 * true: windows are open on every live mm and the ranges unregistered;
 * make the call, set rearm, then uhmm_uffd_change_end() (which leaves
 * errno as the call set it). false: make the
 * call as it is; the kernel reports it (no source, nothing armed there, a
 * callback that could not run without blocking, a thread inside uhmm).
 */
bool uhmm_uffd_change_begin(struct uhmm_change *c);
void uhmm_uffd_change_end(struct uhmm_change *c);
void uhmm_uffd_change_abort(struct uhmm_change *c);

/* In a fork child: the parent's source is not the child's; forget it. */
void uhmm_uffd_after_fork_child(void);

#endif
