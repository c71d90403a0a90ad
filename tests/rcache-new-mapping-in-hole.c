/* SPDX-License-Identifier: MIT */
/*
 * A mapping created in a hole of a buffer while the cache registers the
 * buffer must not end up in a valid region unwatched.
 *
 * The buffer is three pages: mapped, a hole, mapped. One thread gets and
 * puts the whole buffer through a cache over the io_uring fixed-buffer
 * device (whose reg yields the CPU first, as a slower device would leave
 * time), again and again: while the hole is a hole the device refuses
 * (pinning finds no page there); while it is mapped, the get registers
 * it. The main thread maps the hole (MAP_FIXED_NOREPLACE), touches it and
 * unmaps it, in a loop. Inserting the region's notifier arms the mappings
 * that exist then; a mapping created in the hole after that and pinned by
 * the device is watched by no one, so its munmap() sends no event and the
 * region stays valid, holding a page that is gone.
 *
 * After each munmap() has returned, a get of the buffer from the main
 * thread must fail: the hole is a hole again, so the only way to succeed
 * is a cached region holding the unmapped page - a stale registration.
 * Each one found is counted and then dropped with an explicit
 * invalidation, so it is counted once. The count must be 0.
 * 5000 iterations at scale 1. Skipped without PAGEMAP_SCAN (before Linux
 * 6.7), where the check cannot be made.
 */
#include <pthread.h>
#include <sched.h>

#define T_RC_URING
#include "prim/prim.h"
#include "rcache.h"

#define ITERS 5000
#define NP 3			/* mapped, hole, mapped */
#define HOLE 1

static struct uhmm_rcache *rc;
static const struct uhmm_rcache_ops *uring_ops;
static char *buf;
static int done;		/* atomic */
static long gets, got, get_errors;	/* [getter], read after the join */
static int last_error;

/*
 * The io_uring device, with a reg that lets other threads run before it
 * pins, as a slower device would (an RDMA registration takes far longer):
 * the mapper gets its chance to map the hole after the range was armed.
 */
static int slow_reg(void *dev, void *addr, size_t len, unsigned int access,
		    uint64_t *handle)
{
	sched_yield();
	return uring_ops->reg(dev, addr, len, access, handle);
}

static void slow_dereg(void *dev, uint64_t handle)
{
	uring_ops->dereg(dev, handle);
}

static const struct uhmm_rcache_ops slow_ops = {
	.reg = slow_reg,
	.dereg = slow_dereg,
};

static void *getter(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		struct uhmm_region *r;
		int ret = uhmm_rcache_get(rc, buf, NP * t_page,
					  UHMM_ACCESS_READ, &r);

		gets++;
		if (ret == 0) {
			got++;
			REQUIRE(uhmm_rcache_put(rc, r) == 0);
			/* A hit races nothing: let the others run. */
			sched_yield();
		} else if (ret != -EFAULT) {
			/* -EFAULT: the hole, as the device (or uhmm) says. */
			get_errors++;
			last_error = ret;
		}
	}
	return NULL;
}

int main(void)
{
	struct uhmm_rcache_config cfg = { .max_regions = 8 };
	struct uhmm_mm *mm = t_open();
	long iters = (long)(ITERS * t_scale()), stale = 0, refused = 0;
	struct uhmm_uring_dev *dev;
	struct io_uring ring;
	pthread_t thread;
	char *hole;

	t_ring(&ring, 8);
	dev = t_uring_dev(&ring, 64);
	uring_ops = uhmm_uring_rcache_ops();
	REQUIRE(uhmm_rcache_create(&rc, mm, &slow_ops, dev, &cfg) == 0);
	buf = t_map(NP);
	if (uhmm_prim_pagemap_wp_coverage((unsigned long)buf,
					  (unsigned long)buf + t_page) < 0)
		SKIP("no PAGEMAP_SCAN (Linux before 6.7): a mapping created in "
		     "a hole cannot be told unwatched (source.h)");
	hole = buf + HOLE * t_page;
	REQUIRE(munmap(hole, t_page) == 0);
	REQUIRE(pthread_create(&thread, NULL, getter, NULL) == 0);

	for (long i = 0; i < iters; i++) {
		char *q = mmap(hole, t_page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS |
			       MAP_FIXED_NOREPLACE, -1, 0);
		struct uhmm_region *r;
		int ret;

		REQUIRE(q == hole);
		q[0] = (char)i;
		/* Give the getter a chance to register it. */
		if (i & 1)
			sched_yield();
		REQUIRE(munmap(q, t_page) == 0);

		ret = uhmm_rcache_get(rc, buf, NP * t_page, UHMM_ACCESS_READ,
				      &r);
		if (ret == 0) {
			stale++;
			REQUIRE(uhmm_rcache_put(rc, r) == 0);
			/* Drop it, so that it is counted once. */
			REQUIRE(uhmm_mm_invalidate(mm, (unsigned long)hole,
						   (unsigned long)hole + t_page,
						   UHMM_EVENT_UNMAP) == 0);
		} else {
			refused++;
		}
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(thread, NULL) == 0);

	printf("%ld iterations (scale %g): %ld stale registrations of the "
	       "unmapped page, %ld refused; getter: %ld gets, %ld got, "
	       "%ld other errors (last %d)\n",
	       iters, t_scale(), stale, refused, gets, got, get_errors,
	       last_error);
	CHECK_EQ(stale, 0);
	CHECK_EQ(get_errors, 0);

	REQUIRE(uhmm_rcache_destroy(rc) == 0);
	REQUIRE(uhmm_uring_dev_close(dev) == 0);
	io_uring_queue_exit(&ring);
	munmap(buf, NP * t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
