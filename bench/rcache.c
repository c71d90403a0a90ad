/* SPDX-License-Identifier: MIT */
/*
 * bench-rcache: the registration cache side by side with UCX's ucs_rcache
 * on hit and miss workloads, what strict mode costs its hits, and what it
 * buys io_uring.
 *
 * Strict mode (uhmm.h, UHMM_MM_STRICT, the default) makes every get ask
 * the kernel first whether an event is in flight: one system call.
 * Sections 1 and 3 measure RELAXED caches (UHMM_RCACHE_RELAXED, set
 * explicitly whatever UHMM_STRICT says), so their figures stay comparable
 * with earlier runs and with UCX, which makes no such call; section 2
 * measures the same hits in strict mode. The mm itself is opened
 * UHMM_MM_RELAXED: every cache says its mode.
 *
 *  1. Hit and miss workloads, uhmm vs UCX, in the same run:
 *     uhmm_rcache_get() + uhmm_rcache_put() against ucs_rcache_get() +
 *     ucs_rcache_region_put() (PROT_READ | PROT_WRITE), each cache over a
 *     no-op device of its own (reg hands out a counter, dereg does
 *     nothing). The buffers are 64 KiB, carved from one mapping that is
 *     never populated (neither device touches the pages): after the first
 *     miss it is armed, and no later miss arms anything but 9's remapped
 *     buffers. Each workload gets new caches on both sides, warmed by one
 *     untimed pass over every thread's steps; then uhmm's runs and UCX's
 *     alternate. A thread follows a precomputed sequence of steps (a
 *     buffer, and which cache), so no random number generator is
 *     measured; a random order is a string of random permutations, so
 *     every buffer is in it and the warm-up caches them all. The sequence
 *     is cycled, each run going on where the last one stopped (starting
 *     over, 8 would hit the buffers the last run left cached).
 *      1. 1 thread, one hot buffer: ns per get+put.
 *      2. 2 threads, each on its own hot buffer: aggregate M ops/s.
 *      3. 1 thread, 1000 cached buffers round robin: ns per get+put.
 *      4. 1 thread, 1000 cached buffers in random order: ns per get+put.
 *      5. 2 threads, each on its own 1000 buffers in random order:
 *         aggregate M ops/s, and as a multiple of 4's one-thread rate.
 *      6. 2 threads on the same 1000 buffers, each in its own random
 *         order: likewise.
 *      7. 1 thread alternating two caches (two devices), one buffer each:
 *         ns per get+put, and as a multiple of 1.
 *      8. Caches capped at 1024 regions (uhmm's max_regions, UCX's
 *         max_regions), 2048 buffers round robin: every get misses and
 *         evicts. us per get+put.
 *      9. Mixed: a worker over 1000 buffers in random order, every 100th
 *         get for the next of 512 other buffers; the caches are capped at
 *         1280 regions, so those were evicted since their last use and
 *         miss (about 1% of the gets) and evict. Meanwhile a changer
 *         thread loops over 16 other buffers of the same cache: munmap(),
 *         mmap(MAP_FIXED_NOREPLACE) at the same address (MAP_FIXED that
 *         fails, rather than replace what another thread may have mapped
 *         in the hole meanwhile), get+put (a miss, which registers the
 *         new pages, so the next munmap invalidates a region again). uhmm
 *         hears those unmaps through userfaultfd (the munmap waits for
 *         its reader thread), UCX through its memory hooks (ucm). Each
 *         side's changer has buffers of its own, remapped once before the
 *         runs: UCX's unmaps are then not of mappings uhmm armed. The
 *         worker's ns per get+put, the changer's changes per second, and
 *         the share of each one's gets that missed (1 for the changer's
 *         on both sides: an unmap not heard would leave its get a hit).
 *         The worker may wait (a uhmm get for the dispatch of the events
 *         already read, a UCX get for the lock a miss holds): its share
 *         of its CPU and its sleeps (voluntary context switches) per 1000
 *         gets are printed too.
 *     Printed for each: both figures, uhmm / UCX, the multiple of another
 *     workload where one is relevant, and the targets marked met
 *     or missed. UCX's first cache installs its memory hooks, which stay
 *     for the rest of the process, uhmm's runs included: they cost only
 *     the calls that map or unmap, so only 9's changer, on both sides.
 *     UCX's caches have flags 0, not UCS_RCACHE_FLAG_NO_PFN_CHECK: in UCX
 *     1.13 a miss with that flag skips the LRU eviction, and max_regions
 *     is never enforced. The PFN check stays off all the same, as long as
 *     UCX_RCACHE_CHECK_PFN is 0 (its default; the output warns if not).
 *  2. Strict vs relaxed: 1's workloads 1 and 2, and 2 threads on one
 *     shared buffer (for reference), on a cache created
 *     UHMM_RCACHE_STRICT (a subscription is armed, so every get makes the
 *     in-flight probe; nothing is ever in flight, so none waits). ns per
 *     get+put with 1 and 2 threads (per thread), strict / relaxed
 *     against 1's relaxed figures, and the 2-thread aggregate as a
 *     multiple of 1 thread. For reference, the probe's system call alone
 *     (ioctl(UFFDIO_COPY) with an invalid mode on a userfaultfd of the
 *     bench's own, which fails the same way the probe's does when nothing
 *     is in flight), with 1 and 2 threads, and the cheapest system call
 *     (getppid) for the cost of entering the kernel on this machine.
 *  3. io_uring reads of 4 KiB and 64 KiB at random aligned offsets of a
 *     64 MiB file opened with O_DIRECT, queue depth 1 (submit one, wait for
 *     it): (a) READ_FIXED through a RELAXED cache
 *     (uhmm_uring_prep_read_fixed(), the same buffer every time, so every
 *     get after the first is a hit), (b) plain IORING_OP_READ into the same
 *     buffer, (c) READ_FIXED with the buffer registered for that one I/O
 *     (the device's reg op, the read, its dereg op). The modes take turns
 *     read by read, each at its own random offset, so the disk's drifts
 *     hit them alike; each read is timed alone. The first of /var/tmp,
 *     /tmp and . that takes O_DIRECT reads holds the file; if none does,
 *     the reads are buffered and the output says so. For reference, the
 *     same modes on buffered reads that hit the page cache (the CPU side
 *     without the disk), and the device's reg + dereg alone. (Strict mode
 *     would add section 2's difference to every (a) read.)
 *
 *  4. The hit sweep, for plots: T threads (1, 2, 4) on B buffers (1, 10,
 *     100, 1000, 10000) of one cache, every thread in its own random order
 *     over the same B buffers (a working set the process's threads
 *     share), uhmm against UCX as in section 1, the caches capped at
 *     SWEEP_CAP regions (every timed get hits) and every run kept (4
 *     threads share 2 CPUs). Per point: the CPU time of a get+put (the
 *     timed threads' CPU time over their gets: what a hit costs whatever
 *     the oversubscription) and the gets per second of all the threads.
 *     SWEEP_MS per run.
 *
 * UHMM_BENCH_SCALE (bench.h) scales RUN_MS, SWEEP_MS and the io_uring
 * section's reads; with UHMM_BENCH_RECORD set every section's headline
 * figures (uhmm against UCX, strict against relaxed, the cache's reads
 * against plain ones) and section 4's points are recorded for `uhmm
 * bench`.
 *
 * Method, sections 1, 2 and 4: the timed threads are pinned, thread i to CPU
 * i (modulo the CPUs), 9's changer to the CPU after its worker's, and run
 * for RUN_MS while the main thread sleeps. A run in which the timed
 * threads were off their CPUs (CLOCK_THREAD_CPUTIME_ID against wall time)
 * more than 5% of the time is run again, up to MAX_ATTEMPTS runs per
 * side: the machine is shared, and such a run measures someone else's
 * load. Workload 9 keeps every run instead, and prints the worker's share
 * of its CPU: uhmm's event threads share the CPUs with it by design, and
 * that is part of what it measures.
 *
 * The monitored mm stays open until every buffer registered through it is
 * unmapped: a munmap of such a buffer waits for uhmm's reader thread to
 * read the event. Times come from CLOCK_MONOTONIC, around whole loops but
 * in section 3; every figure is the median of BENCH_RUNS runs and every
 * ratio is computed from figures of this run. Prints figures and targets
 * only: the exit status is 0 unless a call fails, whatever the times.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uhmm.h"
#include "uhmm_uring.h"
#include "bench.h"

#ifdef UHMM_BENCH_UCX
#include <ucm/api/ucm.h>
#include <ucs/memory/rcache.h>
#endif

#define PAGE		4096UL
#define BUF_LEN		(64UL << 10)
#define RUN_MS		100
#define SWEEP_MS	40	/* section 4's runs: 30 points, keep it short */
#define SWEEP_CAP	16384	/* section 4's caches: more than its buffers */
#define SWEEP_MAX_BUFS	10000
#define MAX_ATTEMPTS	(3 * BENCH_RUNS)
#define FULL_SHARE	0.95	/* of the wall time on a CPU */
#define BATCH		256
#define MAX_THREADS	4	/* timed threads of a workload */
#define MAX_WORKERS	(MAX_THREADS + 1)	/* and 9's changer */
#define MAX_CACHES	2	/* per side and workload */
#define NSIDES		2	/* uhmm, UCX */

