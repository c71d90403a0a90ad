/* SPDX-License-Identifier: MIT */
/*
 * The registration cache's limits and bookkeeping, with a fake device that
 * counts (no io_uring), single-threaded so every counter is exact:
 *
 *  - eviction is CLOCK (second chance): the hand goes round the regions
 *    in the order they were registered, spares once a region hit since it
 *    last passed (and clears its bit), and takes the first other one; the
 *    scenarios are built so the expected victim is certain;
 *  - max_regions and max_bytes are caps for idle regions;
 *  - a held region is never evicted, even when it is the oldest, and when
 *    every region is held the cache grows past both caps instead of
 *    failing;
 *  - a held region survives the munmap of its buffer: no dereg before the
 *    put, a dereg by the worker soon after it; a get of the new memory at
 *    the same address meanwhile is a miss, not the dead region;
 *  - hits, misses, invalidations, evictions, deregistrations, regions and
 *    bytes_registered at every step;
 *  - destroy is -EBUSY while a region is held and frees nothing, 0 after
 *    the put, and leaves every reg balanced by exactly one dereg.
 */
#include "rcache.h"

static struct uhmm_mm *mm;
static unsigned long P;

static struct uhmm_rcache *cache(struct t_fdev *d, size_t regions,
				 size_t bytes)
{
	struct uhmm_rcache_config cfg = { .max_regions = regions,
					  .max_bytes = bytes };
	struct uhmm_rcache *rc;

	t_fdev_init(d);
	REQUIRE(uhmm_rcache_create(&rc, mm, &t_fdev_ops, d, &cfg) == 0);
	return rc;
}

/* get, which must succeed; returns the region, held. */
static struct uhmm_region *get(struct uhmm_rcache *rc, void *addr,
			       size_t len)
{
	struct uhmm_region *r = NULL;

	REQUIRE(uhmm_rcache_get(rc, addr, len, UHMM_ACCESS_READ, &r) == 0);
	REQUIRE(r);
	return r;
}

/* get and put at once; returns the region's handle. */
static uint64_t use(struct uhmm_rcache *rc, void *addr, size_t len)
{
	struct uhmm_region *r = get(rc, addr, len);
	uint64_t h = r->handle;

	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	return h;
}

/* Destroy rc and check that every reg had exactly one dereg. */
static void destroy(struct uhmm_rcache *rc, struct t_fdev *d)
{
	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(t_fdev_deregs(d), t_fdev_regs(d));
	CHECK_EQ(d->bad_deregs, 0);
	for (unsigned long h = 0; h < d->regs; h++)
		CHECK(!t_fdev_live(d, h));
}

static void lru_order(void)
{
	struct t_fdev d;
	struct uhmm_rcache *rc = cache(&d, 3, 0);
	char *a = t_map(1), *b = t_map(1), *c = t_map(1), *dd = t_map(1),
	     *e = t_map(1);
	uint64_t ha, hb, hc, hd, he;

	/* The ring: A B C, the hand at A, no bit set (a miss sets none). */
	ha = use(rc, a, P);
	hb = use(rc, b, P);
	hc = use(rc, c, P);
	CHECK_STATS(rc, 0, 3, 0, 0, 0, 3, 3 * P);
	/* A hit sets A's bit. */
	CHECK_EQ(use(rc, a, P), ha);
	CHECK_STATS(rc, 1, 3, 0, 0, 0, 3, 3 * P);

	/* A fourth region needs room: the hand spares A (clearing its
	 * bit) and takes B, synchronously (it is idle). */
	hd = use(rc, dd, P);
	CHECK(!t_fdev_live(&d, hb));
	CHECK(t_fdev_live(&d, ha) && t_fdev_live(&d, hc) &&
	      t_fdev_live(&d, hd));
	CHECK_STATS(rc, 1, 4, 0, 1, 1, 3, 3 * P);

	/* The hand at C; D went in behind it: C A D. A hit on C sets its
	 * bit; the hand spares C and takes A. */
	CHECK_EQ(use(rc, c, P), hc);
	he = use(rc, e, P);
	CHECK(!t_fdev_live(&d, ha));
	CHECK(t_fdev_live(&d, hc) && t_fdev_live(&d, hd) &&
	      t_fdev_live(&d, he));
	CHECK_STATS(rc, 2, 5, 0, 2, 2, 3, 3 * P);

	/* The survivors are hits; B comes back as a new registration. */
	CHECK_EQ(use(rc, c, P), hc);
	CHECK_EQ(use(rc, dd, P), hd);
	CHECK_EQ(use(rc, e, P), he);
	CHECK_STATS(rc, 5, 5, 0, 2, 2, 3, 3 * P);
	CHECK(use(rc, b, P) != hb);
	CHECK_STATS(rc, 5, 6, 0, 3, 3, 3, 3 * P);
	/* The hits set C, D and E's bits: the hand cleared them all and
	 * took one of them. */
	destroy(rc, &d);
	for (char **p = (char *[]){ a, b, c, dd, e, NULL }; *p; p++)
		munmap(*p, P);
}

