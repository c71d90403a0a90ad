/* SPDX-License-Identifier: MIT */
/*
 * A slow callback (a device that sleeps while it tears down a mapping)
 * must not stop the rest of the process. A subscription's callback blocks
 * until another thread has done ROUNDS rounds of work that needs no
 * answer from that callback:
 *   - munmap of subscribed memory of the same mm (its event must still be
 *     read, or the munmap would never return);
 *   - insert and remove of a subscription on the same mm;
 *   - on an explicit mm: get + put of a cached region, an invalidation, a
 *     range fault.
 * If any of it waited for the sleeping callback, the callback would wait
 * forever: it gives up after CAP_S seconds and the test fails, saying so.
 *
 * What does wait for the slow callback, as uhmm.h says: on the monitored
 * mm, what looks at the range its event changes - read_begin() of another
 * subscription of the unmapped page (it waits until the events read
 * before it that change its range were dispatched, and the callback is
 * such a dispatch), so range faults too, and a uhmm_rcache_get() of that
 * page. The test checks: read_begin there gives -ETIMEDOUT with a
 * timeout and read_try_begin() -EAGAIN; on a subscription of another page
 * both answer at once; a get of another cached page is a hit at once; a
 * get of the unmapped page is seen blocked until the callback returns,
 * then finds the page gone (-EFAULT: the test's device registers holes,
 * the cache refuses them).
 */
#include <time.h>

#include "mirror.h"
#include "rcache.h"

#define ROUNDS 200
#define CAP_S 60

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int rounds;		/* [lock] the worker's */
static bool sleeping;		/* [lock] the callback is waiting */
static bool gave_up;		/* [lock] */

static bool slow_hook(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	struct timespec deadline;

	(void)dev;
	if (r->event != UHMM_EVENT_UNMAP)
		return true;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += CAP_S;
	pthread_mutex_lock(&lock);
	sleeping = true;
	pthread_cond_broadcast(&cond);
	while (rounds < ROUNDS && !gave_up)
		gave_up = pthread_cond_timedwait(&cond, &lock, &deadline) ==
			  ETIMEDOUT;
	sleeping = false;
	pthread_mutex_unlock(&lock);
	return true;
}

struct work {
	struct uhmm_mm *mm, *explicit_mm;
	struct uhmm_rcache *rc;	/* on explicit_mm */
	char *cached;		/* a region of rc */
	struct mirror *m;	/* on explicit_mm */
	char *pages;		/* ROUNDS pages, one subscription each */
	char *spare;		/* for inserts and removes */
};

