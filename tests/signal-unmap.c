/* SPDX-License-Identifier: MIT */
/*
 * munmap() from a signal handler, at random points of every public call.
 * A thread loops over the public API - open and close, get, sync,
 * insert, arm and remove, read_begin (with and without a timeout),
 * read_retry and check_retry, explicit invalidations, range faults, and
 * a registration cache's create, get (hits and misses, with eviction),
 * put, stats and destroy, io_uring transfers through a cache - while the main thread sends it SIGUSR1 at
 * random moments; the handler unmaps a subscribed page. munmap() is
 * async-signal-safe, and it sleeps until uhmm's reader has read its
 * event, so the reader must never wait for anything the interrupted call
 * may hold (a lock, malloc's lock, a condition). When the reader took the
 * source's queue lock before read(), this test deadlocked within a few
 * hundred signals; a deadlock hangs it (ctest's guard ends it).
 *
 * Each unmap must also be seen: once the handler returned, read_begin of
 * the victim's subscription returns after its callback ran.
 */
#include <signal.h>

#define T_RC_URING
#include "mirror.h"
#include "rcache.h"

#define SIGNALS 5000
#define CALLS 15
#define MISS_PAGES 8

static struct uhmm_mm *mm, *explicit_mm;
static char *victim;		/* atomic: the page the handler unmaps */
static int handled;		/* atomic: handlers that returned */
static int stop;		/* atomic */
static unsigned long calls_made[CALLS];	/* the looper's, read after join */
static const char *const call_names[CALLS] = {
	"uhmm_mm_sync", "uhmm_interval_read_begin",
	"read_begin_timeout, read_retry, check_retry",
	"insert, arm, remove", "uhmm_range_fault_lock",
	"explicit invalidate, range fault", "uhmm_rcache_get, put (a)",
	"uhmm_rcache_get, put (b)", "uhmm_rcache_stats",
	"uhmm_mm_get, close", "uhmm_mm_open, close",
	"uhmm_rcache_create, get, put, destroy",
	"explicit invalidate of everything",
	"uhmm_uring_read_fixed_sync, write_fixed_sync",
	"uhmm_mm_invalidate_start, end",
};

static void on_sigusr1(int sig)
{
	(void)sig;
	munmap(__atomic_load_n(&victim, __ATOMIC_ACQUIRE), t_page);
	__atomic_add_fetch(&handled, 1, __ATOMIC_RELEASE);
}

/* The looper's own memory and objects. */
struct looper {
	struct t_dev dev;	/* over mine */
	struct mirror m;	/* over mine, on mm */
	struct mirror em;	/* over mine, on explicit_mm */
	struct t_cdev cdev;
	struct uhmm_rcache *rc;	/* on mm, small: misses evict */
	char *mine;		/* MISS_PAGES pages */
	struct io_uring ring;
	struct uhmm_uring_dev *udev;
	struct uhmm_rcache *urc;	/* on udev */
	int fd;			/* a file of MISS_PAGES pages */
};