static void bytes_cap(void)
{
	struct t_fdev d;
	struct uhmm_rcache *rc = cache(&d, 0, 4 * P);
	char *x = t_map(2), *y = t_map(2), *z = t_map(1), *w = t_map(2);
	uint64_t hx, hy, hz, hw;

	hx = use(rc, x, 2 * P);
	hy = use(rc, y, 2 * P);
	CHECK_STATS(rc, 0, 2, 0, 0, 0, 2, 4 * P);	/* exactly at the cap */
	/* 4 + 1 pages > 4: the oldest, X, goes. */
	hz = use(rc, z, P);
	CHECK(!t_fdev_live(&d, hx));
	CHECK(t_fdev_live(&d, hy) && t_fdev_live(&d, hz));
	CHECK_STATS(rc, 0, 3, 0, 1, 1, 2, 3 * P);
	/* 3 + 2 > 4: Y goes, and 1 + 2 fits, so Z stays. */
	hw = use(rc, w, 2 * P);
	CHECK(!t_fdev_live(&d, hy));
	CHECK(t_fdev_live(&d, hz) && t_fdev_live(&d, hw));
	CHECK_STATS(rc, 0, 4, 0, 2, 2, 2, 3 * P);
	destroy(rc, &d);
	munmap(x, 2 * P);
	munmap(y, 2 * P);
	munmap(z, P);
	munmap(w, 2 * P);
}

static void held_never_evicted(void)
{
	struct t_fdev d;
	struct uhmm_rcache *rc = cache(&d, 2, 0);
	char *a = t_map(1), *b = t_map(1), *c = t_map(1), *dd = t_map(1),
	     *e = t_map(1), *big = t_map(8);
	struct uhmm_region *ra, *rc_, *rd, *r1, *r2;
	uint64_t ha, hb, hc, h1, rd_handle;

	/* A is the oldest but held: the idle B goes instead. */
	ra = get(rc, a, P);
	hb = use(rc, b, P);
	rc_ = get(rc, c, P);
	/* Handles are read while held: a region's memory is reused later. */
	ha = ra->handle;
	hc = rc_->handle;
	CHECK(!t_fdev_live(&d, hb));
	CHECK(t_fdev_live(&d, ha) && t_fdev_live(&d, hc));
	CHECK_STATS(rc, 0, 3, 0, 1, 1, 2, 2 * P);

	/* All held: the cache grows past max_regions rather than fail. */
	rd = get(rc, dd, P);
	rd_handle = rd->handle;
	CHECK_STATS(rc, 0, 4, 0, 1, 1, 3, 3 * P);
	CHECK(t_fdev_live(&d, ha) && t_fdev_live(&d, hc) &&
	      t_fdev_live(&d, rd->handle));
	/* A held region is still a hit, and stays held twice. */
	r1 = get(rc, a, P);
	CHECK(r1->handle == ha);
	CHECK_STATS(rc, 1, 4, 0, 1, 1, 3, 3 * P);
	CHECK_EQ(uhmm_rcache_put(rc, r1), 0);

	/* Released, they are idle again: the next miss evicts down to the
	 * cap: the hand spares A, which was hit, and takes C and D. */
	CHECK_EQ(uhmm_rcache_put(rc, ra), 0);
	CHECK_EQ(uhmm_rcache_put(rc, rc_), 0);
	CHECK_EQ(uhmm_rcache_put(rc, rd), 0);
	r2 = get(rc, e, P);
	CHECK(!t_fdev_live(&d, hc) && !t_fdev_live(&d, rd_handle));
	CHECK(t_fdev_live(&d, ha));
	CHECK_STATS(rc, 1, 5, 0, 3, 3, 2, 2 * P);
	CHECK_EQ(uhmm_rcache_put(rc, r2), 0);
	destroy(rc, &d);

	/* max_bytes: one region larger than the cap, then more, all held. */
	rc = cache(&d, 0, 2 * P);
	ra = get(rc, big, 8 * P);
	r1 = get(rc, a, P);
	ha = ra->handle;
	h1 = r1->handle;
	CHECK_STATS(rc, 0, 2, 0, 0, 0, 2, 9 * P);
	CHECK(t_fdev_live(&d, ha) && t_fdev_live(&d, h1));
	CHECK_EQ(uhmm_rcache_put(rc, r1), 0);
	/* A is idle now and goes for B; the big one is still held. */
	r2 = get(rc, b, P);
	CHECK(!t_fdev_live(&d, h1) && t_fdev_live(&d, ha));
	CHECK_STATS(rc, 0, 3, 0, 1, 1, 2, 9 * P);
	CHECK_EQ(uhmm_rcache_put(rc, r2), 0);
	CHECK_EQ(uhmm_rcache_put(rc, ra), 0);
	destroy(rc, &d);
	for (char **p = (char *[]){ a, b, c, dd, e, NULL }; *p; p++)
		munmap(*p, P);
	munmap(big, 8 * P);
}

