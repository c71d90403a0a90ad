/* SPDX-License-Identifier: MIT */
/* The happens-before clock: see core/source.h. */
#include <errno.h>

#include "core/internal.h"
#include "core/source.h"

static __thread const struct uhmm_event_clock *dispatching;

void uhmm_clock_init(struct uhmm_event_clock *c)
{
	c->read_ticket = c->done_ticket = 0;
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
