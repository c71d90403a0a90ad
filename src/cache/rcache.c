/* SPDX-License-Identifier: MIT */
/*
 * The registration cache.
 *
 * A region is one device registration of a page-aligned range plus the
 * interval notifier that mirrors it. Its life:
 *
 *   registering --commit--> valid --invalidate/evict--> dead --retire--> free
 *
 * registering  a miss, under rc->lock: insert the notifier, read_begin,
 *              ops->reg, and commit only if read_retry says no
 *              invalidation collided (else dereg and try again).
 * valid        handed out by get. Holders are counted in 'active'.
 * dead         'valid' went to 0 (an invalidation, or eviction). Holders
 *              keep using the registration; whoever sees (dead, no holder)
 *              first - the invalidation, an eviction, or the last put -
 *              claims it (dereg_claimed), for that incarnation only. A
 *              miss that claims it retires it at once; anyone else queues
 *              it for the worker, in the same step under dead_lock
 *              (queue_dead).
 * retire       ops->dereg, remove the notifier, take it out of the tree;
 *              the struct goes to the free list with a new incarnation.
 *              Done by the worker, by a miss that needs the room
 *              (make_room_locked), or by destroy; never on the event
 *              dispatcher: a device may block in dereg.
 *
 * Limits. Every region in the tree counts, valid or dead, and reg and
 * dereg happen only under rc->lock, so when rc->lock is free the device
 * has exactly rc->nregions registrations. A miss over a limit retires
 * dead regions no one holds and evicts idle valid ones itself; only held
 * regions (valid or dead) are left alone and can take the cache past its
 * limits. Dead regions alone never can: a slow dereg makes the worker
 * fall behind a stream of invalidations, and a miss that grew past them
 * instead of retiring them let the backlog grow without bound.
 *
 * Locks, outer first: rc->lock, then r->lock or dead_lock (never both).
 *
 * rc->lock     the tree, the counts, the free list. Held across ops->reg
 *              and ops->dereg (misses, the worker, destroy), so the device
 *              sees one call at a time, and across waits for invalidation
 *              windows (read_begin, notifier remove): no callback takes
 *              it.
 * r->lock      orders a commit against a zap (read_retry vs set_seq).
 * dead_lock    the queue of claimed dead regions, and the incarnation's
 *              moves. A region leaves the queue only under rc->lock, so a
 *              thread holding rc->lock finds every claimed region of the
 *              tree on it.
 *
 * The invalidate callback takes r->lock and dead_lock, never rc->lock, and
 * never calls the device: the dispatcher must not wait for a miss or a
 * device (a miss may wait for the dispatcher's window).
 *
 * The hit path takes no lock shared by threads. Each thread keeps a few
 * (region, incarnation) pairs it used. A hit raises the region's 'active'
 * and then checks that the incarnation still matches and 'valid' is still
 * 1, and the incarnation again (a claimed region may be retired and
 * registered anew in between); the invalidation clears 'valid' and then
 * reads 'active'. Both sides use sequentially consistent operations, so
 * at least one sees the other (the Dekker pattern): either the hit fails,
 * or the invalidation leaves the region to its holders. Region memory is
 * never returned to the system before destroy (type-stable, like
 * SLAB_TYPESAFE_BY_RCU), so a thread's stale pair can always be checked
 * safely. Before looking, a get waits for events already read from the
 * kernel (docs/design.md, invariant 8).
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

#define CACHELINE 64
#define SLAB_REGIONS 64
#define TLS_ENTRIES 8
#define HOLE_TRIES 16	/* region_create_locked(): see there */

struct region {
	/* Hot: written by every hit and put. */
	int active;			/* atomic: holders */
	int valid;			/* atomic: may be handed out */
	unsigned long incarnation;	/* atomic: bumped on retirement */
	unsigned long last_use;		/* relaxed: rc->epoch at last get */
	unsigned long hits;		/* atomic */
	int dereg_claimed;		/* atomic: one caller retires it */