#define NHOT		1000	/* the cached buffers of 3 to 6 and 9 */
#define RAND_LEN	(8 * NHOT)	/* steps of a random order */
#define EVICT_CAP	1024	/* 8: the caches' max_regions */
#define EVICT_N		2048	/* 8: buffers, round robin */
#define MIX_EVERY	100	/* 9: one get in MIX_EVERY misses */
#define MIX_NMISS	512	/* 9: the worker's buffers that miss */
#define MIX_NCHANGE	16	/* 9: each changer's buffers */
#define MIX_CAP		1280	/* 9: the caches' max_regions */

/*
 * The buffers, indexes in the one mapping. 9's caches keep its 1000 hot
 * buffers and the changer's 16, and room for MIX_CAP - 1016 = 264 of the
 * 512 that miss: used round robin, each was evicted since its last use.
 */
enum {
	POOL_HOT = 0,				/* 1 to 8 */
	POOL_MISS = EVICT_N,			/* 9: the worker's misses */
	POOL_CHANGE = POOL_MISS + MIX_NMISS,	/* 9: each side's changer */
	POOL_SWEEP = POOL_CHANGE + NSIDES * MIX_NCHANGE,	/* section 4 */
	NBUFS = POOL_SWEEP + SWEEP_MAX_BUFS,
};

#define FILE_SIZE	(64UL << 20)
#define IO_MAX		(64UL << 10)
/* aim per mode and run: 150 ms */
#define IO_RUN_NS	((uint64_t)bench_scaled(150000000, 1000000))
#define IO_MIN		bench_scaled(100, 10)
#define IO_MAX_COUNT	20000
#define SEED		0x75686d6d /* "uhmm" */

static void die(int ret, const char *what)
{
	fprintf(stderr, "bench-rcache: %s: %s\n", what, strerror(-ret));
	exit(1);
}

static void check(int ret, const char *what)
{
	if (ret)
		die(ret, what);
}

static void *map_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die(-errno, "mmap");
	memset(p, 1, len);
	return p;
}

/* A target line for a figure that must be >= target. */
static void line_ge(const char *label, double value, const char *unit,
		    double target, const char *target_text)
{
	printf("%-46s %10.2f %-7s  target >= %-8s %s\n", label, value, unit,
	       target_text, value >= target ? "OK" : "MISSED");
}

/* ---- the no-op device, one per cache ---- */

struct noop_dev {
	unsigned long handles;	/* atomic: the last handle handed out */
};

/* Registrations made by this thread: its gets that missed (a miss that
 * retries registers again: rare). */
static __thread unsigned long thread_regs;

static int noop_reg(void *dev, void *addr, size_t len, unsigned int access,
		    uint64_t *handle)
{
	struct noop_dev *d = dev;

	(void)addr;
	(void)len;
	(void)access;
	thread_regs++;
	*handle = __atomic_add_fetch(&d->handles, 1, __ATOMIC_RELAXED);
	return 0;
}

static void noop_dereg(void *dev, uint64_t handle)
{
	(void)dev;
	(void)handle;
}

static const struct uhmm_rcache_ops noop_ops = {
	.reg = noop_reg,
	.dereg = noop_dereg,
};

/* ---- the buffers and the threads' steps ---- */

static char *pool;	/* the one mapping of NBUFS buffers */

static void *buf_at(size_t i)
{
	return pool + i * BUF_LEN;
}

struct step {
	void *addr;		/* a BUF_LEN buffer */
	unsigned int cache;	/* which of the side's caches */
};

/* What one thread does, cycled: steps[0], ..., steps[n - 1], steps[0]... */
struct plan {
	struct step *steps;
	size_t n;
};

static struct plan plan_new(size_t n)
{
	struct plan p = { .steps = calloc(n, sizeof(struct step)), .n = n };

	if (!p.steps)
		die(-ENOMEM, "calloc");
	return p;
}

/* Buffers first .. first + n - 1, in order. */
static struct plan plan_range(size_t first, size_t n)
{
	struct plan p = plan_new(n);

	for (size_t i = 0; i < n; i++)
		p.steps[i].addr = buf_at(first + i);
	return p;
}

/* len steps over buffers first .. first + n - 1: random permutations. */
static struct plan plan_random(size_t first, size_t n, size_t len,
			       uint64_t seed)
{
	struct plan p = plan_new(len);
	struct bench_rng r;
	size_t *perm = NULL;

	bench_rng_seed(&r, seed);
	for (size_t i = 0; i < len; i++) {
		if (i % n == 0) {
			free(perm);
			perm = bench_perm(&r, n);
			if (!perm)
				die(-ENOMEM, "bench_perm");
		}
		p.steps[i].addr = buf_at(first + perm[i % n]);
	}
	free(perm);
	return p;
}

/* ---- the two caches under test ---- */

struct worker;

struct side {
	const char *name;
	int (*loop)(struct worker *w);	/* get + put over its plan */
	int (*get_put)(void *cache, void *addr);
	/* A cache over dev, of max_regions (0: the side's default). */
	int (*create)(const struct side *sd, size_t max_regions,
		      struct noop_dev *dev, void **cache);
	void (*destroy)(void *cache);
	struct uhmm_mm *mm;	/* uhmm's */
	unsigned int flags;	/* uhmm's: UHMM_RCACHE_RELAXED or _STRICT */
};

/* ---- timed loops on pinned threads ---- */

struct worker {
	pthread_t thread;
	int cpu;			/* pinned there; -1: not pinned */
	int (*loop)(struct worker *w);
	int (*get_put)(void *cache, void *addr);	/* warm-up, changer */
	void *const *caches;		/* the side's, or a loop's argument */
	const struct plan *plan;
	size_t next;			/* next step: runs go on from there */
	bool changer;			/* 9's: reported apart, not timed */
	unsigned long ops, misses;	/* gets (changes), and misses */
	unsigned long sleeps;		/* voluntary context switches */
	uint64_t ns, cpu_ns;		/* wall and this thread's CPU time */
	int err;
};

static pthread_barrier_t start_barrier;
static int stop;	/* atomic */
static long run_ms;	/* RUN_MS, scaled */

static bool stopped(void)
{
	return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

/* Thread i's CPU. */
static int cpu_of(int i)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	return ncpu > 0 ? i % (int)ncpu : 0;
}

/*
 * The hit path's loop, one copy per cache: get_put is a constant where
 * this is inlined, so each side's call is direct.
 */
static inline __attribute__((always_inline)) int
plan_loop(struct worker *w, int (*get_put)(void *cache, void *addr))
{
	const struct step *steps = w->plan->steps;
	void *const *caches = w->caches;
	size_t n = w->plan->n, k = w->next;

	do {
		for (int i = 0; i < BATCH; i++) {
			int ret = get_put(caches[steps[k].cache],
					  steps[k].addr);

			if (ret)
				return ret;
			if (++k == n)
				k = 0;
		}
		w->ops += BATCH;
	} while (!stopped());
	w->next = k;
	return 0;
}

