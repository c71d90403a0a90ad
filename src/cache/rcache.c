/* SPDX-License-Identifier: MIT */
/*
 * The registration cache.
 *
 * A region is one device registration of a page-aligned range plus the
 * interval notifier that mirrors it. Its life:
 *
 *   registering --commit--> valid --invalidate/evict--> dead --retire--> free
 *
 * registering  a miss, under no lock of the cache: insert the notifier,
 *              read_begin, ops->reg, and make it valid only if read_retry
 *              says no invalidation collided (else dereg and try again);
 *              then, under rc->lock, commit: into the index, and open
 *              to hits (the per-shard copies of 'valid') only then.
 * valid        handed out by get. Holders are counted per shard (below).
 * dead         'valid' went to 0 (an invalidation, or eviction). Holders
 *              keep using the registration; whoever sees (dead, no holder)
 *              first - the invalidation, an eviction, or the last put -
 *              claims it (dereg_claimed), for that incarnation only, and
 *              queues it for the worker in the same step under dead_lock
 *              (queue_dead).
 * retire       out of the index under rc->lock, then ops->dereg and the
 *              notifier's removal under no lock, then the struct goes to
 *              the free list with a new incarnation. Done by the worker,
 *              by a miss that needs the room (make_room_locked()), or by
 *              destroy; never on the event dispatcher: a device may block
 *              in dereg.
 *
 * The index. Hits take no lock that threads share: they read the index
 * while misses and retirements change it under rc->lock.
 *  - A hash of regions by their first page, chained through hnext: a get
 *    for a buffer at the start of a region (the common case: the same
 *    buffers again and again) reads one bucket and one region.
 *  - The interval tree, read with uhmm_itree_find_lockless() when the
 *    hash has nothing: a request that starts inside a region.
 * Region memory is type-stable (never returned to the system before
 * destroy, like SLAB_TYPESAFE_BY_RCU), so a reader may follow a link to a
 * region that is being retired or reused: it checks what it finds, never
 * trusts it. What it checks is the region's incarnation, bumped at every
 * retirement: a region read as incarnation I, then held, then read valid
 * and incarnation I again, is I's, valid - and stays I's while held. A
 * reader that a writer led astray misses, and takes the locked path.
 *
 * Holders. A region is followed by one hold per shard (CPU number modulo
 * nshards), each on its own line: a holder count, copies of the region's
 * validity, incarnation and range, and the struct uhmm_region that get
 * returns (which so names the shard: a put from any CPU or thread lowers
 * the count the get raised). A hit reads and writes its shard's line and
 * no other, and two CPUs hitting the same regions do not pass lines back
 * and forth. A hit raises its count and then checks that its copy of
 * 'valid' is still 1; a kill clears the region's 'valid' (which decides
 * who killed it), then every copy, then reads every count. All
 * sequentially consistent, so on each shard at least one sees the other
 * (the Dekker pattern): either the hit fails, or the kill sees the
 * holder. Counts are never negative, and after a kill none goes up for
 * good, so counts read one after another that are all 0 mean no holder
 * is left.
 *
 * Limits. nregions and nbytes count every registration the device has or
 * is about to have: regions in the index, being registered (a miss
 * reserves its room before calling ops->reg) and being retired (until
 * ops->dereg returned), so the device never has more. A miss over a limit
 * retires dead regions no one holds first (the worker's queue), then
 * evicts idle valid ones itself, choosing them with a CLOCK hand
 * (clock_victim_locked()), and deregisters them before it registers.
 * Held regions are never evicted: they can take the cache past its
 * limits, and so can the victims other misses are still deregistering.
 * Dead regions alone never can: a slow dereg makes the worker fall behind
 * a stream of invalidations, and a miss that grew past them instead of
 * retiring them let the backlog grow without bound.
 *
 * Two misses on one range may both register it: the one that commits
 * second finds the first's region in the index, takes it, and
 * deregisters its own. ops->reg and ops->dereg run on any thread, several
 * at once (uhmm.h).
 *
 * Locks, outer first: rc->lock, then r->lock or dead_lock (never both).
 *
 * rc->lock     the index (hash, tree, clock ring), the counts, the free
 *              list. Never held across a device call or a wait.
 * r->lock      orders a commit against a zap (read_retry vs set_seq).
 * dead_lock    the queue of claimed dead regions, and the incarnation's
 *              moves. A region leaves the queue only under rc->lock, so a
 *              thread holding rc->lock finds every claimed region of the
 *              index on it.
 *
 * The invalidate callback takes r->lock and dead_lock, never rc->lock, and
 * never calls the device: the dispatcher must not wait for a miss or a
 * device (a miss may wait for the dispatcher's window). Before looking, a
 * get waits for events already read from the kernel (docs/design.md,
 * invariant 8).
 *
 * UHMM_EVENT_PROTECTION invalidates nothing: ops->reg pins, and a pinned
 * page stays where it is (see region_invalidate()).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/internal.h"
#include "prim/prim.h"

#define CACHELINE 64
#define SLAB_REGIONS 64
#define MAX_SHARDS 16
#define CHAIN_STEPS 32	/* lockless hash walk: then the tree */
#define MIN_BUCKETS 64
#define MAX_BUCKETS (1UL << 20)
#define HOLE_TRIES 16	/* region_register(): see there */

struct region;

/*
 * A region's holders on one shard, what get hands them, and copies of
 * what a hit checks: a hit reads and writes this line only.
 */
struct hold {
	int count;			/* atomic: holders */
	unsigned char valid;		/* atomic: copy of the region's */
	unsigned char referenced;	/* atomic: hit since the hand passed */
	unsigned int incarnation;	/* atomic: copy of the region's */
	unsigned int shard;		/* this hold's, to find the region */
	unsigned long hits;		/* relaxed: gets served */
	struct uhmm_rcache *rc;		/* for put's check */
	struct uhmm_region pub;		/* atomic: [incarnation] get returns
					 * this; the range hits check */
} __attribute__((aligned(CACHELINE)));

_Static_assert(sizeof(struct hold) == CACHELINE, "a hold is one line");

