/* SPDX-License-Identifier: MIT */
/*
 * libfabric's MR cache while another thread changes the memory under it:
 * how many registrations it hands out stale, and whose fault each is.
 * Real libfabric (verbs domain) over fake-verbs.so.
 *
 *   test-mr-cache-concurrency MONITOR [REFERENCE...]
 *
 * MONITOR and each REFERENCE is uhmm, userfaultfd or memhooks
 * (fabric-test.h); each runs in a child process of its own, under the
 * watchdog. MONITOR is the one under test; the references run after it,
 * for comparison. uhmm, wherever it is, fails on a "monitor" stale
 * registration, a hang or an error; libfabric's own monitors only print
 * their figures, and fail only on an error.
 *
 * A pool of NBUF 64 KiB buffers at fixed addresses, each with a PROT_NONE
 * guard page after it. The main thread makes NREGS registrations
 * (20000 * UHMM_TEST_SCALE): a random buffer, fi_mr_reg, what the fake
 * device registered (its generation, and the first 8 bytes it saw),
 * fi_close. A changer thread meanwhile changes random buffers - munmap +
 * mmap, syscall(SYS_munmap) + mmap, madvise(MADV_DONTNEED) - and writes
 * a new marker into each. The two keep a pace of REGS_PER_CHANGE
 * registrations per change, either at most SLACK changes ahead of the
 * other: the number of registrations bounds the run, not a time, and the
 * mix is the same however the threads are scheduled (unpaced, on two
 * busy CPUs, one thread may finish before the other has run).
 *
 * The stamp protocol. One clock, a counter both threads increment
 * (stamp()), orders everything:
 *  - changer, on buffer b: m = stamp() (the change starts; m is its
 *    marker), the change, marker m written at b, stamp() again (the
 *    marker is visible: "done"), then b's version = m (published: the
 *    change had returned). It logs (m, done) in b's ring of recent
 *    changes;
 *  - registering thread: v = b's version, s0 = stamp(), fi_mr_reg,
 *    s1 = stamp(). The registration is stale if its pages are older
 *    than those of change v - that change had returned before fi_mr_reg
 *    was called, so a monitor must have made libfabric forget every
 *    registration of older pages.
 * A registration's pages are known by the marker it saw (first8): each
 * change writes a larger one. Except for a zero: new pages (munmap +
 * mmap, or a discard) read zero until the changer writes their marker,
 * and a registration can be made in between. Those are resolved when the
 * generation is new (made by this fi_mr_reg): the pages are those of the
 * change of b in flight between s0 and s1 (started before s1, not done
 * before s0) - one change, but for the rare window that spans two
 * ("ambiguous": the newer is taken, so such a registration may count as
 * fresh when it was not).
 *
 * Whose fault: a stale registration of generation g, made by an
 * fi_mr_reg that returned at s1(g), against version v. If change v
 * started before s1(g), it overlapped the fi_mr_reg that made g:
 * libfabric registers (ibv_reg_mr) before it subscribes the range to the
 * monitor, so a change in between is seen by no monitor ("libfabric
 * window"; counted so also when the change came just after the subscribe
 * but before fi_mr_reg returned). Else the change began after g was
 * subscribed, and the monitor missed it ("monitor").
 *
 * Prints, per monitor: registrations, stale (and per 1000), window and
 * monitor stale, and how the run ended. libfabric 1.17's userfaultfd
 * monitor can hang here (a discarded page of a range it registered, then
 * a fault on it, which it never resolves): the watchdog kills it, and
 * that is printed as a measurement.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#include "fabric-test.h"

#define NBUF		64
#define BUF_LEN		(64 * 1024)
#define PAGE		4096
#define STRIDE		(BUF_LEN + PAGE)	/* a guard page after */
#define REGS_PER_CHANGE	4
#define SLACK		4	/* changes either thread may be ahead */
#define RING		8	/* changes kept per buffer (> SLACK) */
#define MAX_ARGS	4

enum kind { MUNMAP, RAW_MUNMAP, DONTNEED, NKINDS };