static void held_survives_invalidation(void)
{
	struct t_fdev d;
	struct uhmm_rcache *rc = cache(&d, 0, 0);
	char *buf = t_map(2), *again;
	struct uhmm_region *r, *r2;
	uint64_t h;

	r = get(rc, buf, 2 * P);
	h = r->handle;
	CHECK_STATS(rc, 0, 1, 0, 0, 0, 1, 2 * P);

	REQUIRE(munmap(buf, 2 * P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	/* Invalidated but held: still registered, nothing deregistered. */
	CHECK(t_fdev_live(&d, h));
	CHECK_STATS(rc, 0, 1, 1, 0, 0, 1, 2 * P);
	CHECK(r->addr == buf && r->len == 2 * P);

	/* New memory at the address: a miss, never the dead region. */
	again = mmap(buf, 2 * P, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (again == buf) {
		r2 = get(rc, buf, 2 * P);
		CHECK(r2 != r);
		CHECK(r2->handle != h);
		CHECK_STATS(rc, 0, 2, 1, 0, 0, 2, 4 * P);
		CHECK_EQ(uhmm_rcache_put(rc, r2), 0);
	} else {
		printf("note: the address was taken meanwhile; "
		       "skipped the re-get\n");
		if (again != MAP_FAILED)
			munmap(again, 2 * P);
		buf = NULL;
	}
	CHECK(t_fdev_live(&d, h));
	CHECK_EQ(t_fdev_deregs(&d), 0);

	/* The put hands it to the worker, which deregisters it soon. */
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	CHECK(t_rc_wait_deregs(rc, 1));
	CHECK(!t_fdev_live(&d, h));
	CHECK_EQ(t_fdev_deregs(&d), 1);
	if (buf) {
		CHECK_STATS(rc, 0, 2, 1, 0, 1, 1, 2 * P);
		/* The live one is still a hit. */
		CHECK(use(rc, buf, 2 * P) != h);
		CHECK_STATS(rc, 1, 2, 1, 0, 1, 1, 2 * P);
	} else {
		CHECK_STATS(rc, 0, 1, 1, 0, 1, 0, 0);
	}
	/* Its put is not a second put of the dead one. */
	CHECK_EQ(uhmm_rcache_put(rc, r), -EINVAL);

	/* An idle region invalidated goes without any put. */
	if (buf) {
		REQUIRE(munmap(buf, 2 * P) == 0);
		CHECK(t_rc_wait_deregs(rc, 2));
		CHECK_STATS(rc, 1, 2, 2, 0, 2, 0, 0);
	}
	destroy(rc, &d);
}

/*
 * A region is counted once however many changes hit it: here a second
 * munmap hits a region already dead and queued, while the worker is held
 * in the dereg of another region.
 */
static void invalidation_counted_once(void)
{
	struct t_fdev d;
	struct uhmm_rcache *rc = cache(&d, 0, 0);
	char *x = t_map(1), *y = t_map(2);
	uint64_t hx, hy;

	hx = use(rc, x, P);
	hy = use(rc, y, 2 * P);
	pthread_mutex_lock(&d.lock);
	d.block_handle = (long)hx;
	pthread_mutex_unlock(&d.lock);

	REQUIRE(munmap(x, P) == 0);
	t_fdev_wait_blocked(&d);	/* the worker is in dereg(X) */
	REQUIRE(munmap(y, P) == 0);	/* Y dies, queued behind X */
	REQUIRE(munmap(y + P, P) == 0);	/* Y again, still in the tree */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	t_fdev_release(&d);
	CHECK(t_rc_wait_deregs(rc, 2));
	CHECK(!t_fdev_live(&d, hx) && !t_fdev_live(&d, hy));
	CHECK_STATS(rc, 0, 2, 2, 0, 2, 0, 0);
	destroy(rc, &d);
}

static void destroy_busy(void)
{
	struct t_fdev d;
	struct uhmm_rcache *rc = cache(&d, 0, 0);
	char *a = t_map(1), *b = t_map(3);
	struct uhmm_region *r;

	use(rc, a, P);
	r = get(rc, b, 3 * P);
	CHECK_EQ(uhmm_rcache_destroy(rc), -EBUSY);
	/* Nothing was freed: the cache still works, both still registered. */
	CHECK_EQ(t_fdev_deregs(&d), 0);
	CHECK_STATS(rc, 0, 2, 0, 0, 0, 2, 4 * P);
	use(rc, a, P);
	CHECK_STATS(rc, 1, 2, 0, 0, 0, 2, 4 * P);
	CHECK_EQ(uhmm_rcache_put(rc, r), 0);
	destroy(rc, &d);
	CHECK_EQ(t_fdev_regs(&d), 2);
	munmap(a, P);
	munmap(b, 3 * P);
}

int main(void)
{
	mm = t_open();
	P = t_page;
	lru_order();
	bytes_cap();
	held_never_evicted();
	held_survives_invalidation();
	invalidation_counted_once();
	destroy_busy();
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