struct region {
	/* A hit reads hnext only, walking a chain; the rest is the holds'
	 * copies' source, and the cache's own. */
	struct region *hnext;		/* [rc->lock] hash chain; lockless */
	unsigned long start, end;	/* [rc->lock] set while unindexed */
	unsigned int access;		/* [rc->lock] likewise */
	int valid;			/* atomic: alive (see mark_dead()) */
	unsigned int incarnation;	/* atomic: bumped on retirement */

	int dereg_claimed;		/* atomic: one caller retires it */
	uint64_t handle;		/* [incarnation] the device's */
	struct uhmm_rcache *rc;
	struct uhmm_mutex lock;		/* orders commit against zap */
	struct uhmm_interval_notifier sub;
	struct uhmm_itree_node node;	/* [rc->lock] in rc->tree */
	struct region *clock_prev, *clock_next; /* [rc->lock] clock ring */
	struct region *next;		/* free list, dead queue, victims,
					 * or pending */
} __attribute__((aligned(CACHELINE)));

/*
 * SLAB_REGIONS regions, each followed by its holds, one line per shard
 * (rc->region_size apart): a hit finds its hold by arithmetic on the
 * region's address, so it loads the region and the hold at once.
 */
struct slab {
	struct slab *next;
} __attribute__((aligned(CACHELINE)));

struct uhmm_rcache {
	/* Read-mostly. */
	struct uhmm_mm *mm;
	const struct uhmm_rcache_ops *ops;
	void *dev;
	size_t max_regions, max_bytes;
	bool strict;			/* strict mode (uhmm.h) */
	unsigned long page_mask;
	unsigned int page_shift;
	unsigned int nshards;		/* a power of two */
	size_t region_size;		/* a region and its holds */
	unsigned int hash_bits;
	struct region **buckets;	/* [lock] heads; read lockless */

	struct uhmm_mutex lock __attribute__((aligned(CACHELINE)));
	struct uhmm_itree tree;		/* [lock] indexed; read lockless */
	struct region *hand;		/* [lock] the clock's, or NULL */
	size_t nindexed;		/* [lock] regions in the index */
	size_t nregions, nbytes;	/* [lock] registered or about to be */
	size_t nleaving;		/* [lock] of those, being retired */
	struct region *pending;		/* [lock] being registered */
	pthread_cond_t changed;		/* [lock] a registration committed or
					 * failed, or a retirement ended */
	struct region *free;		/* [lock] */
	struct slab *slabs;		/* [lock] */
	unsigned long misses, evictions, retired_hits; /* [lock] */

	struct uhmm_mutex dead_lock;
	pthread_cond_t dead_cond;
	struct region *dead;		/* [dead_lock] claimed, to retire */
	bool stop;			/* [dead_lock] */
	pthread_t worker;

	unsigned long invalidations;	/* atomic */
	unsigned long deregistrations;	/* atomic */
};

#define region_of_sub(s) uhmm_container_of(s, struct region, sub)
#define region_of_node(n) uhmm_container_of(n, struct region, node)
#define hold_of_pub(p) uhmm_container_of(p, struct hold, pub)

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static struct region *slab_region(const struct uhmm_rcache *rc,
				  struct slab *s, int i)
{
	return (struct region *)((char *)(s + 1) + i * rc->region_size);
}

static struct hold *hold_of(const struct region *r, unsigned int shard)
{
	return (struct hold *)(r + 1) + shard;
}

static struct region *region_of_hold(const struct hold *h)
{
	return (struct region *)(h - h->shard) - 1;
}

static unsigned int this_shard(const struct uhmm_rcache *rc)
{
	return uhmm_prim_cpu() & (rc->nshards - 1);
}

/* ---- holders and dead regions ---- */

/* After a kill: no holder left? See "Holders" above. */
static bool idle(const struct region *r)
{
	for (unsigned int s = 0; s < r->rc->nshards; s++)
		if (__atomic_load_n(&hold_of(r, s)->count, __ATOMIC_SEQ_CST))
			return false;
	return true;
}

/* (dead, no holder): the first to see it gets to retire r. */
static bool claim(struct region *r)
{
	return !__atomic_exchange_n(&r->dereg_claimed, 1, __ATOMIC_ACQ_REL);
}

/*
 * Queue r for the worker if it is dead and no one holds it, unless someone
 * else did: whoever brings a dead region to no holder calls this (the
 * invalidation, the last put, a failed hit's hold_drop()), and so may a late
 * caller, whose region has been retired and registered anew meanwhile.
 * So it claims only a region that is, in this order (all sequentially
 * consistent, as the commit and mark_dead() are):
 *
 *   unclaimed   dereg_claimed == 0: committed (the commit clears it after
 *               setting valid: a region still registering is never taken
 *               for dead) and not claimed by anyone yet;
 *   dead        valid == 0, so killed after that commit;
 *   unheld      idle() (a holder from before the kill is seen);
 *
 * all in incarnation inc, which region_free_locked() moves on under
 * dead_lock: found unchanged under it, no new life can have cleared
 * dereg_claimed. Claim and push are one step under dead_lock, and a region
 * leaves the queue only under rc->lock: so a thread holding rc->lock finds
 * every claimed region of the index on the queue.
 */
static void queue_dead(struct region *r)
{
	struct uhmm_rcache *rc = r->rc;
	unsigned int inc = __atomic_load_n(&r->incarnation, __ATOMIC_SEQ_CST);
	bool queued = false;

	if (__atomic_load_n(&r->dereg_claimed, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&r->valid, __ATOMIC_SEQ_CST) || !idle(r))
		return;
	uhmm_mutex_lock(&rc->dead_lock);
	if (__atomic_load_n(&r->incarnation, __ATOMIC_RELAXED) == inc &&
	    claim(r)) {
		r->next = rc->dead;
		rc->dead = r;
		queued = true;
	}
	uhmm_mutex_unlock(&rc->dead_lock);
	if (queued)
		pthread_cond_signal(&rc->dead_cond);
}

/* Under rc->lock: a claimed region off the worker's queue, or NULL. */
static struct region *dequeue_dead_locked(struct uhmm_rcache *rc)
{
	struct region *r;