static const char *const kind_name[NKINDS] = {
	"munmap+mmap", "SYS_munmap+mmap", "madvise(DONTNEED)",
};

/* What one child found; shared with the parent, printed even on a hang. */
struct conc_result {
	uint64_t progress;	/* registrations + changes: the watchdog's */
	uint64_t regs;		/* fi_mr_reg that succeeded */
	uint64_t misses;	/* of which new registrations */
	uint64_t efault;	/* fi_mr_reg failed: the buffer was unmapped */
	uint64_t stale, stale_window, stale_monitor;
	uint64_t missed[NKINDS];	/* "monitor" stale, by the change */
	uint64_t zero;		/* new registrations that saw zero */
	uint64_t ambiguous;	/* ... in a window over two changes */
	uint64_t inconsistent;	/* the protocol broken: a test bug */
	uint64_t changes[NKINDS];
	bool have_stats;
	struct uhmm_fabric_stats stats;
};

/*
 * A change of a buffer, in its ring. start: its stamp and marker; done:
 * the stamp after its marker was written, 0 while it is in flight.
 */
struct change {
	uint64_t start, done;
};

/*
 * A buffer. ver and the ring are written by the changer and read by the
 * registering thread: ver with release/acquire, the ring under a
 * seqcount (seq odd while the changer writes it; a reader that sees it
 * odd or changed reads again). ver packs the last published change's
 * marker and its kind, so that both are read at once: VER(m, k).
 */
#define VER(m, k)	((m) << 2 | (uint64_t)(k))
#define VER_MARKER(v)	((v) >> 2)
#define VER_KIND(v)	((enum kind)((v) & 3))

struct buffer {
	char *addr;
	uint64_t ver;		/* VER() of the last change published */
	unsigned int seq;
	struct change ring[RING];
	uint64_t nchanges;	/* the changer's; next: ring[n % RING] */
} __attribute__((aligned(64)));

/* What a registration was made of, by its generation (the new ones). */
struct birth {
	uint64_t s1;		/* its fi_mr_reg returned before this */
	uint64_t pages;		/* the marker of the pages it saw */
	bool known;
};

static struct buffer bufs[NBUF];
static struct birth *births;
static uint64_t nbirths;
static uint64_t clk;		/* the clock */
static uint64_t regs_done;	/* the pace: both threads' counts */
static uint64_t changes_done;
static int stop;
static struct conc_result *res;

static uint64_t stamp(void)
{
	return __atomic_add_fetch(&clk, 1, __ATOMIC_SEQ_CST);
}

/* splitmix64: a seeded generator per thread. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int nregs(void)
{
	int n = (int)(20000 * t_scale());

	return n < 1000 ? 1000 : n;
}

static void map_buf(char *addr)
{
	void *p = mmap(addr, BUF_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		       -1, 0);

	if (p != addr) {
		/* Something else took the hole: nothing to do but stop. */
		fprintf(stderr, "could not map %p again: %s\n", (void *)addr,
			p == MAP_FAILED ? strerror(errno) : "moved");
		exit(T_FAIL);
	}
}

/*
 * Wait for the other thread to catch up. Its steps take microseconds;
 * waiting much longer, it is stuck (a hang the watchdog will see): sleep
 * rather than take a CPU from it.
 */
static void wait_turn(int *waits)
{
	struct timespec nap = { .tv_nsec = 1000 * 1000 };

	if (++*waits < 1000)
		sched_yield();
	else
		nanosleep(&nap, NULL);
}

static uint64_t count(uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_ACQUIRE);
}

/* ---- the changer ---- */

static void ring_write(struct buffer *b, struct change *c, uint64_t start,
		       uint64_t done)
{
	__atomic_add_fetch(&b->seq, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&c->start, start, __ATOMIC_SEQ_CST);
	__atomic_store_n(&c->done, done, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&b->seq, 1, __ATOMIC_SEQ_CST);
}

