/* SPDX-License-Identifier: MIT */
/*
 * Overlapping requests (fake device): a request inside a cached region is
 * a hit on it; a request that extends past it registers a new region of
 * its own page-rounded range (no merging, the old one stays); a request
 * for more access than a cached region has (READ cached, READ|WRITE
 * asked) registers a new region too, and a request for less access is a
 * hit on the bigger one. The overlapping regions coexist; a munmap is
 * heard exactly by the regions it overlaps, and one covering all of them
 * invalidates and deregisters all of them.
 *
 * Regions are told apart by handle: two gets of one region may return
 * different pointers (each CPU's copy), if the thread moved between them.
 */
#include "rcache.h"

#define RD UHMM_ACCESS_READ
#define WR UHMM_ACCESS_WRITE

static struct uhmm_region *get(struct uhmm_rcache *rc, void *addr,
			       size_t len, unsigned int access)
{
	struct uhmm_region *r = NULL;

	REQUIRE(uhmm_rcache_get(rc, addr, len, access, &r) == 0);
	REQUIRE(r);
	return r;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	unsigned long P = t_page;
	struct uhmm_region *r1, *r2, *r3, *r;
	struct uhmm_rcache *rc;
	struct t_fdev d;
	char *buf = t_map(6);	/* pages 1..4 used; 0 and 5 are margins */
	uint64_t h1, h2, h3;

	t_fdev_init(&d);
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &d, NULL) == 0);

	/* R1: pages [1, 3) for READ, from an unaligned request. */
	r1 = get(rc, buf + P + 8, 2 * P - 16, RD);
	CHECK(r1->addr == buf + P && r1->len == 2 * P && r1->access == RD);
	h1 = r1->handle;
	CHECK_EQ(uhmm_rcache_put(rc, r1), 0);
	pthread_mutex_lock(&d.lock);
	CHECK(d.rec[h1].addr == (unsigned long)buf + P &&
	      d.rec[h1].len == 2 * P && d.rec[h1].access == RD);
	pthread_mutex_unlock(&d.lock);

	/* Inside it, to its exact ends, and one byte: hits. */
	r = get(rc, buf + P, 2 * P, RD);
	CHECK(r->handle == h1);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	r = get(rc, buf + 2 * P + 100, 50, RD);
	CHECK(r->handle == h1);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	r = get(rc, buf + 3 * P - 1, 1, RD);
	CHECK(r->handle == h1);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	CHECK_STATS(rc, 3, 1, 0, 0, 0, 1, 2 * P);

	/* Past its end by one byte: a new region of its own, [2, 4). */
	r2 = get(rc, buf + 2 * P, P + 1, RD);
	CHECK(r2->addr == buf + 2 * P && r2->len == 2 * P);
	h2 = r2->handle;
	CHECK(h2 != h1);
	/* R1 is untouched: no merging. */
	CHECK(r1->addr == buf + P && r1->len == 2 * P);
	CHECK(t_fdev_live(&d, h1) && t_fdev_live(&d, h2));
	CHECK_STATS(rc, 3, 2, 0, 0, 0, 2, 4 * P);

	/* Access upgrade on R1's first page: a new region. */
	r3 = get(rc, buf + P, P, RD | WR);
	CHECK(r3->addr == buf + P && r3->len == P && r3->access == (RD | WR));
	h3 = r3->handle;
	CHECK(h3 != h1 && h3 != h2);
	CHECK(t_fdev_live(&d, h1) && t_fdev_live(&d, h2) &&
	      t_fdev_live(&d, h3));
	CHECK_STATS(rc, 3, 3, 0, 0, 0, 3, 5 * P);
	/* Less access than R3 has: a hit on R3 (held twice now). */
	r = get(rc, buf + P, P, WR);
	CHECK(r->handle == h3);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	/* READ of page 1 is covered by R1 and R3: a hit on one of them. */
	r = get(rc, buf + P, P, RD);
	CHECK(r->handle == h1 || r->handle == h3);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	/* WRITE of page 2: R1 and R2 cover it, neither for WRITE: a miss. */
	r = get(rc, buf + 2 * P, P, WR);
	CHECK(r->handle != h1 && r->handle != h2 && r->handle != h3);
	CHECK(r->addr == buf + 2 * P && r->len == P && r->access == WR);
	CHECK_STATS(rc, 5, 4, 0, 0, 0, 4, 6 * P);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	CHECK_EQ(uhmm_rcache_put(rc, r2), 0);
	CHECK_EQ(uhmm_rcache_put(rc, r3), 0);

	/* Page 3 goes: only R2 ([2, 4)) overlaps it. */
	REQUIRE(munmap(buf + 3 * P, P) == 0);
	CHECK(t_rc_wait_deregs(rc, 1));
	CHECK(!t_fdev_live(&d, h2));
	CHECK(t_fdev_live(&d, h1) && t_fdev_live(&d, h3));
	CHECK_STATS(rc, 5, 4, 1, 0, 1, 3, 4 * P);
	/* The others are still hits. */
	r = get(rc, buf + P, 2 * P, RD);
	CHECK(r->handle == h1);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	r = get(rc, buf + P, P, RD | WR);
	CHECK(r->handle == h3);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);

	/* One munmap over all of them: all three go. */
	REQUIRE(munmap(buf, 3 * P) == 0);
	CHECK(t_rc_wait_deregs(rc, 4));
	CHECK(!t_fdev_live(&d, h1) && !t_fdev_live(&d, h3));
	CHECK_STATS(rc, 7, 4, 4, 0, 4, 0, 0);

	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(t_fdev_regs(&d), 4);
	CHECK_EQ(t_fdev_deregs(&d), 4);
	CHECK_EQ(d.bad_deregs, 0);
	munmap(buf + 4 * P, 2 * P);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
