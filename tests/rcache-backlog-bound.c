/* SPDX-License-Identifier: MIT */
/*
 * The backlog of invalidated regions is bounded: a region counts against
 * max_regions from its registration to its deregistration, valid or not,
 * and a miss that finds the cache full of invalidated regions no one holds
 * deregisters them itself rather than register past the limit. Only held
 * regions can take the cache past it.
 *
 * How a real program gets there (a black-box test found it): a device
 * whose dereg is slow (200 us here), so the cache's worker falls behind;
 * NT threads each getting and putting one region at a time over NB
 * buffers; and another thread changing the memory, in turn:
 * mmap(MAP_FIXED) over one buffer (UNMAP), MADV_DONTNEED of all of them
 * (CLEAR), uhmm_mm_invalidate() of all of them. Every get after a change
 * registers anew while the invalidated region waits for the worker: the
 * device had 10^3 registrations at once for max_regions 16 (and the
 * io_uring device ran out of its slots: -ENOSPC). The changer waits for
 * one new registration after each change: changes back to back keep
 * windows open, which starves the misses (read_begin waits), and without
 * misses there is no backlog to bound.
 *
 * The device counts live registrations (reg +1, dereg -1) and keeps the
 * most it had at once. Each thread also checks that the region it holds
 * is still registered (making room must never deregister a held region)
 * and is its buffer's page (a region's memory is reused for others).
 *
 *   phase 1: max_regions 16 > NT. At most NT regions are held at once (one
 *            per thread) and the buffers need at most 16 valid regions:
 *            the device must never have more than 16.
 *   phase 2: max_regions 2 < NT. Held regions may take the cache past the
 *            limit, but only they: at most max_regions + NT. (Not
 *            max(max_regions, NT): hits take no lock, so a miss looking
 *            for a region to free sees the holds one after the other, and
 *            a thread that puts one and gets another meanwhile is seen
 *            holding both.)
 *
 * Without a userfaultfd every change is uhmm_mm_invalidate() (said so).
 * 2 x 2000 changes times UHMM_TEST_SCALE (at least 500).
 */
#include <pthread.h>

#include "rcache.h"

#define NT 8			/* getting threads */
/* Buffers, one page each. With both kinds of access, at most 2 x NB = 16
 * valid regions: phase 1 fits them all, so only invalidated regions can
 * crowd it. */
#define NB 8
#define CHANGES 2000		/* per phase, at scale 1 */
#define DEREG_US 200

static struct uhmm_mm *mm;
static bool monitored;
static char *bufs;
static struct t_cdev dev;
static struct uhmm_rcache *rc;
static int done;			/* atomic: the changes are over */

/* Counted by the threads, checked by main. */
static unsigned long gets;		/* atomic */
static unsigned long get_errors;	/* atomic */
static unsigned long put_errors;	/* atomic */
static unsigned long held_not_live;	/* atomic */
static unsigned long wrong_region;	/* atomic: not the buffer's page */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *getter(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
	unsigned long n = 0;

	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		uint64_t x = rnd(&seed);
		char *buf = bufs + (x % NB) * t_page;
		/* Both kinds: a read region cannot serve a write. */
		unsigned int access = x & (1u << 20) ?
			UHMM_ACCESS_READ :
			UHMM_ACCESS_READ | UHMM_ACCESS_WRITE;
		struct uhmm_region *r;
		int ret = uhmm_rcache_get(rc, buf, t_page, access, &r);

		if (ret) {
			if (__atomic_fetch_add(&get_errors, 1,
					       __ATOMIC_RELAXED) == 0)
				fprintf(stderr, "get: %s\n", strerror(-ret));
			continue;
		}
		n++;
		if ((char *)r->addr != buf || r->len != t_page)
			__atomic_fetch_add(&wrong_region, 1, __ATOMIC_RELAXED);
		if (!t_cdev_live(&dev, r->handle))
			__atomic_fetch_add(&held_not_live, 1,
					   __ATOMIC_RELAXED);
		if (uhmm_rcache_put(rc, r))
			__atomic_fetch_add(&put_errors, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&gets, n, __ATOMIC_RELAXED);
	return NULL;
}