/*
 * Unmap a buffer and map new pages at its address. MAP_FIXED_NOREPLACE:
 * if another thread mapped something in the hole meanwhile, fail rather
 * than replace it.
 */
static int remap(void *addr)
{
	void *p;

	if (munmap(addr, BUF_LEN))
		return -errno;
	p = mmap(addr, BUF_LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (p != addr) {	/* a kernel without MAP_FIXED_NOREPLACE */
		munmap(p, BUF_LEN);
		return -EEXIST;
	}
	return 0;
}

/* One step: get + put, after a remap if it is a change. */
static int do_step(int (*get_put)(void *cache, void *addr),
		   void *const *caches, const struct step *s, bool change)
{
	int ret = change ? remap(s->addr) : 0;

	return ret ? ret : get_put(caches[s->cache], s->addr);
}

/* 9's changer: change its buffers round robin. */
static int loop_change(struct worker *w)
{
	do {
		int ret = do_step(w->get_put, w->caches,
				  &w->plan->steps[w->next], true);

		if (ret)
			return ret;
		w->ops++;
		if (++w->next == w->plan->n)
			w->next = 0;
	} while (!stopped());
	return 0;
}

static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long sleeps_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned long regs, sleeps;
	uint64_t t0, c0;
	cpu_set_t set;

	if (w->cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		/* Best effort: unpinned figures are only noisier. */
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	pthread_barrier_wait(&start_barrier);
	regs = thread_regs;
	sleeps = sleeps_now();
	c0 = cpu_now_ns();
	t0 = bench_now_ns();
	w->err = w->loop(w);
	w->ns = bench_now_ns() - t0;
	w->cpu_ns = cpu_now_ns() - c0;
	w->misses = thread_regs - regs;
	w->sleeps = sleeps_now() - sleeps;
	return NULL;
}

/* What one run measured. */
struct sample {
	double rate;		/* the timed threads' gets per second, summed */
	double share;		/* their CPU time / their wall time */
	double miss;		/* the share of their gets that missed */
	double sleeps;		/* their sleeps (voluntary context
				 * switches) per 1000 gets */
	double change_rate;	/* 9's changer: changes per second */
	double change_miss;	/* the share of its gets that missed */
	double cpu_op;		/* their CPU ns per get */
};

/* One run: the workers w[0..n) run their loops for ms milliseconds. */
static void run_once(struct worker *w, int n, long ms, struct sample *x)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };
	double wall = 0, cpu = 0, gets = 0, misses = 0, sleeps = 0;

	*x = (struct sample){ .rate = 0 };
	__atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
	pthread_barrier_init(&start_barrier, NULL, n + 1);
	for (int i = 0; i < n; i++) {
		w[i].ops = w[i].misses = 0;
		check(-pthread_create(&w[i].thread, NULL, worker_main, &w[i]),
		      "pthread_create");
	}
	pthread_barrier_wait(&start_barrier);
	nanosleep(&ts, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		check(w[i].err, w[i].changer ? "change loop" : "get/put loop");
		if (w[i].changer) {
			x->change_rate = w[i].ops * 1e9 / w[i].ns;
			x->change_miss = w[i].ops ?
					 (double)w[i].misses / w[i].ops : 0;
			continue;
		}
		x->rate += w[i].ops * 1e9 / w[i].ns;
		wall += w[i].ns;
		cpu += w[i].cpu_ns;
		gets += w[i].ops;
		misses += w[i].misses;
		sleeps += w[i].sleeps;
	}
	pthread_barrier_destroy(&start_barrier);
	x->share = cpu / wall;
	x->miss = gets ? misses / gets : 0;
	x->sleeps = gets ? 1e3 * sleeps / gets : 0;
	x->cpu_op = gets ? cpu / gets : 0;
}

/*
 * A measurement: workers to run again and again, and the runs so far.
 * A run whose timed threads had their CPUs less than min_share of the
 * time is not kept (the machine is shared: it measured someone else's
 * load). Done when BENCH_RUNS runs were kept, or after MAX_ATTEMPTS.
 */
struct job {
	struct worker w[MAX_WORKERS];
	int n;
	long ms;		/* per run */
	double min_share;
	struct sample kept[MAX_ATTEMPTS], all[MAX_ATTEMPTS];
	int nkept, nall;
};

/* Medians over the runs kept (over all of them if none was). */
struct result {
	struct sample med;	/* each field's own median */
	int kept, runs;
};

static bool job_done(const struct job *j)
{
	return j->nkept >= BENCH_RUNS || j->nall >= MAX_ATTEMPTS;
}

/* Runs the jobs' runs in turn, one each while it needs more. */
static void measure(struct job *jobs, int njobs)
{
	for (bool more = true; more;) {
		more = false;
		for (int i = 0; i < njobs; i++) {
			struct job *j = &jobs[i];
			struct sample *x;

			if (job_done(j))
				continue;
			x = &j->all[j->nall++];
			run_once(j->w, j->n, j->ms, x);
			if (x->share >= j->min_share)
				j->kept[j->nkept++] = *x;
			more = true;
		}
	}
}

static double median_field(const struct sample *v, int n, size_t offset)
{
	double x[MAX_ATTEMPTS];

	for (int i = 0; i < n; i++)
		memcpy(&x[i], (const char *)&v[i] + offset, sizeof(double));
	return bench_median(x, n);
}

static struct result job_result(const struct job *j)
{
	static const size_t fields[] = {
		offsetof(struct sample, rate),
		offsetof(struct sample, share),
		offsetof(struct sample, miss),
		offsetof(struct sample, sleeps),
		offsetof(struct sample, change_rate),
		offsetof(struct sample, change_miss),
		offsetof(struct sample, cpu_op),
	};
	const struct sample *v = j->nkept ? j->kept : j->all;
	int n = j->nkept ? j->nkept : j->nall;
	struct result r = { .kept = j->nkept, .runs = j->nall };

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		double m = median_field(v, n, fields[i]);

		memcpy((char *)&r.med + fields[i], &m, sizeof(m));
	}
	return r;
}

/*
 * Median rate of loop on nthreads pinned threads, each given arg as
 * w->caches[0] (section 2's references); *kept as in struct result.
 */
static double run_threads(int (*loop)(struct worker *), void *arg,
			  int nthreads, int *kept)
{
	struct job job;
	void *args[1] = { arg };
	struct result r;

	job = (struct job){
		.n = nthreads, .ms = run_ms, .min_share = FULL_SHARE,
	};
	for (int i = 0; i < nthreads; i++)
		job.w[i] = (struct worker){
			.cpu = cpu_of(i), .loop = loop, .caches = args,
		};
	measure(&job, 1);
	r = job_result(&job);
	*kept = r.kept;
	return r.med.rate;
}

/* ---- workloads ---- */

enum unit { UNIT_NS, UNIT_US, UNIT_MOPS };

static const char *const unit_name[] = {
	[UNIT_NS] = "ns/op",
	[UNIT_US] = "us/op",
	[UNIT_MOPS] = "M ops/s",
};

struct workload {
	const char *key, *label;	/* its record (bench.h) */
	const char *title;
	enum unit unit;			/* of its figure */
	int nthreads;			/* timed */
	struct plan plan[MAX_THREADS];	/* thread i's steps */
	struct plan change[NSIDES];	/* 9: each side's changer, or n = 0 */
	int ncaches;			/* per side */
	size_t max_regions;		/* the caches'; 0: the side's default */
	bool all_runs;			/* keep every run (see the top) */
	double goal;			/* target for uhmm's figure; 0: none */
	int base;			/* workload to compare with; -1: none */
	const char *base_text;		/* what that multiple is */
	double base_goal;		/* its target for uhmm; 0: none */
	long ms;			/* per run; 0: run_ms */
};

enum {
	W_HOT, W_HOT2, W_RR, W_RAND, W_RAND2, W_SAME2, W_TWO_CACHES,
	W_EVICT, W_MIXED,
	NCOMPARED,		/* section 1 runs those above */
	W_SHARED = NCOMPARED,	/* section 2's reference: one buffer shared */
	NWORKLOADS
};