	uhmm_lock_assert_held(&rc->lock);
	uhmm_mutex_lock(&rc->dead_lock);
	r = rc->dead;
	if (r)
		rc->dead = r->next;
	uhmm_mutex_unlock(&rc->dead_lock);
	return r;
}

/* Drop a hold; whoever leaves a dead region without holders queues it. */
static void hold_drop(struct hold *h)
{
	__atomic_sub_fetch(&h->count, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&h->valid, __ATOMIC_SEQ_CST))
		queue_dead(region_of_hold(h));
}

/*
 * Mark r dead; false if it was already. Under r->lock. The region's
 * 'valid' says who killed it; the copies, cleared after it here and set
 * by open_to_hits(), are what hits check: each shard is its own Dekker
 * pair (its copy, its count), and idle() reads every count after every
 * copy went.
 */
static bool mark_dead(struct region *r)
{
	if (!__atomic_exchange_n(&r->valid, 0, __ATOMIC_SEQ_CST))
		return false;
	for (unsigned int s = 0; s < r->rc->nshards; s++)
		__atomic_store_n(&hold_of(r, s)->valid, 0, __ATOMIC_SEQ_CST);
	return true;
}

/*
 * Let hits have r, committed into the index, unless it died meanwhile.
 * Not before: until the commit decided that this miss's region is the
 * one kept, a lockless reader that a stale link led to r (its memory is
 * reused) must not be able to hold it - the loser of two misses retires
 * its region at once (get_miss()).
 */
static void open_to_hits(struct region *r)
{
	uhmm_mutex_lock(&r->lock);
	if (__atomic_load_n(&r->valid, __ATOMIC_SEQ_CST))
		for (unsigned int s = 0; s < r->rc->nshards; s++)
			__atomic_store_n(&hold_of(r, s)->valid, 1,
					 __ATOMIC_SEQ_CST);
	uhmm_mutex_unlock(&r->lock);
}

static bool region_invalidate(struct uhmm_interval_notifier *sub,
			      const struct uhmm_notifier_range *range,
			      unsigned long cur_seq)
{
	struct region *r = region_of_sub(sub);
	bool killed;

	/*
	 * A protection change moves no page, and the registration pins its
	 * pages (ops->reg pins). Fork, which reports one over the private
	 * writable mappings as it write-protects them for copy-on-write,
	 * leaves the parent's pinned pages in place: copy_present_ptes()
	 * finds folio_needs_cow_for_dma() (folio_maybe_dma_pinned() once
	 * the mm has pinned anything), so folio_try_dup_anon_rmap_ptes()
	 * fails and copy_present_page() gives the CHILD a copy at once; the
	 * parent's page stays mapped, exclusive and writable. A pin taken
	 * after fork unshares a page still shared first (GUP's
	 * FAULT_FLAG_UNSHARE), and GUP and fork exclude each other
	 * (mmap_lock, write_protect_seq), so a registration in progress is
	 * right too: no set_seq either, it need not retry.
	 */
	if (range->event == UHMM_EVENT_PROTECTION)
		return true;

	uhmm_mutex_lock(&r->lock);
	uhmm_interval_set_seq(sub, cur_seq);
	killed = mark_dead(r);
	uhmm_mutex_unlock(&r->lock);
	if (!killed)
		return true;
	/* Counted before the worker can deregister it: the stats never show
	 * the deregistration of an invalidation they do not count. */
	__atomic_fetch_add(&r->rc->invalidations, 1, __ATOMIC_RELAXED);
	/* No retirement here: the dispatcher must not wait for a device,
	 * nor for rc->lock. */
	queue_dead(r);	/* if no one holds it */
	return true;
}

static const struct uhmm_interval_notifier_ops region_ops = {
	.invalidate = region_invalidate,
};

/* ---- region memory ---- */

static struct region *region_alloc_locked(struct uhmm_rcache *rc)
{
	struct region *r = rc->free;

	uhmm_lock_assert_held(&rc->lock);
	if (!r) {
		size_t size = sizeof(struct slab) +
			      SLAB_REGIONS * rc->region_size;
		struct slab *s = uhmm_aligned_alloc(CACHELINE, size);

		if (!s)
			return NULL;
		memset(s, 0, size);
		s->next = rc->slabs;
		rc->slabs = s;
		for (int i = SLAB_REGIONS - 1; i >= 0; i--) {
			r = slab_region(rc, s, i);
			r->rc = rc;
			for (unsigned int sh = 0; sh < rc->nshards; sh++) {
				hold_of(r, sh)->shard = sh;
				hold_of(r, sh)->rc = rc;
			}
			r->dereg_claimed = 1;	/* not live: no one claims */
			uhmm_mutex_init(&r->lock);
			r->next = rc->free;
			rc->free = r;
		}
		r = rc->free;
	}
	rc->free = r->next;
	return r;
}

/*
 * Under rc->lock: move r's hits to the cache's count. Done as r leaves the
 * index, where the stats stop finding it, so they never count fewer hits
 * than before, and again as it is freed.
 */
static void collect_hits_locked(struct uhmm_rcache *rc, struct region *r)
{
	uhmm_lock_assert_held(&rc->lock);
	for (unsigned int s = 0; s < rc->nshards; s++)
		rc->retired_hits += __atomic_exchange_n(&hold_of(r, s)->hits,
							0, __ATOMIC_RELAXED);
}

/* Under rc->lock, once r is out of the index and has no notifier. */
static void region_free_locked(struct uhmm_rcache *rc, struct region *r)
{
	uhmm_lock_assert_held(&rc->lock);

	/*
	 * Readers still looking at r see a new incarnation and let go, and
	 * so does a claim still on its way for this one (queue_dead), which
	 * reads it under dead_lock.
	 */
	uhmm_mutex_lock(&rc->dead_lock);
	__atomic_fetch_add(&r->incarnation, 1, __ATOMIC_SEQ_CST);
	uhmm_mutex_unlock(&rc->dead_lock);
	for (unsigned int s = 0; s < rc->nshards; s++)
		__atomic_fetch_add(&hold_of(r, s)->incarnation, 1,
				   __ATOMIC_SEQ_CST);
	collect_hits_locked(rc, r);	/* of readers that came late */
	r->next = rc->free;
	rc->free = r;
}

