/* SPDX-License-Identifier: MIT */
/*
 * A region handed out by get stays held until its put, even when its
 * memory is being recycled for a new region while another thread's
 * per-thread entry still names the old incarnation. That thread's hit
 * attempt raises and drops 'active'; if the new region's creation sets
 * 'active' in between, a reference must not be lost: the put of a region
 * just returned by get must return 0 (a lost reference also lets the cache
 * retire and deregister a region its holder is still using).
 *
 * No kernel events: an mm without monitor and explicit invalidations kill
 * each thread's region after every use, and the thread waits until the
 * worker has retired it, so its next get tries a stale entry for a region
 * that another thread may be creating anew right then. NT threads on few
 * CPUs: the hit attempt gets preempted in its window.
 */
#include <sched.h>

#include "rcache.h"

#define ITERS 50000
#define NT 8

static struct uhmm_mm *mm;
static struct uhmm_rcache *rc;
static long lost;
static unsigned long handles;	/* atomic */
static char *dead;		/* atomic, by handle: deregistered */

static int reg(void *dev, void *addr, size_t len, unsigned int access,
	       uint64_t *handle)
{
	(void)dev;
	(void)addr;
	(void)len;
	(void)access;
	*handle = __atomic_fetch_add(&handles, 1, __ATOMIC_RELAXED);
	return 0;
}

static void dereg(void *dev, uint64_t handle)
{
	(void)dev;
	__atomic_store_n(&dead[handle], 1, __ATOMIC_RELEASE);
}

static const struct uhmm_rcache_ops ops = { .reg = reg, .dereg = dereg };

static void *run(void *arg)
{
	unsigned long addr = (unsigned long)arg;
	long iters = (long)(ITERS * t_scale());

	if (iters < 1000)
		iters = 1000;
	for (long i = 0; i < iters && !__atomic_load_n(&lost, __ATOMIC_RELAXED);
	     i++) {
		struct uhmm_region *r;
		uint64_t h;

		REQUIRE(uhmm_rcache_get(rc, (void *)addr, 8, UHMM_ACCESS_READ,
					&r) == 0);
		h = r->handle;
		if (uhmm_rcache_put(rc, r) != 0 &&
		    __atomic_fetch_add(&lost, 1, __ATOMIC_RELAXED) == 0)
			fprintf(stderr, "put of a region just got: -EINVAL "
				"(its reference was lost) after %ld "
				"iterations\n", i);
		REQUIRE(uhmm_mm_invalidate(mm, addr, addr + t_page,
					   UHMM_EVENT_UNMAP) == 0);
		/* Until the worker retired it: the next get's per-thread
		 * entry names a recycled region. */
		while (!__atomic_load_n(&dead[h], __ATOMIC_ACQUIRE) &&
		       !__atomic_load_n(&lost, __ATOMIC_RELAXED))
			sched_yield();
	}
	return NULL;
}

int main(void)
{
	long iters = (long)(ITERS * t_scale());
	pthread_t t[NT];

	if (iters < 1000)
		iters = 1000;
	t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	/* One handle per get at most: every get is a miss. */
	dead = calloc((size_t)(iters + 1) * NT + 16, 1);
	REQUIRE(dead);
	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(uhmm_rcache_create(&rc, mm, &ops, NULL, NULL) == 0);
	/* Each thread its own (never touched) range. */
	for (int i = 0; i < NT; i++) {
		void *addr = (void *)((unsigned long)(i + 1) << 30);

		REQUIRE(pthread_create(&t[i], NULL, run, addr) == 0);
	}
	for (int i = 0; i < NT; i++)
		REQUIRE(pthread_join(t[i], NULL) == 0);
	printf("%d threads x %ld get/put/invalidate (scale %g): %ld "
	       "references lost\n", NT, iters, t_scale(), lost);
	CHECK_EQ(lost, 0);
	REQUIRE(uhmm_rcache_destroy(rc) == 0 || lost);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