static void change_one(struct buffer *b, enum kind k)
{
	struct change *c = &b->ring[b->nchanges++ % RING];
	uint64_t m = stamp();

	ring_write(b, c, m, 0);
	switch (k) {
	case MUNMAP:
		REQUIRE(munmap(b->addr, BUF_LEN) == 0);
		map_buf(b->addr);
		break;
	case RAW_MUNMAP:
		REQUIRE(syscall(SYS_munmap, b->addr, BUF_LEN) == 0);
		map_buf(b->addr);
		break;
	default:
		REQUIRE(madvise(b->addr, BUF_LEN, MADV_DONTNEED) == 0);
		break;
	}
	/* The fake device reads it with process_vm_readv, not a load. */
	__atomic_store_n((uint64_t *)b->addr, m, __ATOMIC_RELAXED);
	ring_write(b, c, m, stamp());
	__atomic_store_n(&b->ver, VER(m, k), __ATOMIC_RELEASE);
}

static void *changer(void *arg)
{
	uint64_t seed = 0xc4a6e5;
	int waits = 0;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint64_t r;
		enum kind k;

		if (count(&changes_done) >=
		    count(&regs_done) / REGS_PER_CHANGE + SLACK) {
			wait_turn(&waits);
			continue;
		}
		waits = 0;
		r = rnd(&seed);
		k = (enum kind)((r >> 32) % NKINDS);
		change_one(&bufs[r % NBUF], k);
		__atomic_fetch_add(&changes_done, 1, __ATOMIC_RELEASE);
		__atomic_fetch_add(&res->changes[k], 1, __ATOMIC_RELAXED);
		ft_progress(&res->progress);
	}
	return NULL;
}

/* ---- the registering thread ---- */

/*
 * The marker of the pages a new registration of b saw zero in: the
 * change of b in flight between s0 and s1.
 */
static uint64_t zero_pages(struct buffer *b, uint64_t s0, uint64_t s1)
{
	struct change ring[RING];
	uint64_t pages = 0;
	unsigned int seq;
	int found = 0;

	do {
		while ((seq = __atomic_load_n(&b->seq, __ATOMIC_SEQ_CST)) & 1)
			sched_yield();
		for (int i = 0; i < RING; i++) {
			ring[i].start = __atomic_load_n(&b->ring[i].start,
							__ATOMIC_SEQ_CST);
			ring[i].done = __atomic_load_n(&b->ring[i].done,
						       __ATOMIC_SEQ_CST);
		}
	} while (__atomic_load_n(&b->seq, __ATOMIC_SEQ_CST) != seq);

	for (int i = 0; i < RING; i++) {
		if (!ring[i].start || ring[i].start > s1)
			continue;
		if (ring[i].done && ring[i].done < s0)
			continue;
		found++;
		if (ring[i].start > pages)
			pages = ring[i].start;
	}
	res->zero++;
	if (found > 1)
		res->ambiguous++;
	if (!found) {
		/* The ring holds more changes than can happen meanwhile. */
		fprintf(stderr, "%p: zero marker, no change in flight "
			"between stamps %llu and %llu\n", (void *)b->addr,
			(unsigned long long)s0, (unsigned long long)s1);
		res->inconsistent++;
	}
	return pages;
}

static struct birth *birth_of(uint64_t gen)
{
	if (gen >= nbirths) {
		fprintf(stderr, "generation %llu: more registrations than "
			"expected\n", (unsigned long long)gen);
		exit(T_FAIL);
	}
	return &births[gen];
}