/* ---- the index ---- */

static struct region **bucket(const struct uhmm_rcache *rc,
			      unsigned long start)
{
	/* Fibonacci hashing of the page number. */
	unsigned long page = start >> rc->page_shift;

	return &rc->buckets[(page * 0x9e3779b97f4a7c15UL) >>
			    (64 - rc->hash_bits)];
}

/* Under rc->lock: r, registered and valid or dead, into the index. */
static void index_locked(struct uhmm_rcache *rc, struct region *r)
{
	struct region **b = bucket(rc, r->start);

	uhmm_lock_assert_held(&rc->lock);
	uhmm_itree_insert(&rc->tree, &r->node);

	STORE(r->hnext, *b);
	__atomic_store_n(b, r, __ATOMIC_RELEASE);

	/* Just behind the hand: the last the hand reaches. */
	if (!rc->hand) {
		r->clock_prev = r->clock_next = r;
		rc->hand = r;
	} else {
		r->clock_next = rc->hand;
		r->clock_prev = rc->hand->clock_prev;
		r->clock_prev->clock_next = r;
		rc->hand->clock_prev = r;
	}
	rc->nindexed++;
}

/*
 * Under rc->lock: r out of the index, counted as leaving until its dereg
 * returned. A reader standing on r still finds the rest of its chain
 * through r->hnext, which stays as it was.
 */
static void unindex_locked(struct uhmm_rcache *rc, struct region *r)
{
	struct region **link = bucket(rc, r->start);

	uhmm_lock_assert_held(&rc->lock);
	uhmm_itree_remove(&rc->tree, &r->node);

	while (*link != r)
		link = &(*link)->hnext;
	STORE(*link, r->hnext);

	if (r->clock_next == r) {
		rc->hand = NULL;
	} else {
		if (rc->hand == r)
			rc->hand = r->clock_next;
		r->clock_prev->clock_next = r->clock_next;
		r->clock_next->clock_prev = r->clock_prev;
	}
	rc->nindexed--;
	rc->nleaving++;
	collect_hits_locked(rc, r);
}

/* ---- lookup ---- */

static bool covers(unsigned long start, unsigned long end, unsigned int acc,
		   unsigned long rstart, unsigned long rend, unsigned int racc)
{
	return rstart <= start && end <= rend && (racc & acc) == acc;
}

static bool hold_covers(const struct hold *h, unsigned long start,
			unsigned long end, unsigned int access)
{
	unsigned long addr = (unsigned long)LOAD(h->pub.addr);

	return covers(start, end, access, addr, addr + LOAD(h->pub.len),
		      LOAD(h->pub.access));
}

/*
 * Hold r on shard if it is valid and covers the request; its hold, or
 * NULL. r may be anything a lockless reader found (the index's comment):
 * what it reads after the hold, in the incarnation it saw on both sides
 * of 'valid', is the region's. All of it on the hold's line.
 */
static inline __attribute__((always_inline)) struct hold *
try_hold(struct region *r, unsigned long start,
			     unsigned long end, unsigned int access,
			     unsigned int shard)
{
	struct hold *h = hold_of(r, shard);
	unsigned int inc = __atomic_load_n(&h->incarnation, __ATOMIC_SEQ_CST);

	__atomic_fetch_add(&h->count, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&h->valid, __ATOMIC_SEQ_CST) &&
	    __atomic_load_n(&h->incarnation, __ATOMIC_SEQ_CST) == inc &&
	    hold_covers(h, start, end, access))
		return h;
	hold_drop(h);
	return NULL;
}

/*
 * A hit: count it (plain relaxed stores: a locked add would double the
 * cost of a hit; two threads of one shard may lose a count), and tell the
 * clock, writing the shared line only when the hand cleared the bit.
 */
static void hit(struct hold *h)
{
	STORE(h->hits, LOAD(h->hits) + 1);
	if (!LOAD(h->referenced))
		STORE(h->referenced, 1);
}

struct lookup {
	unsigned long start, end;
	unsigned int access, shard;
	struct hold *found;
};

static bool lookup_match(struct uhmm_itree_node *n, void *arg)
{
	struct lookup *l = arg;

	l->found = try_hold(region_of_node(n), l->start, l->end, l->access,
			    l->shard);
	return l->found != NULL;
}

/*
 * Without rc->lock: a held region of the hash starting at the request's
 * page and covering it, or NULL. Inlined into the hit path.
 */
static inline __attribute__((always_inline)) struct hold *
lookup_hash(struct uhmm_rcache *rc, const struct lookup *l)
{
	unsigned long page = l->start & rc->page_mask;
	struct region *r = __atomic_load_n(bucket(rc, page), __ATOMIC_ACQUIRE);

	for (int steps = 0; r && steps < CHAIN_STEPS; steps++) {
		struct hold *h = hold_of(r, l->shard);

		if ((unsigned long)LOAD(h->pub.addr) == page) {
			h = try_hold(r, l->start, l->end, l->access, l->shard);
			if (h)
				return h;
		}
		r = __atomic_load_n(&r->hnext, __ATOMIC_ACQUIRE);
	}
	return NULL;
}

/* Under rc->lock: the same, missing nothing the index holds. */
static struct hold *lookup_locked(struct uhmm_rcache *rc, struct lookup *l)
{
	struct uhmm_itree_node *n;

	uhmm_lock_assert_held(&rc->lock);
	for (n = uhmm_itree_first(&rc->tree, l->start, l->end - 1); n;
	     n = uhmm_itree_next(n, l->start, l->end - 1))
		if (lookup_match(n, l))
			return l->found;
	return NULL;
}

/* ---- retiring ---- */

/* A registration no region was counted for (a miss's retry). */
static void device_dereg(struct uhmm_rcache *rc, uint64_t handle)
{
	rc->ops->dereg(rc->dev, handle);
	__atomic_fetch_add(&rc->deregistrations, 1, __ATOMIC_RELAXED);
}

