/* SPDX-License-Identifier: MIT */
/*
 * Every -EINVAL of the registration cache's API, each leaving the cache as
 * it was (no reg, no counter moved): create with a NULL rcp, mm or ops or
 * an op missing; destroy(NULL); get with a NULL rc, addr or regionp, a zero
 * len, a range that wraps or ends in the top page, access 0 or with
 * unknown bits; put with a NULL rc or region, of a region not held (put
 * twice, or never got from this cache); stats with a NULL rc or stats.
 * Also: an error of ops->reg is returned by get as is, and leaves nothing
 * behind.
 */
#include <limits.h>

#include "rcache.h"

static const struct uhmm_rcache_ops no_reg = { .dereg = t_fdev_dereg };
static const struct uhmm_rcache_ops no_dereg = { .reg = t_fdev_reg };

int main(void)
{
	struct uhmm_mm *mm = t_open();
	unsigned long P = t_page;
	struct uhmm_rcache *rc, *rc2, *keep;
	struct uhmm_rcache_stats st;
	struct uhmm_region *r = NULL, *r2;
	uint64_t h;
	struct t_fdev d, d2;
	char *buf = t_map(2);
	unsigned long top = ULONG_MAX & ~(P - 1);

	t_fdev_init(&d);
	t_fdev_init(&d2);

	/* create */
	rc = keep = (struct uhmm_rcache *)&d;	/* a sentinel: left alone */
	CHECK_EQ(uhmm_rcache_create(NULL, mm, &t_fdev_ops, &d, NULL), -EINVAL);
	CHECK_EQ(uhmm_rcache_create(&rc, NULL, &t_fdev_ops, &d, NULL), -EINVAL);
	CHECK_EQ(uhmm_rcache_create(&rc, mm, NULL, &d, NULL), -EINVAL);
	CHECK_EQ(uhmm_rcache_create(&rc, mm, &no_reg, &d, NULL), -EINVAL);
	CHECK_EQ(uhmm_rcache_create(&rc, mm, &no_dereg, &d, NULL), -EINVAL);
	CHECK(rc == keep);
	/* NULL dev and NULL cfg are fine: dev is the device's business. */
	REQUIRE(uhmm_rcache_create(&rc2, mm, &t_fdev_ops, NULL, NULL) == 0);
	CHECK_EQ(uhmm_rcache_destroy(rc2), 0);
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &d, NULL) == 0);
	REQUIRE(uhmm_rcache_create(&rc2, mm, &t_fdev_ops, &d2, NULL) == 0);

	/* destroy, stats */
	CHECK_EQ(uhmm_rcache_destroy(NULL), -EINVAL);
	CHECK_EQ(uhmm_rcache_stats(NULL, &st), -EINVAL);
	CHECK_EQ(uhmm_rcache_stats(rc, NULL), -EINVAL);

	/* get */
	r2 = (struct uhmm_region *)&d;	/* a sentinel: left alone */
	r = r2;
	CHECK_EQ(uhmm_rcache_get(NULL, buf, P, UHMM_ACCESS_READ, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, NULL, P, UHMM_ACCESS_READ, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, UHMM_ACCESS_READ, NULL), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, 0, UHMM_ACCESS_READ, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, 0, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, 1u << 2, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, UHMM_ACCESS_READ | (1u << 2), &r),
		 -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, ~0u, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, 1u << 31, &r), -EINVAL);
	/* Wraps: addr + len past the top of the address space. */
	CHECK_EQ(uhmm_rcache_get(rc, buf, ULONG_MAX, UHMM_ACCESS_READ, &r),
		 -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, buf, -(unsigned long)buf,
				 UHMM_ACCESS_READ, &r), -EINVAL);
	CHECK_EQ(uhmm_rcache_get(rc, (void *)(ULONG_MAX - 7), 16,
				 UHMM_ACCESS_READ, &r), -EINVAL);
	/* No wrap, but the page-rounded end would: the top page. */
	CHECK_EQ(uhmm_rcache_get(rc, (void *)(top + 8), 8, UHMM_ACCESS_READ,
				 &r), -EINVAL);
	CHECK(r == r2);
	CHECK_STATS(rc, 0, 0, 0, 0, 0, 0, 0);
	CHECK_EQ(t_fdev_regs(&d), 0);

	/* An error of ops->reg, as is; nothing is left behind. */
	pthread_mutex_lock(&d.lock);
	d.fail_reg = -EIO;
	pthread_mutex_unlock(&d.lock);
	CHECK_EQ(uhmm_rcache_get(rc, buf, P, UHMM_ACCESS_READ, &r), -EIO);
	CHECK(r == r2);
	CHECK_STATS(rc, 0, 0, 0, 0, 0, 0, 0);
	CHECK_EQ(t_fdev_regs(&d), 0);

	/* put */
	REQUIRE(uhmm_rcache_get(rc, buf, P, UHMM_ACCESS_READ, &r) == 0);
	h = r->handle;
	CHECK_EQ(uhmm_rcache_put(NULL, r), -EINVAL);
	CHECK_EQ(uhmm_rcache_put(rc, NULL), -EINVAL);
	/* Held in rc, not in rc2. */
	CHECK_EQ(uhmm_rcache_put(rc2, r), -EINVAL);
	CHECK_EQ(uhmm_rcache_destroy(rc), -EBUSY);	/* still held */
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	/* Put twice: the region is cached but no longer held. */
	CHECK_EQ(uhmm_rcache_put(rc, r), -EINVAL);
	CHECK_STATS(rc, 0, 1, 0, 0, 0, 1, P);
	/* And the cache is unharmed: a hit, one put, then -EINVAL again. */
	REQUIRE(uhmm_rcache_get(rc, buf, P, UHMM_ACCESS_READ, &r2) == 0);
	CHECK(r2->handle == h);	/* the same region (maybe another CPU's copy) */
	CHECK_EQ(uhmm_rcache_put(rc, r2), 0);
	CHECK_EQ(uhmm_rcache_put(rc, r2), -EINVAL);
	CHECK_STATS(rc, 1, 1, 0, 0, 0, 1, P);

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(uhmm_rcache_destroy(rc2), 0);
	CHECK_EQ(t_fdev_regs(&d), 1);
	CHECK_EQ(t_fdev_deregs(&d), 1);
	CHECK_EQ(t_fdev_regs(&d2), 0);
	munmap(buf, 2 * P);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