	struct uhmm_region pub;		/* what get returns */
	struct uhmm_rcache *rc;
	struct uhmm_mutex lock;		/* orders commit against zap */
	struct uhmm_interval_notifier sub;
	struct uhmm_itree_node node;	/* [rc->lock] in rc->tree */
	struct region *next;		/* free list or dead queue */
} __attribute__((aligned(CACHELINE)));

struct slab {
	struct slab *next;
	struct region regions[SLAB_REGIONS];
};

struct uhmm_rcache {
	/* Read-mostly. */
	struct uhmm_mm *mm;
	const struct uhmm_rcache_ops *ops;
	void *dev;
	size_t max_regions, max_bytes;
	bool strict;			/* strict mode (uhmm.h) */
	unsigned long page_mask;
	unsigned long id;		/* names this cache in threads' caches */

	/* Advanced by misses, read by hits: its own line. */
	unsigned long epoch __attribute__((aligned(CACHELINE)));

	struct uhmm_mutex lock __attribute__((aligned(CACHELINE)));
	struct uhmm_itree tree;		/* [lock] registered, valid or dead */
	size_t nregions, nbytes;	/* [lock] in the tree */
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

/* The regions this thread used last, of one cache at a time. */
struct tls_entry {
	unsigned long start, end;
	unsigned int access;
	struct region *r;
	unsigned long incarnation;
};

static __thread struct {
	unsigned long rc_id;
	unsigned int next;
	struct tls_entry e[TLS_ENTRIES];
} tls __attribute__((tls_model("initial-exec")));

static unsigned long next_rcache_id = 1;	/* atomic */

#define region_of_sub(s) uhmm_container_of(s, struct region, sub)
#define region_of_node(n) uhmm_container_of(n, struct region, node)
#define region_of_pub(p) uhmm_container_of(p, struct region, pub)

/* ---- dead regions ---- */

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
 *   unheld      active == 0 (a holder from before the kill is seen);
 *
 * all in incarnation inc, which region_free_locked() moves on under dead_lock:
 * found unchanged under it, no new life can have cleared dereg_claimed.
 * Claim and push are one step under dead_lock, and a region leaves the
 * queue only under rc->lock: so a thread holding rc->lock finds every
 * claimed region of the tree on the queue.
 */
static void queue_dead(struct region *r)
{
	struct uhmm_rcache *rc = r->rc;
	unsigned long inc = __atomic_load_n(&r->incarnation, __ATOMIC_SEQ_CST);
	bool queued = false;

	if (__atomic_load_n(&r->dereg_claimed, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&r->valid, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&r->active, __ATOMIC_SEQ_CST))
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

/* Drop a hold; the last holder of a dead region queues it. */
static void hold_drop(struct region *r)
{
	if (__atomic_sub_fetch(&r->active, 1, __ATOMIC_SEQ_CST) == 0 &&
	    !__atomic_load_n(&r->valid, __ATOMIC_SEQ_CST))
		queue_dead(r);
}

/* Mark r dead; false if it was already. */
static bool mark_dead(struct region *r)
{
	return __atomic_exchange_n(&r->valid, 0, __ATOMIC_SEQ_CST);
}

/*
 * After mark_dead(): no holder? Both sides are sequentially consistent, so a
 * hit that raises 'active' after this load sees valid == 0 and lets go:
 * whoever then claims r may retire it.
 */
static bool idle(struct region *r)
{
	return !__atomic_load_n(&r->active, __ATOMIC_SEQ_CST);
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
	/* No retire_locked() here: the dispatcher must not wait for a
	 * device, nor for rc->lock. */
	queue_dead(r);	/* if no one holds it */
	__atomic_fetch_add(&r->rc->invalidations, 1, __ATOMIC_RELAXED);
	return true;
}

static const struct uhmm_interval_notifier_ops region_ops = {
	.invalidate = region_invalidate,
};

/* ---- region memory ---- */

static struct region *region_alloc(struct uhmm_rcache *rc)
{
	struct region *r = rc->free;

	if (!r) {
		struct slab *s = uhmm_aligned_alloc(CACHELINE, sizeof(*s));

		if (!s)
			return NULL;
		memset(s, 0, sizeof(*s));
		s->next = rc->slabs;
		rc->slabs = s;
		for (int i = SLAB_REGIONS - 1; i >= 0; i--) {
			r = &s->regions[i];
			r->rc = rc;
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

/* Under rc->lock, once r is out of the tree and has no notifier. */
static void region_free_locked(struct uhmm_rcache *rc, struct region *r)
{
	uhmm_lock_assert_held(&rc->lock);

	/*
	 * Stale thread entries see a new incarnation and let go, and so
	 * does a claim still on its way for this one (queue_dead), which
	 * reads it under dead_lock.
	 */
	uhmm_mutex_lock(&rc->dead_lock);
	__atomic_fetch_add(&r->incarnation, 1, __ATOMIC_SEQ_CST);
	uhmm_mutex_unlock(&rc->dead_lock);
	rc->retired_hits += __atomic_exchange_n(&r->hits, 0, __ATOMIC_RELAXED);
	r->next = rc->free;
	rc->free = r;
}

/* Under rc->lock: undo one ops->reg, and count it. */
static void device_dereg_locked(struct uhmm_rcache *rc, uint64_t handle)
{
	uhmm_lock_assert_held(&rc->lock);

	rc->ops->dereg(rc->dev, handle);
	__atomic_fetch_add(&rc->deregistrations, 1, __ATOMIC_RELAXED);
}

/*
 * Under rc->lock: deregister a claimed dead region and free it. The worker
 * and a miss (make_room) call it, one at a time: it is what keeps the
 * device's registrations equal to rc->nregions.
 */
static void retire_locked(struct uhmm_rcache *rc, struct region *r)
{
	uhmm_lock_assert_held(&rc->lock);

	device_dereg_locked(rc, r->pub.handle);
	/* Not from a callback, and no callback takes rc->lock: may wait. */
	uhmm_interval_notifier_remove(&r->sub);
	uhmm_itree_remove(&rc->tree, &r->node);
	rc->nregions--;
	rc->nbytes -= r->pub.len;
	region_free_locked(rc, r);
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
		 * Take it off the queue only under rc->lock: a miss holding
		 * rc->lock must find every claimed region still in the tree
		 * on the queue, to retire it itself. A miss may have taken
		 * it meanwhile: then look again.
		 */
		uhmm_mutex_lock(&rc->lock);
		r = dequeue_dead_locked(rc);
		if (r)
			retire_locked(rc, r);
		uhmm_mutex_unlock(&rc->lock);
	}
}

/* ---- lookup ---- */

static bool covers(unsigned long start, unsigned long end, unsigned int acc,
		   unsigned long rstart, unsigned long rend, unsigned int racc)
{
	return rstart <= start && end <= rend && (racc & acc) == acc;
}

/*
 * Hold r if it is still incarnation inc and valid. The incarnation is
 * read on both sides of 'valid': a region already claimed dead can be
 * retired and registered anew (for another range) between two loads, and
 * its new life's valid == 1 must not pass for inc's. Seen once on both
 * sides, the valid == 1 is inc's: a kill comes after it, so after our
 * raise, and whoever then looks for holders sees us.
 */
static bool try_hold(struct region *r, unsigned long inc)
{
	__atomic_fetch_add(&r->active, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->incarnation, __ATOMIC_SEQ_CST) == inc &&
	    __atomic_load_n(&r->valid, __ATOMIC_SEQ_CST) &&
	    __atomic_load_n(&r->incarnation, __ATOMIC_SEQ_CST) == inc)
		return true;
	hold_drop(r);
	return false;
}

/*
 * Plain relaxed stores, not read-modify-writes: a locked add here cost a
 * quarter of a hit. Two threads hitting one region at once may lose a
 * count; the statistic is exact otherwise.
 */
static void hit(struct uhmm_rcache *rc, struct region *r)
{
	__atomic_store_n(&r->last_use,
			 __atomic_load_n(&rc->epoch, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&r->hits,
			 __atomic_load_n(&r->hits, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
}

static void tls_remember(struct uhmm_rcache *rc, struct region *r)
{
	struct tls_entry *e;

	if (tls.rc_id != rc->id) {
		memset(&tls, 0, sizeof(tls));
		tls.rc_id = rc->id;
	}
	e = &tls.e[tls.next++ % TLS_ENTRIES];
	e->start = (unsigned long)r->pub.addr;
	e->end = e->start + r->pub.len;
	e->access = r->pub.access;
	e->r = r;
	e->incarnation = __atomic_load_n(&r->incarnation, __ATOMIC_RELAXED);
}

static struct region *tls_lookup(struct uhmm_rcache *rc, unsigned long start,
				 unsigned long end, unsigned int access)
{
	if (tls.rc_id != rc->id)
		return NULL;
	for (int i = 0; i < TLS_ENTRIES; i++) {
		struct tls_entry *e = &tls.e[i];

		if (e->r && covers(start, end, access, e->start, e->end,
				   e->access)) {
			if (try_hold(e->r, e->incarnation))
				return e->r;
			e->r = NULL;
		}
	}
	return NULL;
}

/* Under rc->lock: a valid region of the tree covering the request. */
static struct region *tree_lookup_locked(struct uhmm_rcache *rc,
					 unsigned long start, unsigned long end,
					 unsigned int access)
{
	struct uhmm_itree_node *n;

	uhmm_lock_assert_held(&rc->lock);
	for (n = uhmm_itree_first(&rc->tree, start, end - 1); n;
	     n = uhmm_itree_next(n, start, end - 1)) {
		struct region *r = region_of_node(n);

		if (covers(start, end, access, n->start, n->last + 1,
			   r->pub.access) &&
		    try_hold(r, __atomic_load_n(&r->incarnation,
						__ATOMIC_RELAXED)))
			return r;
	}
	return NULL;
}

/* ---- misses ---- */

/*
 * Under rc->lock: a region no one holds, to make room with. A dead one
 * first: it can never be hit again (it is here because its invalidation
 * or its last put is queueing it, or just did). Else the valid one used
 * least recently. NULL if every region is held. The loads are hints:
 * make_room_locked() decides with mark_dead() and idle().
 */
static struct region *lru_victim_locked(struct uhmm_rcache *rc)
{
	struct region *victim = NULL;
	struct uhmm_itree_node *n;

	uhmm_lock_assert_held(&rc->lock);
	for (n = uhmm_itree_first(&rc->tree, 0, ULONG_MAX); n;
	     n = uhmm_itree_next(n, 0, ULONG_MAX)) {
		struct region *r = region_of_node(n);

		if (__atomic_load_n(&r->active, __ATOMIC_RELAXED))
			continue;
		if (!__atomic_load_n(&r->valid, __ATOMIC_RELAXED))
			return r;
		if (!victim || __atomic_load_n(&r->last_use, __ATOMIC_RELAXED) <
			       __atomic_load_n(&victim->last_use,
					       __ATOMIC_RELAXED))
			victim = r;
	}
	return victim;
}

/*
 * Under rc->lock: deregister regions until one of len bytes fits. Every
 * region in the tree counts, valid or dead, until it is retired, so the
 * device has exactly rc->nregions registrations whenever rc->lock is free.
 * Each turn frees one region, in this thread:
 *
 *  1. a dead region no one holds, from the worker's queue. Waiting for the
 *     worker instead is how the backlog grew without bound: with a slow
 *     dereg, invalidations kill regions faster than it retires them, and
 *     each miss registered anew past the limit;
 *  2. else a region no one holds: a dead one not queued yet (its
 *     invalidation or last put is on the way: whoever claims it first
 *     retires it, and a late claim is for an incarnation gone, see
 *     queue_dead), or the valid one used least recently (an eviction).
 *
 * What is left is held: valid regions in use, and dead regions not yet
 * put. A miss never touches them (their holders may be using the
 * registration) and never waits for them: a put may never come while the
 * caller itself holds regions, and nothing says which. The cache grows
 * past its limits instead, by the regions held and no more.
 */
static void make_room_locked(struct uhmm_rcache *rc, size_t len)
{
	uhmm_lock_assert_held(&rc->lock);

	while (rc->nregions + 1 > rc->max_regions ||
	       rc->nbytes + len > rc->max_bytes) {
		struct region *r = dequeue_dead_locked(rc);

		if (!r) {
			r = lru_victim_locked(rc);
			if (!r)
				return;		/* all held: grow */
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
		retire_locked(rc, r);
	}
}

/* Under rc->lock: register [start, end) as a new region, held once. */
/* Model (models/notifier.pml): device A's read_cycle(); a hit is its hit
 * step (stale_hit). */
static int region_create_locked(struct uhmm_rcache *rc, unsigned long start,
				unsigned long end, unsigned int access,
				struct region **rp)
{
	struct region *r = region_alloc(rc);
	uint64_t handle;
	int ret;

	uhmm_lock_assert_held(&rc->lock);
	if (!r)
		return -ENOMEM;
	r->pub.addr = (void *)start;
	r->pub.len = end - start;
	r->pub.access = access;
	memset(&r->sub, 0, sizeof(r->sub));
	ret = uhmm_interval_notifier_insert(&r->sub, rc->mm, start,
					    end - start, &region_ops);
	if (ret)
		goto fail;

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
			ret = rc->ops->reg(rc->dev, r->pub.addr, r->pub.len,
					   access, &handle);
		if (!ret && armed == -ENOENT) {
			device_dereg_locked(rc, handle);
			if (++holes < HOLE_TRIES)
				continue;
			ret = -EFAULT;
		}
		if (ret) {
			uhmm_interval_notifier_remove(&r->sub);
			goto fail;
		}
		uhmm_mutex_lock(&r->lock);
		if (!uhmm_interval_read_retry(&r->sub, seq))
			break;
		uhmm_mutex_unlock(&r->lock);
		device_dereg_locked(rc, handle);
	}
	r->pub.handle = handle;
	/* Add, not store: a thread holding a stale entry for the previous
	 * incarnation may be between its increment and its decrement. */
	__atomic_add_fetch(&r->active, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->valid, 1, __ATOMIC_SEQ_CST);
	uhmm_mutex_unlock(&r->lock);
	/* Live from here: a holder (us) exists, so no one claims yet. */
	__atomic_store_n(&r->dereg_claimed, 0, __ATOMIC_SEQ_CST);

	r->node.start = start;
	r->node.last = end - 1;
	uhmm_itree_insert(&rc->tree, &r->node);
	rc->nregions++;
	rc->nbytes += r->pub.len;
	rc->misses++;
	__atomic_store_n(&rc->epoch, rc->epoch + 1, __ATOMIC_RELAXED);
	r->last_use = rc->epoch;
	*rp = r;
	return 0;
fail:
	region_free_locked(rc, r);
	return ret;
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
static int get_one(struct uhmm_rcache *rc, void *addr, size_t len,
		   unsigned int access, struct uhmm_region **regionp)
{
	unsigned long start = (unsigned long)addr, end = start + len;
	struct region *r;
	int ret;

	r = tls_lookup(rc, start, end, access);
	if (r) {
		hit(rc, r);
		*regionp = &r->pub;
		return 0;
	}

	/* A miss may retire or evict a region, which removes its notifier:
	 * a callback cannot (uhmm_interval_notifier_remove()'s -EDEADLK). */
	if (uhmm_in_callback())
		return -EDEADLK;
	start &= rc->page_mask;
	end = (end + ~rc->page_mask) & rc->page_mask;
	uhmm_mutex_lock(&rc->lock);
	r = tree_lookup_locked(rc, (unsigned long)addr,
			       (unsigned long)addr + len, access);
	if (r) {
		hit(rc, r);
	} else {
		make_room_locked(rc, end - start);
		ret = region_create_locked(rc, start, end, access, &r);
		if (ret) {
			uhmm_mutex_unlock(&rc->lock);
			return ret;
		}
	}
	uhmm_mutex_unlock(&rc->lock);
	tls_remember(rc, r);
	*regionp = &r->pub;
	return 0;
}

int uhmm_rcache_get(struct uhmm_rcache *rc, void *addr, size_t len,
		    unsigned int access, struct uhmm_region **regionp)
{
	if (!rc || !regionp || !get_args_valid(rc, addr, len, access))
		return -EINVAL;
	if (uhmm_mm_forked(rc->mm))
		return -ECHILD;
	/* Unmaps that returned before this get are dispatched first, and in
	 * strict mode those still running. */
	uhmm_mm_wait_events(rc->mm, rc->strict, 0);
	return get_one(rc, addr, len, access, regionp);
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
	uhmm_mm_wait_events(rc->mm, rc->strict, 0);
	for (i = 0; i < n && !ret; i++)
		ret = get_one(rc, addrs[i], lens[i], access, &regions[i]);
	if (ret) {
		/* All or nothing: put back what was taken. */
		for (i--; i-- > 0;)
			hold_drop(region_of_pub(regions[i]));
	}
	return ret;
}

int uhmm_rcache_put(struct uhmm_rcache *rc, struct uhmm_region *region)
{
	struct region *r;
	int active;

	if (!rc || !region)
		return -EINVAL;
	r = region_of_pub(region);
	active = __atomic_load_n(&r->active, __ATOMIC_RELAXED);
	if (r->rc != rc || active <= 0)
		return -EINVAL;
	hold_drop(r);
	return 0;
}

/* ---- the cache ---- */

int uhmm_rcache_create(struct uhmm_rcache **rcp, struct uhmm_mm *mm,
		       const struct uhmm_rcache_ops *ops, void *dev,
		       const struct uhmm_rcache_config *cfg)
{
	const unsigned int strictness = UHMM_RCACHE_STRICT | UHMM_RCACHE_RELAXED;
	unsigned int flags = cfg ? cfg->flags : 0;
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
	rc->page_mask = ~((unsigned long)sysconf(_SC_PAGESIZE) - 1);
	rc->id = __atomic_fetch_add(&next_rcache_id, 1, __ATOMIC_RELAXED);
	uhmm_mutex_init(&rc->lock);
	uhmm_mutex_init(&rc->dead_lock);
	pthread_cond_init(&rc->dead_cond, NULL);
	ret = -pthread_create(&rc->worker, NULL, worker_main, rc);
	if (ret) {
		free(rc);
		return ret == -ENOMEM ? -ENOMEM : -EAGAIN;
	}
	*rcp = rc;
	return 0;
}

int uhmm_rcache_destroy(struct uhmm_rcache *rc)
{
	struct uhmm_itree_node *n;
	struct slab *s;

	if (!rc)
		return -EINVAL;
	if (uhmm_in_callback())
		return -EDEADLK;	/* it removes notifiers */
	uhmm_mutex_lock(&rc->lock);
	for (n = uhmm_itree_first(&rc->tree, 0, ULONG_MAX); n;
	     n = uhmm_itree_next(n, 0, ULONG_MAX)) {
		if (__atomic_load_n(&region_of_node(n)->active,
				    __ATOMIC_SEQ_CST)) {
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

	uhmm_mutex_lock(&rc->lock);
	while ((n = uhmm_itree_first(&rc->tree, 0, ULONG_MAX))) {
		struct region *r = region_of_node(n);

		uhmm_mutex_lock(&r->lock);
		mark_dead(r);
		uhmm_mutex_unlock(&r->lock);
		retire_locked(rc, r);
	}
	uhmm_mutex_unlock(&rc->lock);

	while ((s = rc->slabs)) {
		rc->slabs = s->next;
		for (int i = 0; i < SLAB_REGIONS; i++)
			uhmm_mutex_destroy(&s->regions[i].lock);
		free(s);
	}
	pthread_cond_destroy(&rc->dead_cond);
	uhmm_mutex_destroy(&rc->dead_lock);
	uhmm_mutex_destroy(&rc->lock);
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
		st->hits += __atomic_load_n(&region_of_node(n)->hits,
					    __ATOMIC_RELAXED);
	st->misses = rc->misses;
	st->evictions = rc->evictions;
	st->regions = rc->nregions;
	st->bytes_registered = rc->nbytes;
	uhmm_mutex_unlock(&rc->lock);
	st->invalidations = __atomic_load_n(&rc->invalidations,
					    __ATOMIC_RELAXED);
	st->deregistrations = __atomic_load_n(&rc->deregistrations,
					      __ATOMIC_RELAXED);
	return 0;
}