/*
 * A claimed region out of the index (unindex_locked()): deregister it
 * and remove its notifier, under no lock (a device may block; removal
 * waits for a callback in progress, which takes no lock of ours but
 * r->lock and dead_lock), then free it.
 */
static void retire(struct uhmm_rcache *rc, struct region *r)
{
	size_t len = r->end - r->start;

	rc->ops->dereg(rc->dev, r->handle);
	uhmm_interval_notifier_remove(&r->sub);
	uhmm_mutex_lock(&rc->lock);
	/* One step for the stats: the region goes as its dereg is counted. */
	__atomic_fetch_add(&rc->deregistrations, 1, __ATOMIC_RELAXED);
	rc->nregions--;
	rc->nbytes -= len;
	rc->nleaving--;
	region_free_locked(rc, r);
	uhmm_mutex_unlock(&rc->lock);
	pthread_cond_broadcast(&rc->changed);
}

static void retire_list(struct uhmm_rcache *rc, struct region *list)
{
	while (list) {
		struct region *r = list;

		list = r->next;
		retire(rc, r);
	}
}

static void *worker_main(void *arg)
{
	struct uhmm_rcache *rc = arg;

	for (;;) {
		struct region *r;
		bool stop;

		uhmm_mutex_lock(&rc->dead_lock);
		while (!rc->dead && !rc->stop)
			uhmm_cond_wait(&rc->dead_cond, &rc->dead_lock);
		stop = !rc->dead;	/* stopping, and nothing left */
		uhmm_mutex_unlock(&rc->dead_lock);
		if (stop)
			return NULL;
		/*
		 * Off the queue only under rc->lock: a miss holding rc->lock
		 * must find every claimed region of the index on the queue,
		 * to retire it itself. A miss may have taken it meanwhile:
		 * then look again.
		 */
		uhmm_mutex_lock(&rc->lock);
		r = dequeue_dead_locked(rc);
		if (r)
			unindex_locked(rc, r);
		uhmm_mutex_unlock(&rc->lock);
		if (r)
			retire(rc, r);
	}
}

/* ---- misses ---- */

/* Was r hit since the hand last passed? And clear it. */
static bool referenced_clear(struct region *r)
{
	bool was = false;

	for (unsigned int s = 0; s < r->rc->nshards; s++) {
		struct hold *h = hold_of(r, s);

		if (LOAD(h->referenced)) {
			STORE(h->referenced, 0);
			was = true;
		}
	}
	return was;
}

/*
 * Under rc->lock: the CLOCK hand's next victim, a region no one holds:
 * dead (it can never be hit again: its invalidation or last put is
 * queueing it, or just did), or valid and not hit since the hand last
 * passed (the hand clears the bit of those that were). NULL if the hand
 * went round twice without one: every region is held. Each region the
 * hand passes is one a hit marked since, or a held one: amortised O(1)
 * per victim while few regions are held. The loads are hints:
 * make_room_locked() decides with mark_dead() and idle().
 */
static struct region *clock_victim_locked(struct uhmm_rcache *rc)
{
	uhmm_lock_assert_held(&rc->lock);

	for (size_t steps = 2 * rc->nindexed; steps && rc->hand; steps--) {
		struct region *r = rc->hand;

		rc->hand = r->clock_next;
		if (!idle(r))
			continue;
		if (!__atomic_load_n(&r->valid, __ATOMIC_RELAXED))
			return r;
		if (referenced_clear(r))
			continue;
		return r;
	}
	return NULL;
}

/*
 * Under rc->lock: choose regions to retire until one of len bytes fits,
 * take them out of the index and return them in *victims (through ->next)
 * for the caller to retire once it dropped the lock, before its ops->reg.
 * Each turn takes one region:
 *
 *  1. a dead region no one holds, from the worker's queue. Waiting for the
 *     worker instead is how the backlog grew without bound: with a slow
 *     dereg, invalidations kill regions faster than it retires them, and
 *     each miss registered anew past the limit;
 *  2. else the clock's victim: a dead region not queued yet (its
 *     invalidation or last put is on the way: whoever claims it first
 *     retires it, and a late claim is for an incarnation gone, see
 *     queue_dead), or an idle valid one (an eviction).
 *
 * False if there is none but other threads are retiring regions: the
 * caller waits for rc->changed and asks again (their deregs end; nothing
 * they do waits for this thread). Else true, with room or not: what is
 * left is held (or being registered). A miss never touches held regions
 * (their holders may be using the registration) and never waits for
 * them: a put may never come while the caller itself holds regions, and
 * nothing says which. The cache grows past its limits instead, by the
 * regions held and no more.
 */
static bool make_room_locked(struct uhmm_rcache *rc, size_t len,
			     struct region **victims)
{
	size_t mine = 0, mine_bytes = 0;	/* the victims taken here */

	uhmm_lock_assert_held(&rc->lock);
	for (*victims = NULL;;) {
		struct region *r;

		if (rc->nregions - mine + 1 <= rc->max_regions &&
		    rc->nbytes - mine_bytes + len <= rc->max_bytes)
			return true;
		r = dequeue_dead_locked(rc);
		if (!r) {
			r = clock_victim_locked(rc);
			if (!r)	/* all held, or others retiring */
				return rc->nleaving == mine;
			uhmm_mutex_lock(&r->lock);
			if (mark_dead(r))
				rc->evictions++;
			uhmm_mutex_unlock(&r->lock);
			/*
			 * A racing hit may hold it now (its put queues it),
			 * or someone claimed it first and queued it at once
			 * (the next turn takes it from the queue).
			 */
			if (!idle(r) || !claim(r))
				continue;
		}
		unindex_locked(rc, r);
		r->next = *victims;
		*victims = r;
		mine++;
		mine_bytes += r->end - r->start;
	}
}

/* Under rc->lock: is a miss registering a region that will serve l? */
static bool pending_covers_locked(struct uhmm_rcache *rc,
				  const struct lookup *l)
{
	uhmm_lock_assert_held(&rc->lock);
	for (const struct region *r = rc->pending; r; r = r->next)
		if (covers(l->start, l->end, l->access, r->start, r->end,
			   r->access))
			return true;
	return false;
}

