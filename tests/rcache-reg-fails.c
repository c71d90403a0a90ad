/* SPDX-License-Identifier: MIT */
/*
 * A device whose reg fails at random (about one call in three, with
 * -EIO or -ENOMEM) under a cache that threads use at once, while another
 * thread keeps unmapping and remapping the buffers (invalidations) and
 * the cache is small enough to evict. A get must return exactly the
 * device's error when its reg failed, and then hold nothing: no region
 * counted, nothing deregistered that was never registered, the next get
 * of the same range registering anew. A successful get's handle is live
 * on the device until its put. At the end every registration the device
 * made was deregistered exactly once.
 */
#include "rcache.h"

#define NT 2
#define BUFS 16
#define BUF_PAGES 2
#define GETS 20000

static struct t_cdev cdev;
static unsigned long reg_calls, reg_failed;	/* atomic */
static struct uhmm_rcache *rc;
static char *bufs[BUFS];	/* atomic: remapped in place */
static unsigned long failed_gets[NT], wrong_errors;	/* atomic */
static int stop;		/* atomic */

/* xorshift: each thread's own sequence, the same on every run. */
static unsigned int next_rand(unsigned int *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* The failure is chosen by the call's number: the same calls fail on
 * every run (which call is which depends on the scheduling). */
static int flaky_reg(void *dev, void *addr, size_t len, unsigned int access,
		     uint64_t *handle)
{
	unsigned int n = (unsigned int)__atomic_fetch_add(&reg_calls, 1,
							  __ATOMIC_RELAXED);

	n = n * 2654435761u;
	if (n % 3 == 0) {
		__atomic_fetch_add(&reg_failed, 1, __ATOMIC_RELAXED);
		return n & 8 ? -EIO : -ENOMEM;
	}
	return t_cdev_reg(dev, addr, len, access, handle);
}

static const struct uhmm_rcache_ops flaky_ops = {
	.reg = flaky_reg,
	.dereg = t_cdev_dereg,
};

static void *getter(void *arg)
{
	long id = (long)arg;
	unsigned int seed = 0x9e3779b9u * (unsigned int)(id + 1);

	for (int i = 0; i < GETS * t_scale(); i++) {
		unsigned int r = next_rand(&seed);
		char *b = __atomic_load_n(&bufs[r % BUFS], __ATOMIC_ACQUIRE);
		struct uhmm_region *region;
		int ret = uhmm_rcache_get(rc, b + (r >> 8) % 2 * t_page,
					  t_page, UHMM_ACCESS_READ, &region);

		if (ret) {
			if (ret != -EIO && ret != -ENOMEM) {
				fprintf(stderr, "get: %d, not the device's\n",
					ret);
				__atomic_fetch_add(&wrong_errors, 1,
						   __ATOMIC_RELAXED);
			}
			failed_gets[id]++;
			continue;
		}
		CHECK(t_cdev_live(&cdev, region->handle));
		CHECK_EQ(uhmm_rcache_put(rc, region), 0);
	}
	return NULL;
}

/* Remap buffers in place: invalidations that the getters race. */
static void *remapper(void *arg)
{
	unsigned int seed = 12345;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		char *b = __atomic_load_n(&bufs[next_rand(&seed) % BUFS],
					  __ATOMIC_ACQUIRE);

		REQUIRE(mmap(b, BUF_PAGES * t_page, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			     0) == b);
		usleep(100);
	}
	return NULL;
}

int main(void)
{
	struct uhmm_rcache_config cfg = { .max_regions = BUFS };
	pthread_t th[NT], rt;
	struct uhmm_rcache_stats st;
	struct uhmm_mm *mm = t_open();
	unsigned long failed = 0, regs, live = 0;

	t_cdev_init(&cdev, 1UL << 20, 0);
	REQUIRE(uhmm_rcache_create(&rc, mm, &flaky_ops, &cdev, &cfg) == 0);
	for (int i = 0; i < BUFS; i++)
		bufs[i] = t_rc_map(BUF_PAGES, 'a' + i);

	REQUIRE(pthread_create(&rt, NULL, remapper, NULL) == 0);
	for (long i = 0; i < NT; i++)
		REQUIRE(pthread_create(&th[i], NULL, getter, (void *)i) == 0);
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		failed += failed_gets[i];
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(rt, NULL);

	CHECK_EQ(wrong_errors, 0);
	/* Every failed reg failed a get, and only those did. */
	CHECK_EQ(failed, reg_failed);
	/* Once quiet: the last changes dispatched, and the worker done with
	 * what they invalidated (it deregisters, then uncounts the region). */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	for (int i = 0; i < 1000; i++) {
		st = t_rc_stats(rc);
		live = (unsigned long)__atomic_load_n(&cdev.live,
						      __ATOMIC_RELAXED);
		if (st.regions == live)
			break;
		usleep(10000);
	}
	regs = __atomic_load_n(&cdev.next, __ATOMIC_RELAXED);
	/* A failed reg is no miss: misses are regions made. A reg that an
	 * invalidation collided with is undone and made again: one miss. */
	CHECK(st.misses <= regs);
	/* The pair the wait compared: read again, live may be one lower
	 * already (the worker deregisters before it uncounts). */
	CHECK_EQ(st.regions, live);
	printf("%lu regs failed (of %lu calls), each returned by its get; "
	       "%lu regions registered, %lu invalidated, %lu evicted\n",
	       reg_failed, reg_calls, regs, st.invalidations, st.evictions);

	REQUIRE(uhmm_rcache_destroy(rc) == 0);
	/* Deregistered exactly once each, and nothing else. */
	CHECK_EQ(cdev.live, 0);
	CHECK_EQ(cdev.bad_deregs, 0);
	CHECK(reg_failed > 0);
	CHECK(st.invalidations > 0);
	t_cdev_free(&cdev);
	for (int i = 0; i < BUFS; i++)
		munmap(bufs[i], BUF_PAGES * t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