static void setup_workloads(struct workload *wl)
{
	struct plan hot0 = plan_range(POOL_HOT, 1),
		    hot1 = plan_range(POOL_HOT + 1, 1),
		    rand0 = plan_random(POOL_HOT, NHOT, RAND_LEN, SEED),
		    mixed = plan_random(POOL_HOT, NHOT, MIX_EVERY * MIX_NMISS,
					SEED + 3),
		    two = plan_range(POOL_HOT, 2);

	/* 9: every MIX_EVERY-th get is for the next buffer that misses */
	for (size_t j = 0; j < MIX_NMISS; j++)
		mixed.steps[j * MIX_EVERY + MIX_EVERY - 1].addr =
			buf_at(POOL_MISS + j);
	two.steps[1].cache = 1;

	wl[W_HOT] = (struct workload){
		"rcache.hot", "hit, 1 thread, one hot buffer",
		"1 thread, one hot buffer", UNIT_NS, 1, { hot0 },
		.ncaches = 1, .base = -1,
	};
	wl[W_HOT2] = (struct workload){
		"rcache.hot_2t", "hits, 2 threads, own hot buffers",
		"2 threads, each its own hot buffer", UNIT_MOPS, 2,
		{ hot0, hot1 }, .ncaches = 1, .base = -1,
	};
	wl[W_RR] = (struct workload){
		"rcache.rr_1000", "hit, 1000 buffers, round robin",
		"1 thread, 1000 cached buffers, round robin", UNIT_NS, 1,
		{ plan_range(POOL_HOT, NHOT) }, .ncaches = 1, .base = -1,
	};
	wl[W_RAND] = (struct workload){
		"rcache.random_1000", "hit, 1000 buffers, random order",
		"1 thread, 1000 cached buffers, random order", UNIT_NS, 1,
		{ rand0 }, .ncaches = 1, .goal = 15, .base = -1,
	};
	wl[W_RAND2] = (struct workload){
		"rcache.random_1000_2t", "hits, 2 threads, own 1000 buffers",
		"2 threads, each its own 1000 buffers, random order",
		UNIT_MOPS, 2,
		{ rand0, plan_random(POOL_HOT + NHOT, NHOT, RAND_LEN,
				     SEED + 1) },
		.ncaches = 1, .base = W_RAND,
		.base_text = "2 threads / 1 thread (4.)", .base_goal = 1.7,
	};
	wl[W_SAME2] = (struct workload){
		"rcache.same_1000_2t", "hits, 2 threads, same 1000 buffers",
		"2 threads, the same 1000 buffers, random orders", UNIT_MOPS,
		2, { rand0, plan_random(POOL_HOT, NHOT, RAND_LEN, SEED + 2) },
		.ncaches = 1, .base = W_RAND,
		.base_text = "2 threads / 1 thread (4.)", .base_goal = 1.5,
	};
	wl[W_TWO_CACHES] = (struct workload){
		"rcache.two_caches", "hit, alternating two caches",
		"1 thread alternating two caches, one buffer each", UNIT_NS,
		1, { two }, .ncaches = 2, .base = W_HOT,
		.base_text = "two caches / one cache (1.)", .base_goal = 1.2,
	};
	wl[W_EVICT] = (struct workload){
		"rcache.evict", "miss + eviction, capped cache",
		"capped at 1024 regions, 2048 buffers round robin: every get "
		"misses and evicts", UNIT_US, 1,
		{ plan_range(POOL_HOT, EVICT_N) }, .ncaches = 1,
		.max_regions = EVICT_CAP, .goal = 1, .base = -1,
	};
	wl[W_MIXED] = (struct workload){
		"rcache.mixed", "get+put, 1% misses, a changer unmapping",
		"mixed: 1% misses (capped at 1280 regions), a changer "
		"unmapping and remapping 16 other buffers", UNIT_NS, 1,
		{ mixed },
		{ plan_range(POOL_CHANGE, MIX_NCHANGE),
		  plan_range(POOL_CHANGE + MIX_NCHANGE, MIX_NCHANGE) },
		.ncaches = 1, .max_regions = MIX_CAP, .all_runs = true,
		.base = -1,
	};
	wl[W_SHARED] = (struct workload){
		"rcache.shared_2t", "hits, 2 threads, one shared buffer",
		"2 threads, one shared buffer", UNIT_MOPS, 2, { hot0, hot0 },
		.ncaches = 1, .base = -1,
	};
}

/* Side s's workers for wl over its caches. */
static void job_init(struct job *j, const struct workload *wl,
		     const struct side *sd, int s, void *const *caches)
{
	*j = (struct job){
		.ms = wl->ms ? wl->ms : run_ms,
		.min_share = wl->all_runs ? 0 : FULL_SHARE,
	};
	for (int i = 0; i < wl->nthreads; i++)
		j->w[j->n++] = (struct worker){
			.cpu = cpu_of(i), .loop = sd->loop,
			.get_put = sd->get_put, .caches = caches,
			.plan = &wl->plan[i],
		};
	if (wl->change[s].n)
		j->w[j->n++] = (struct worker){
			.cpu = cpu_of(wl->nthreads), .loop = loop_change,
			.get_put = sd->get_put, .caches = caches,
			.plan = &wl->change[s], .changer = true,
		};
}

/* One untimed pass over every worker's steps: the caches are warm. */
static void warm_up(const struct job *j)
{
	for (int i = 0; i < j->n; i++) {
		const struct worker *w = &j->w[i];

		for (size_t k = 0; k < w->plan->n; k++)
			check(do_step(w->get_put, w->caches,
				      &w->plan->steps[k], w->changer),
			      "warm-up");
	}
}

/*
 * wl on each of the sides, new caches each, their runs alternating;
 * res[s] for side s.
 */
static void measure_workload(const struct workload *wl,
			     const struct side *sides, int nsides,
			     struct result *res)
{
	struct job jobs[NSIDES];
	struct noop_dev devs[NSIDES][MAX_CACHES];
	void *caches[NSIDES][MAX_CACHES];

	memset(devs, 0, sizeof(devs));
	for (int s = 0; s < nsides; s++) {
		for (int c = 0; c < wl->ncaches; c++)
			check(sides[s].create(&sides[s], wl->max_regions,
					      &devs[s][c], &caches[s][c]),
			      "cache create");
		job_init(&jobs[s], wl, &sides[s], s, caches[s]);
		warm_up(&jobs[s]);
	}
	measure(jobs, nsides);
	for (int s = 0; s < nsides; s++) {
		res[s] = job_result(&jobs[s]);
		for (int c = 0; c < wl->ncaches; c++)
			sides[s].destroy(caches[s][c]);
	}
}

/* ---- uhmm's side ---- */

static inline int uhmm_get_put(void *cache, void *addr)
{
	struct uhmm_region *region;
	int ret = uhmm_rcache_get(cache, addr, BUF_LEN,
				  UHMM_ACCESS_READ | UHMM_ACCESS_WRITE,
				  &region);

	return ret ? ret : uhmm_rcache_put(cache, region);
}

static int loop_uhmm(struct worker *w)
{
	return plan_loop(w, uhmm_get_put);
}

static int uhmm_create(const struct side *sd, size_t max_regions,
		       struct noop_dev *dev, void **cache)
{
	const struct uhmm_rcache_config cfg = {
		.max_regions = max_regions,
		.flags = sd->flags,
	};
	struct uhmm_rcache *rc;
	int ret = uhmm_rcache_create(&rc, sd->mm, &noop_ops, dev, &cfg);

	if (!ret)
		*cache = rc;
	return ret;
}

static void uhmm_destroy(void *cache)
{
	check(uhmm_rcache_destroy(cache), "uhmm_rcache_destroy");
}

static struct side uhmm_side(struct uhmm_mm *mm, unsigned int flags)
{
	return (struct side){
		.name = "uhmm", .loop = loop_uhmm, .get_put = uhmm_get_put,
		.create = uhmm_create, .destroy = uhmm_destroy,
		.mm = mm, .flags = flags,
	};
}

/* ---- UCX's side ---- */

#ifdef UHMM_BENCH_UCX
struct ucx_region {
	ucs_rcache_region_t super;
	uint64_t handle;
};

