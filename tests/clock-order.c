/* SPDX-License-Identifier: MIT */
/*
 * Happens-before (docs/design.md, invariant 8), scripted: the scripted
 * source (tests/fake-source.h) plays the reader and the dispatcher, so
 * each step of the protocol is taken in a chosen order, with no kernel.
 *
 *   1. An event read and not dispatched holds up read_begin of every
 *      subscription (-ETIMEDOUT with a timeout): the unmapping thread has
 *      returned, but nothing is invalidated yet.
 *   2. Its dispatch releases a blocked read_begin, after the callback ran;
 *      the seq taken before the event now fails read_retry.
 *   3. A read started after read_begin began does not hold it up.
 *   4. A range fault waits for the same reads (uhmm_range_fault_lock()
 *      with a timeout), and sync waits for all of them.
 */
#include <sys/mman.h>

#include "device.h"
#include "fake-source.h"

struct waiter {
	struct t_dev *dev;
	pid_t tid;		/* atomic */
	unsigned long seq;
	bool done;		/* atomic */
};

static void *wait_read_begin(void *arg)
{
	struct waiter *w = arg;

	__atomic_store_n(&w->tid, t_gettid(), __ATOMIC_RELEASE);
	w->seq = uhmm_interval_read_begin(&w->dev->sub);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void start_waiter(struct waiter *w, pthread_t *th)
{
	REQUIRE(pthread_create(th, NULL, wait_read_begin, w) == 0);
	while (!__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE))
		sched_yield();
	/* On the clock's condition: then it has taken its ticket. */
	t_wait_blocked_on(w->tid, &fake.base.clock.done_cond,
			  sizeof(fake.base.clock.done_cond));
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	struct t_dev a = { 0 }, b = { 0 };
	struct uhmm_mm *mm;
	unsigned long seq0, seq, pa, pb;
	struct waiter w = { .dev = &a };
	pthread_t th;
	char *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(mem != MAP_FAILED);
	REQUIRE(fake_open(&mm) == 0);
	pa = (unsigned long)mem;
	pb = pa + page;
	REQUIRE(t_dev_insert(&a, mm, pa, page) == 0);
	REQUIRE(t_dev_insert(&b, mm, pb, page) == 0);
	seq0 = uhmm_interval_read_begin(&a.sub);

	/* 1: read, not dispatched: every read_begin waits, b's too. */
	fake_read(pa, pa + page);
	CHECK_EQ(uhmm_interval_read_begin_timeout(&a.sub, 10, &seq),
		 -ETIMEDOUT);
	CHECK_EQ(uhmm_interval_read_begin_timeout(&b.sub, 10, &seq),
		 -ETIMEDOUT);
	CHECK_EQ(t_dev_calls(&a), 0);

	/* 2: the dispatch releases it, after the callback. */
	start_waiter(&w, &th);
	CHECK(!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	CHECK(fake_dispatch());
	pthread_join(th, NULL);
	CHECK_EQ(t_dev_calls(&a), 1);
	CHECK(uhmm_interval_read_retry(&a.sub, seq0));
	CHECK(!uhmm_interval_read_retry(&a.sub, w.seq));
	CHECK_EQ(t_dev_calls(&b), 0);

	/* 3: a read that starts after read_begin does not hold it up. */
	fake_read(pb, pb + page);
	w = (struct waiter){ .dev = &b };
	start_waiter(&w, &th);
	fake_read(pa, pa + page);	/* after the waiter began */
	CHECK(fake_dispatch());		/* the first only */
	pthread_join(th, NULL);
	CHECK(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	CHECK_EQ(t_dev_calls(&b), 1);
	CHECK_EQ(t_dev_calls(&a), 1);	/* the second is not dispatched */

	/* 4: a range fault waits for it too; then everything is done. */
	{
		pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
		uint64_t pfns[1] = { 0 };
		struct uhmm_range r = {
			.notifier = &a.sub,
			.start = pa,
			.end = pb,
			.pfns = pfns,
			.default_flags = UHMM_PFN_REQ_FAULT,
		};

		CHECK_EQ(uhmm_range_fault_lock(&r, &lock, 10), -ETIMEDOUT);
		CHECK(fake_dispatch());
		CHECK(!fake_dispatch());
		CHECK_EQ(uhmm_mm_sync(mm), 0);
		CHECK_EQ(uhmm_range_fault_lock(&r, &lock, 0), 0);
		CHECK(pfns[0] & UHMM_PFN_VALID);
		pthread_mutex_unlock(&lock);
	}
	CHECK_EQ(t_dev_calls(&a), 2);

	CHECK_EQ(uhmm_interval_notifier_remove(&a.sub), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&b.sub), 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	fake_check();
	munmap(mem, 2 * page);
	printf("happens-before, step by step, on a scripted source\n");
	return t_result();
}
