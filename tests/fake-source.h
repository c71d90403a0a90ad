/* SPDX-License-Identifier: MIT */
/*
 * A scripted event source, in memory: core's source interface
 * (core/source.h) with no userfaultfd behind it. The test plays the
 * source's two threads itself, so interleavings are exact:
 *
 *	fake_read(start, end)   the reader read an UNMAP of [start, end): its
 *	                        ticket is taken, nothing is dispatched yet
 *	fake_dispatch()         the dispatcher runs the oldest read's window
 *	                        on every attached mm and marks it done
 *
 * It counts arms and disarms, which must balance: every insert arms once,
 * every remove (or release) disarms once - fake_check() says so. Used by
 * tests/invariant.h to run the invariant tests against a source, and by
 * tests that script the happens-before clock (clock-order.c).
 * One fake source per process, like the real one.
 */
#ifndef UHMM_TEST_FAKE_SOURCE_H
#define UHMM_TEST_FAKE_SOURCE_H

#include <pthread.h>

#include "core/internal.h"
#include "core/source.h"
#include "test.h"

#define FAKE_MMS 8
#define FAKE_EVENTS 64

struct fake_event {
	unsigned long start, end, ticket;
};

struct fake_source {
	struct uhmm_source base;
	pthread_mutex_t lock;
	struct uhmm_mm *mms[FAKE_MMS];			/* [lock] */
	unsigned long arms, disarms;		/* [lock] */
	struct fake_event q[FAKE_EVENTS];	/* [lock] read, not dispatched */
	unsigned int head, tail;		/* [lock] */
};

static struct fake_source fake;
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;

static inline void fake_init(void)
{
	pthread_mutex_init(&fake.lock, NULL);
	uhmm_clock_init(&fake.base.clock);
}

static inline int fake_attach(struct uhmm_mm *mm, struct uhmm_source **srcp)
{
	int ret = -ENOMEM;

	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MMS; i++) {
		if (!fake.mms[i]) {
			fake.mms[i] = mm;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&fake.lock);
	*srcp = &fake.base;
	return ret;
}

static inline void fake_detach(struct uhmm_source *src, struct uhmm_mm *mm)
{
	(void)src;
	pthread_mutex_lock(&fake.lock);
	for (int i = 0; i < FAKE_MMS; i++)
		if (fake.mms[i] == mm)
			fake.mms[i] = NULL;
	pthread_mutex_unlock(&fake.lock);
}

/* The slot's first word: armed (1) or not (0). */
static inline unsigned long *fake_armed(struct uhmm_interval_notifier *sub)
{
	return (unsigned long *)&sub->source_private[0];
}

static inline int fake_arm(struct uhmm_source *src, struct uhmm_mm *mm,
			   struct uhmm_interval_notifier *sub)
{
	(void)src;
	(void)mm;
	pthread_mutex_lock(&fake.lock);
	if (*fake_armed(sub))
		fprintf(stderr, "fake source: sub %p armed twice\n",
			(void *)sub), t_failed = 1;
	*fake_armed(sub) = 1;
	fake.arms++;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

/* rearm and check_armed: nothing to watch, every page counts as watched. */
static inline int fake_all_watched(struct uhmm_source *src,
				   struct uhmm_interval_notifier *sub,
				   unsigned long start, unsigned long end)
{
	(void)src;
	(void)sub;
	(void)start;
	(void)end;
	return 0;
}

static inline void fake_disarm(struct uhmm_source *src,
			       struct uhmm_interval_notifier *sub)
{
	(void)src;
	pthread_mutex_lock(&fake.lock);
	if (*fake_armed(sub)) {
		*fake_armed(sub) = 0;
		fake.disarms++;
	}
	pthread_mutex_unlock(&fake.lock);
}

/* Every read so far is dispatched: the scripted dispatcher must have run. */
static inline int fake_sync(struct uhmm_source *src)
{
	return uhmm_clock_wait(&src->clock, 0);
}

static const struct uhmm_source_ops fake_ops = {
	.attach = fake_attach,
	.detach = fake_detach,
	.arm = fake_arm,
	.rearm = fake_all_watched,
	.check_armed = fake_all_watched,
	.disarm = fake_disarm,
	.sync = fake_sync,
};

/* An mm fed by the fake source. */
static inline int fake_open(struct uhmm_mm **mmp)
{
	pthread_once(&fake_once, fake_init);
	fake.base.ops = &fake_ops;
	return uhmm_mm_open_source(mmp, 0, &fake_ops);
}

/* The reader: an UNMAP of [start, end) was read (the unmapping thread may
 * go on). Its ticket, taken as the real reader takes it, before. */
static inline unsigned long fake_read(unsigned long start, unsigned long end)
{
	unsigned long t = uhmm_clock_read_start(&fake.base.clock);

	pthread_mutex_lock(&fake.lock);
	REQUIRE(fake.tail - fake.head < FAKE_EVENTS);
	fake.q[fake.tail++ % FAKE_EVENTS] = (struct fake_event){ start, end, t };
	pthread_mutex_unlock(&fake.lock);
	return t;
}

/* The dispatcher: run the oldest read's window on every attached mm, then
 * mark it done. Returns false if nothing was read. */
static inline bool fake_dispatch(void)
{
	struct uhmm_mm *mms[FAKE_MMS];
	struct fake_event ev;
	int n = 0;

	pthread_mutex_lock(&fake.lock);
	if (fake.head == fake.tail) {
		pthread_mutex_unlock(&fake.lock);
		return false;
	}
	ev = fake.q[fake.head++ % FAKE_EVENTS];
	for (int i = 0; i < FAKE_MMS; i++)
		if (fake.mms[i])
			mms[n++] = fake.mms[i];
	pthread_mutex_unlock(&fake.lock);
	for (int i = 0; i < n; i++)
		CHECK_EQ(uhmm_mm_invalidate(mms[i], ev.start, ev.end,
					    UHMM_EVENT_UNMAP), 0);
	uhmm_clock_done(&fake.base.clock, ev.ticket);
	return true;
}

/* Arms and disarms balance: nothing is watched for a removed sub. */
static inline void fake_check(void)
{
	pthread_mutex_lock(&fake.lock);
	if (fake.arms != fake.disarms)
		fprintf(stderr, "fake source: %lu arms, %lu disarms\n",
			fake.arms, fake.disarms);
	CHECK_EQ(fake.arms, fake.disarms);
	pthread_mutex_unlock(&fake.lock);
}

#endif
