/* SPDX-License-Identifier: MIT */
/*
 * The kernel event source: one userfaultfd per process, shared by every
 * monitored uhmm_mm, and the reader thread that turns its events into
 * invalidation windows.
 */
#ifndef UHMM_SOURCE_H
#define UHMM_SOURCE_H

#include <pthread.h>
#include <stdbool.h>

#include "uhmm.h"
#include "core/itree.h"

/*
 * Happens-before (DESIGN.md invariant 8). The kernel lets the thread that
 * unmapped go as soon as the reader has *read* the event, before anything
 * was invalidated. So the reader raises a mark before read() and lowers it
 * after dispatch:
 *
 *	reader:  batch_seq++ (odd)  read()  dispatch windows  batch_seq++ (even)
 *	                              |
 *	munmap():  ... blocked ... released --> returns --> read_begin()
 *
 * A read_begin() that starts after munmap() returned therefore either sees
 * batch_seq odd and waits for it to change (the dispatch is done), or sees
 * it even because the dispatch already is. Either way the invalidation
 * happened before read_begin() loads the subscription's seq.
 */
struct uhmm_source {
	int uffd;
	int wake_fd;		/* eventfd: uhmm_mm_sync() wakes the reader */

	/* [batch_lock] to write; batch_seq is read lock-free. */
	pthread_mutex_t batch_lock;
	pthread_cond_t batch_done;	/* broadcast when batch_seq goes even */
	unsigned long batch_seq;	/* odd while events are in flight */
	unsigned long sync_requested;	/* bumped by each uhmm_mm_sync() */
	unsigned long sync_done;	/* requests covered by a full pass */

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
 * sub. With rearm, sub is already armed and only new mappings are added.
 */
int uhmm_source_arm(struct uhmm_source *src, struct uhmm_interval_notifier *sub,
		    bool rearm);

/* Forget sub's range; unregister mappings no other subscription needs. */
void uhmm_source_disarm(struct uhmm_source *src,
			struct uhmm_interval_notifier *sub);

/* Wait until no event is in flight (see above). Cheap when none is. */
void uhmm_source_wait_events_slow(struct uhmm_source *src);
static inline void uhmm_source_wait_events(struct uhmm_source *src)
{
	if (__atomic_load_n(&src->batch_seq, __ATOMIC_SEQ_CST) & 1)
		uhmm_source_wait_events_slow(src);
}

/* Wait until every event queued before the call has been dispatched. */
int uhmm_source_sync(struct uhmm_source *src);

/* In a fork child: the parent's source is not ours; forget it. */
void uhmm_source_after_fork_child(void);

/* Is this thread the event reader? */
bool uhmm_source_on_reader(void);

#endif