static void call(struct looper *l, unsigned int which, unsigned int r)
{
	struct uhmm_rcache_config cfg = { .max_regions = 4 };
	struct uhmm_rcache_stats st;
	struct uhmm_region *region;
	struct uhmm_rcache *rc;
	struct uhmm_mm *tmp;
	struct t_dev extra = { 0 };
	unsigned long seq;

	switch (which) {
	case 0:
		CHECK_EQ(uhmm_mm_sync(mm), 0);
		break;
	case 1:
		uhmm_interval_read_begin(&l->dev.sub);
		break;
	case 2:
		/* A bound that cannot pass on a slow machine: this checks
		 * the timed wait's path, not its timing. */
		CHECK_EQ(uhmm_interval_read_begin_timeout(&l->dev.sub, 600000,
							  &seq), 0);
		uhmm_interval_read_retry(&l->dev.sub, seq);
		uhmm_interval_check_retry(&l->dev.sub, seq);
		break;
	case 3:
		CHECK_EQ(t_dev_insert(&extra, mm, (unsigned long)l->mine,
				      t_page), 0);
		CHECK_EQ(uhmm_interval_notifier_arm(&extra.sub), 0);
		CHECK_EQ(uhmm_interval_notifier_remove(&extra.sub), 0);
		break;
	case 4:
		CHECK_EQ(m_fault(&l->m, r % MISS_PAGES, 1,
				 UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
		break;
	case 5:
		CHECK_EQ(uhmm_mm_invalidate(explicit_mm, l->em.start,
					    l->em.start + t_page,
					    UHMM_EVENT_CLEAR), 0);
		CHECK_EQ(m_fault(&l->em, 0, 1, UHMM_PFN_REQ_FAULT), 0);
		break;
	case 6:
	case 7:
		/* Hits and misses: eight ranges, four regions. */
		CHECK_EQ(uhmm_rcache_get(l->rc, l->mine + r % MISS_PAGES *
					 t_page, t_page, UHMM_ACCESS_READ,
					 &region), 0);
		CHECK_EQ(uhmm_rcache_put(l->rc, region), 0);
		break;
	case 8:
		CHECK_EQ(uhmm_rcache_stats(l->rc, &st), 0);
		break;
	case 9:
		CHECK_EQ(uhmm_mm_get(mm), 0);
		CHECK_EQ(uhmm_mm_close(mm), 0);
		break;
	case 10:
		CHECK_EQ(uhmm_mm_open(&tmp, r & 1 ? UHMM_MM_NO_MONITOR : 0), 0);
		CHECK_EQ(uhmm_mm_close(tmp), 0);
		break;
	case 11:
		CHECK_EQ(uhmm_rcache_create(&rc, mm, &t_cdev_ops, &l->cdev,
					    &cfg), 0);
		CHECK_EQ(uhmm_rcache_get(rc, l->mine, t_page, UHMM_ACCESS_READ,
					 &region), 0);
		CHECK_EQ(uhmm_rcache_put(rc, region), 0);
		CHECK_EQ(uhmm_rcache_destroy(rc), 0);
		break;
	case 12:
		CHECK_EQ(uhmm_mm_invalidate(explicit_mm, 0, ~0UL,
					    UHMM_EVENT_CLEAR), 0);
		break;
	case 13:
		CHECK_EQ(uhmm_uring_read_fixed_sync(l->urc, &l->ring, l->fd,
			l->mine + r % MISS_PAGES * t_page, t_page, 0), t_page);
		CHECK_EQ(uhmm_uring_write_fixed_sync(l->urc, &l->ring, l->fd,
			l->mine + r % MISS_PAGES * t_page, t_page, t_page),
			 t_page);
		break;
	case 14: {
		struct uhmm_notifier_range range = {
			.start = l->em.start,
			.end = l->em.start + t_page,
			.event = UHMM_EVENT_CLEAR,
			.flags = UHMM_RANGE_BLOCKABLE,
		};

		CHECK_EQ(uhmm_mm_invalidate_start(explicit_mm, &range), 0);
		CHECK_EQ(uhmm_mm_invalidate_end(explicit_mm, &range), 0);
		break;
	}
	}
}

static void *looper_main(void *arg)
{
	struct looper *l = arg;
	unsigned int seed = 1;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		unsigned int r;

		seed = seed * 1103515245u + 12345u;
		r = seed >> 8;
		call(l, r % CALLS, r / CALLS);
		calls_made[r % CALLS]++;
	}
	return NULL;
}

int main(void)
{
	int n = (int)(SIGNALS * t_scale());
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	struct uhmm_rcache_config cfg = { .max_regions = 4 };
	struct looper l = { 0 };
	unsigned int seed = 7;
	pthread_t th;

	mm = t_open();
	REQUIRE(uhmm_mm_open(&explicit_mm, UHMM_MM_NO_MONITOR) == 0);
	l.mine = t_map(MISS_PAGES);
	REQUIRE(t_dev_insert(&l.dev, mm, (unsigned long)l.mine, t_page) == 0);
	REQUIRE(m_init(&l.m, mm, l.mine, MISS_PAGES) == 0);
	REQUIRE(m_init(&l.em, explicit_mm, l.mine, 1) == 0);
	t_cdev_init(&l.cdev, 1UL << 20, 0);
	REQUIRE(uhmm_rcache_create(&l.rc, mm, &t_cdev_ops, &l.cdev, &cfg) ==
		0);
	/* As many slots as regions: the cache evicts before it runs out. */
	t_ring(&l.ring, 4);
	l.udev = t_uring_dev(&l.ring, 4);
	REQUIRE(uhmm_rcache_create(&l.urc, mm, uhmm_uring_rcache_ops(),
				   l.udev, &cfg) == 0);
	l.fd = t_data_file(MISS_PAGES * t_page, 1);
	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
	REQUIRE(pthread_create(&th, NULL, looper_main, &l) == 0);

	for (int i = 1; i <= n; i++) {
		struct t_dev dev = { 0 };
		char *p = t_map(1);

		REQUIRE(t_dev_insert(&dev, mm, (unsigned long)p, t_page) == 0);
		__atomic_store_n(&victim, p, __ATOMIC_RELEASE);
		/* A random point: up to ~20 µs of the looper's work. */
		seed = seed * 1103515245u + 12345u;
		for (unsigned int spin = (seed >> 8) % 20000; spin; spin--)
			__asm__ volatile("" ::: "memory");
		REQUIRE(pthread_kill(th, SIGUSR1) == 0);
		/* A deadlock hangs here (ctest's timeout ends it). */
		while (__atomic_load_n(&handled, __ATOMIC_ACQUIRE) != i)
			sched_yield();
		/*
		 * The unmap returned: its invalidation is visible. Maybe not
		 * alone: the address may already be reused by the looper's
		 * allocator (ASan's maps and unmaps), and the new mapping,
		 * armed for dev after the event, unmapped again.
		 */
		uhmm_interval_read_begin(&dev.sub);
		pthread_mutex_lock(&dev.lock);
		CHECK(dev.calls >= 1);
		CHECK_EQ(dev.last_range.event, UHMM_EVENT_UNMAP);
		pthread_mutex_unlock(&dev.lock);
		REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);

	printf("%d munmaps from a signal handler, no deadlock; the "
	       "interrupted thread made these calls:\n", n);
	for (int i = 0; i < CALLS; i++) {
		printf("  %-45s %lu\n", call_names[i], calls_made[i]);
		CHECK(calls_made[i] > 0);
	}

	REQUIRE(uhmm_rcache_destroy(l.urc) == 0);
	REQUIRE(uhmm_uring_dev_close(l.udev) == 0);
	io_uring_queue_exit(&l.ring);
	close(l.fd);
	REQUIRE(uhmm_rcache_destroy(l.rc) == 0);
	CHECK_EQ(l.cdev.bad_deregs, 0);
	t_cdev_free(&l.cdev);
	m_fini(&l.em);
	m_fini(&l.m);
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	munmap(l.mine, MISS_PAGES * t_page);
	REQUIRE(uhmm_mm_close(explicit_mm) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
