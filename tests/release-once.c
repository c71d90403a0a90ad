/* SPDX-License-Identifier: MIT */
/*
 * Invariant 7: when the last user closes the mm, every live subscription
 * gets exactly one UHMM_EVENT_RELEASE over the whole address space - also
 * one whose insert was still deferred by a window open at that moment -
 * and stays registered until removed. Nothing new is accepted afterwards.
 */
#include <limits.h>

#include "core/internal.h"
#include "device.h"
#include "invariant.h"

struct closer {
	struct uhmm_mm *mm;
	pid_t tid;		/* atomic */
	int ret;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	__atomic_store_n(&c->tid, t_gettid(), __ATOMIC_RELEASE);
	c->ret = uhmm_mm_close(c->mm);
	return NULL;
}

static void check_released(struct t_dev *dev, const char *name)
{
	if (dev->release_calls != 1)
		fprintf(stderr, "%s: %d releases\n", name, dev->release_calls);
	CHECK_EQ(dev->release_calls, 1);
	CHECK_EQ(dev->last_range.event, UHMM_EVENT_RELEASE);
	CHECK_EQ(dev->last_range.start, 0);
	CHECK_EQ(dev->last_range.end, ULONG_MAX);
	CHECK(uhmm_range_blockable(&dev->last_range));
}

int main(void)
{
	struct uhmm_notifier_range w = { .start = 0x1000, .end = 0x2000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev a = { 0 }, b = { 0 }, deferred = { 0 }, gone = { 0 };
	struct t_dev top = { 0 }, refused = { 0 };
	struct closer c = { 0 };
	struct uhmm_mm *mm;
	pthread_t th;
	pid_t tid;

	mm = t_open_variant();
	REQUIRE(t_dev_insert(&a, mm, 0x1000, 0x1000) == 0);
	REQUIRE(t_dev_insert(&b, mm, 0x7f0000000000, 0x200000) == 0);
	REQUIRE(t_dev_insert(&top, mm, ULONG_MAX, 1) == 0); /* the top byte */
	REQUIRE(t_dev_insert(&gone, mm, 0x1000, 0x1000) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&gone.sub) == 0);

	/* A second user: its close is not the last and releases nothing. */
	REQUIRE(uhmm_mm_get(mm) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	CHECK_EQ(t_dev_calls(&a), 0);

	/* Close the last user while a window is open and an insert deferred:
	 * the release waits for the window, then covers the deferred sub. */
	REQUIRE(uhmm_mm_invalidate_start(mm, &w) == 0);
	REQUIRE(t_dev_insert(&deferred, mm, 0x1000, 0x1000) == 0);
	c.mm = mm;
	REQUIRE(pthread_create(&th, NULL, closer_main, &c) == 0);
	while (!(tid = __atomic_load_n(&c.tid, __ATOMIC_ACQUIRE)))
		usleep(1000);
	t_wait_blocked(tid);
	CHECK_EQ(t_dev_calls(&b), 0);
	/* Closing has begun: new subscriptions are refused at once. */
	CHECK_EQ(t_dev_insert(&refused, mm, 0x1000, 0x1000), -ESRCH);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w) == 0);
	pthread_join(th, NULL);
	CHECK_EQ(c.ret, 0);

	check_released(&a, "a");
	check_released(&b, "b");
	check_released(&top, "top");
	check_released(&deferred, "deferred");
	CHECK_EQ(t_dev_calls(&gone), 0);
	CHECK_EQ(t_dev_calls(&refused), 0);
	CHECK_EQ(uhmm_mm_seq(mm) & 1, 0);

	/* The mm is dead to new work but its subscriptions live on. */
	CHECK_EQ(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP),
		 -ESRCH);
	CHECK_EQ(uhmm_mm_get(mm), -ESRCH);
	CHECK_EQ(uhmm_mm_close(mm), -ESRCH);
	CHECK_EQ(uhmm_mm_sync(mm), -ESRCH);
	CHECK_EQ(t_dev_calls(&a), 2);
	CHECK_EQ(a.release_calls, 1);
	unsigned long seq = uhmm_interval_read_begin(&a.sub);
	CHECK(!uhmm_interval_read_retry(&a.sub, seq));

	/* Removing them is what finally frees the mm (ASan checks). */
	CHECK_EQ(uhmm_interval_notifier_remove(&a.sub), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&b.sub), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&top.sub), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&deferred.sub), 0);
	return t_result();
}
