/* SPDX-License-Identifier: MIT */
/*
 * Torture test of the interval-notifier core: many threads run the driver
 * protocol of uhmm.h against invalidations, inserts and removes, and every
 * translation a device holds is checked against the truth.
 *
 * The address space is simulated (UHMM_MM_NO_MONITOR, explicit windows):
 * NPAGES pages from BASE, and the truth is gen[NPAGES], one generation
 * counter per page. "Translating" a page means reading its gen.
 *
 *   invalidators  do what the kernel does: open a window on a random range
 *                 (uhmm_mm_invalidate_start, which runs the callbacks that
 *                 zap the mirrors), then, inside the window, change the
 *                 "page tables" by bumping gen[] of every page in the range,
 *                 then close it. Some windows are non-blocking and some of
 *                 their callbacks refuse: -EAGAIN, the window is already
 *                 closed, and nothing changed (no bump, no _end).
 *   devices       embed a subscription, a lock and a mirror: per page
 *                 {present, gen}. The callback locks, set_seq()s, zaps.
 *   readers       run the full read_begin / translate / lock / read_retry /
 *                 commit loop on random live devices.
 *   churner       inserts devices on random ranges and removes them.
 *
 * What it proves. The invariant checked is exact, not statistical:
 *
 *	under a device's lock, every present mirror entry of page p holds
 *	the current gen[p].
 *
 * Why it must hold: gen[p] is bumped only inside a window W, after W's
 * callbacks returned, and W calls every device covering p (a device that W
 * cannot call - inserted while W was open - starts out colliding, so its
 * read_begin() waits until W has closed and its bump is done). That
 * callback zapped p under the device lock. So a present entry with an old
 * gen would have to be committed after the zap, from a read of gen[p]
 * taken before the bump. The commit is under the device lock after the
 * zap, so read_retry() sees W's seq in the subscription; it could still say
 * "no retry" only if read_begin() had returned that same seq (or a later
 * one), which it does only once the collision containing W is over - W
 * closed, the bump done before the read. So a stale commit is exactly a
 * violation of the collision-retry protocol, and any one is reported.
 * It is checked for the whole mirror on every commit and in every callback
 * before it zaps: a missed callback (say, an off-by-one at a range's edge)
 * leaves a present entry behind that the next check of that device finds.
 *
 * Also checked: cur_seq is odd; no callback reaches a device after its
 * remove returned (a "removed" flag; half of the removed devices are freed
 * at once so that ASan catches a late callback as a use after free, the
 * other half kept in a graveyard so that the flag catches it in any build);
 * callbacks only for overlapping ranges; the API's return codes; at the
 * quiescent end, an even mm seq and odd read_begin() values; at close,
 * exactly one UHMM_EVENT_RELEASE over [0, ULONG_MAX) per live device.
 *
 * Thread mix is fixed (sized for 2 cores); threads stop by operation
 * count, never by time. Counts scale with UHMM_TEST_SCALE.
 *
 *	./notifier-torture        default seed
 *	./notifier-torture SEED   other inputs (the interleaving is the OS's)
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"
#include "test.h"
#include "invariant.h"

#define PAGE		4096UL
#define NPAGES		4096UL
#define BASE		0x10000000UL
#define MAX_DEV_PAGES	512UL	/* largest device, before snap() */
#define NSLOTS		48	/* most devices live at once */
#define GRID		16UL	/* pages; half of all edges fall on it */
#define MAX_MIRROR	(MAX_DEV_PAGES + 2 * GRID) /* largest device */

#define NINVAL		2
#define NREAD		3
#define NCHURN		1

/* Per thread; at scale 1: 1.2M + 1.35M + 0.45M = 3 * 10^6 operations. */
#define INVAL_OPS	600000
#define READ_OPS	450000
#define CHURN_OPS	450000

#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

/* The truth: the "page table" generation of every page. Atomic. */
static unsigned long gen[NPAGES];

static struct uhmm_mm *mm;

struct mirror_entry {
	unsigned long gen;
	bool present;
};

struct device {
	struct uhmm_interval_notifier sub;
	pthread_mutex_t lock;		/* the device lock */
	unsigned long first, npages;	/* pages covered; fixed */
	struct mirror_entry *mirror;	/* [lock] npages entries */
	int removed;			/* atomic: remove returned 0 */
	unsigned long nrelease;		/* atomic: RELEASE callbacks */
	struct device *next;		/* graveyard link */
};