/*
 * The i-th change, in turn: mmap(MAP_FIXED) over buffer b, MADV_DONTNEED
 * of all the buffers (an allocator giving back a whole arena's pages), or
 * uhmm_mm_invalidate() of all of them. Each invalidates every region of
 * the memory it changes.
 */
static void change(unsigned long b, unsigned long i)
{
	char *p = bufs + b * t_page;

	switch (monitored ? i % 3 : 2) {
	case 0:
		REQUIRE(mmap(p, t_page, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			     0) == p);
		break;
	case 1:
		REQUIRE(madvise(bufs, NB * t_page, MADV_DONTNEED) == 0);
		break;
	default:
		REQUIRE(uhmm_mm_invalidate(mm, (unsigned long)bufs,
					   (unsigned long)bufs + NB * t_page,
					   UHMM_EVENT_UNMAP) == 0);
		break;
	}
}

/* One phase; returns the most registrations the device had at once. */
static long phase(size_t max_regions, long bound)
{
	struct uhmm_rcache_config cfg = { .max_regions = max_regions };
	long changes = (long)(CHANGES * t_scale());
	struct uhmm_rcache_stats st;
	pthread_t t[NT];
	uint64_t seed = 42;
	long max_live;

	if (changes < 500)
		changes = 500;
	/* A handle per miss: far more than a few seconds of misses that
	 * each wait for a slow dereg can use. */
	t_cdev_init(&dev, 1ul << 22, DEREG_US);
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_cdev_ops, &dev, &cfg) == 0);
	__atomic_store_n(&done, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&gets, 0, __ATOMIC_RELAXED);
	for (long i = 0; i < NT; i++)
		REQUIRE(pthread_create(&t[i], NULL, getter, (void *)i) == 0);
	for (long i = 0; i < changes; i++) {
		unsigned long regs = __atomic_load_n(&dev.next,
						     __ATOMIC_RELAXED);

		change(rnd(&seed) % NB, (unsigned long)i);
		/*
		 * Let a getter register anew before the next change. Changes
		 * back to back keep windows open and starve the misses (each
		 * waits in read_begin), and without misses there is no
		 * backlog. A bounded wait for progress, not about time.
		 */
		for (int w = 0; w < 10000 &&
		     __atomic_load_n(&dev.next, __ATOMIC_RELAXED) == regs; w++)
			usleep(10);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NT; i++)
		REQUIRE(pthread_join(t[i], NULL) == 0);

	st = t_rc_stats(rc);
	max_live = __atomic_load_n(&dev.max_live, __ATOMIC_SEQ_CST);
	printf("max_regions %zu, %d threads: %lu gets, %lu misses, "
	       "%lu invalidations, %lu evictions; most registrations at "
	       "once %ld (bound %ld)\n", max_regions, NT,
	       __atomic_load_n(&gets, __ATOMIC_RELAXED), st.misses,
	       st.invalidations, st.evictions, max_live, bound);
	CHECK(max_live <= bound);
	/* The threads did go through the cache while it changed. */
	CHECK(st.misses > NB);
	CHECK(st.invalidations > 0);

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(__atomic_load_n(&dev.live, __ATOMIC_SEQ_CST), 0);
	CHECK_EQ(__atomic_load_n(&dev.bad_deregs, __ATOMIC_RELAXED), 0);
	t_cdev_free(&dev);
	return max_live;
}

int main(void)
{
	int ret = uhmm_mm_open(&mm, 0);

	t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	monitored = ret == 0;
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		printf("note: no userfaultfd here (%s): explicit "
		       "invalidations only\n", strerror(-ret));
		ret = uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR);
	}
	REQUIRE(ret == 0);
	bufs = mmap(NULL, NB * t_page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(bufs != MAP_FAILED);
	printf("scale %g, dereg sleeps %d us\n", t_scale(), DEREG_US);

	phase(16, 16);
	phase(2, 2 + NT);

	CHECK_EQ(__atomic_load_n(&get_errors, __ATOMIC_RELAXED), 0);
	CHECK_EQ(__atomic_load_n(&put_errors, __ATOMIC_RELAXED), 0);
	CHECK_EQ(__atomic_load_n(&held_not_live, __ATOMIC_RELAXED), 0);
	CHECK_EQ(__atomic_load_n(&wrong_region, __ATOMIC_RELAXED), 0);
	REQUIRE(munmap(bufs, NB * t_page) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