static void pending_remove_locked(struct uhmm_rcache *rc, struct region *r)
{
	struct region **link = &rc->pending;

	uhmm_lock_assert_held(&rc->lock);
	while (*link != r)
		link = &(*link)->next;
	*link = r->next;
}

static void region_set_range(struct region *r, unsigned long start,
			     unsigned long end, unsigned int access)
{
	r->start = start;
	r->end = end;
	r->access = access;
	/* Atomic: a lockless tree walk may still read the old node. */
	STORE(r->node.start, start);
	STORE(r->node.last, end - 1);
}

/*
 * Register r, reserved by the caller for its range, and make it valid,
 * held once on shard - for the caller: hits cannot have it before the
 * commit (open_to_hits()). Under no lock of the cache.
 * Model (models/notifier.pml): device A's read_cycle(); a hit is its hit
 * step (stale_hit).
 */
static int region_register(struct uhmm_rcache *rc, struct region *r,
			   unsigned int shard)
{
	unsigned long start = r->start, end = r->end;
	unsigned int access = r->access;
	uint64_t handle;
	int ret;

	memset(&r->sub, 0, sizeof(r->sub));
	ret = uhmm_interval_notifier_insert(&r->sub, rc->mm, start,
					    end - start, &region_ops);
	if (ret)
		return ret;

	/*
	 * The driver loop: commit only what no invalidation collided with,
	 * and only pages seen in watched mappings before reg: a mapping
	 * created in a hole after insert armed the range sends no event,
	 * not even when it goes (uhmm_mm_check_armed()). If the check
	 * saw a hole and reg still succeeded, such a mapping may have come
	 * and gone in between: look again. A device that registers holes
	 * (pinning nothing) gets -EFAULT after HOLE_TRIES such tries in a
	 * row.
	 */
	for (int holes = 0;;) {
		unsigned long seq = uhmm_interval_read_begin(&r->sub);
		int armed = uhmm_mm_check_armed(&r->sub, start, end);

		if (armed == -EAGAIN)
			continue;	/* armed just now: look again */
		ret = armed == -ENOENT || armed == -ENOTTY ? 0 : armed;
		if (!ret)
			ret = rc->ops->reg(rc->dev, (void *)start, end - start,
					   access, &handle);
		if (!ret && armed == -ENOENT) {
			device_dereg(rc, handle);
			if (++holes < HOLE_TRIES)
				continue;
			ret = -EFAULT;
		}
		if (ret) {
			uhmm_interval_notifier_remove(&r->sub);
			return ret;
		}
		uhmm_mutex_lock(&r->lock);
		if (!uhmm_interval_read_retry(&r->sub, seq))
			break;
		uhmm_mutex_unlock(&r->lock);
		device_dereg(rc, handle);
	}
	r->handle = handle;
	for (unsigned int s = 0; s < rc->nshards; s++) {
		struct hold *h = hold_of(r, s);

		STORE(h->pub.addr, (void *)start);
		STORE(h->pub.len, end - start);
		STORE(h->pub.access, access);
		STORE(h->pub.handle, handle);
		STORE(h->referenced, 0);	/* a second chance is earned */
	}
	/* Add, not store: a reader that found the previous incarnation may
	 * be between its increment and its decrement. */
	__atomic_add_fetch(&hold_of(r, shard)->count, 1, __ATOMIC_SEQ_CST);
	/* Valid for the caller; hits see it once committed. */
	__atomic_store_n(&r->valid, 1, __ATOMIC_SEQ_CST);
	uhmm_mutex_unlock(&r->lock);
	return 0;
}

/*
 * A miss: register the request's pages as a new region. Under rc->lock
 * only to look again, to reserve the room and take victims, and to
 * commit; the device calls and the notifier's insert run outside it. A
 * miss that another miss's registration will serve waits for it rather
 * than register the same pages twice.
 * The region in l->found, held; a hit if the index had one after all.
 */
static int get_miss(struct uhmm_rcache *rc, struct lookup *l)
{
	unsigned long start = l->start & rc->page_mask;
	unsigned long end = (l->end + ~rc->page_mask) & rc->page_mask;
	struct region *victims = NULL, *r;
	struct hold *won;
	int ret;

	uhmm_mutex_lock(&rc->lock);
	for (;;) {
		if (lookup_locked(rc, l)) {
			uhmm_mutex_unlock(&rc->lock);
			retire_list(rc, victims);
			hit(l->found);
			return 0;
		}
		if (!pending_covers_locked(rc, l)) {
			if (make_room_locked(rc, end - start, &victims))
				break;
			/* Never wait with victims: two misses would wait
			 * for each other's. */
			if (victims) {
				uhmm_mutex_unlock(&rc->lock);
				retire_list(rc, victims);
				victims = NULL;
				uhmm_mutex_lock(&rc->lock);
				continue;
			}
		}
		uhmm_cond_wait(&rc->changed, &rc->lock);
	}
	r = region_alloc_locked(rc);
	if (r) {
		rc->nregions++;
		rc->nbytes += end - start;
		region_set_range(r, start, end, l->access);
		r->next = rc->pending;
		rc->pending = r;
	}
	uhmm_mutex_unlock(&rc->lock);
	/* Before reg: the device stays within the limits. */
	retire_list(rc, victims);
	if (!r)
		return -ENOMEM;

	ret = region_register(rc, r, l->shard);

	uhmm_mutex_lock(&rc->lock);
	pending_remove_locked(rc, r);
	won = ret ? NULL : lookup_locked(rc, l);
	if (ret) {
		rc->nregions--;
		rc->nbytes -= end - start;
		region_free_locked(rc, r);
	} else if (!won) {
		index_locked(rc, r);
		open_to_hits(r);
		rc->misses++;
		/* Claimable from here, once its holders let go. */
		__atomic_store_n(&r->dereg_claimed, 0, __ATOMIC_SEQ_CST);
		l->found = hold_of(r, l->shard);
	} else {
		/* A miss for a range covering this one committed first. */
		rc->nleaving++;
	}
	uhmm_mutex_unlock(&rc->lock);
	pthread_cond_broadcast(&rc->changed);
	if (ret || !won)
		return ret;

	/* Use the other region. r was never in the index, never open to
	 * hits and is still unclaimable: ours to retire. */
	uhmm_mutex_lock(&r->lock);
	mark_dead(r);
	uhmm_mutex_unlock(&r->lock);
	__atomic_sub_fetch(&hold_of(r, l->shard)->count, 1, __ATOMIC_SEQ_CST);
	retire(rc, r);
	hit(won);
	l->found = won;
	return 0;
}

