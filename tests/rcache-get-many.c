/* SPDX-License-Identifier: MIT */
/*
 * uhmm_rcache_get_many(): the regions cover each buffer, are registered
 * and held; a second call hits; a refused argument takes nothing; a
 * device error half way leaves nothing held (all or nothing); and after
 * one of the buffers was unmapped and mapped again by another thread -
 * its munmap possibly still running, the cache strict - the batch never
 * returns that buffer's old registration.
 */
#include <pthread.h>
#include <sys/syscall.h>

#include "rcache.h"

#define N 8

static char *bufs[N];
static size_t lens[N];

static int unmapped;		/* atomic: remap_main's munmap returned */

static void *remap_main(void *arg)
{
	char *p = arg;

	REQUIRE(syscall(SYS_munmap, p, t_page) == 0);
	__atomic_store_n(&unmapped, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(void)
{
	struct uhmm_rcache_config cfg = { .flags = UHMM_RCACHE_STRICT };
	struct uhmm_region *regions[N], *again[N];
	struct uhmm_rcache *rc;
	struct t_fdev dev;
	struct uhmm_mm *mm = t_open();
	void *bad[N];

	t_fdev_init(&dev);
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &dev, &cfg) == 0);
	for (int i = 0; i < N; i++) {
		bufs[i] = t_rc_map(1, 'a' + i);
		lens[i] = t_page - 8 * (size_t)i;
	}

	CHECK_EQ(uhmm_rcache_get_many(rc, N, (void *const *)bufs, lens,
				      UHMM_ACCESS_READ, regions), 0);
	for (int i = 0; i < N; i++) {
		CHECK((char *)regions[i]->addr <= bufs[i] &&
		      (char *)regions[i]->addr + regions[i]->len >=
			      bufs[i] + lens[i]);
		CHECK(t_fdev_live(&dev, regions[i]->handle));
	}
	CHECK_EQ(uhmm_rcache_get_many(rc, N, (void *const *)bufs, lens,
				      UHMM_ACCESS_READ, again), 0);
	for (int i = 0; i < N; i++) {
		CHECK(again[i]->handle == regions[i]->handle);
		CHECK_EQ(uhmm_rcache_put(rc, again[i]), 0);
		CHECK_EQ(uhmm_rcache_put(rc, regions[i]), 0);
	}
	CHECK_EQ(t_rc_stats(rc).misses, N);

	/* Refused arguments take nothing. */
	memcpy(bad, bufs, sizeof(bad));
	bad[N - 1] = NULL;
	CHECK_EQ(uhmm_rcache_get_many(rc, N, bad, lens, UHMM_ACCESS_READ,
				      regions), -EINVAL);
	CHECK_EQ(uhmm_rcache_get_many(rc, 0, (void *const *)bufs, lens,
				      UHMM_ACCESS_READ, regions), -EINVAL);
	CHECK_EQ(uhmm_rcache_get_many(rc, N, (void *const *)bufs, lens, 4,
				      regions), -EINVAL);

	/* A device error half way: buffers 0-2 hit (WRITE regions made
	 * first), buffer 3's registration fails. Nothing may stay held:
	 * destroy, at the end, refuses while any region is. */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(uhmm_rcache_get(rc, bufs[i], lens[i],
					 UHMM_ACCESS_WRITE, &again[i]), 0);
		CHECK_EQ(uhmm_rcache_put(rc, again[i]), 0);
	}
	pthread_mutex_lock(&dev.lock);
	dev.fail_reg = -EIO;
	pthread_mutex_unlock(&dev.lock);
	CHECK_EQ(uhmm_rcache_get_many(rc, N, (void *const *)bufs, lens,
				      UHMM_ACCESS_WRITE, again), -EIO);

	/* Buffer 3 unmapped by another thread and mapped again here: a new
	 * registration (handles are never reused). */
	{
		uint64_t old = regions[3]->handle;
		pthread_t t;
		char *p;

		REQUIRE(pthread_create(&t, NULL, remap_main, bufs[3]) == 0);
		/* Mapped again the moment it is free; once the unmap has
		 * returned, one more try (something else may take it). */
		for (;;) {
			int done = __atomic_load_n(&unmapped, __ATOMIC_ACQUIRE);

			p = mmap(bufs[3], t_page, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS |
					 MAP_FIXED_NOREPLACE, -1, 0);
			if (p != MAP_FAILED || errno != EEXIST || done)
				break;
		}
		REQUIRE(pthread_join(t, NULL) == 0);
		if (p == bufs[3]) {
			CHECK_EQ(uhmm_rcache_get_many(rc, N,
						      (void *const *)bufs,
						      lens, UHMM_ACCESS_READ,
						      again), 0);
			CHECK(again[3]->handle != old);
			for (int i = 0; i < N; i++)
				CHECK_EQ(uhmm_rcache_put(rc, again[i]), 0);
		} else {
			REQUIRE(p == MAP_FAILED && errno == EEXIST);
			printf("note: the address was taken meanwhile; "
			       "skipped the re-get\n");
			bufs[3] = t_map(1);
		}
	}

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	for (int i = 0; i < N; i++)
		munmap(bufs[i], t_page);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	return t_result();
}