static ucs_status_t ucx_mem_reg(void *ctx, ucs_rcache_t *rcache, void *arg,
				ucs_rcache_region_t *region, uint16_t flags)
{
	struct ucx_region *r = (struct ucx_region *)region;

	(void)rcache;
	(void)arg;
	(void)flags;
	noop_reg(ctx, (void *)region->super.start,
		 region->super.end - region->super.start,
		 UHMM_ACCESS_READ | UHMM_ACCESS_WRITE, &r->handle);
	return UCS_OK;
}

static void ucx_mem_dereg(void *ctx, ucs_rcache_t *rcache,
			  ucs_rcache_region_t *region)
{
	(void)rcache;
	noop_dereg(ctx, ((struct ucx_region *)region)->handle);
}

static void ucx_dump_region(void *ctx, ucs_rcache_t *rcache,
			    ucs_rcache_region_t *region, char *buf,
			    size_t max)
{
	(void)ctx;
	(void)rcache;
	snprintf(buf, max, "handle %lu",
		 (unsigned long)((struct ucx_region *)region)->handle);
}

static const ucs_rcache_ops_t ucx_ops = {
	.mem_reg = ucx_mem_reg,
	.mem_dereg = ucx_mem_dereg,
	.dump_region = ucx_dump_region,
};

static inline int ucx_get_put(void *cache, void *addr)
{
	ucs_rcache_region_t *region;

	if (ucs_rcache_get(cache, addr, BUF_LEN, PROT_READ | PROT_WRITE, NULL,
			   &region) != UCS_OK)
		return -EIO;
	ucs_rcache_region_put(cache, region);
	return 0;
}

static int loop_ucx(struct worker *w)
{
	return plan_loop(w, ucx_get_put);
}

static ucs_status_t ucx_create_status(size_t max_regions,
				      struct noop_dev *dev, void **cache)
{
	ucs_rcache_params_t params = {
		.region_struct_size = sizeof(struct ucx_region),
		.alignment = UCS_RCACHE_MIN_ALIGNMENT,
		.max_alignment = PAGE,
		.ucm_events = UCM_EVENT_VM_UNMAPPED,
		.ucm_event_priority = 1000,
		.ops = &ucx_ops,
		.context = dev,
		/*
		 * Not UCS_RCACHE_FLAG_NO_PFN_CHECK: in UCX 1.13 a miss with
		 * that flag skips the LRU eviction too, and max_regions is
		 * never enforced. Without it the PFN check is still off
		 * unless UCX_RCACHE_CHECK_PFN says otherwise (ucx_side()
		 * warns).
		 */
		.flags = 0,
		.max_regions = max_regions ? max_regions : ULONG_MAX,
		.max_size = SIZE_MAX,
		.max_unreleased = SIZE_MAX,
	};
	ucs_rcache_t *rcache;
	ucs_status_t st = ucs_rcache_create(&params, "bench", NULL, &rcache);

	if (st == UCS_OK)
		*cache = rcache;
	return st;
}

static int ucx_create(const struct side *sd, size_t max_regions,
		      struct noop_dev *dev, void **cache)
{
	(void)sd;
	return ucx_create_status(max_regions, dev, cache) == UCS_OK ? 0 : -EIO;
}

static void ucx_destroy(void *cache)
{
	ucs_rcache_destroy(cache);
}

/* UCX's side, if a cache can be created; else says why not. */
static bool ucx_side(struct side *sd)
{
	struct noop_dev dev = { 0 };
	const char *pfn;
	ucs_status_t st;
	void *cache;

	st = ucx_create_status(0, &dev, &cache);
	if (st != UCS_OK) {
		printf("  UCX: ucs_rcache_create: %s; uhmm only\n",
		       ucs_status_string(st));
		return false;
	}
	ucs_rcache_destroy(cache);
	pfn = getenv("UCX_RCACHE_CHECK_PFN");
	if (pfn && strcmp(pfn, "0"))
		printf("  UCX: UCX_RCACHE_CHECK_PFN=%s: its hits read page "
		       "frame numbers too\n", pfn);
	*sd = (struct side){
		.name = "UCX", .loop = loop_ucx, .get_put = ucx_get_put,
		.create = ucx_create, .destroy = ucx_destroy,
	};
	return true;
}
#else
static bool ucx_side(struct side *sd)
{
	(void)sd;
	printf("  UCX: not built (libucs not found): uhmm only\n");
	return false;
}
#endif

/* ---- section 1: uhmm vs UCX ---- */

static int targets_met, targets_all;

static double figure(enum unit u, double rate)
{
	return u == UNIT_NS ? 1e9 / rate : u == UNIT_US ? 1e6 / rate :
	       rate / 1e6;
}

static bool lower_is_better(enum unit u)
{
	return u != UNIT_MOPS;
}

/* A figure, and a target for it: <= goal if le, else >= goal. */
static void target(const char *label, double value, const char *unit,
		   bool le, double goal)
{
	bool met = le ? value <= goal : value >= goal;

	printf("    %-46s %10.2f %-8s target %s %-5g %s\n", label, value, unit,
	       le ? "<=" : ">=", goal, met ? "met" : "missed");
	targets_met += met;
	targets_all++;
}

static void figure_line(const char *label, double value, const char *unit,
			const char *note)
{
	printf("    %-46s %10.2f %-8s %s\n", label, value, unit, note);
}

/* A side's figure, with how it was measured. */
static void print_side(const char *name, const struct workload *wl,
		       const struct result *r)
{
	char note[128];

	if (wl->all_runs)
		snprintf(note, sizeof(note), "all %d runs, on its CPU %.0f%% "
			 "(slept %.1f times per 1000 gets)", r->runs,
			 100 * r->med.share, r->med.sleeps);
	else
		snprintf(note, sizeof(note), "%d of %d runs kept%s", r->kept,
			 r->runs, r->kept ? "" : ": MACHINE BUSY, unreliable");
	snprintf(note + strlen(note), sizeof(note) - strlen(note),
		 ", %.2f%% missed", 100 * r->med.miss);
	figure_line(name, figure(wl->unit, r->med.rate), unit_name[wl->unit],
		    note);
}

/* 9's changer, on each side. */
static void print_changer(const struct result *res, int nsides,
			  const char *const *names)
{
	char label[80], note[64];

	for (int s = 0; s < nsides; s++) {
		snprintf(label, sizeof(label), "%s changer", names[s]);
		snprintf(note, sizeof(note), "its gets missed: %.0f%%",
			 100 * res[s].med.change_miss);
		figure_line(label, res[s].med.change_rate / 1e3, "k/s", note);
	}
	if (nsides == NSIDES)
		figure_line("changer, uhmm / UCX", res[0].med.change_rate /
			    res[1].med.change_rate, "x", "(higher: faster)");
}

static void report(int i, const struct workload *wl,
		   struct result res[][NSIDES], int nsides,
		   const char *const *names)
{
	const struct workload *w = &wl[i];
	const struct result *r = res[i];
	bool le = lower_is_better(w->unit);
	char label[80];

	printf("\n %d. %s\n", i + 1, w->title);
	for (int s = 0; s < nsides; s++)
		print_side(names[s], w, &r[s]);
	if (nsides < NSIDES)
		printf("    UCX: not built\n");
	if (w->change[0].n)
		print_changer(r, nsides, names);
	bench_record(w->key, w->label, figure(w->unit, r[0].med.rate),
		     unit_name[w->unit], nsides == NSIDES ?
		     figure(w->unit, r[1].med.rate) : 0, "UCX");
	if (nsides == NSIDES)
		target("uhmm / UCX", figure(w->unit, r[0].med.rate) /
		       figure(w->unit, r[1].med.rate), "x", le, le ? 0.5 : 2);
	if (w->goal)
		target("uhmm", figure(w->unit, r[0].med.rate),
		       unit_name[w->unit], le, w->goal);
	if (w->base < 0)
		return;
	for (int s = 0; s < nsides; s++) {
		double x = figure(w->unit, r[s].med.rate) /
			   figure(w->unit, res[w->base][s].med.rate);

		snprintf(label, sizeof(label), "%s %s", names[s], w->base_text);
		if (s == 0)
			target(label, x, "x", le, w->base_goal);
		else
			figure_line(label, x, "x", "");
	}
}