static void *worker(void *arg)
{
	struct work *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		struct uhmm_region *region;
		struct t_dev extra = { 0 };

		CHECK_EQ(munmap(w->pages + i * t_page, t_page), 0);
		CHECK_EQ(t_dev_insert(&extra, w->mm, (unsigned long)w->spare,
				      t_page), 0);
		CHECK_EQ(uhmm_interval_notifier_remove(&extra.sub), 0);
		CHECK_EQ(uhmm_rcache_get(w->rc, w->cached, t_page,
					 UHMM_ACCESS_READ, &region), 0);
		CHECK_EQ(uhmm_rcache_put(w->rc, region), 0);
		CHECK_EQ(uhmm_mm_invalidate(w->explicit_mm, w->m->start,
					    w->m->start + t_page,
					    UHMM_EVENT_CLEAR), 0);
		CHECK_EQ(m_fault(w->m, 0, 1, UHMM_PFN_REQ_FAULT), 0);

		pthread_mutex_lock(&lock);
		rounds++;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

/* A get on a cache of the monitored mm, of a page whose unmap is being
 * dispatched: waits for the dispatch. */
struct blocked_get {
	struct uhmm_rcache *rc;
	char *p;
	pid_t tid;		/* atomic */
	int ret;
};

static void *monitored_get(void *arg)
{
	struct blocked_get *g = arg;
	struct uhmm_region *region;

	__atomic_store_n(&g->tid, t_gettid(), __ATOMIC_RELEASE);
	g->ret = uhmm_rcache_get(g->rc, g->p, t_page, UHMM_ACCESS_READ,
				 &region);
	if (!g->ret)
		CHECK_EQ(uhmm_rcache_put(g->rc, region), 0);
	return NULL;
}

int main(void)
{
	struct t_dev slow = { .hook = slow_hook }, watcher = { 0 },
		     page_devs[ROUNDS];
	struct t_fdev fdev, mdev;
	struct uhmm_rcache *monitored_rc;
	struct blocked_get g = { 0 };
	char *other;
	struct uhmm_region *region;
	struct mirror m;
	struct work w;
	pthread_t th, gt;
	char *victim, *mirrored;
	unsigned long seq;

	w.mm = t_open();
	REQUIRE(uhmm_mm_open(&w.explicit_mm, UHMM_MM_NO_MONITOR) == 0);
	t_fdev_init(&fdev);
	t_fdev_init(&mdev);
	REQUIRE(uhmm_rcache_create(&w.rc, w.explicit_mm, &t_fdev_ops, &fdev,
				   NULL) == 0);
	REQUIRE(uhmm_rcache_create(&monitored_rc, w.mm, &t_fdev_ops, &mdev,
				   NULL) == 0);
	victim = t_map(1);
	w.cached = t_map(1);
	mirrored = t_map(1);
	w.spare = t_map(1);
	w.pages = t_map(ROUNDS);
	g.rc = monitored_rc;
	g.p = victim;
	other = t_map(1);
	REQUIRE(t_dev_insert(&slow, w.mm, (unsigned long)victim, t_page) == 0);
	REQUIRE(t_dev_insert(&watcher, w.mm, (unsigned long)victim,
			     t_page) == 0);
	memset(page_devs, 0, sizeof(page_devs));
	for (int i = 0; i < ROUNDS; i++)
		REQUIRE(t_dev_insert(&page_devs[i], w.mm,
				     (unsigned long)w.pages + i * t_page,
				     t_page) == 0);
	REQUIRE(m_init(&m, w.explicit_mm, mirrored, 1) == 0);
	w.m = &m;
	/* Hits from now on. */
	REQUIRE(uhmm_rcache_get(w.rc, w.cached, t_page, UHMM_ACCESS_READ,
				&region) == 0);
	REQUIRE(uhmm_rcache_put(w.rc, region) == 0);
	REQUIRE(uhmm_rcache_get(g.rc, g.p, t_page, UHMM_ACCESS_READ,
				&region) == 0);
	REQUIRE(uhmm_rcache_put(g.rc, region) == 0);
	REQUIRE(uhmm_rcache_get(g.rc, other, t_page, UHMM_ACCESS_READ,
				&region) == 0);
	REQUIRE(uhmm_rcache_put(g.rc, region) == 0);

	/* The unmap returns as soon as its event is read; the callback
	 * then sleeps on the dispatcher. */
	REQUIRE(munmap(victim, t_page) == 0);
	pthread_mutex_lock(&lock);
	while (!sleeping)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	/* What waits for that dispatch, as documented. */
	CHECK_EQ(uhmm_interval_read_begin_timeout(&watcher.sub, 10, &seq),
		 -ETIMEDOUT);
	CHECK_EQ(uhmm_interval_read_try_begin(&watcher.sub, &seq), -EAGAIN);
	/* A subscription of another page: the event does not change it. */
	CHECK_EQ(uhmm_interval_read_begin_timeout(&page_devs[0].sub, 10, &seq),
		 0);
	CHECK_EQ(uhmm_interval_read_try_begin(&page_devs[0].sub, &seq), 0);
	/* A get of another page: the event does not change it. */
	CHECK_EQ(uhmm_rcache_get(g.rc, other, t_page, UHMM_ACCESS_READ,
				 &region), 0);
	CHECK_EQ(uhmm_rcache_put(g.rc, region), 0);
	CHECK_EQ(t_rc_stats(g.rc).hits, 1);	/* the first: both were misses */
	REQUIRE(pthread_create(&gt, NULL, monitored_get, &g) == 0);
	while (!__atomic_load_n(&g.tid, __ATOMIC_ACQUIRE))
		sched_yield();
	t_wait_blocked(g.tid);

	/* What does not. */
	REQUIRE(pthread_create(&th, NULL, worker, &w) == 0);
	pthread_join(th, NULL);
	pthread_join(gt, NULL);
	CHECK_EQ(g.ret, -EFAULT);

	/* The callback got its rounds, then returned; everything is seen. */
	CHECK_EQ(uhmm_interval_read_begin_timeout(&slow.sub, 0, &seq), 0);
	pthread_mutex_lock(&lock);
	if (gave_up)
		fprintf(stderr, "only %d of %d rounds in %d s while a "
			"callback slept: something waited for it\n", rounds,
			ROUNDS, CAP_S);
	CHECK(!gave_up);
	pthread_mutex_unlock(&lock);
	CHECK_EQ(t_dev_calls(&slow), 1);
	/* The pages' unmaps, read after the slow one, are dispatched after
	 * it; read_begin above waited only for events that change slow's
	 * page. */
	REQUIRE(uhmm_mm_sync(w.mm) == 0);
	for (int i = 0; i < ROUNDS; i++) {
		CHECK_EQ(t_dev_calls(&page_devs[i]), 1);
		CHECK_EQ(uhmm_interval_notifier_remove(&page_devs[i].sub), 0);
	}
	CHECK_EQ(t_rc_stats(w.rc).hits, ROUNDS);
	printf("%d rounds of unmaps, inserts, removes, hits and faults "
	       "while a callback slept; read_begin and a get of the unmapped "
	       "page waited for it, a get of another page did not\n",
	       ROUNDS);

	REQUIRE(uhmm_interval_notifier_remove(&slow.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&watcher.sub) == 0);
	m_fini(&m);
	REQUIRE(uhmm_rcache_destroy(w.rc) == 0);
	REQUIRE(uhmm_rcache_destroy(monitored_rc) == 0);
	munmap(w.cached, t_page);
	munmap(mirrored, t_page);
	munmap(w.spare, t_page);
	munmap(other, t_page);
	REQUIRE(uhmm_mm_close(w.explicit_mm) == 0);
	REQUIRE(uhmm_mm_close(w.mm) == 0);
	return t_result();
}
