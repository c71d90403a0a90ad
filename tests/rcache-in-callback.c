/* SPDX-License-Identifier: MIT */
/*
 * A registration cache used from an invalidate callback (of another mm's
 * subscription): a hit on a region this thread used recently works; a
 * miss and destroy, which may remove notifiers, are refused with -EDEADLK
 * and leave the cache intact. Before
 * the refusal, a miss there that evicted ignored remove's -EDEADLK and
 * reused the region with its notifier still in the tree (found by
 * fuzz/api.c: an endless loop in the tree).
 */
#include "rcache.h"

static struct uhmm_rcache *rc;
static char *cached, *other;
static int hit_ret = 1, miss_ret = 1, destroy_ret = 1;

static bool in_callback(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	struct uhmm_region *region;

	(void)dev;
	(void)r;
	hit_ret = uhmm_rcache_get(rc, cached, t_page, UHMM_ACCESS_READ,
				  &region);
	if (!hit_ret)
		CHECK_EQ(uhmm_rcache_put(rc, region), 0);
	miss_ret = uhmm_rcache_get(rc, other, t_page, UHMM_ACCESS_READ,
				   &region);
	destroy_ret = uhmm_rcache_destroy(rc);
	return true;
}

int main(void)
{
	struct uhmm_mm *mm, *explicit_mm;
	struct t_dev dev = { .hook = in_callback };
	struct uhmm_region *region;
	struct t_fdev fdev;

	mm = t_open_any();
	REQUIRE(uhmm_mm_open(&explicit_mm, UHMM_MM_NO_MONITOR) == 0);
	t_fdev_init(&fdev);
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &fdev, NULL) == 0);
	cached = t_map(1);
	other = t_map(1);
	REQUIRE(uhmm_rcache_get(rc, cached, t_page, UHMM_ACCESS_READ,
				&region) == 0);
	REQUIRE(uhmm_rcache_put(rc, region) == 0);

	REQUIRE(t_dev_insert(&dev, explicit_mm, 0x10000, t_page) == 0);
	REQUIRE(uhmm_mm_invalidate(explicit_mm, 0x10000, 0x11000,
				   UHMM_EVENT_CLEAR) == 0);
	CHECK_EQ(hit_ret, 0);
	CHECK_EQ(miss_ret, -EDEADLK);
	CHECK_EQ(destroy_ret, -EDEADLK);

	/* Outside the callback, the cache works and goes away. */
	CHECK_EQ(uhmm_rcache_get(rc, other, t_page, UHMM_ACCESS_READ, &region),
		 0);
	CHECK_EQ(uhmm_rcache_put(rc, region), 0);
	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(t_fdev_regs(&fdev), t_fdev_deregs(&fdev));
	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	munmap(cached, t_page);
	munmap(other, t_page);
	REQUIRE(uhmm_mm_close(explicit_mm) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	printf("from a callback: hit 0, miss -EDEADLK, destroy -EDEADLK\n");
	return t_result();
}