/* Section 1; res[i][0] is uhmm's figure of workload i. */
static void bench_compare(struct uhmm_mm *mm, const struct workload *wl,
			  struct result res[][NSIDES])
{
	struct side sides[NSIDES] = { uhmm_side(mm, UHMM_RCACHE_RELAXED) };
	const char *names[NSIDES] = { "uhmm" };
	int nsides = 1;

	printf("\n1. hit and miss workloads, uhmm (RELAXED) vs UCX, runs "
	       "alternating (64 KiB buffers, no-op devices)\n");
	if (ucx_side(&sides[1]))
		names[nsides++] = "UCX";
	for (int i = 0; i < NCOMPARED; i++) {
		measure_workload(&wl[i], sides, nsides, res[i]);
		report(i, wl, res, nsides, names);
	}
	printf("\n    targets met: %d of %d\n", targets_met, targets_all);
}

/* ---- section 2: strict mode ---- */

/*
 * The probe's system call alone: UFFDIO_COPY with a mode no kernel
 * accepts on a userfaultfd of our own, which fails with EINVAL (EAGAIN if
 * an event were in flight: never here). w->caches[0] points to the fd.
 */
static int loop_probe(struct worker *w)
{
	int fd = *(int *)w->caches[0];

	do {
		for (int i = 0; i < BATCH; i++) {
			struct uffdio_copy copy = { .mode = 1ULL << 63 };

			if (!ioctl(fd, UFFDIO_COPY, &copy))
				return -EPROTO;
			if (errno != EINVAL)
				return -errno;
		}
		w->ops += BATCH;
	} while (!stopped());
	return 0;
}

/* The cheapest system call, for the cost of entering the kernel here. */
static int loop_syscall(struct worker *w)
{
	do {
		for (int i = 0; i < BATCH; i++)
			bench_keep(syscall(SYS_getppid));
		w->ops += BATCH;
	} while (!stopped());
	return 0;
}