/*
 * Device selection. A reader pins a slot's device with users++ under the
 * slot lock and never holds that lock across uhmm calls. The churner
 * claims a slot (busy), unpublishes its device (dev = NULL) and waits for
 * the users to drain, so it alone holds the device when it removes it;
 * no callback takes a slot lock, so the waits cannot form a cycle.
 */
struct slot {
	pthread_mutex_t lock;
	pthread_cond_t drained;
	struct device *dev;		/* [lock] NULL: empty or going away */
	int users;			/* [lock] readers using dev */
	bool busy;			/* [lock] a churner owns the slot */
};

static struct slot slots[NSLOTS];
static int fresh;		/* atomic: slot of the newest device */

struct thread {
	pthread_t tid;
	uint64_t rng;
	unsigned long ops;		/* quota */
	unsigned long done;
	/* invalidators */
	unsigned long eagain, outside, pages;
	/* readers */
	unsigned long retries, early, empty;
	/* churner */
	unsigned long inserts, removes, freed;
	struct device *graveyard;
};

/* Global counters and failures, all atomic. */
static unsigned long ncallbacks, nrefused, nfail;
static int closing;		/* atomic: uhmm_mm_close() under way */

/* The invalidating thread's PRNG, for its callbacks' refusals. */
static __thread uint64_t *cb_rng;

static const struct uhmm_interval_notifier_ops dev_ops;

#define inc(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)

/* CHECK is not thread-safe (t_failed is a plain int): threads use this. */
#define TCHECK(cond)                                                           \
	do {                                                                   \
		if (!(cond))                                                   \
			tfail(__LINE__, "TCHECK(" #cond ") failed", 0, 0, 0);  \
	} while (0)

static void tfail(int line, const char *what, unsigned long a,
		  unsigned long b, unsigned long c)
{
	/* Report the first few; one stale page is as damning as many. */
	if (__atomic_fetch_add(&nfail, 1, __ATOMIC_RELAXED) < 20)
		fprintf(stderr, "%s:%d: %s (%lu %lu %lu)\n", __FILE__, line,
			what, a, b, c);
}

/* splitmix64: tiny, full-period, and good enough for test inputs. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned long below(uint64_t *s, unsigned long n)
{
	return (unsigned long)(rnd(s) % n);
}

static unsigned long gen_load(unsigned long p)
{
	/*
	 * Relaxed on purpose: the ordering that makes a read see the bumps
	 * of a closed window must come from uhmm (read_begin's acquire) and
	 * the device lock, not from the test.
	 */
	return __atomic_load_n(&gen[p], __ATOMIC_RELAXED);
}

/* Under d->lock: mirror entries [a, b) agree with the truth. */
static void check_mirror(struct device *d, unsigned long a, unsigned long b)
{
	unsigned long i;

	for (i = a; i < b; i++) {
		const struct mirror_entry *e = &d->mirror[i];
		unsigned long now;

		if (!e->present)
			continue;
		now = gen_load(d->first + i);
		if (e->gen != now)
			tfail(__LINE__, "stale translation: page, mirror gen, gen",
			      d->first + i, e->gen, now);
	}
}

/*
 * Move the page range [*first, *first + *n) onto the GRID: devices and
 * windows then often share an edge page, which is where an off-by-one in
 * the overlap test would show.
 */
static void snap(unsigned long *first, unsigned long *n)
{
	unsigned long end = *first + *n;

	*first -= *first % GRID;
	end += (GRID - end % GRID) % GRID;
	if (end > NPAGES)
		end = NPAGES;
	*n = end - *first;
}

/* A random length in pages, from one page to max, mostly small. */
static unsigned long rnd_len(uint64_t *s, unsigned long max, bool huge)
{
	unsigned long len;

	switch (below(s, 40)) {
	case 0 ... 13:
		len = 1;
		break;
	case 14 ... 25:
		len = 1 + below(s, 16);
		break;
	case 26 ... 37:
		len = 1 + below(s, 256);
		break;
	default:
		len = 1 + below(s, huge ? NPAGES : MAX_DEV_PAGES);
		break;
	}
	return len < max ? len : max;
}

