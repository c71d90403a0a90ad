/* SPDX-License-Identifier: MIT */
/*
 * Invariant 8, happens-before: once munmap() or madvise(MADV_DONTNEED) of
 * subscribed memory has returned, a read_begin that starts afterwards -
 * here at once, in the same thread, and in a second thread told by the
 * first - sees the invalidation. The kernel releases the unmapping thread
 * when uhmm's reader has *read* the event, before it is dispatched, so
 * without the in-flight mark these checks fail within a few iterations.
 * 10^5 iterations of each (scaled by UHMM_TEST_SCALE).
 */
#include <sys/mman.h>

#include "device.h"

#define ITERATIONS 100000

static struct uhmm_mm *mm;
static long page;
static int iterations;

static void check_event(struct t_dev *dev, unsigned long seq,
			enum uhmm_event event, unsigned long start, int i)
{
	/* read_begin waits for any event in flight: after it, the callback
	 * for the syscall that returned before must have run. */
	uhmm_interval_read_begin(&dev->sub);
	pthread_mutex_lock(&dev->lock);
	bool retry = uhmm_interval_read_retry(&dev->sub, seq);
	int calls = dev->calls;
	struct uhmm_notifier_range r = dev->last_range;
	pthread_mutex_unlock(&dev->lock);

	if (!retry || calls != 1 || r.event != event || r.start != start) {
		fprintf(stderr, "iteration %d: retry %d calls %d event %d "
				"start %#lx (want %#lx)\n",
			i, retry, calls, r.event, r.start, start);
		exit(T_FAIL);
	}
}

static void unmap_same_thread(void)
{
	for (int i = 0; i < iterations; i++) {
		struct t_dev dev = { 0 };
		char *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned long seq;

		REQUIRE(p != MAP_FAILED);
		p[0] = 1;
		REQUIRE(t_dev_insert(&dev, mm, (unsigned long)p, page) == 0);
		seq = uhmm_interval_read_begin(&dev.sub);
		REQUIRE(munmap(p, page) == 0);
		check_event(&dev, seq, UHMM_EVENT_UNMAP, (unsigned long)p, i);
		REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	}
	printf("munmap, same thread: %d iterations\n", iterations);
}

static void dontneed_same_thread(void)
{
	struct t_dev dev = { 0 };
	char *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	REQUIRE(t_dev_insert(&dev, mm, (unsigned long)p, page) == 0);
	for (int i = 0; i < iterations; i++) {
		unsigned long seq;

		p[0] = 1;
		seq = uhmm_interval_read_begin(&dev.sub);
		pthread_mutex_lock(&dev.lock);
		dev.calls = 0;
		pthread_mutex_unlock(&dev.lock);
		REQUIRE(madvise(p, page, MADV_DONTNEED) == 0);
		check_event(&dev, seq, UHMM_EVENT_CLEAR, (unsigned long)p, i);
		CHECK_EQ(p[0], 0);
	}
	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	REQUIRE(munmap(p, page) == 0);
	printf("MADV_DONTNEED, same thread: %d iterations\n", iterations);
}

/*
 * Across threads: the unmapper publishes "munmap returned" with a release
 * store; the observer's read_begin after the acquire load must see it.
 */
static struct t_dev cross;
static unsigned long cross_seq;
static int cross_round;		/* atomic: round whose munmap returned */
static int cross_checked;	/* atomic: round the observer checked */
static char *cross_page;

static void *observer(void *arg)
{
	(void)arg;
	for (int i = 1; i <= iterations; i++) {
		while (__atomic_load_n(&cross_round, __ATOMIC_ACQUIRE) != i)
			;
		check_event(&cross, cross_seq, UHMM_EVENT_CLEAR,
			    (unsigned long)cross_page, i);
		__atomic_store_n(&cross_checked, i, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void dontneed_other_thread(void)
{
	pthread_t th;

	cross_page = mmap(NULL, page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(cross_page != MAP_FAILED);
	REQUIRE(t_dev_insert(&cross, mm, (unsigned long)cross_page, page) == 0);
	REQUIRE(pthread_create(&th, NULL, observer, NULL) == 0);
	for (int i = 1; i <= iterations; i++) {
		cross_page[0] = 1;
		cross_seq = uhmm_interval_read_begin(&cross.sub);
		pthread_mutex_lock(&cross.lock);
		cross.calls = 0;
		pthread_mutex_unlock(&cross.lock);
		REQUIRE(madvise(cross_page, page, MADV_DONTNEED) == 0);
		__atomic_store_n(&cross_round, i, __ATOMIC_RELEASE);
		while (__atomic_load_n(&cross_checked, __ATOMIC_ACQUIRE) != i)
			;
	}
	pthread_join(th, NULL);
	REQUIRE(uhmm_interval_notifier_remove(&cross.sub) == 0);
	REQUIRE(munmap(cross_page, page) == 0);
	printf("MADV_DONTNEED, observed by another thread: %d iterations\n",
	       iterations);
}

int main(void)
{
	int ret;

	page = sysconf(_SC_PAGESIZE);
	iterations = (int)(ITERATIONS * t_scale());
	ret = uhmm_mm_open(&mm, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		SKIP("no userfaultfd event source here (%s)", strerror(-ret));
	REQUIRE(ret == 0);

	unmap_same_thread();
	dontneed_same_thread();
	dontneed_other_thread();

	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