/* A userfaultfd of the bench's own, past UFFDIO_API; -1 if refused. */
static int probe_fd(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Whether this kernel lets a cache be strict (its self-test). */
static bool strict_allowed(const struct side *sd)
{
	struct noop_dev dev = { 0 };
	void *cache;
	int ret = sd->create(sd, 0, &dev, &cache);

	if (ret == -EOPNOTSUPP)
		return false;
	check(ret, "uhmm_rcache_create (strict)");
	sd->destroy(cache);
	return true;
}

static void print_strict_hits(const struct result *hot,
			      const struct result *hot2,
			      const struct result *shared)
{
	bench_line("strict hit, 1 thread", 1e9 / hot->med.rate, "ns/op", -1,
		   NULL);
	bench_line("strict 1 thread", hot->med.rate / 1e6, "M ops/s", -1,
		   NULL);
	bench_line("strict 2 threads, own buffers", hot2->med.rate / 1e6,
		   "M ops/s", -1, NULL);
	bench_line("strict 2 threads, one buffer (ref.)",
		   shared->med.rate / 1e6, "M ops/s", -1, NULL);
	printf("  (runs with the CPUs to themselves: %d, %d, %d of %d%s)\n",
	       hot->kept, hot2->kept, shared->kept, BENCH_RUNS,
	       hot->kept && hot2->kept && shared->kept ? "" :
	       "; MACHINE BUSY, figures unreliable");
	printf("  (timed gets that missed: %.2f%%, %.2f%%, %.2f%%)\n",
	       100 * hot->med.miss, 100 * hot2->med.miss,
	       100 * shared->med.miss);
}

/*
 * Section 2. relaxed_hot and relaxed_hot2: section 1's uhmm figures of
 * workloads 1 and 2.
 */
static void bench_strict(struct uhmm_mm *mm, const struct workload *wl,
			 const struct result *relaxed_hot,
			 const struct result *relaxed_hot2)
{
	struct side strict = uhmm_side(mm, UHMM_RCACHE_STRICT);
	struct result hot, hot2, shared;
	double r1, s1, s2, r2, p1 = -1, p2 = -1, sys1;
	int kept[3], fd;

	printf("\n2. strict mode (UHMM_RCACHE_STRICT): 1's workloads 1 and 2, "
	       "each get probing first\n");
	if (!strict_allowed(&strict)) {
		printf("  skipped: strict mode refused (-EOPNOTSUPP: the kernel "
		       "failed its self-test)\n");
		return;
	}
	measure_workload(&wl[W_HOT], &strict, 1, &hot);
	measure_workload(&wl[W_HOT2], &strict, 1, &hot2);
	measure_workload(&wl[W_SHARED], &strict, 1, &shared);
	fd = probe_fd();
	if (fd >= 0) {
		p1 = 1e9 / run_threads(loop_probe, &fd, 1, &kept[0]);
		p2 = 2e9 / run_threads(loop_probe, &fd, 2, &kept[1]);
		close(fd);
	}
	sys1 = 1e9 / run_threads(loop_syscall, NULL, 1, &kept[2]);
	print_strict_hits(&hot, &hot2, &shared);

	/* ns per get+put of each thread, with 2 threads on their own buffers */
	r1 = 1e9 / relaxed_hot->med.rate;
	s1 = 1e9 / hot.med.rate;
	r2 = 2e9 / relaxed_hot2->med.rate;
	s2 = 2e9 / hot2.med.rate;
	printf("\n   strict vs relaxed (section 1), same run: ns per get+put "
	       "(per thread)\n");
	bench_line("relaxed, 1 thread", r1, "ns/op", -1, NULL);
	bench_line("strict, 1 thread", s1, "ns/op", -1, NULL);
	printf("%-46s %10.2f x\n", "strict / relaxed, 1 thread", s1 / r1);
	bench_line("relaxed, 2 threads own buffers", r2, "ns/op", -1, NULL);
	bench_line("strict, 2 threads own buffers", s2, "ns/op", -1, NULL);
	printf("%-46s %10.2f x\n", "strict / relaxed, 2 threads", s2 / r2);
	printf("%-46s %10.2f x\n", "relaxed 2 threads / 1 thread (throughput)",
	       2 * r1 / r2);
	printf("%-46s %10.2f x\n", "strict 2 threads / 1 thread (throughput)",
	       2 * s1 / s2);
	if (p1 > 0) {
		printf("  reference, the probe's ioctl alone (own userfaultfd; "
		       "runs kept %d, %d of %d):\n", kept[0], kept[1],
		       BENCH_RUNS);
		bench_line("  probe ioctl, 1 thread", p1, "ns/call", -1, NULL);
		bench_line("  probe ioctl, 2 threads (per thread)", p2,
			   "ns/call", -1, NULL);
		printf("%-46s %10.2f x\n", "  probe 2 threads / 1 thread "
		       "(throughput)", 2 * p1 / p2);
		bench_line("  strict - relaxed - probe, 1 thread",
			   s1 - r1 - p1, "ns/op", -1, NULL);
	} else {
		printf("  (no userfaultfd of our own: probe reference "
		       "skipped)\n");
	}
	bench_line("  getppid() syscall, 1 thread (kernel entry)", sys1,
		   "ns/call", -1, NULL);
	bench_record("rcache.strict_hit", "strict hit, 1 thread", s1, "ns/op",
		     r1, "relaxed hit");
	bench_record("rcache.strict_hit_2t", "strict hits, 2 threads, per "
		     "thread", s2, "ns/op", r2, "relaxed hits");
	printf("\n   targets, strict mode\n");
	bench_line("Strict-mode get+put, 1 thread", s1, "ns/op", 400, "400");
	line_ge("strict 2 threads / one thread (throughput)", 2 * s1 / s2,
		"x", 1.5, "1.5");
}

/* ---- io_uring, O_DIRECT ---- */

struct io_setup {
	struct io_uring ring;
	struct uhmm_uring_dev *dev;
	struct uhmm_rcache *rc;
	const struct uhmm_rcache_ops *ops;
	char *buf;
	struct bench_rng rng;
};

enum { IO_CACHE, IO_PLAIN, IO_REG_EACH, IO_MODES };

static const char *const io_mode_name[IO_MODES] = {
	[IO_CACHE] = "(a) READ_FIXED through the cache",
	[IO_PLAIN] = "(b) plain READ",
	[IO_REG_EACH] = "(c) READ_FIXED, registered per I/O",
};

static int submit_wait(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int ret;

	do
		ret = io_uring_submit_and_wait(ring, 1);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	do
		ret = io_uring_wait_cqe(ring, &cqe);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

/* One read of len bytes of fd at off into s->buf, the mode's way. */
static int io_one(struct io_setup *s, int fd, int mode, unsigned int len,
		  uint64_t off)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	struct uhmm_region *region;
	uint64_t handle;
	int ret, res;

	if (!sqe)
		return -EBUSY;
	switch (mode) {
	case IO_CACHE:
		ret = uhmm_uring_prep_read_fixed(s->rc, sqe, fd, s->buf, len,
						 off, &region);
		if (ret)
			return ret;
		res = submit_wait(&s->ring);
		uhmm_rcache_put(s->rc, region);
		break;
	case IO_PLAIN:
		io_uring_prep_read(sqe, fd, s->buf, len, off);
		res = submit_wait(&s->ring);
		break;
	default:
		ret = s->ops->reg(s->dev, s->buf, len, UHMM_ACCESS_WRITE,
				  &handle);
		if (ret)
			return ret;
		io_uring_prep_read_fixed(sqe, fd, s->buf, len, off,
					 (int)handle);
		res = submit_wait(&s->ring);
		s->ops->dereg(s->dev, handle);
		break;
	}
	if (res < 0)
		return res;
	return (unsigned int)res == len ? 0 : -EIO;
}

/*
 * n rounds of one read per mode, each at its own random offset, the first
 * mode rotating: slow drifts of the disk hit every mode alike. Sets us[m]
 * to the mean us per read of mode m.
 */
static void io_rounds(struct io_setup *s, int fd, unsigned int len, size_t n,
		      double us[IO_MODES])
{
	uint64_t ns[IO_MODES] = { 0 };

	for (size_t i = 0; i < n; i++) {
		for (int j = 0; j < IO_MODES; j++) {
			int m = (i + j) % IO_MODES;
			uint64_t off = bench_rand_below(&s->rng,
							FILE_SIZE / len) * len;
			uint64_t t0 = bench_now_ns();

			check(io_one(s, fd, m, len, off), "read");
			ns[m] += bench_now_ns() - t0;
		}
	}
	for (int m = 0; m < IO_MODES; m++)
		us[m] = ns[m] / 1e3 / n;
}

/* Median us per read of each mode; prints them. */
static void io_size(struct io_setup *s, int fd, unsigned int len,
		    double us[IO_MODES])
{
	double runs[IO_MODES][BENCH_RUNS], t = 0;
	size_t n;

	/* Warm up; size n for about IO_RUN_NS per mode and run. */
	io_rounds(s, fd, len, IO_MIN, us);
	for (int m = 0; m < IO_MODES; m++)
		t += us[m] / IO_MODES;
	n = (size_t)(IO_RUN_NS / 1e3 / t);
	n = n < IO_MIN ? IO_MIN : n > IO_MAX_COUNT ? IO_MAX_COUNT : n;
	for (int run = 0; run < BENCH_RUNS; run++) {
		io_rounds(s, fd, len, n, us);
		for (int m = 0; m < IO_MODES; m++)
			runs[m][run] = us[m];
	}
	printf("  %u KiB, %zu reads per mode and run:\n", len >> 10, n);
	for (int m = 0; m < IO_MODES; m++) {
		char label[80];

		us[m] = bench_median(runs[m], BENCH_RUNS);
		snprintf(label, sizeof(label), "    %s", io_mode_name[m]);
		bench_line(label, us[m], "us/IO", -1, NULL);
	}
	printf("%-46s %10.2f x\n", "    (b) plain / (a) cache",
	       us[IO_PLAIN] / us[IO_CACHE]);
	printf("%-46s %10.2f x\n", "    (c) reg per I/O / (a) cache",
	       us[IO_REG_EACH] / us[IO_CACHE]);
}

/* Median us of the device's reg + dereg of len bytes alone. */
static double reg_dereg_us(struct io_setup *s, unsigned int len)
{
	double runs[BENCH_RUNS];
	uint64_t handle;

	for (int run = 0; run < BENCH_RUNS; run++) {
		uint64_t t0 = bench_now_ns();

		for (int i = 0; i < 1000; i++) {
			check(s->ops->reg(s->dev, s->buf, len,
					  UHMM_ACCESS_WRITE, &handle),
			      "uring reg");
			s->ops->dereg(s->dev, handle);
		}
		runs[run] = (bench_now_ns() - t0) / 1e3 / 1000;
	}
	return bench_median(runs, BENCH_RUNS);
}

/* Create a FILE_SIZE file in dir; -1 if that fails. */
static int create_file(const char *dir, char *path, size_t size)
{
	char *chunk = malloc(1 << 20);
	int fd;

	if (!chunk)
		die(-ENOMEM, "malloc");
	snprintf(path, size, "%s/uhmm-bench-rcache-XXXXXX", dir);
	fd = mkstemp(path);
	for (size_t off = 0; fd >= 0 && off < FILE_SIZE; off += 1 << 20) {
		memset(chunk, (int)(off >> 20), 1 << 20);
		if (write(fd, chunk, 1 << 20) != 1 << 20) {
			close(fd);
			unlink(path);
			fd = -1;
		}
	}
	free(chunk);
	if (fd >= 0)
		fsync(fd);
	return fd;
}

/*
 * The file, in the first directory that takes O_DIRECT reads: *dfd opened
 * O_DIRECT (-1 if no directory does), *bfd buffered and cached. Returns
 * false if no file could be created.
 */
static bool setup_file(int *dfd, int *bfd)
{
	static const char *const dirs[] = { "/var/tmp", "/tmp", "." };
	void *probe = map_buf(PAGE);
	char path[256], *chunk;
	int fd;

	*dfd = *bfd = -1;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		fd = create_file(dirs[i], path, sizeof(path));
		if (fd < 0)
			continue;
		*dfd = open(path, O_RDONLY | O_DIRECT);
		unlink(path);
		if (*dfd >= 0 && pread(*dfd, probe, PAGE, 0) == (ssize_t)PAGE) {
			printf("  file: 64 MiB in %s, O_DIRECT\n", dirs[i]);
			if (*bfd >= 0)
				close(*bfd);
			*bfd = fd;
			break;
		}
		printf("  O_DIRECT refused in %s\n", dirs[i]);
		if (*dfd >= 0)
			close(*dfd);
		*dfd = -1;
		/* Keep the first file for buffered reads. */
		if (*bfd < 0)
			*bfd = fd;
		else
			close(fd);
	}
	munmap(probe, PAGE);
	if (*bfd < 0)
		return false;
	/* All of it in the page cache, for the buffered figures. */
	chunk = malloc(1 << 20);
	if (!chunk)
		die(-ENOMEM, "malloc");
	for (size_t off = 0; off < FILE_SIZE; off += 1 << 20)
		if (pread(*bfd, chunk, 1 << 20, off) != 1 << 20)
			die(-EIO, "pread");
	free(chunk);
	return true;
}

