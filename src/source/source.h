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
 * code and frees nothing, so it can never end up waiting for an event it
 * has to read itself. The dispatcher runs the invalidation windows, and
 * with them the subscribers' callbacks, which may therefore unmap or free
 * anything: the reader reads that event too, while the callback waits.
 *
 * Happens-before (DESIGN.md invariant 8). The kernel lets the thread that
 * unmapped go as soon as the reader has *read* the event, before anything
 * was invalidated. So every read is a numbered batch, and its ticket is
 * taken before read():
 *
 *	reader:      read_ticket = t   read()   queue batch t
 *	                                 |
 *	munmap():  ... blocked ... released --> returns --> read_begin()
 *	dispatcher:                   run batch t's windows   done_ticket = t
 *
 * read_begin() loads read_ticket and waits until done_ticket reaches it.
 * A munmap() that returned was read in a batch whose ticket was taken
 * before, so its invalidation is complete before read_begin() loads the
 * subscription's seq. Batches taken later do not hold it up.
 */
#define UHMM_BATCH_MSGS 32

struct uhmm_batch {
	struct uhmm_batch *next;
	unsigned long ticket;
	unsigned long sync_seen;	/* sync requests it answers */
	size_t n;
	struct uffd_msg msgs[UHMM_BATCH_MSGS];
};

struct uhmm_source {
	int uffd;
	int wake_fd;		/* eventfd: uhmm_mm_sync() wakes the reader */

	/* [queue_lock] batches read, in ticket order. */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;	/* signalled when a batch is queued */
	pthread_cond_t done_cond;	/* broadcast when done_ticket moves */
	struct uhmm_batch *queue_head, **queue_tail;
	unsigned long read_ticket;	/* [queue_lock] to write; atomic */
	unsigned long done_ticket;	/* [queue_lock] to write; atomic */
	unsigned long sync_requested;	/* bumped by each uhmm_mm_sync() */
	unsigned long sync_done;	/* requests answered by a full pass */

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

/* Forget sub's range; unregister mappings no other subscription needs. */
void uhmm_source_disarm(struct uhmm_source *src,
			struct uhmm_interval_notifier *sub);

/* Wait until every batch read so far is dispatched (see above). Two loads
 * when none is in flight. */
void uhmm_source_wait_events_slow(struct uhmm_source *src, unsigned long ticket);
static inline void uhmm_source_wait_events(struct uhmm_source *src)
{
	unsigned long ticket = __atomic_load_n(&src->read_ticket,
					       __ATOMIC_SEQ_CST);

	if (__atomic_load_n(&src->done_ticket, __ATOMIC_ACQUIRE) != ticket)
		uhmm_source_wait_events_slow(src, ticket);
}

/* Wait until every event queued before the call has been dispatched. */
int uhmm_source_sync(struct uhmm_source *src);

/* In a fork child: the parent's source is not ours; forget it. */
void uhmm_source_after_fork_child(void);

#endif
