/* SPDX-License-Identifier: MIT */
/*
 * uhmm as libfabric's memory monitor (include/uhmm_fabric.h).
 *
 * libfabric's MR cache calls a monitor's subscribe() after each
 * registration it caches, valid() at each hit, and unsubscribe() (from
 * 2.1 on) when an entry leaves; the monitor calls notify() when memory
 * changes, and libfabric uncaches what overlaps. Each subscribed range is
 * a uhmm subscription here; its callback is what calls notify().
 *
 * Locking. libfabric runs subscribe, unsubscribe and valid under one
 * process-wide mutex, mm_lock, and notify() takes it: so this file
 *   - never calls notify() from those three (it would deadlock);
 *   - never waits in them for anything that may be waiting for mm_lock:
 *     uhmm's dispatcher thread calls notify() from an invalidate callback,
 *     so they use only uhmm calls that never wait for a window (insert,
 *     uhmm_interval_read_try_begin(), uhmm_interval_notifier_remove_deferred());
 *   - relies on mm_lock for the table's structure: the hash and the
 *     subscription order change only in those three, so valid() reads them
 *     without a lock of its own. What runs concurrently with them - the
 *     callbacks and the done functions of deferred removals, on uhmm's
 *     dispatcher - only moves a range's state (atomic) and puts ranges on
 *     the reap list (under table.lock, which no one holds while waiting).
 *
 * A range's life (state, atomic):
 *
 *   FREE --subscribe--> LIVE --callback--> NOTIFYING --notify()--> NOTIFIED
 *                        |  \                  |                      |
 *              eviction  |   \ unsubscribe     | unsubscribe  removal done:
 *                        v    \                v (2.1, inside   reap list
 *                    EVICTING  `----------->  DEAD   notify())        |
 *                        |                     |                       v
 *                 removal done: notify(),   removal done         next subscribe
 *                 reap list                 --> FREE            or unsubscribe:
 *                                                              out of the table,
 *                                                                 --> FREE
 *
 * The callback removes its own subscription (deferred) right after
 * notify() returned: notify() took mm_lock, so no valid() that saw the
 * range LIVE is still running, and none that starts sees it LIVE - none
 * touches the subscription any more.
 *
 * valid() answers yes only for a LIVE range whose subscription has seen
 * no change: no callback ran, no event that changes it is read and not yet
 * dispatched (uhmm_interval_read_try_begin(), which covers the gap between
 * the kernel releasing an unmapping thread and uhmm's callback), and no
 * range subscribed with the same address and length is being notified or
 * evicted. A range leaves the table (reap, under mm_lock) only once its
 * notify() has returned, so until then valid() says no for its address
 * and length, whatever other cache subscribed them since: an evicted
 * range is no longer watched, and the entry it stands for must not be
 * vouched for by another's subscription.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_ext.h>

#include "uhmm_fabric.h"

#define DEFAULT_MAX_RANGES 65536
#define MAX_MAX_RANGES (1u << 24)

enum range_state {
	FREE,
	LIVE,		/* subscribed, watched, in the order list */
	NOTIFYING,	/* its callback is calling notify() */
	EVICTING,	/* its removal is deferred; done calls notify() */
	NOTIFIED,	/* notify() returned; its removal is deferred, then
			 * it waits on the reap list */
	DEAD,		/* out of the table; its removal is deferred */
};

struct range {
	/* What valid() reads first, in one cache line with sub's head. */
	uintptr_t addr;			/* libfabric's, exactly (the key) */
	size_t len;
	struct range *hnext;		/* [mm_lock] hash chain */
	unsigned long seq;		/* sub's seq when it was subscribed */
	unsigned int state;		/* atomic: enum range_state */
	bool ordered;			/* [mm_lock] on the order list */
	struct uhmm_interval_notifier sub;
	/* [mm_lock] ordered: the order list. [lock] the reap list, through
	 * reap_next; FREE: the free list (next). */
	struct range *prev, *next, *reap_next;
};

static struct fabric_monitor {
	struct fid_mem_monitor mon;	/* what libfabric holds */
	struct uhmm_mm *mm;
	unsigned long page;
	bool started;			/* [mm_state_lock] */