static void bench_io(struct uhmm_mm *mm)
{
	static const unsigned int sizes[] = { 4096, 64 << 10 };
	static const struct uhmm_rcache_config relaxed = {
		.flags = UHMM_RCACHE_RELAXED,
	};
	struct io_setup s = { .buf = NULL };
	double us[2][IO_MODES], bus[2][IO_MODES];
	struct uhmm_rcache_stats st;
	int dfd, bfd, ret;

	printf("\n3. io_uring reads, random offsets, queue depth 1 "
	       "(us per I/O; the cache RELAXED)\n");
	ret = io_uring_queue_init(8, &s.ring, 0);
	if (ret < 0) {
		printf("  skipped: io_uring_queue_init: %s\n", strerror(-ret));
		return;
	}
	check(uhmm_uring_dev_open(&s.dev, &s.ring, 16), "uhmm_uring_dev_open");
	s.ops = uhmm_uring_rcache_ops();
	check(uhmm_rcache_create(&s.rc, mm, s.ops, s.dev, &relaxed),
	      "uhmm_rcache_create (uring)");
	if (!setup_file(&dfd, &bfd)) {
		printf("  skipped: could not create the file\n");
		goto out;
	}
	s.buf = map_buf(IO_MAX);
	bench_rng_seed(&s.rng, SEED);

	if (dfd < 0)
		printf("  O_DIRECT refused everywhere: BUFFERED reads only "
		       "(page cache, not the disk)\n");
	else
		for (size_t k = 0; k < 2; k++)
			io_size(&s, dfd, sizes[k], us[k]);

	printf("  reference, buffered reads (page cache hits, no disk):\n");
	for (size_t k = 0; k < 2; k++)
		io_size(&s, bfd, sizes[k], bus[k]);
	if (dfd < 0)
		memcpy(us, bus, sizeof(us));
	for (size_t k = 0; k < 2; k++) {
		char label[80];

		snprintf(label, sizeof(label), "  device reg + dereg alone, "
			 "%u KiB", sizes[k] >> 10);
		bench_line(label, reg_dereg_us(&s, sizes[k]), "us", -1, NULL);
	}
	check(uhmm_rcache_stats(s.rc, &st), "uhmm_rcache_stats");
	printf("  (cache: %lu hits, %lu misses)\n", st.hits, st.misses);

	bench_record("rcache.uring_64k", dfd < 0 ?
		     "64 KiB buffered read, fixed buffer via cache" :
		     "64 KiB O_DIRECT read, fixed buffer via cache",
		     us[1][IO_CACHE], "us", us[1][IO_PLAIN], "plain read");
	bench_record("rcache.uring_4k_cached", "4 KiB cached read, fixed "
		     "buffer via cache", bus[0][IO_CACHE], "us",
		     bus[0][IO_PLAIN], "plain read");
	printf("\n   targets, 64 KiB, %s\n", dfd < 0 ? "BUFFERED" : "O_DIRECT");
	line_ge("(b) plain / (a) cache", us[1][IO_PLAIN] / us[1][IO_CACHE],
		"x", 1.0, "1.0");
	line_ge("(c) reg per I/O / (a) cache", us[1][IO_REG_EACH] /
		us[1][IO_CACHE], "x", 2.0, "2.0");
	close(bfd);
	if (dfd >= 0)
		close(dfd);
out:
	check(uhmm_rcache_destroy(s.rc), "uhmm_rcache_destroy (uring)");
	check(uhmm_uring_dev_close(s.dev), "uhmm_uring_dev_close");
	io_uring_queue_exit(&s.ring);
	if (s.buf)
		munmap(s.buf, IO_MAX);
}

/* ---- section 4: the hit sweep ---- */

/* Records point (x, y) of series "rcache.<what>.<side>.<by><n>". */
static void sweep_point(const char *what, const char *side, char by,
			size_t n, size_t x, double y)
{
	char key[64];

	snprintf(key, sizeof(key), "rcache.%s.%s.%c%zu", what, side, by, n);
	bench_point(key, (double)x, y);
}

/*
 * One point: nthreads threads on nbufs buffers, on each side; prints its
 * row and records it. Returns the share of the timed gets that missed.
 */
static double sweep_one(const struct side *sides, int nsides, int nthreads,
			size_t nbufs)
{
	static const char *const keys[NSIDES] = { "uhmm", "ucx" };
	struct workload wl = {
		.title = "sweep", .unit = UNIT_NS, .nthreads = nthreads,
		.ncaches = 1, .max_regions = SWEEP_CAP, .all_runs = true,
		.base = -1, .ms = (long)bench_scaled(SWEEP_MS, 2),
	};
	size_t len = nbufs * 2 > RAND_LEN ? nbufs * 2 : RAND_LEN;
	double ns[NSIDES] = { 0 }, mops[NSIDES] = { 0 }, missed = 0;
	struct result res[NSIDES];

	for (int i = 0; i < nthreads; i++)
		wl.plan[i] = plan_random(POOL_SWEEP, nbufs, len, SEED + 10 + i);
	measure_workload(&wl, sides, nsides, res);
	for (int s = 0; s < nsides; s++) {
		ns[s] = res[s].med.cpu_op;
		mops[s] = res[s].med.rate / 1e6;
		missed += res[s].med.miss;
		/* Each point twice: against buffers, and against threads. */
		sweep_point("hit_ns", keys[s], 't', nthreads, nbufs, ns[s]);
		sweep_point("mops", keys[s], 't', nthreads, nbufs, mops[s]);
		sweep_point("hit_ns", keys[s], 'b', nbufs, nthreads, ns[s]);
		sweep_point("mops", keys[s], 'b', nbufs, nthreads, mops[s]);
	}
	if (nsides == NSIDES)
		printf("  %7d %7zu | %9.2f %9.2f %7.2fx | %9.2f %9.2f %7.2fx\n",
		       nthreads, nbufs, ns[0], ns[1], ns[0] / ns[1], mops[0],
		       mops[1], mops[0] / mops[1]);
	else
		printf("  %7d %7zu | %9.2f %9s %8s | %9.2f %9s %8s\n",
		       nthreads, nbufs, ns[0], "-", "-", mops[0], "-", "-");
	for (int i = 0; i < nthreads; i++)
		free(wl.plan[i].steps);
	return missed;
}

static void bench_sweep(struct uhmm_mm *mm)
{
	static const int threads[] = { 1, 2, 4 };
	static const size_t bufs[] = { 1, 10, 100, 1000, SWEEP_MAX_BUFS };
	struct side sides[NSIDES] = { uhmm_side(mm, UHMM_RCACHE_RELAXED) };
	double missed = 0;
	int nsides = 1;

	printf("\n4. hit sweep: T threads on the same B buffers, each in "
	       "its own random order;\n   every run kept, %ld ms each; ns: "
	       "CPU time per get+put, M ops/s: all threads\n",
	       (long)bench_scaled(SWEEP_MS, 2));
	if (ucx_side(&sides[1]))
		nsides++;
	printf("  %7s %7s | %9s %9s %8s | %9s %9s %8s\n", "threads",
	       "buffers", "uhmm ns", "UCX ns", "uhmm/UCX", "uhmm M/s",
	       "UCX M/s", "uhmm/UCX");
	for (size_t t = 0; t < sizeof(threads) / sizeof(*threads); t++)
		for (size_t b = 0; b < sizeof(bufs) / sizeof(*bufs); b++)
			missed += sweep_one(sides, nsides, threads[t], bufs[b]);
	if (missed > 0)
		printf("  (some timed gets missed: the caps are too small)\n");
}

/* The workloads, and the plans they point to, live to the end. */
static struct workload workloads[NWORKLOADS];

int main(void)
{
	struct result res[NCOMPARED][NSIDES];
	struct uhmm_mm *mm;

	setvbuf(stdout, NULL, _IOLBF, 0);
	run_ms = (long)bench_scaled(RUN_MS, 2);
	printf("uhmm registration-cache benchmark: median of %d runs, "
	       "%ld ms each in sections 1 and 2; %ld CPUs\n", BENCH_RUNS,
	       run_ms, sysconf(_SC_NPROCESSORS_ONLN));
	if (bench_scale() != 1)
		printf("UHMM_BENCH_SCALE %g: run times and reads scaled\n",
		       bench_scale());
	/* Relaxed: each cache says its own mode (see the top comment). */
	check(uhmm_mm_open(&mm, UHMM_MM_RELAXED), "uhmm_mm_open");
	/* One mapping for every buffer; no cache touches the pages. */
	pool = mmap(NULL, NBUFS * BUF_LEN, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED)
		die(-errno, "mmap");
	setup_workloads(workloads);

	bench_compare(mm, workloads, res);
	bench_strict(mm, workloads, &res[W_HOT][0], &res[W_HOT2][0]);
	bench_io(mm);
	bench_sweep(mm);

	/* Unmap while the monitored mm is open: its reader reads the events. */
	munmap(pool, NBUFS * BUF_LEN);
	check(uhmm_mm_close(mm), "uhmm_mm_close");
	return 0;
}
