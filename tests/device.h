/* SPDX-License-Identifier: MIT */
/*
 * A counting test device: one subscription, its own lock, and a record of
 * every callback. The callback follows the protocol in uhmm.h (device lock,
 * set_seq) and then runs an optional hook that decides the return value.
 */
#ifndef UHMM_TEST_DEVICE_H
#define UHMM_TEST_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "uhmm.h"
#include "test.h"

struct t_dev {
	struct uhmm_interval_notifier sub;
	pthread_mutex_t lock;
	int calls;			/* [lock] */
	int release_calls;		/* [lock] UHMM_EVENT_RELEASE seen */
	unsigned long last_seq;		/* [lock] */
	struct uhmm_notifier_range last_range; /* [lock] */
	/* Optional: runs after the record, outside the lock; its answer is
	 * the callback's. */
	bool (*hook)(struct t_dev *dev, const struct uhmm_notifier_range *r);
	void *arg;
};

static inline struct t_dev *t_dev_of(struct uhmm_interval_notifier *sub)
{
	return (struct t_dev *)((char *)sub - offsetof(struct t_dev, sub));
}

static inline bool t_dev_invalidate(struct uhmm_interval_notifier *sub,
				    const struct uhmm_notifier_range *range,
				    unsigned long cur_seq)
{
	struct t_dev *dev = t_dev_of(sub);

	pthread_mutex_lock(&dev->lock);
	uhmm_interval_set_seq(sub, cur_seq);
	dev->calls++;
	if (range->event == UHMM_EVENT_RELEASE)
		dev->release_calls++;
	dev->last_seq = cur_seq;
	dev->last_range = *range;
	pthread_mutex_unlock(&dev->lock);
	return dev->hook ? dev->hook(dev, range) : true;
}

static const struct uhmm_interval_notifier_ops t_dev_ops = {
	.invalidate = t_dev_invalidate,
};

static inline int t_dev_insert_flags(struct t_dev *dev, struct uhmm_mm *mm,
				     unsigned long start, unsigned long length,
				     unsigned int flags)
{
	pthread_mutex_init(&dev->lock, NULL);
	return uhmm_interval_notifier_insert_flags(&dev->sub, mm, start,
						   length, &t_dev_ops, flags);
}

static inline int t_dev_insert(struct t_dev *dev, struct uhmm_mm *mm,
			       unsigned long start, unsigned long length)
{
	return t_dev_insert_flags(dev, mm, start, length, 0);
}

static inline int t_dev_calls(struct t_dev *dev)
{
	int n;

	pthread_mutex_lock(&dev->lock);
	n = dev->calls;
	pthread_mutex_unlock(&dev->lock);
	return n;
}

/*
 * Wait until thread tid sleeps in futex() on a word inside [obj, obj +
 * size) - any futex if obj is NULL: the proof that it is blocked inside a
 * uhmm wait rather than merely slow (a sanitizer's runtime may sleep in
 * futexes of its own on the way). No deadline: ctest's hang guard ends a
 * test that never gets there.
 */
static inline void t_wait_blocked_on(pid_t tid, const void *obj, size_t size)
{
	char path[64], buf[128];

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	for (;;) {
		FILE *f = fopen(path, "r");
		unsigned long uaddr = 0;
		long nr = -1;

		REQUIRE(f);
		if (fgets(buf, sizeof(buf), f) &&
		    sscanf(buf, "%ld %lx", &nr, &uaddr) < 1)
			nr = -1;
		fclose(f);
		if (nr == SYS_futex &&
		    (!obj || (uaddr >= (uintptr_t)obj &&
			      uaddr < (uintptr_t)obj + size)))
			return;
		usleep(1000);
	}
}

static inline void t_wait_blocked(pid_t tid)
{
	t_wait_blocked_on(tid, NULL, 0);
}

static inline pid_t t_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

#endif