static bool get_args_valid(const struct uhmm_rcache *rc, const void *addr,
			   size_t len, unsigned int access)
{
	unsigned long end;

	return addr && len && access &&
	       !(access & ~(UHMM_ACCESS_READ | UHMM_ACCESS_WRITE)) &&
	       !__builtin_add_overflow((unsigned long)addr, len, &end) &&
	       end <= rc->page_mask;
}

/* A get, once the events it must see have been dispatched. */
/* Not the hash's: a request from inside a region, or a miss. */
static __attribute__((noinline)) int get_slow(struct uhmm_rcache *rc,
					      struct lookup *l)
{
	if (uhmm_itree_find_lockless(&rc->tree, l->start, l->end - 1,
				     lookup_match, l)) {
		hit(l->found);
		return 0;
	}
	/* A miss may retire or evict a region, which removes its notifier:
	 * a callback cannot (-EDEADLK of uhmm_interval_notifier_remove()). */
	if (uhmm_in_callback())
		return -EDEADLK;
	return get_miss(rc, l);
}

static inline __attribute__((always_inline)) int
get_one(struct uhmm_rcache *rc, void *addr, size_t len, unsigned int access,
	struct uhmm_region **regionp)
{
	struct lookup l = {
		.start = (unsigned long)addr,
		.end = (unsigned long)addr + len,
		.access = access,
		.shard = this_shard(rc),
	};
	int ret;

	l.found = lookup_hash(rc, &l);
	if (__builtin_expect(l.found != NULL, 1)) {
		hit(l.found);
	} else {
		ret = get_slow(rc, &l);
		if (ret)
			return ret;
	}
	*regionp = &l.found->pub;
	return 0;
}

/*
 * get_one(), after a wait for the events that change the request. The
 * region found may be wider: if events already read change the rest of it
 * and are not dispatched yet, or were dispatched after the hold (it is
 * dead now), put it back, wait for every event read, and look again - as
 * a get did before it waited by range. A region handed out never has a
 * page that a change which returned before the get had changed.
 */
static int get_one_settled(struct uhmm_rcache *rc, void *addr, size_t len,
			   unsigned int access, struct uhmm_region **regionp)
{
	int ret = get_one(rc, addr, len, access, regionp);
	struct hold *h;

	if (ret)
		return ret;
	h = hold_of_pub(*regionp);
	if (!uhmm_mm_events_pending(rc->mm, (unsigned long)h->pub.addr,
				    (unsigned long)h->pub.addr + h->pub.len) &&
	    __atomic_load_n(&h->valid, __ATOMIC_SEQ_CST))
		return 0;
	hold_drop(h);
	uhmm_mm_wait_events(rc->mm, false, 0, ULONG_MAX, 0);
	return get_one(rc, addr, len, access, regionp);
}

int uhmm_rcache_get(struct uhmm_rcache *rc, void *addr, size_t len,
		    unsigned int access, struct uhmm_region **regionp)
{
	if (!rc || !regionp || !get_args_valid(rc, addr, len, access))
		return -EINVAL;
	if (uhmm_mm_forked(rc->mm))
		return -ECHILD;
	/* Unmaps of this range that returned before this get are dispatched
	 * first, and in strict mode those still running. */
	uhmm_mm_wait_events(rc->mm, rc->strict, (unsigned long)addr,
			    (unsigned long)addr + len, 0);
	return get_one_settled(rc, addr, len, access, regionp);
}

int uhmm_rcache_get_many(struct uhmm_rcache *rc, size_t n, void *const *addrs,
			 const size_t *lens, unsigned int access,
			 struct uhmm_region **regions)
{
	int ret = 0;
	size_t i;

	if (!rc || !n || !addrs || !lens || !regions)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!get_args_valid(rc, addrs[i], lens[i], access))
			return -EINVAL;
	if (uhmm_mm_forked(rc->mm))
		return -ECHILD;
	/* One wait (one probe in strict mode) for all of them. */
	uhmm_mm_wait_events(rc->mm, rc->strict, 0, ULONG_MAX, 0);
	for (i = 0; i < n && !ret; i++)
		ret = get_one(rc, addrs[i], lens[i], access, &regions[i]);
	if (ret) {
		/* All or nothing: put back what was taken. */
		for (i--; i-- > 0;)
			hold_drop(hold_of_pub(regions[i]));
	}
	return ret;
}

int uhmm_rcache_put(struct uhmm_rcache *rc, struct uhmm_region *region)
{
	struct hold *h;

	if (!rc || !region)
		return -EINVAL;
	h = hold_of_pub(region);
	/* Exact: the count is this shard's, where the get raised it. */
	if (h->rc != rc || __atomic_load_n(&h->count, __ATOMIC_RELAXED) <= 0)
		return -EINVAL;
	hold_drop(h);
	return 0;
}

/* ---- the cache ---- */

static unsigned int log2_ceil(unsigned long n)
{
	unsigned int bits = 0;

	while ((1UL << bits) < n)
		bits++;
	return bits;
}

