/* SPDX-License-Identifier: MIT */
/* The happens-before clock: see core/source.h. */
#include <errno.h>

#include "core/internal.h"
#include "core/source.h"

static __thread const struct uhmm_event_clock *dispatching;

void uhmm_clock_init(struct uhmm_event_clock *c)
{
	c->read_ticket = c->done_ticket = 0;
	c->ranged_ticket = c->lost_ticket = c->ranges_seq = 0;
	c->ranges_head = 0;
	uhmm_mutex_init(&c->done_lock);
	uhmm_cond_init_monotonic(&c->done_cond);
}

void uhmm_clock_done_locked(struct uhmm_event_clock *c, unsigned long t)
{
	uhmm_lock_assert_held(&c->done_lock);
	__atomic_store_n(&c->done_ticket, t, __ATOMIC_RELEASE);
}

void uhmm_clock_done(struct uhmm_event_clock *c, unsigned long t)
{
	uhmm_mutex_lock(&c->done_lock);
	uhmm_clock_done_locked(c, t);
	uhmm_mutex_unlock(&c->done_lock);
	pthread_cond_broadcast(&c->done_cond);
}

void uhmm_clock_set_dispatcher(const struct uhmm_event_clock *c)
{
	dispatching = c;
}

int uhmm_clock_wait_for(struct uhmm_event_clock *c,
			const unsigned long *counter, unsigned long ticket,
			unsigned long long deadline_ns)
{
	struct timespec ts = uhmm_deadline_ts(deadline_ns);
	int ret = 0;

	uhmm_mutex_lock(&c->done_lock);
	while ((long)(*counter - ticket) < 0) {
		if (!deadline_ns) {
			uhmm_cond_wait(&c->done_cond, &c->done_lock);
		} else if (uhmm_cond_timedwait(&c->done_cond, &c->done_lock,
						  &ts) == ETIMEDOUT) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	uhmm_mutex_unlock(&c->done_lock);
	return ret;
}

int uhmm_clock_wait_slow(struct uhmm_event_clock *c, unsigned long ticket,
			 unsigned long long deadline_ns)
{
	/* The dispatcher cannot wait for the read it is dispatching. */
	if (dispatching == c)
		return 0;
	return uhmm_clock_wait_for(c, &c->done_ticket, ticket, deadline_ns);
}

/*
 * The ring is a seqcount-protected log, one writer (the reader thread):
 * a waiter copies what it needs and retries if the writer was at work.
 * Entries of reads already done are overwritten freely; overwriting one
 * whose read may not be done (its ticket above done_ticket as the reader
 * last saw it - an old value, so this errs on the safe side) raises
 * lost_ticket, and waiters that need that read wait for it whole.
 */
void uhmm_clock_read_ranges(struct uhmm_event_clock *c, unsigned long t,
			    const struct uhmm_clock_range *ranges, size_t n)
{
	unsigned long done = __atomic_load_n(&c->done_ticket, __ATOMIC_ACQUIRE);
	unsigned long seq = c->ranges_seq;

	/* Odd first; each entry store releases it, so a waiter that reads
	 * an entry this writes then reads an odd or newer seq. (No fence:
	 * ThreadSanitizer does not model them, and GCC refuses them with
	 * -fsanitize=thread -Werror.) */
	__atomic_store_n(&c->ranges_seq, seq + 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < n; i++) {
		struct uhmm_clock_range *e =
			&c->ranges[c->ranges_head++ % UHMM_CLOCK_RANGES];
		unsigned long old = __atomic_load_n(&e->ticket,
						    __ATOMIC_RELAXED);

		if (old > done && old > c->lost_ticket)
			__atomic_store_n(&c->lost_ticket, old,
					 __ATOMIC_RELAXED);
		__atomic_store_n(&e->ticket, t, __ATOMIC_RELEASE);
		__atomic_store_n(&e->start, ranges[i].start, __ATOMIC_RELEASE);
		__atomic_store_n(&e->end, ranges[i].end, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&c->ranges_seq, seq + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&c->ranged_ticket, t, __ATOMIC_RELEASE);
}

/* Does a read in (done, read] change [start, end)? -1: cannot tell. */
static int ranges_overlap(struct uhmm_event_clock *c, unsigned long done,
			  unsigned long read, unsigned long start,
			  unsigned long end)
{
	unsigned long seq = __atomic_load_n(&c->ranges_seq, __ATOMIC_ACQUIRE);
	int overlap = 0;

	if (seq & 1 ||
	    __atomic_load_n(&c->lost_ticket, __ATOMIC_RELAXED) > done)
		return -1;
	for (int i = 0; i < UHMM_CLOCK_RANGES && !overlap; i++) {
		const struct uhmm_clock_range *e = &c->ranges[i];
		unsigned long t = __atomic_load_n(&e->ticket, __ATOMIC_ACQUIRE);

		overlap = t > done && t <= read &&
			  __atomic_load_n(&e->start, __ATOMIC_ACQUIRE) < end &&
			  start < __atomic_load_n(&e->end, __ATOMIC_ACQUIRE);
	}
	/* After the acquire loads: sees the writer that wrote any of them. */
	if (__atomic_load_n(&c->ranges_seq, __ATOMIC_RELAXED) != seq)
		return -1;
	return overlap;
}

bool uhmm_clock_pending_range_slow(struct uhmm_event_clock *c,
				   unsigned long read, unsigned long done,
				   unsigned long start, unsigned long end)
{
	if (dispatching == c)
		return false;
	/* The reads up to 'read' have said what they change, and none of
	 * the reads not done changes this range: nothing pending. */
	return __atomic_load_n(&c->ranged_ticket, __ATOMIC_ACQUIRE) != read ||
	       ranges_overlap(c, done, read, start, end) != 0;
}

int uhmm_clock_wait_range(struct uhmm_event_clock *c, unsigned long start,
			  unsigned long end, unsigned long long deadline_ns)
{
	if (!uhmm_clock_pending_range(c, start, end))
		return 0;
	return uhmm_clock_wait(c, deadline_ns);
}