	struct range *ranges;		/* the table: nranges, never moved */
	size_t nranges, max_live;
	struct range **hash;		/* [mm_lock] nbuckets, a power of 2 */
	size_t nbuckets;
	/* [mm_lock] eviction candidates, oldest subscribed first: every
	 * LIVE range, and ranges that left LIVE on the dispatcher since
	 * eviction last looked (it drops them). */
	struct range order;

	pthread_mutex_t lock;		/* never held while waiting */
	struct range *free;		/* [lock] */
	struct range *reap;		/* [lock] NOTIFIED, to leave the hash */

	struct uhmm_fabric_stats stats;	/* atomic */
} *the_monitor;				/* [import_lock] */

static pthread_mutex_t import_lock = PTHREAD_MUTEX_INITIALIZER;

/* Inside subscribe, unsubscribe or valid: libfabric holds mm_lock. */
static __thread bool under_mm_lock;

#define range_of(s) ((struct range *)((char *)(s) - offsetof(struct range, sub)))
#define monitor_of(m) ((struct fabric_monitor *)(m))
#define count(fm, field) \
	__atomic_fetch_add(&(fm)->stats.field, 1, __ATOMIC_RELAXED)

static unsigned int state_of(const struct range *r)
{
	return __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
}

static void set_state(struct range *r, unsigned int state)
{
	__atomic_store_n(&r->state, state, __ATOMIC_RELEASE);
}

