/* SPDX-License-Identifier: MIT */
/*
 * Invariant 3: read_begin waits while the subscription's callback has
 * already run in a window that is still open, and it never loops: once
 * that window closed it returns, even if a new window hit the subscription
 * meanwhile (read_retry then reports the new collision).
 */
#include "core/internal.h"
#include "device.h"
#include "invariant.h"

struct reader {
	struct t_dev *dev;
	pid_t tid;		/* atomic: set when started */
	unsigned long seq;	/* what read_begin returned */
	int returned;		/* atomic */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	__atomic_store_n(&r->tid, t_gettid(), __ATOMIC_RELEASE);
	r->seq = uhmm_interval_read_begin(&r->dev->sub);
	__atomic_store_n(&r->returned, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(void)
{
	struct uhmm_notifier_range w1 = { .start = 0x1000, .end = 0x2000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct uhmm_notifier_range w2 = w1;
	struct t_dev dev = { 0 };
	struct reader r = { .dev = &dev };
	struct uhmm_mm *mm;
	unsigned long s1;
	pthread_t th;
	pid_t tid;

	mm = t_open_variant();
	REQUIRE(t_dev_insert(&dev, mm, 0x1000, 0x1000) == 0);

	/* No window: read_begin returns at once, in this very thread. */
	CHECK_EQ(uhmm_interval_read_begin(&dev.sub) & 1, 1);

	REQUIRE(uhmm_mm_invalidate_start(mm, &w1) == 0);
	s1 = uhmm_mm_seq(mm);
	CHECK_EQ(dev.last_seq, s1);

	REQUIRE(pthread_create(&th, NULL, reader_main, &r) == 0);
	while (!(tid = __atomic_load_n(&r.tid, __ATOMIC_ACQUIRE)))
		usleep(1000);
	t_wait_blocked(tid);
	CHECK(!__atomic_load_n(&r.returned, __ATOMIC_ACQUIRE));

	/*
	 * Close w1 and at once open w2, which hits the subscription again.
	 * The reader must return s1 now; waiting for w2 too would be a loop.
	 */
	REQUIRE(uhmm_mm_invalidate_end(mm, &w1) == 0);
	REQUIRE(uhmm_mm_invalidate_start(mm, &w2) == 0);
	fprintf(stderr, "joining the reader; a hang here means read_begin "
			"waited for a second window\n");
	pthread_join(th, NULL);
	CHECK_EQ(r.seq, s1);
	CHECK(uhmm_interval_read_retry(&dev.sub, r.seq));
	CHECK_EQ(dev.last_seq, s1 + 2);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w2) == 0);

	/* After the window: no wait, and the begin is clean. */
	unsigned long seq = uhmm_interval_read_begin(&dev.sub);
	CHECK_EQ(seq, s1 + 2);
	CHECK(!uhmm_interval_read_retry(&dev.sub, seq));

	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