int uhmm_rcache_create(struct uhmm_rcache **rcp, struct uhmm_mm *mm,
		       const struct uhmm_rcache_ops *ops, void *dev,
		       const struct uhmm_rcache_config *cfg)
{
	const unsigned int strictness = UHMM_RCACHE_STRICT | UHMM_RCACHE_RELAXED;
	unsigned int flags = cfg ? cfg->flags : 0;
	unsigned long buckets, page = (unsigned long)sysconf(_SC_PAGESIZE);
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	struct uhmm_rcache *rc;
	bool strict;
	int ret;

	if (!rcp || !mm || !ops || !ops->reg || !ops->dereg ||
	    (flags & ~strictness) || (flags & strictness) == strictness)
		return -EINVAL;
	strict = (flags & UHMM_RCACHE_STRICT) ||
		 (!(flags & UHMM_RCACHE_RELAXED) && mm->strict);
	/* A strict mm ran the self-test when it was opened. */
	if (strict && !mm->strict) {
		ret = uhmm_mm_strict_init(mm);
		if (ret)
			return ret;
	}
	rc = uhmm_aligned_alloc(CACHELINE, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	memset(rc, 0, sizeof(*rc));
	rc->mm = mm;
	rc->strict = strict;
	rc->ops = ops;
	rc->dev = dev;
	rc->max_regions = cfg && cfg->max_regions ? cfg->max_regions
						  : UHMM_RCACHE_DEFAULT_REGIONS;
	rc->max_bytes = cfg && cfg->max_bytes ? cfg->max_bytes
					      : UHMM_RCACHE_DEFAULT_BYTES;
	rc->page_mask = ~(page - 1);
	rc->page_shift = log2_ceil(page);
	rc->nshards = 1U << log2_ceil(cpus < 1 ? 1 : cpus > MAX_SHARDS
						       ? MAX_SHARDS : cpus);
	rc->region_size = sizeof(struct region) +
			  rc->nshards * sizeof(struct hold);
	/* Two buckets a region at the limit: chains of one or two. */
	buckets = rc->max_regions > MAX_BUCKETS / 2 ? MAX_BUCKETS
						    : 2 * rc->max_regions;
	rc->hash_bits = log2_ceil(buckets < MIN_BUCKETS ? MIN_BUCKETS
							: buckets);
	rc->buckets = uhmm_calloc(1UL << rc->hash_bits, sizeof(*rc->buckets));
	if (!rc->buckets) {
		free(rc);
		return -ENOMEM;
	}
	uhmm_mutex_init(&rc->lock);
	uhmm_mutex_init(&rc->dead_lock);
	pthread_cond_init(&rc->dead_cond, NULL);
	pthread_cond_init(&rc->changed, NULL);
	ret = -pthread_create(&rc->worker, NULL, worker_main, rc);
	if (ret) {
		pthread_cond_destroy(&rc->changed);
		pthread_cond_destroy(&rc->dead_cond);
		uhmm_mutex_destroy(&rc->dead_lock);
		uhmm_mutex_destroy(&rc->lock);
		free(rc->buckets);
		free(rc);
		return ret == -ENOMEM ? -ENOMEM : -EAGAIN;
	}
	*rcp = rc;
	return 0;
}

int uhmm_rcache_destroy(struct uhmm_rcache *rc)
{
	struct region *victims = NULL;
	struct uhmm_itree_node *n;
	struct slab *s;

	if (!rc)
		return -EINVAL;
	if (uhmm_in_callback())
		return -EDEADLK;	/* it removes notifiers */
	uhmm_mutex_lock(&rc->lock);
	for (n = uhmm_itree_first(&rc->tree, 0, ULONG_MAX); n;
	     n = uhmm_itree_next(n, 0, ULONG_MAX)) {
		if (!idle(region_of_node(n))) {
			uhmm_mutex_unlock(&rc->lock);
			return -EBUSY;
		}
	}
	uhmm_mutex_unlock(&rc->lock);

	/* The worker retires what is queued, then exits. */
	uhmm_mutex_lock(&rc->dead_lock);
	rc->stop = true;
	uhmm_mutex_unlock(&rc->dead_lock);
	pthread_cond_signal(&rc->dead_cond);
	pthread_join(rc->worker, NULL);

	/*
	 * An invalidation may still claim regions and queue them, until
	 * their notifiers are removed: claim each first. One already claimed
	 * is on the queue (claim and push are one step under dead_lock),
	 * and no one can queue it twice.
	 */
	uhmm_mutex_lock(&rc->lock);
	while ((n = uhmm_itree_first(&rc->tree, 0, ULONG_MAX))) {
		struct region *r = region_of_node(n);
		bool ours = claim(r);

		uhmm_mutex_lock(&r->lock);
		mark_dead(r);
		uhmm_mutex_unlock(&r->lock);
		unindex_locked(rc, r);
		if (ours) {
			r->next = victims;
			victims = r;
		}
	}
	for (struct region *r; (r = dequeue_dead_locked(rc));) {
		r->next = victims;
		victims = r;
	}
	uhmm_mutex_unlock(&rc->lock);
	retire_list(rc, victims);

	while ((s = rc->slabs)) {
		rc->slabs = s->next;
		for (int i = 0; i < SLAB_REGIONS; i++)
			uhmm_mutex_destroy(&slab_region(rc, s, i)->lock);
		free(s);
	}
	pthread_cond_destroy(&rc->dead_cond);
	pthread_cond_destroy(&rc->changed);
	uhmm_mutex_destroy(&rc->dead_lock);
	uhmm_mutex_destroy(&rc->lock);
	free(rc->buckets);
	free(rc);
	return 0;
}

int uhmm_rcache_stats(struct uhmm_rcache *rc, struct uhmm_rcache_stats *st)
{
	struct uhmm_itree_node *n;

	if (!rc || !st)
		return -EINVAL;
	uhmm_mutex_lock(&rc->lock);
	st->hits = rc->retired_hits;
	for (n = uhmm_itree_first(&rc->tree, 0, ULONG_MAX); n;
	     n = uhmm_itree_next(n, 0, ULONG_MAX))
		for (unsigned int s = 0; s < rc->nshards; s++)
			st->hits += LOAD(hold_of(region_of_node(n), s)->hits);
	st->misses = rc->misses;
	st->evictions = rc->evictions;
	st->regions = rc->nregions;
	st->bytes_registered = rc->nbytes;
	st->invalidations = __atomic_load_n(&rc->invalidations,
					    __ATOMIC_RELAXED);
	st->deregistrations = __atomic_load_n(&rc->deregistrations,
					      __ATOMIC_RELAXED);
	uhmm_mutex_unlock(&rc->lock);
	return 0;
}