static bool move_state(struct range *r, unsigned int from, unsigned int to)
{
	return __atomic_compare_exchange_n(&r->state, &from, to, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static struct range **bucket(struct fabric_monitor *fm, uintptr_t addr,
			     size_t len)
{
	uint64_t h = ((uint64_t)addr ^ ((uint64_t)len << 29)) *
		     0x9e3779b97f4a7c15ULL;

	return &fm->hash[(h >> 32) & (fm->nbuckets - 1)];
}

static void order_del(struct range *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	r->ordered = false;
}

static void table_add(struct fabric_monitor *fm, struct range *r)
{
	struct range **b = bucket(fm, r->addr, r->len);

	r->hnext = *b;
	*b = r;
	r->prev = fm->order.prev;
	r->next = &fm->order;
	fm->order.prev->next = r;
	fm->order.prev = r;
	r->ordered = true;
}

static void table_del(struct fabric_monitor *fm, struct range *r)
{
	struct range **pp = bucket(fm, r->addr, r->len);

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	if (r->ordered)
		order_del(r);
}

/* r left LIVE: the caller moved its state from LIVE. */
static void live_dec(struct fabric_monitor *fm)
{
	__atomic_fetch_sub(&fm->stats.live, 1, __ATOMIC_RELAXED);
}

static void reap_add(struct fabric_monitor *fm, struct range *r)
{
	pthread_mutex_lock(&fm->lock);
	r->reap_next = fm->reap;
	fm->reap = r;
	pthread_mutex_unlock(&fm->lock);
}

static void free_range(struct fabric_monitor *fm, struct range *r)
{
	set_state(r, FREE);
	pthread_mutex_lock(&fm->lock);
	r->next = fm->free;
	fm->free = r;
	pthread_mutex_unlock(&fm->lock);
}

/* Tell libfabric; never from under mm_lock (it takes it). */
static void notify(struct fabric_monitor *fm, const struct range *r)
{
	if (under_mm_lock) {
		/* A design error, not a runtime condition: say so loudly
		 * rather than deadlock. */
		count(fm, notify_under_lock);
		return;
	}
	fm->mon.import_ops->notify(&fm->mon, (const void *)r->addr, r->len);
	count(fm, notified);
}

/* Done functions: on uhmm's dispatcher, no lock held. */
static void done_free(struct uhmm_interval_notifier *sub)
{
	free_range(the_monitor, range_of(sub));
}

/* Its subscription is out: the table's next subscribe frees it. */
static void done_reap(struct uhmm_interval_notifier *sub)
{
	reap_add(the_monitor, range_of(sub));
}

static void done_evicted(struct uhmm_interval_notifier *sub)
{
	struct fabric_monitor *fm = the_monitor;
	struct range *r = range_of(sub);

	notify(fm, r);
	set_state(r, NOTIFIED);
	reap_add(fm, r);
}

static bool invalidate(struct uhmm_interval_notifier *sub,
		       const struct uhmm_notifier_range *range,
		       unsigned long cur_seq)
{
	struct fabric_monitor *fm = the_monitor;
	struct range *r = range_of(sub);

	/*
	 * fork()'s write protection: a NIC registration pins its pages, and
	 * the kernel gives the child copies of pinned pages and leaves the
	 * parent's in place (uhmm.h, uhmm_mm_open()), so the registration
	 * stays right - and notify() there would run inside uhmm's fork
	 * handler. Nothing to do.
	 */
	if (range->event == UHMM_EVENT_PROTECTION)
		return true;
	/* notify() takes mm_lock: a window that may not sleep (libuhmm_hooks
	 * in the unmapping thread) is left to the kernel's event. */
	if (!uhmm_range_blockable(range))
		return false;
	uhmm_interval_set_seq(sub, cur_seq);
	if (!move_state(r, LIVE, NOTIFYING))
		return true;	/* told already, or being evicted */
	live_dec(fm);
	notify(fm, r);
	/* unsubscribe() from inside notify() (libfabric >= 2.1) may have
	 * taken it (DEAD): then it is that call's. */
	if (move_state(r, NOTIFYING, NOTIFIED))
		uhmm_interval_notifier_remove_deferred(sub, done_reap);
	return true;
}

static const struct uhmm_interval_notifier_ops range_ops = {
	.invalidate = invalidate,
};

/* Under mm_lock: ranges notified and out of uhmm leave the table. */
static void reap(struct fabric_monitor *fm)
{
	struct range *r;

	pthread_mutex_lock(&fm->lock);
	r = fm->reap;
	fm->reap = NULL;
	pthread_mutex_unlock(&fm->lock);
	while (r) {
		struct range *next = r->reap_next;

		table_del(fm, r);
		free_range(fm, r);
		r = next;
	}
}

/*
 * Under mm_lock, the table full: the oldest LIVE range stops being
 * watched. It stays in the table, answering "stale", until libfabric has
 * heard of it (done_evicted) - once no callback can run for it.
 */
static void evict_oldest(struct fabric_monitor *fm)
{
	struct range *r;

	while ((r = fm->order.next) != &fm->order) {
		order_del(r);
		if (!move_state(r, LIVE, EVICTING))
			continue;	/* being notified: leaving anyway */
		live_dec(fm);
		count(fm, evicted);
		uhmm_interval_notifier_remove_deferred(&r->sub, done_evicted);
		return;
	}
}

static struct range *range_alloc(struct fabric_monitor *fm)
{
	struct range *r;

	pthread_mutex_lock(&fm->lock);
	r = fm->free;
	if (r)
		fm->free = r->next;
	pthread_mutex_unlock(&fm->lock);
	return r;
}

static int fabric_subscribe(struct fid_mem_monitor *mon, const void *addr,
			    size_t len)
{
	struct fabric_monitor *fm = monitor_of(mon);
	uintptr_t start = (uintptr_t)addr & ~(fm->page - 1);
	uintptr_t end;
	struct range *r;
	int ret;

	if (!len || __builtin_add_overflow((uintptr_t)addr, len, &end))
		return -FI_EINVAL;
	end = (end + fm->page - 1) & ~(fm->page - 1);
	under_mm_lock = true;
	reap(fm);
	if (__atomic_load_n(&fm->stats.live, __ATOMIC_RELAXED) >= fm->max_live)
		evict_oldest(fm);
	r = range_alloc(fm);
	if (!r) {
		/* Every spare range waits for the dispatcher. */
		ret = -FI_ENOMEM;
		goto refused;
	}
	r->addr = (uintptr_t)addr;
	r->len = len;
	/*
	 * The registration was made before this call; uhmm refuses memory
	 * unmapped since (REQUIRE_MAPPED), and a range an invalidation is
	 * running over (its notify() may not have reached this cache yet).
	 */
	ret = uhmm_interval_notifier_insert_flags(&r->sub, fm->mm, start,
						  end - start, &range_ops,
						  UHMM_INSERT_REQUIRE_MAPPED);
	if (ret) {
		free_range(fm, r);
		ret = ret == -EAGAIN ? -FI_EAGAIN : -FI_EFAULT;
		goto refused;
	}
	if (uhmm_interval_read_try_begin(&r->sub, &r->seq)) {
		set_state(r, DEAD);
		uhmm_interval_notifier_remove_deferred(&r->sub, done_free);
		ret = -FI_EAGAIN;
		goto refused;
	}
	set_state(r, LIVE);
	table_add(fm, r);
	count(fm, live);
	count(fm, subscribed);
	under_mm_lock = false;
	return 0;

refused:
	count(fm, refused);
	under_mm_lock = false;
	return ret;
}

static void fabric_unsubscribe(struct fid_mem_monitor *mon, const void *addr,
			       size_t len)
{
	struct fabric_monitor *fm = monitor_of(mon);
	struct range *r, *found = NULL;

	under_mm_lock = true;
	count(fm, unsubscribed);
	/* One entry leaves per call: a LIVE range of that key first; else
	 * one being notified (this call comes from inside its notify()). */
	for (r = *bucket(fm, (uintptr_t)addr, len); r; r = r->hnext) {
		if (r->addr != (uintptr_t)addr || r->len != len)
			continue;
		if (move_state(r, LIVE, DEAD)) {
			live_dec(fm);
			found = r;
			break;
		}
	}
	for (r = *bucket(fm, (uintptr_t)addr, len); r && !found; r = r->hnext)
		if (r->addr == (uintptr_t)addr && r->len == len &&
		    move_state(r, NOTIFYING, DEAD))
			found = r;
	if (found) {
		table_del(fm, found);
		uhmm_interval_notifier_remove_deferred(&found->sub, done_free);
	}
	reap(fm);
	under_mm_lock = false;
}

static bool fabric_valid(struct fid_mem_monitor *mon, const void *addr,
			 size_t len)
{
	struct fabric_monitor *fm = monitor_of(mon);
	bool live = false;
	struct range *r;

	for (r = *bucket(fm, (uintptr_t)addr, len); r; r = r->hnext) {
		unsigned int state = state_of(r);
		unsigned long seq;

		/* Told already: libfabric uncached its entries then. */
		if (r->addr != (uintptr_t)addr || r->len != len ||
		    state == NOTIFIED)
			continue;
		if (state != LIVE ||
		    uhmm_interval_read_try_begin(&r->sub, &seq) ||
		    seq != r->seq)
			goto stale;
		live = true;
	}
	if (live)
		return true;
stale:
	count(fm, valid_false);
	return false;
}

static int fabric_start(struct fid_mem_monitor *mon)
{
	monitor_of(mon)->started = true;
	return 0;
}

static void fabric_stop(struct fid_mem_monitor *mon)
{
	monitor_of(mon)->started = false;
}

static struct fi_ops_mem_monitor monitor_ops = {
	.size = sizeof(struct fi_ops_mem_monitor),
	.start = fabric_start,
	.stop = fabric_stop,
	.subscribe = fabric_subscribe,
	.unsubscribe = fabric_unsubscribe,
	.valid = fabric_valid,
};

static int max_ranges(size_t *max)
{
	const char *s = getenv("UHMM_FABRIC_MAX_RANGES");
	unsigned long v;
	char *end;

	*max = DEFAULT_MAX_RANGES;
	if (!s)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > MAX_MAX_RANGES)
		return -EINVAL;
	*max = v;
	return 0;
}

static void monitor_free(struct fabric_monitor *fm)
{
	pthread_mutex_destroy(&fm->lock);
	free(fm->hash);
	free(fm->ranges);
	free(fm);
}

static int monitor_alloc(struct fabric_monitor **fmp)
{
	struct fabric_monitor *fm;
	size_t max;
	int ret = max_ranges(&max);

	if (ret)
		return ret;
	fm = calloc(1, sizeof(*fm));
	if (!fm)
		return -ENOMEM;
	fm->page = (unsigned long)sysconf(_SC_PAGESIZE);
	fm->max_live = max;
	/* Spares for ranges whose removal waits for the dispatcher. */
	fm->nranges = max + max / 4 + 64;
	for (fm->nbuckets = 64; fm->nbuckets < 2 * max;)
		fm->nbuckets *= 2;
	fm->ranges = calloc(fm->nranges, sizeof(*fm->ranges));
	fm->hash = calloc(fm->nbuckets, sizeof(*fm->hash));
	pthread_mutex_init(&fm->lock, NULL);
	if (!fm->ranges || !fm->hash) {
		monitor_free(fm);
		return -ENOMEM;
	}
	for (size_t i = fm->nranges; i-- > 0;) {
		fm->ranges[i].next = fm->free;
		fm->free = &fm->ranges[i];
	}
	fm->order.prev = fm->order.next = &fm->order;
	fm->mon.fid.fclass = FI_CLASS_MEM_MONITOR;
	fm->mon.export_ops = &monitor_ops;
	*fmp = fm;
	return 0;
}

int uhmm_fabric_import(void)
{
	struct fabric_monitor *fm;
	int ret;

	if (fi_version() < FI_VERSION(1, 13))
		return -ENOSYS;
	/* libfabric would prefer it, and never call this monitor. */
	if (getenv("FI_MR_CACHE_MONITOR"))
		return -EBUSY;
	pthread_mutex_lock(&import_lock);
	if (the_monitor) {
		ret = -EBUSY;
		goto out;
	}
	ret = monitor_alloc(&fm);
	if (ret)
		goto out;
	ret = uhmm_mm_open(&fm->mm, 0);
	if (ret) {
		monitor_free(fm);
		goto out;
	}
	/* Callbacks find it here; none runs before a subscribe. */
	the_monitor = fm;
	ret = fi_import(FI_VERSION(1, 13), "mr_cache", NULL, 0, 0,
			&fm->mon.fid, NULL);
	if (ret) {
		the_monitor = NULL;
		uhmm_mm_close(fm->mm);
		monitor_free(fm);
		ret = ret == -FI_EBUSY ? -EBUSY : ret;
	}
out:
	pthread_mutex_unlock(&import_lock);
	return ret;
}

int uhmm_fabric_close(void)
{
	struct fabric_monitor *fm;
	int ret = 0;

	pthread_mutex_lock(&import_lock);
	fm = the_monitor;
	if (!fm) {
		ret = -ENOENT;
		goto out;
	}
	if (__atomic_load_n(&fm->started, __ATOMIC_ACQUIRE)) {
		ret = -EBUSY;
		goto out;
	}
	/* No cache runs: no subscribe, valid or unsubscribe any more. A
	 * range that left LIVE has its removal under way. */
	for (size_t i = 0; i < fm->nranges; i++) {
		struct range *r = &fm->ranges[i];

		if (move_state(r, LIVE, DEAD))
			uhmm_interval_notifier_remove(&r->sub);
	}
	/* Deferred removals finish on the dispatcher (an eviction's
	 * notify() among them, still imported): wait for them. */
	uhmm_mm_sync(fm->mm);
	fi_close(&fm->mon.fid);
	uhmm_mm_close(fm->mm);
	the_monitor = NULL;
	monitor_free(fm);
out:
	pthread_mutex_unlock(&import_lock);
	return ret;
}

int uhmm_fabric_stats(struct uhmm_fabric_stats *stats)
{
	struct fabric_monitor *fm;
	int ret = 0;

	if (!stats)
		return -EINVAL;
	pthread_mutex_lock(&import_lock);
	fm = the_monitor;
	if (!fm) {
		ret = -ENOENT;
		goto out;
	}
#define LOAD(field) stats->field = \
	__atomic_load_n(&fm->stats.field, __ATOMIC_RELAXED)
	LOAD(subscribed);
	LOAD(refused);
	LOAD(live);
	LOAD(notified);
	LOAD(evicted);
	LOAD(valid_false);
	LOAD(unsubscribed);
	LOAD(notify_under_lock);
#undef LOAD
out:
	pthread_mutex_unlock(&import_lock);
	return ret;
}