static bool dev_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq)
{
	struct device *d = container_of(sub, struct device, sub);
	unsigned long dstart = BASE + d->first * PAGE;
	unsigned long dend = dstart + d->npages * PAGE;
	unsigned long lo, hi, a, b, i;

	if (__atomic_load_n(&d->removed, __ATOMIC_ACQUIRE))
		tfail(__LINE__, "callback after remove returned: first page",
		      d->first, 0, 0);
	if (!(cur_seq & 1))
		tfail(__LINE__, "even cur_seq", cur_seq, 0, 0);
	inc(ncallbacks);
	if (range->event == UHMM_EVENT_RELEASE) {
		TCHECK(__atomic_load_n(&closing, __ATOMIC_RELAXED));
		TCHECK(range->start == 0 && range->end == ULONG_MAX);
		inc(d->nrelease);
	} else {
		TCHECK(!__atomic_load_n(&closing, __ATOMIC_RELAXED));
	}
	if (range->end <= dstart || range->start >= dend) {
		tfail(__LINE__, "callback for a range that misses the device",
		      range->start, range->end, dstart);
		return true;
	}

	if (!uhmm_range_blockable(range)) {
		/*
		 * A callback that would sleep refuses: on lock contention,
		 * and at random, so that -EAGAIN is common. It must not
		 * have touched anything.
		 */
		if (below(cb_rng, 4) == 0 || pthread_mutex_trylock(&d->lock)) {
			inc(nrefused);
			return false;
		}
	} else {
		pthread_mutex_lock(&d->lock);
	}
	uhmm_interval_set_seq(sub, cur_seq);
	lo = range->start > dstart ? range->start : dstart;
	hi = range->end < dend ? range->end : dend;
	a = (lo - BASE) / PAGE - d->first;
	b = (hi - 1 - BASE) / PAGE + 1 - d->first;
	/* Nothing of this window has been bumped yet: all must be fresh. */
	check_mirror(d, 0, d->npages);
	for (i = a; i < b; i++)
		d->mirror[i].present = false;
	pthread_mutex_unlock(&d->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops dev_ops = {
	.invalidate = dev_invalidate,
};

static struct device *dev_new(uint64_t *s)
{
	struct device *d = calloc(1, sizeof(*d));
	int ret;

	REQUIRE(d);
	d->npages = rnd_len(s, MAX_DEV_PAGES, false);
	d->first = below(s, NPAGES - d->npages + 1);
	if (below(s, 2))
		snap(&d->first, &d->npages);
	REQUIRE(d->npages <= MAX_MIRROR);
	d->mirror = calloc(d->npages, sizeof(*d->mirror));
	REQUIRE(d->mirror);
	REQUIRE(pthread_mutex_init(&d->lock, NULL) == 0);
	ret = uhmm_interval_notifier_insert(&d->sub, mm, BASE + d->first * PAGE,
					    d->npages * PAGE, &dev_ops);
	if (ret)
		tfail(__LINE__, "insert failed: -errno", -ret, 0, 0);
	return d;
}

static void dev_free(struct device *d)
{
	pthread_mutex_destroy(&d->lock);
	free(d->mirror);
	free(d);
}

/* ------------------------------------------------------------------------
 * Invalidators
 */

/* How much of an edge page to cut off a window's range. */
static unsigned long ragged(uint64_t *s)
{
	switch (below(s, 4)) {
	case 0:
		return below(s, PAGE);
	case 1:
		return PAGE - 1;
	default:
		return 0;
	}
}

static void *invalidator(void *arg)
{
	struct thread *t = arg;
	uint64_t *s = &t->rng;

	cb_rng = s;
	for (t->done = 0; t->done < t->ops; t->done++) {
		struct uhmm_notifier_range r = {
			.event = UHMM_EVENT_UNMAP + below(s, 4),
			.flags = UHMM_RANGE_BLOCKABLE,
		};
		unsigned long a, b, p, y;
		int ret;

		if (below(s, 32) == 0) {
			/* Below every device: a window that hits nothing,
			 * held open while inserts come and go. */
			r.start = below(s, BASE / 2);
			r.end = r.start + 1 + below(s, BASE / 2);
			a = b = 0;
		} else {
			b = rnd_len(s, NPAGES, true);
			a = below(s, NPAGES - b + 1);
			if (below(s, 2)) {
				snap(&a, &b);
				/*
				 * Overhang by one page, so that an edge page
				 * is a snapped device's first or last page
				 * and ragged() can leave a one-byte overlap.
				 */
				if (a && below(s, 2)) {
					a--;
					b++;
				}
				if (a + b < NPAGES && below(s, 2))
					b++;
			}
			b += a;
			r.start = BASE + a * PAGE;
			r.end = BASE + b * PAGE;
			/*
			 * Ragged edges: a page counts if one byte of it is in
			 * range, for zap and bump alike. Devices are page
			 * aligned, so cutting all but one byte of the edge
			 * pages tests the notifier's (and the tree's)
			 * boundary comparisons.
			 */
			r.start += ragged(s);
			r.end -= ragged(s);
			if (r.end <= r.start)
				r.end = r.start + 1;
		}
		if (below(s, 8) == 0)
			r.flags = 0;

		ret = uhmm_mm_invalidate_start(mm, &r);
		if (ret == -EAGAIN && !r.flags) {
			/* Refused and closed: the change did not happen. */
			t->eagain++;
			continue;
		}
		if (ret) {
			tfail(__LINE__, "invalidate_start: -errno", -ret, 0, 0);
			continue;
		}
		if (a == b)
			t->outside++;
		/*
		 * The page-table change, inside the window. Sometimes the
		 * window stays open across a reschedule at some point of
		 * the change, as a real one may: readers, inserts and
		 * removes then meet it half done.
		 */
		y = below(s, 8) ? ULONG_MAX : a + below(s, b - a + 1);
		for (p = a; p < b; p++) {
			if (p == y)
				sched_yield();
			__atomic_fetch_add(&gen[p], 1, __ATOMIC_RELAXED);
		}
		if (y == b)
			sched_yield();
		t->pages += b - a;
		ret = uhmm_mm_invalidate_end(mm, &r);
		if (ret)
			tfail(__LINE__, "invalidate_end: -errno", -ret, 0, 0);
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Readers
 */

static struct device *slot_get(struct slot *sl)
{
	struct device *d;

	pthread_mutex_lock(&sl->lock);
	d = sl->dev;
	if (d)
		sl->users++;
	pthread_mutex_unlock(&sl->lock);
	return d;
}

static void slot_put(struct slot *sl)
{
	pthread_mutex_lock(&sl->lock);
	if (--sl->users == 0 && sl->busy)
		pthread_cond_broadcast(&sl->drained);
	pthread_mutex_unlock(&sl->lock);
}

/* One complete driver read of a random part of d, committed. */
static void read_once(struct thread *t, struct device *d)
{
	unsigned long local[MAX_MIRROR];
	uint64_t *s = &t->rng;
	unsigned long a, n, i, seq;

	if (below(s, 8) == 0) {
		a = 0;
		n = d->npages;
	} else {
		a = below(s, d->npages);
		n = rnd_len(s, d->npages - a, false);
	}
again:
	seq = uhmm_interval_read_begin(&d->sub);
	if (!(seq & 1))
		tfail(__LINE__, "read_begin returned an even seq", seq, 0, 0);
	for (i = 0; i < n; i++)
		local[i] = gen_load(d->first + a + i);
	/* Widen the race between the translation and the commit. */
	if (below(s, 8) == 0)
		sched_yield();
	if (below(s, 4) == 0 && uhmm_interval_check_retry(&d->sub, seq)) {
		t->early++;
		goto again;
	}
	pthread_mutex_lock(&d->lock);
	if (uhmm_interval_read_retry(&d->sub, seq)) {
		pthread_mutex_unlock(&d->lock);
		t->retries++;
		goto again;
	}
	for (i = 0; i < n; i++) {
		d->mirror[a + i].gen = local[i];
		d->mirror[a + i].present = true;
	}
	check_mirror(d, 0, d->npages);
	pthread_mutex_unlock(&d->lock);
}

static void *reader(void *arg)
{
	struct thread *t = arg;

	for (t->done = 0; t->done < t->ops;) {
		struct slot *sl;
		struct device *d;

		/*
		 * Often the newest device: its first reads are the ones that
		 * race with the window its insert may have landed in.
		 */
		if (below(&t->rng, 4) == 0)
			sl = &slots[__atomic_load_n(&fresh, __ATOMIC_RELAXED)];
		else
			sl = &slots[below(&t->rng, NSLOTS)];
		d = slot_get(sl);

		if (!d) {
			t->empty++;
			continue;
		}
		read_once(t, d);
		slot_put(sl);
		t->done++;
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Churner
 */

static int nlive;	/* atomic: devices in slots */

static void churn_remove(struct thread *t, struct device *d)
{
	int ret;

	/* No lock held: remove may wait for windows whose callbacks lock. */
	ret = uhmm_interval_notifier_remove(&d->sub);
	if (ret)
		tfail(__LINE__, "remove: -errno", -ret, 0, 0);
	__atomic_store_n(&d->removed, 1, __ATOMIC_RELEASE);
	__atomic_fetch_sub(&nlive, 1, __ATOMIC_RELAXED);
	t->removes++;
	if (below(&t->rng, 2)) {
		/* ASan: any later callback is a use after free. */
		dev_free(d);
		t->freed++;
	} else {
		/* Any build: any later callback sees d->removed. */
		d->next = t->graveyard;
		t->graveyard = d;
	}
}

static void *churner(void *arg)
{
	struct thread *t = arg;
	uint64_t *s = &t->rng;

	for (t->done = 0; t->done < t->ops;) {
		struct slot *sl = &slots[below(s, NSLOTS)];
		int live = __atomic_load_n(&nlive, __ATOMIC_RELAXED);
		struct device *d;
		bool want_insert;

		/* Keep between a quarter and three quarters of the slots. */
		if (live < NSLOTS / 4)
			want_insert = true;
		else if (live > 3 * NSLOTS / 4)
			want_insert = false;
		else
			want_insert = below(s, 2);

		pthread_mutex_lock(&sl->lock);
		if (sl->busy || !sl->dev != want_insert) {
			pthread_mutex_unlock(&sl->lock);
			continue;
		}
		sl->busy = true;
		d = sl->dev;
		sl->dev = NULL;
		while (sl->users)
			pthread_cond_wait(&sl->drained, &sl->lock);
		pthread_mutex_unlock(&sl->lock);

		if (d) {
			churn_remove(t, d);
		} else {
			d = dev_new(s);
			__atomic_fetch_add(&nlive, 1, __ATOMIC_RELAXED);
			t->inserts++;
		}

		pthread_mutex_lock(&sl->lock);
		sl->dev = want_insert ? d : NULL;
		sl->busy = false;
		pthread_mutex_unlock(&sl->lock);
		if (want_insert)
			__atomic_store_n(&fresh, (int)(sl - slots),
					 __ATOMIC_RELAXED);
		t->done++;
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Main
 */

static unsigned long scaled(double scale, unsigned long n)
{
	unsigned long v = (unsigned long)(n * scale);

	return v ? v : 1;
}

int main(int argc, char **argv)
{
	struct thread th[NINVAL + NREAD + NCHURN] = { 0 };
	unsigned long long seed = 0x70e7u;
	double scale = t_scale();
	unsigned long inval = 0, eagain = 0, outside = 0, pages = 0;
	unsigned long reads = 0, retries = 0, early = 0, empty = 0;
	unsigned long inserts = 0, removes = 0, freed = 0, ops;
	struct device *grave = NULL, *d;
	uint64_t iseed;
	int i, ret, live = 0;

	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	printf("notifier-torture: seed %#llx scale %g "
	       "(replay: notifier-torture %#llx)\n", seed, scale, seed);
	fflush(stdout);

	mm = t_open_variant();
	for (i = 0; i < NSLOTS; i++) {
		REQUIRE(pthread_mutex_init(&slots[i].lock, NULL) == 0);
		REQUIRE(pthread_cond_init(&slots[i].drained, NULL) == 0);
	}
	iseed = seed ^ 0x5eedUL;
	for (i = 0; i < NSLOTS / 2; i++) {
		slots[i].dev = dev_new(&iseed);
		nlive++;
	}

	for (i = 0; i < NINVAL + NREAD + NCHURN; i++) {
		void *(*fn)(void *);

		th[i].rng = seed * 0x100000001b3ULL + (uint64_t)i;
		rnd(&th[i].rng);
		if (i < NINVAL) {
			fn = invalidator;
			th[i].ops = scaled(scale, INVAL_OPS);
		} else if (i < NINVAL + NREAD) {
			fn = reader;
			th[i].ops = scaled(scale, READ_OPS);
		} else {
			fn = churner;
			th[i].ops = scaled(scale, CHURN_OPS);
		}
		REQUIRE(pthread_create(&th[i].tid, NULL, fn, &th[i]) == 0);
	}
	for (i = 0; i < NINVAL + NREAD + NCHURN; i++) {
		REQUIRE(pthread_join(th[i].tid, NULL) == 0);
		if (i < NINVAL) {
			inval += th[i].done;
			eagain += th[i].eagain;
			outside += th[i].outside;
			pages += th[i].pages;
		} else if (i < NINVAL + NREAD) {
			reads += th[i].done;
			retries += th[i].retries;
			early += th[i].early;
			empty += th[i].empty;
		} else {
			inserts += th[i].inserts;
			removes += th[i].removes;
			freed += th[i].freed;
			while ((d = th[i].graveyard)) {
				th[i].graveyard = d->next;
				d->next = grave;
				grave = d;
			}
		}
	}

	/*
	 * Quiescent: no window is open, so the mm seq is even, and every
	 * subscription's seq is odd and returned at once by read_begin.
	 */
	CHECK((uhmm_mm_seq(mm) & 1) == 0);
	for (i = 0; i < NSLOTS; i++) {
		unsigned long seq;

		d = slots[i].dev;
		if (!d)
			continue;
		live++;
		seq = uhmm_interval_read_begin(&d->sub);
		CHECK(seq & 1);
		pthread_mutex_lock(&d->lock);
		CHECK(!uhmm_interval_read_retry(&d->sub, seq));
		check_mirror(d, 0, d->npages);
		pthread_mutex_unlock(&d->lock);
		CHECK_EQ(__atomic_load_n(&d->nrelease, __ATOMIC_RELAXED), 0);
	}
	CHECK_EQ(live, nlive);

	/*
	 * Close with devices still inserted: each live one gets exactly one
	 * RELEASE over everything, removed ones none (their callback would
	 * fail on d->removed), and then the mm refuses new work.
	 */
	__atomic_store_n(&closing, 1, __ATOMIC_RELAXED);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	for (i = 0; i < NSLOTS; i++) {
		unsigned long p;

		d = slots[i].dev;
		if (!d)
			continue;
		CHECK_EQ(__atomic_load_n(&d->nrelease, __ATOMIC_RELAXED), 1);
		for (p = 0; p < d->npages; p++)
			CHECK(!d->mirror[p].present);
	}
	if (live) {
		/* The live subscriptions keep the mm's memory valid. */
		struct device extra = { 0 };

		CHECK_EQ(uhmm_mm_invalidate(mm, BASE, BASE + PAGE,
					    UHMM_EVENT_UNMAP), -ESRCH);
		CHECK_EQ(uhmm_interval_notifier_insert(&extra.sub, mm, BASE,
						       PAGE, &dev_ops), -ESRCH);
	}
	for (i = 0; i < NSLOTS; i++) {
		d = slots[i].dev;
		if (!d)
			continue;
		CHECK_EQ(uhmm_interval_notifier_remove(&d->sub), 0);
		__atomic_store_n(&d->removed, 1, __ATOMIC_RELEASE);
		CHECK_EQ(uhmm_interval_notifier_remove(&d->sub), -ENOENT);
		slots[i].dev = NULL;
		dev_free(d);
	}
	while ((d = grave)) {
		grave = d->next;
		CHECK_EQ(__atomic_load_n(&d->nrelease, __ATOMIC_RELAXED), 0);
		dev_free(d);
	}
	for (i = 0; i < NSLOTS; i++) {
		pthread_mutex_destroy(&slots[i].lock);
		pthread_cond_destroy(&slots[i].drained);
	}

	CHECK_EQ(nfail, 0);
	ops = inval + reads + inserts + removes;
	ret = t_result();
	printf("notifier-torture: %s seed %#llx scale %g ops %lu: "
	       "invalidations %lu (eagain %lu, outside %lu, pages bumped %lu) "
	       "callbacks %lu (refused %lu) reads %lu (retries %lu, early %lu, "
	       "empty slot %lu) inserts %lu removes %lu (freed at once %lu) "
	       "live at close %d failures %lu\n",
	       ret ? "FAIL" : "PASS", seed, scale, ops, inval, eagain, outside,
	       pages, ncallbacks, nrefused, reads, retries, early, empty,
	       inserts, removes, freed, live, nfail);
	return ret;
}
