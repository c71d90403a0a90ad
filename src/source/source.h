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
 * Happens-before (docs/design.md, invariant 8). The kernel lets the thread that
 * unmapped go as soon as the reader has *read* the event, before anything
 * was invalidated. So every read is a numbered batch, and its ticket is
 * taken before read():
 *
 *	reader:      read_ticket = t   read()   push batch t
 *	                                 |
 *	munmap():  ... blocked ... released --> returns --> read_begin()
 *	dispatcher:                   open batch t's windows   done_ticket = t
 *
 * read_begin() loads read_ticket and waits until done_ticket reaches it.
 * A munmap() that returned was read in a batch whose ticket was taken
 * before, so its invalidation is complete before read_begin() loads the
 * subscription's seq. Batches taken later do not hold it up.
 *
 * The reader hands batches to the dispatcher through two lock-free
 * stacks (pending, and spare batches coming back) and an eventfd, and
 * allocates batch memory with mmap(), never malloc(): every lock in the
 * process may be held by a thread that is about to unmap.
 *
 * REMOVE (madvise discard) is the other way round: the kernel reads the
 * event *before* it zaps the pages (uffd.c, "Discards"), so its windows
 * stay open past done_ticket, until the zap is over or a grace period
 * has passed. uhmm_mm_sync() waits for those too.
 */
#define UHMM_BATCH_MSGS 32

struct uhmm_batch {
	struct uhmm_batch *next;
	unsigned long ticket;
	unsigned long sync_seen;	/* sync requests it answers */
	unsigned long long read_ns;	/* when it was read */
	size_t n;
	struct uffd_msg msgs[UHMM_BATCH_MSGS];
};

struct uhmm_remove_window;

struct uhmm_source {
	int uffd;
	int wake_fd;		/* eventfd: uhmm_mm_sync() wakes the reader */
	int dispatch_fd;	/* eventfd: the reader wakes the dispatcher */

	/* Reader to dispatcher, lock-free (atomic exchange): batches read,
	 * newest first; and back, spare batches for the reader. */
	struct uhmm_batch *pending;
	struct uhmm_batch *spare;
	struct uhmm_batch *reader_spare;	/* [reader] */

	unsigned long read_ticket;	/* [reader] to write; atomic */
	unsigned long sync_requested;	/* atomic: bumped by uhmm_mm_sync() */

	/* [done_lock] what the dispatcher has finished; waited on by
	 * read_begin and uhmm_mm_sync(), never taken by the reader. */
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;	/* broadcast when either moves */
	unsigned long done_ticket;	/* [done_lock] to write; atomic */
	unsigned long sync_done;	/* requests answered by a full pass */

	/* [dispatcher] REMOVE windows waiting for their zap. */
	struct uhmm_remove_window *removes;
	void *barrier_page;		/* see uhmm_prim_mmap_barrier() */
	unsigned long sync_pending;	/* [dispatcher] answered once the
					 * removes above have closed */

	pthread_mutex_t mms_lock;
	struct uhmm_mm *mms;	/* [mms_lock] attached, via source_next */

	/*
	 * [arm_lock] The armed set: one node per subscription of an attached
	 * mm. Registration is by whole mappings (VMAs), so that arming never
	 * splits one; a mapping is unregistered once no node overlaps it.
	 * arm_lock is held across the register/unregister system calls.
	 */
	pthread_mutex_t arm_lock;
	struct uhmm_itree arms;

	/* Statistics, atomic. */
	unsigned long events;		/* read from the kernel */
	unsigned long callback_bugs;	/* blockable callbacks that refused */
	unsigned long arm_errors;	/* re-arming after an event failed */
	unsigned long removes_zapped;	/* REMOVE windows closed after the zap */
	unsigned long removes_expired;	/* ... closed at the grace period */
};

/*
 * Attach mm to the process's event source, creating it (and its reader
 * thread) on first use. -EPERM/-ENOSYS: userfaultfd is forbidden or absent;
 * -EOPNOTSUPP: the kernel lacks a needed feature; -ENOMEM/-EAGAIN.
 */
int uhmm_source_attach(struct uhmm_mm *mm);

/* Detach a released mm and disarm what only its subscriptions needed. */
void uhmm_source_detach(struct uhmm_mm *mm);

/*
 * Arm sub's range: register every mapping in it. -EBUSY: a mapping is
 * registered with another userfaultfd; -EOPNOTSUPP: a mapping cannot be
 * registered (vdso, vvar, MAP_DROPPABLE). On error nothing stays armed for
 * sub.
 */
int uhmm_source_arm(struct uhmm_source *src, struct uhmm_interval_notifier *sub);

/* Register the mappings now in [start, end) of armed sub's range, also
 * those created since; errors as above. A no-op once sub is disarmed. */
int uhmm_source_rearm(struct uhmm_source *src, struct uhmm_interval_notifier *sub,
		      unsigned long start, unsigned long end);

/*
 * Check that every page of [start, end), in armed sub's range, lies in a
 * mapping registered with the source, so that its unmap will be heard:
 * call it after read_begin, before trusting what was read there. A
 * mapping created in a hole after the range was armed is not (creating a
 * mapping sends no event); it is armed now. Returns
 *   0        every page does - or sub is disarmed (its mm was released:
 *            nothing is watched for it)
 *   -EAGAIN  some page lay in a mapping that was not registered; it is
 *            registered now: read_begin and read again
 *   -ENOENT  none such, but some page lies in no mapping (or in one that
 *            PAGEMAP_SCAN skips, VM_PFNMAP): a mapping created there
 *            later is not watched either, so what is read there must be
 *            checked again after it is read
 *   -ENOTTY  the kernel has no PAGEMAP_SCAN (before Linux 6.7): the check
 *            cannot be made, and a mapping created in a hole after arming
 *            can be read without ever being watched
 *   or an error of uhmm_source_rearm().
 * WPALLOWED says registered with *a* userfaultfd in write-protect
 * asynchronous mode: a mapping another such userfaultfd registered in a
 * hole after arming passes for watched.
 */
int uhmm_source_check_armed(struct uhmm_source *src,
			    struct uhmm_interval_notifier *sub,
			    unsigned long start, unsigned long end);

/* Forget sub's range; unregister mappings no other subscription needs. */
void uhmm_source_disarm(struct uhmm_source *src,
			struct uhmm_interval_notifier *sub);

/*
 * Wait until every batch read so far is dispatched (see above), or until
 * deadline_ns (CLOCK_MONOTONIC, 0: none) has passed: 0 or -ETIMEDOUT.
 * Two loads when none is in flight.
 */
int uhmm_source_wait_events_slow(struct uhmm_source *src, unsigned long ticket,
				 unsigned long long deadline_ns);
static inline int uhmm_source_wait_events_until(struct uhmm_source *src,
						unsigned long long deadline_ns)
{
	unsigned long ticket = __atomic_load_n(&src->read_ticket,
					       __ATOMIC_SEQ_CST);

	if (__atomic_load_n(&src->done_ticket, __ATOMIC_ACQUIRE) != ticket)
		return uhmm_source_wait_events_slow(src, ticket, deadline_ns);
	return 0;
}

static inline void uhmm_source_wait_events(struct uhmm_source *src)
{
	uhmm_source_wait_events_until(src, 0);
}

/* Wait until every event queued before the call has been dispatched. */
int uhmm_source_sync(struct uhmm_source *src);

/* In a fork child: the parent's source is not ours; forget it. */
void uhmm_source_after_fork_child(void);

#endif
