/* SPDX-License-Identifier: MIT */
/*
 * fork() keeps the parent's registrations: a UHMM_EVENT_PROTECTION window
 * (what fork reports over the private writable mappings as it
 * write-protects them) invalidates no region, and does not make a
 * registration in progress retry, while an UNMAP or a CLEAR over the same
 * memory still does.
 *
 * Why that is right: the cache's devices pin what they register, and at
 * fork the kernel gives the CHILD a copy of every pinned anonymous page
 * (copy_present_ptes(): folio_needs_cow_for_dma()), so the parent's pages
 * stay where they are. Invalidating would only cost every registration of
 * the process a dereg and a reg at each fork.
 *
 * This program does not fork: a forking test must carry the CMake "fork"
 * label (ThreadSanitizer cannot follow a threaded fork), and the window is
 * the same whoever opens it. The windows are explicit
 * uhmm_mm_invalidate(PROTECTION) calls on an mm without a monitor, made by
 * one thread while NT others get and put regions over NB buffers through
 * a cache whose device is slow to register (so windows land inside
 * registrations). Then every buffer was registered exactly once: NB
 * misses, NB device registrations (no retry), no invalidation, no
 * deregistration, and every get of a buffer returned the same handle.
 * 3000 windows times UHMM_TEST_SCALE (at least 300), and more (up to 100
 * times as many) until the getters have done ten gets per window.
 */
#include <pthread.h>

#include "rcache.h"

#define NT 4
#define NB 8
#define WINDOWS 3000
#define RW (UHMM_ACCESS_READ | UHMM_ACCESS_WRITE)

static struct uhmm_mm *mm;
static struct uhmm_rcache *rc;
static struct t_cdev dev;
static char *bufs;
static int done;			/* atomic */
static long handle_of[NB];		/* atomic: -1 until the first get */
static unsigned long errors;		/* atomic: get or put failed */
static unsigned long changed;		/* atomic: another handle */
static unsigned long gets;		/* atomic */

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

	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		unsigned long b = rnd(&seed) % NB;
		struct uhmm_region *r;
		long want = -1;

		if (uhmm_rcache_get(rc, bufs + b * t_page, t_page, RW, &r)) {
			__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (!__atomic_compare_exchange_n(&handle_of[b], &want,
						 (long)r->handle, false,
						 __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED) &&
		    want != (long)r->handle)
			__atomic_fetch_add(&changed, 1, __ATOMIC_RELAXED);
		if (uhmm_rcache_put(rc, r))
			__atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&gets, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* get and put buffer b single-threaded; its handle. */
static uint64_t use(unsigned long b)
{
	struct uhmm_region *r;
	uint64_t h;

	REQUIRE(uhmm_rcache_get(rc, bufs + b * t_page, t_page, RW, &r) == 0);
	h = r->handle;
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	return h;
}

static void protection_keeps(void)
{
	long windows = (long)(WINDOWS * t_scale()), i;
	unsigned long min_gets = 10 * (unsigned long)windows;
	unsigned long start = (unsigned long)bufs;
	struct uhmm_rcache_stats st;
	pthread_t t[NT];

	if (windows < 300)
		windows = 300;
	for (int b = 0; b < NB; b++)
		handle_of[b] = -1;
	for (long i = 0; i < NT; i++)
		REQUIRE(pthread_create(&t[i], NULL, getter, (void *)i) == 0);
	/*
	 * Alternately the whole set and one buffer, back to back, until the
	 * getters have been at it too (they start late: a window is quick).
	 * At most 100 times more: where windows do invalidate, a miss that
	 * registers slowly collides with every window, for ever.
	 */
	for (i = 0; i < 100 * windows &&
	     (i < windows ||
	      __atomic_load_n(&gets, __ATOMIC_RELAXED) < min_gets); i++) {
		unsigned long b = (unsigned long)i % (NB + 1);
		unsigned long s = b < NB ? start + b * t_page : start;
		unsigned long e = b < NB ? s + t_page : start + NB * t_page;

		REQUIRE(uhmm_mm_invalidate(mm, s, e, UHMM_EVENT_PROTECTION) ==
			0);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NT; i++)
		REQUIRE(pthread_join(t[i], NULL) == 0);

	st = t_rc_stats(rc);
	printf("%ld protection windows, %d threads: %lu gets, %lu misses, "
	       "%lu registrations, %lu invalidations, %lu handle changes\n",
	       i, NT, __atomic_load_n(&gets, __ATOMIC_RELAXED), st.misses,
	       __atomic_load_n(&dev.next, __ATOMIC_RELAXED), st.invalidations,
	       __atomic_load_n(&changed, __ATOMIC_RELAXED));
	CHECK_EQ(st.misses, NB);
	CHECK_EQ(__atomic_load_n(&dev.next, __ATOMIC_RELAXED), NB);
	CHECK_EQ(st.invalidations, 0);
	CHECK_EQ(st.deregistrations, 0);
	CHECK_EQ(__atomic_load_n(&changed, __ATOMIC_RELAXED), 0);
	CHECK_EQ(__atomic_load_n(&errors, __ATOMIC_RELAXED), 0);
	for (int b = 0; b < NB; b++)
		CHECK(handle_of[b] >= 0 && t_cdev_live(&dev, handle_of[b]));
}

/* The same memory, changed for real: its region goes. */
static void others_invalidate(void)
{
	unsigned long start = (unsigned long)bufs;
	enum uhmm_event ev[] = { UHMM_EVENT_UNMAP, UHMM_EVENT_CLEAR };
	struct uhmm_rcache_stats st0 = t_rc_stats(rc);

	for (unsigned long i = 0; i < 2; i++) {
		uint64_t h = use(i);

		CHECK_EQ(h, handle_of[i]);
		/* A protection window first: still the same region. */
		REQUIRE(uhmm_mm_invalidate(mm, start + i * t_page,
					   start + (i + 1) * t_page,
					   UHMM_EVENT_PROTECTION) == 0);
		CHECK_EQ(use(i), h);
		REQUIRE(uhmm_mm_invalidate(mm, start + i * t_page,
					   start + (i + 1) * t_page,
					   ev[i]) == 0);
		CHECK(use(i) != h);
		CHECK(t_rc_wait_deregs(rc, st0.deregistrations + i + 1));
		CHECK(!t_cdev_live(&dev, h));
	}
	CHECK_EQ(t_rc_stats(rc).invalidations - st0.invalidations, 2);
	CHECK_EQ(t_rc_stats(rc).misses - st0.misses, 2);
}

int main(void)
{
	t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	bufs = t_map(NB);
	t_cdev_init(&dev, 1ul << 16, 0);
	dev.reg_us = 200;
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_cdev_ops, &dev, NULL) == 0);

	protection_keeps();
	others_invalidate();

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(__atomic_load_n(&dev.live, __ATOMIC_SEQ_CST), 0);
	CHECK_EQ(__atomic_load_n(&dev.bad_deregs, __ATOMIC_RELAXED), 0);
	t_cdev_free(&dev);
	REQUIRE(munmap(bufs, NB * t_page) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