static void register_one(struct ft_domain *d, struct buffer *b)
{
	uint64_t ver = __atomic_load_n(&b->ver, __ATOMIC_ACQUIRE), s0, s1;
	uint64_t v = VER_MARKER(ver);
	struct fake_verbs_mr_info info;
	struct birth *g;
	struct fid_mr *mr;
	int ret;

	s0 = stamp();
	ret = fi_mr_reg(d->domain, b->addr, BUF_LEN, FI_SEND | FI_RECV, 0, 0,
			0, &mr, NULL);
	s1 = stamp();
	if (ret == -FI_EFAULT) {
		/* Unmapped at that moment (between munmap and mmap). */
		res->efault++;
		return;
	}
	if (ret) {
		fprintf(stderr, "fi_mr_reg: %s\n", fi_strerror(-ret));
		exit(T_FAIL);
	}
	if (ft_mr_lookup((uint32_t)fi_mr_key(mr), &info)) {
		fprintf(stderr, "key %#llx: no live fake registration\n",
			(unsigned long long)fi_mr_key(mr));
		exit(T_FAIL);
	}
	REQUIRE(fi_close(&mr->fid) == 0);
	res->regs++;

	g = birth_of(info.gen);
	if (!g->known) {
		res->misses++;
		g->known = true;
		g->s1 = s1;
		g->pages = info.first8 ? info.first8 : zero_pages(b, s0, s1);
		if (g->pages < v) {
			/* Registered after v was published: cannot be. */
			fprintf(stderr, "%p: new registration of pages %llu, "
				"older than version %llu\n", (void *)b->addr,
				(unsigned long long)g->pages,
				(unsigned long long)v);
			res->inconsistent++;
		}
		return;
	}
	if (g->pages >= v)
		return;		/* fresh: a hit on the current pages */
	res->stale++;
	if (v < g->s1) {
		res->stale_window++;
	} else {
		res->stale_monitor++;
		res->missed[VER_KIND(ver)]++;
	}
}

static int run(void *arg)
{
	int mon = *(int *)arg, n = nregs();
	uint64_t seed = 0x5eed;
	struct ft_domain d;
	pthread_t thread;
	char *area;

	ft_monitor_start(mon);
	ft_domain_open(&d);
	/* A generation per fi_mr_reg at most, and the warm-up's. */
	nbirths = (uint64_t)n + NBUF + 1024;
	births = calloc(nbirths, sizeof(*births));
	REQUIRE(births);

	area = ft_quiet_area((size_t)NBUF * STRIDE);
	for (int i = 0; i < NBUF; i++) {
		struct buffer *b = &bufs[i];
		uint64_t m = stamp();

		b->addr = area + (size_t)i * STRIDE;
		REQUIRE(munmap(b->addr, BUF_LEN) == 0);
		map_buf(b->addr);
		*(uint64_t *)b->addr = m;
		b->ver = VER(m, MUNMAP);
		b->ring[0] = (struct change){ m, stamp() };
		b->nchanges = 1;
	}
	/* Every buffer cached before the changes start. */
	for (int i = 0; i < NBUF; i++) {
		register_one(&d, &bufs[i]);
		register_one(&d, &bufs[i]);
	}
	if (res->misses != NBUF) {
		if (mon != FT_UHMM)
			SKIP("FI_MR_CACHE_MONITOR=%s: libfabric caches nothing "
			     "here (could its monitor not start?)",
			     ft_monitor_name[mon]);
		fprintf(stderr, "%llu registrations of %d buffers: the MR "
			"cache is off\n", (unsigned long long)res->misses,
			NBUF);
		return T_FAIL;
	}
	/* The figures are of the registrations that follow. */
	res->regs = res->misses = 0;

	REQUIRE(pthread_create(&thread, NULL, changer, NULL) == 0);
	for (int k = 0, waits = 0; k < n; k++) {
		while (count(&regs_done) >=
		       (count(&changes_done) + SLACK) * REGS_PER_CHANGE)
			wait_turn(&waits);
		waits = 0;
		register_one(&d, &bufs[rnd(&seed) % NBUF]);
		__atomic_fetch_add(&regs_done, 1, __ATOMIC_RELEASE);
		ft_progress(&res->progress);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(thread, NULL) == 0);

	if (mon == FT_UHMM) {
		CHECK_EQ(uhmm_fabric_stats(&res->stats), 0);
		res->have_stats = true;
	}
	REQUIRE(munmap(area, (size_t)NBUF * STRIDE) == 0);
	ft_domain_close(&d);
	if (mon == FT_UHMM)
		CHECK_EQ(uhmm_fabric_close(), 0);
	free(births);
	return t_result();
}

static void print(int mon, const struct conc_result *r, enum ft_end end)
{
	printf("%-12s %7llu %6llu %9.2f %7llu %8llu   %s\n",
	       ft_monitor_name[mon], (unsigned long long)r->regs,
	       (unsigned long long)r->stale,
	       r->regs ? 1000.0 * r->stale / r->regs : 0.0,
	       (unsigned long long)r->stale_window,
	       (unsigned long long)r->stale_monitor, ft_end_name[end]);
	printf("    new registrations %llu (saw a zero marker %llu, of "
	       "which ambiguous %llu), fi_mr_reg on a hole %llu;\n"
	       "    changes: %s %llu, %s %llu, %s %llu\n",
	       (unsigned long long)r->misses, (unsigned long long)r->zero,
	       (unsigned long long)r->ambiguous,
	       (unsigned long long)r->efault,
	       kind_name[0], (unsigned long long)r->changes[0],
	       kind_name[1], (unsigned long long)r->changes[1],
	       kind_name[2], (unsigned long long)r->changes[2]);
	if (r->have_stats)
		printf("    uhmm: subscribed %llu, refused %llu, live %llu, "
		       "notified %llu, evicted %llu, valid false %llu, "
		       "unsubscribed %llu\n",
		       (unsigned long long)r->stats.subscribed,
		       (unsigned long long)r->stats.refused,
		       (unsigned long long)r->stats.live,
		       (unsigned long long)r->stats.notified,
		       (unsigned long long)r->stats.evicted,
		       (unsigned long long)r->stats.valid_false,
		       (unsigned long long)r->stats.unsubscribed);
	if (r->stale_monitor)
		printf("    monitor stale, by the change it missed: %s %llu, "
		       "%s %llu, %s %llu\n",
		       kind_name[0], (unsigned long long)r->missed[0],
		       kind_name[1], (unsigned long long)r->missed[1],
		       kind_name[2], (unsigned long long)r->missed[2]);
	if (r->inconsistent)
		printf("    %llu registrations broke the stamp protocol\n",
		       (unsigned long long)r->inconsistent);
}

int main(int argc, char **argv)
{
	int mons[MAX_ARGS], nmons = argc - 1;
	struct conc_result *results;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < nmons && i < MAX_ARGS; i++)
		mons[i] = ft_monitor_parse(argv[i + 1]);
	for (int i = 0; i < nmons; i++) {
		if (nmons > MAX_ARGS || mons[i] < 0) {
			fprintf(stderr, "usage: %s MONITOR [REFERENCE...]: "
				"up to %d of uhmm, userfaultfd, memhooks\n",
				argv[0], MAX_ARGS);
			return T_FAIL;
		}
	}
	if (nmons < 1) {
		fprintf(stderr, "usage: %s MONITOR [REFERENCE...]\n", argv[0]);
		return T_FAIL;
	}
	ft_need_fake_verbs();
	results = ft_shared((size_t)nmons * sizeof(*results));

	printf("libfabric MR cache under concurrent changes: %d registrations "
	       "over %d buffers of 64 KiB\n", nregs(), NBUF);
	printf("%-12s %7s %6s %9s %7s %8s   %s\n", "monitor", "regs", "stale",
	       "per 1000", "window", "monitor", "end");
	for (int i = 0; i < nmons; i++) {
		enum ft_end end;

		res = &results[i];
		end = ft_run_child(run, &mons[i], &res->progress);
		if (end == FT_SKIPPED) {
			if (i == 0)
				return T_SKIP;	/* the child said why */
			continue;
		}
		print(mons[i], res, end);
		CHECK_EQ(res->inconsistent, 0);
		if (mons[i] == FT_UHMM) {
			/* The window is libfabric's; the rest is ours. */
			CHECK_EQ(res->stale_monitor, 0);
			CHECK(end == FT_PASSED);
			continue;
		}
		/* libfabric's own monitors: figures to compare with. */
		CHECK(end != FT_FAILED && end != FT_CRASHED);
		if (end == FT_HUNG)
			printf("    (libfabric's %s monitor hung: printed, not "
			       "a failure of this test)\n",
			       ft_monitor_name[mons[i]]);
	}
	printf("%s\n", t_failed ? "FAIL" : "PASS");
	return t_result();
}
