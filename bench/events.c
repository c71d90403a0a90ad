/* SPDX-License-Identifier: MIT */
/*
 * bench-events: what the userfaultfd event source costs the thread that
 * unmaps, and how soon a subscription hears of it.
 *
 *  1. munmap() per call, timed alone (CLOCK_MONOTONIC around the call), of
 *     4 KiB (one page, touched), 2 MiB untouched and 2 MiB touched (every
 *     page written) anonymous private mappings. Each mapping is pre-created
 *     in its own VMA (a PROT_NONE guard of the same size on each side, so
 *     munmap never splits or merges anything) and, if registered, subscribed before
 *     the loop: neither mmap, nor touching, nor insert/remove is timed.
 *     Classes:
 *       no uhmm     before uhmm_mm_open(): a single-threaded process;
 *       uncovered   a monitored mm is open (source threads up, one
 *                   subscription elsewhere), no subscription covers the
 *                   mapping: nothing of uhmm is on this munmap's path;
 *                   also through uhmm_munmap() (what the hooks make of
 *                   every munmap in the process: a look-up of the armed
 *                   ranges, then the plain system call);
 *       registered  a subscription covers the mapping (its VMA is
 *                   registered with the userfaultfd), plain munmap(): the
 *                   kernel's event path, munmap blocks until the reader has
 *                   read the event. Measured "apart" (a busy gap of GAP_US,
 *                   longer than any spin, before each munmap: an isolated
 *                   free, the reader asleep) and "back-to-back" (the next
 *                   munmap as soon as the previous callback ran);
 *       registered, uhmm_munmap()
 *                   the same mappings unmapped with uhmm_munmap(), which
 *                   is what libuhmm_hooks puts in place of munmap(): a
 *                   non-blockable window in this thread (the callback runs
 *                   here), UFFDIO_UNREGISTER of the range, the munmap
 *                   (no event, so no wait for the reader), the window
 *                   closed. Back-to-back, like "no uhmm": no other thread
 *                   is on this path. Section 2 counts the callbacks that
 *                   ran in the unmapping thread, to show the path was
 *                   taken (a fallback to the kernel's path would not).
 *                   Target, 4 KiB: <= HOOK_TARGET (1.7) x "no uhmm". Each
 *                   of these munmaps is paired with a plain munmap of an
 *                   uncovered mapping just before it, timed apart: "hooks
 *                   / paired" compares the two at the same moments, which
 *                   a noisy machine shifts less than the ratio to "no
 *                   uhmm", measured seconds earlier.
 *     Each figure is the median over BENCH_RUNS runs of the per-call median;
 *     ratios are against "no uhmm" measured in the same process.
 *  2. Event latency: from just before munmap() to the callback's entry
 *     (clock_gettime(CLOCK_MONOTONIC) in the callback); median and p99 over
 *     all 10^4 events of each registered 4 KiB series (uhmm_munmap()'s
 *     included: its callback runs before the system call). Before its next
 *     munmap the thread that unmapped waits as a device would, with
 *     uhmm_interval_read_begin() on the subscription (and checks that the
 *     callback has run by then: docs/design.md, invariant 8).
 *     Also the CPU time per event of the source's threads (the reader and
 *     the dispatcher), from their thread CPU clocks.
 *  3. The reader's spin (UHMM_READER_SPIN_US, read once when the reader
 *     starts): without --spin-us the program re-executes itself
 *     (/proc/self/exe) once per setting, prints sections 1-2 in full for the
 *     first, and a table for all. Experiments: --pin same|apart puts the
 *     source's threads on the unmapping thread's CPU (or the other one)
 *     with sched_setaffinity(); --policy fifo|batch|idle sets their
 *     scheduling policy (fifo needs CAP_SYS_NICE).
 *  4. Registered 4 KiB munmap by path - the kernel's event path against
 *     uhmm_munmap() (the hooks') - and by where the source's threads run:
 *     without --pin and --spin-us, after the table of section 3 the
 *     program runs itself twice more with spin 0, --pin same and --pin
 *     apart, and tabulates those with section 3's spin-0 run (unpinned),
 *     with the target for the hooks' path against "no uhmm" of each run.
 *     With --pin, the one row of that setting.
 *
 * The mm is opened UHMM_MM_RELAXED, as the bench was written: strict mode
 * changes no munmap (it adds a probe to uhmm_interval_read_begin(), which
 * runs here only between munmaps, untimed), and relaxed keeps the rhythm
 * of the back-to-back series as before.
 *
 * Where the source's threads run matters most: the unmapping thread always
 * sleeps until the reader's read(), so each registered munmap costs two
 * wake-ups (and the callback a third, reader to dispatcher), cheap on one
 * CPU and far dearer across idle vCPUs of a VM. Unpinned figures therefore
 * depend on where the scheduler put the threads; compare with --pin.
 *
 * UHMM_BENCH_SCALE (bench.h) scales the number of munmaps of each series;
 * with UHMM_BENCH_RECORD set the spin-0 figures (of the first setting
 * run, with --spin-us the only one) are recorded for `uhmm bench`, which
 * runs --spin-us 0 alone: the other settings are experiments.
 *
 * Prints figures only: the exit status is 0 unless an API or system call
 * fails, whatever the times.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uhmm.h"
#include "bench.h"

#define KIB		1024UL
#define MIB		(1024 * KIB)
#define PAGE		(4 * KIB)

/* per run: 10^4 events over BENCH_RUNS */
#define EVENTS_4K	((int)bench_scaled(2000, 20))
/* per run, for each 2 MiB series */
#define EVENTS_2M	((int)bench_scaled(100, 5))
#define GAP_US		300	/* "apart": longer than the largest spin */
#define HOOK_TARGET	1.7	/* uhmm_munmap() of registered 4 KiB / none */
#define CB_TIMEOUT_NS	5000000000ULL

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax()	__builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax()	__asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax()	__asm__ __volatile__("" ::: "memory")
#endif

static const long spin_table[] = { 0, 5, 20, 50, 200 };

enum pin { PIN_NONE, PIN_SAME, PIN_APART };

/* One process's figures: what the parent's table shows. */
struct summary {
	long spin_us;
	double none_4k, uncov_4k, reg_4k, b2b_4k;	/* munmap, us */
	double none_2m, reg_2m;				/* 2 MiB touched */
	double lat, lat_p99, b2b_lat, b2b_lat_p99;	/* us */
	double cpu_apart, cpu_b2b;	/* source threads' CPU us per event */
	double uncov_hook_4k;		/* uncovered, uhmm_munmap(), us */
	double hook_pair_4k;		/* its paired plain munmap, us */
	double hook_4k, hook_lat, hook_lat_p99;	/* uhmm_munmap(), us */
	double hook_cpu;		/* source threads' CPU us per munmap */
	double hook_inline;		/* share of callbacks run inline */
};

/* A series of munmaps of one kind. */
struct series {
	double munmap_us;	/* median of runs of per-call medians */
	double lat_us;		/* median of all latencies */
	double lat_p99_us;
	double reader_cpu_us;	/* per event */
	double disp_cpu_us;	/* per event */
	double inline_share;	/* callbacks run in the unmapping thread */
	double pair_us;		/* the paired baseline's munmap_us, if any */
};

/* How a series unmaps: libc's munmap(), or what the hooks call. */
typedef int unmap_fn(void *addr, size_t len);

static struct uhmm_mm *mm;
static pid_t reader_tid, disp_tid;	/* the source's threads */
static unsigned long cb_count;	/* atomic: callbacks run */
static uint64_t cb_ns;		/* atomic: entry time of the last one */
static bool quiet;
static __thread bool unmapper;	/* this thread is the one that unmaps */
static unsigned long cb_inline;	/* atomic: callbacks run in that thread */

static bool ev_invalidate(struct uhmm_interval_notifier *sub,
			  const struct uhmm_notifier_range *range,
			  unsigned long cur_seq)
{
	uint64_t now = bench_now_ns();

	(void)range;
	/* The "device" has no state to zap and no lock to take. */
	uhmm_interval_set_seq(sub, cur_seq);
	if (unmapper)
		__atomic_fetch_add(&cb_inline, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&cb_ns, now, __ATOMIC_RELAXED);
	__atomic_fetch_add(&cb_count, 1, __ATOMIC_RELEASE);
	return true;
}

static const struct uhmm_interval_notifier_ops ev_ops = {
	.invalidate = ev_invalidate,
};

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-events: %s: %s\n", what, strerror(err));
	exit(1);
}

static void check(int ret, const char *what)
{
	if (ret)
		die(what, -ret);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die("calloc", ENOMEM);
	return p;
}

/* p-th percentile (0..100) of v[0..n), n > 0; sorts v. */
static double percentile(double *v, size_t n, double p)
{
	size_t i = (size_t)(p / 100 * (double)n + 0.999999);

	qsort(v, n, sizeof(*v), bench_cmp_double);
	return v[i ? i - 1 : 0];
}

/* The system call thread tid is blocked in, or -1 (running, unknown). */
static long blocked_in(pid_t tid)
{
	char path[64];
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

/*
 * The source's threads are the ones besides this (main) thread: the
 * reader sleeps in poll(), the dispatcher (if the library has one) on a
 * futex. Wait until they sleep to tell them apart; if that fails, the
 * reader is the one created last.
 */
static void find_source_threads(void)
{
	int tries;

	for (tries = 0; tries < 200; tries++) {
		DIR *d = opendir("/proc/self/task");
		pid_t self = getpid(), hi = 0, lo = 0;
		struct dirent *e;
		int n = 0;

		if (!d)
			die("/proc/self/task", errno);
		reader_tid = disp_tid = 0;
		while ((e = readdir(d))) {
			pid_t t = (pid_t)atoi(e->d_name);
			long nr;

			if (t <= 0 || t == self)
				continue;
			n++;
			lo = !lo || t < lo ? t : lo;
			hi = t > hi ? t : hi;
			nr = blocked_in(t);
			if (nr == SYS_poll || nr == SYS_ppoll)
				reader_tid = t;
			else if (nr == SYS_futex)
				disp_tid = t;
		}
		closedir(d);
		if (n == 1 && (reader_tid || tries > 100)) {
			reader_tid = hi;
			disp_tid = 0;
			return;
		}
		if (n == 2 && reader_tid && disp_tid)
			return;
		if (n == 2 && tries > 100) {
			reader_tid = hi;
			disp_tid = lo;
			return;
		}
		usleep(1000);
	}
	die("cannot find the event source's threads", ESRCH);
}

/* CPU time of thread tid of this process (the clockid glibc's
 * pthread_getcpuclockid() builds), in ns; 0 if unknown. */
static uint64_t thread_cpu_ns(pid_t tid)
{
	clockid_t clk = (clockid_t)((~(unsigned int)tid) << 3) | 6;
	struct timespec ts;

	if (!tid || clock_gettime(clk, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin_thread(pid_t tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(tid, sizeof(set), &set))
		die("sched_setaffinity", errno);
}

/*
 * After munmap() of sub's range returned: wait the way a device would, with
 * uhmm_interval_read_begin(), which returns once the invalidation is done
 * (docs/design.md, invariant 8). A callback still missing then is a library bug:
 * counted, reported at exit, and waited for by polling.
 */
static unsigned long hb_violations;

static void wait_callback(struct uhmm_interval_notifier *sub,
			  unsigned long seen)
{
	uint64_t t0;
	unsigned int i = 0;

	bench_keep(uhmm_interval_read_begin(sub));
	if (__atomic_load_n(&cb_count, __ATOMIC_ACQUIRE) != seen)
		return;
	hb_violations++;
	t0 = bench_now_ns();
	while (__atomic_load_n(&cb_count, __ATOMIC_ACQUIRE) == seen) {
		cpu_relax();
		if (!(++i & 0xffff) && bench_now_ns() - t0 > CB_TIMEOUT_NS) {
			fprintf(stderr, "bench-events: no callback after "
				"munmap of a subscribed range\n");
			exit(1);
		}
	}
}

/*
 * One run: n mappings of size bytes, each its own VMA; subscribe them if
 * registered; then munmap them one by one, gap_ns apart (busy), recording
 * each munmap's duration and, if registered, its event latency.
 */
/*
 * n mappings of size bytes in a reservation of len bytes: mapping i at
 * res + (2 * i + 1) * size, each its own VMA between PROT_NONE guards.
 */
static char *map_series(size_t size, bool touch, size_t n, size_t len)
{
	char *res, *p;
	size_t i, off;

	res = mmap(NULL, len, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		die("mmap reservation", errno);
	for (i = 0; i < n; i++) {
		p = mmap(res + (2 * i + 1) * size, size,
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			die("mmap", errno);
		if (touch)
			for (off = 0; off < size; off += PAGE)
				p[off] = 1;
	}
	return res;
}

/*
 * With pair_ns, a second series of n mappings nothing covers, unmapped
 * with plain munmap() just before each of the first series' (timed into
 * pair_ns): a baseline that sees the same moment of a noisy machine.
 */
static void one_run(size_t size, bool touch, bool registered, unmap_fn *unmap,
		    uint64_t gap_ns, size_t n, double *munmap_ns,
		    double *lat_ns, double *pair_ns, uint64_t *reader_cpu,
		    uint64_t *disp_cpu)
{
	struct uhmm_interval_notifier *subs = NULL;
	size_t len = 2 * n * size + size, i;
	uint64_t cpu0 = 0, dcpu0 = 0, last = 0;
	char *res, *pres = NULL, *p;

	res = map_series(size, touch, n, len);
	if (pair_ns)
		pres = map_series(size, touch, n, len);
	if (registered) {
		subs = xcalloc(n, sizeof(*subs));
		for (i = 0; i < n; i++)
			check(uhmm_interval_notifier_insert(&subs[i], mm,
				(unsigned long)res + (2 * i + 1) * size, size,
				&ev_ops), "uhmm_interval_notifier_insert");
		cpu0 = thread_cpu_ns(reader_tid);
		dcpu0 = thread_cpu_ns(disp_tid);
	}

	for (i = 0; i < n; i++) {
		unsigned long seen;
		uint64_t t0, t1;

		p = res + (2 * i + 1) * size;
		while (gap_ns && bench_now_ns() - last < gap_ns)
			cpu_relax();
		if (pair_ns) {
			t0 = bench_now_ns();
			if (munmap(pres + (2 * i + 1) * size, size))
				die("munmap", errno);
			pair_ns[i] = (double)(bench_now_ns() - t0);
		}
		seen = __atomic_load_n(&cb_count, __ATOMIC_ACQUIRE);
		t0 = bench_now_ns();
		if (unmap(p, size))
			die("munmap", errno);
		t1 = bench_now_ns();
		munmap_ns[i] = (double)(t1 - t0);
		if (registered) {
			wait_callback(&subs[i], seen);
			lat_ns[i] = (double)(__atomic_load_n(&cb_ns,
					__ATOMIC_RELAXED) - t0);
		}
		last = bench_now_ns();
	}

	if (registered) {
		*reader_cpu += thread_cpu_ns(reader_tid) - cpu0;
		*disp_cpu += thread_cpu_ns(disp_tid) - dcpu0;
		for (i = 0; i < n; i++)
			check(uhmm_interval_notifier_remove(&subs[i]),
			      "uhmm_interval_notifier_remove");
		free(subs);
	}
	if (munmap(res, len) || (pres && munmap(pres, len)))
		die("munmap reservation", errno);
}

static void measure(size_t size, bool touch, bool registered,
		    unmap_fn *unmap, uint64_t gap_ns, bool paired, size_t n,
		    struct series *out)
{
	double runs[BENCH_RUNS], pruns[BENCH_RUNS];
	double *mu = xcalloc(n, sizeof(*mu)), *pair = NULL;
	double *lat = xcalloc(BENCH_RUNS * n, sizeof(*lat));
	unsigned long inline0 = __atomic_load_n(&cb_inline, __ATOMIC_RELAXED);
	uint64_t cpu = 0, dcpu = 0;
	int r;

	if (paired)
		pair = xcalloc(n, sizeof(*pair));
	for (r = 0; r < BENCH_RUNS; r++) {
		one_run(size, touch, registered, unmap, gap_ns, n, mu,
			lat + r * n, pair, &cpu, &dcpu);
		runs[r] = bench_median(mu, n) / 1e3;
		pruns[r] = pair ? bench_median(pair, n) / 1e3 : 0;
	}
	out->pair_us = bench_median(pruns, BENCH_RUNS);
	free(pair);
	out->inline_share = (double)(__atomic_load_n(&cb_inline,
						     __ATOMIC_RELAXED) -
				     inline0) / (BENCH_RUNS * n);
	out->munmap_us = bench_median(runs, BENCH_RUNS);
	out->lat_us = out->lat_p99_us = 0;
	out->reader_cpu_us = out->disp_cpu_us = 0;
	if (registered) {
		out->lat_p99_us = percentile(lat, BENCH_RUNS * n, 99) / 1e3;
		out->lat_us = bench_median(lat, BENCH_RUNS * n) / 1e3;
		out->reader_cpu_us = (double)cpu / 1e3 / (BENCH_RUNS * n);
		out->disp_cpu_us = (double)dcpu / 1e3 / (BENCH_RUNS * n);
	}
	free(lat);
	free(mu);
}

static void row(const char *label, const struct series *s, double base)
{
	if (quiet)
		return;
	printf("  %-30s %8.2f us", label, s->munmap_us);
	if (base > 0)
		printf("  %5.2fx", s->munmap_us / base);
	printf("\n");
}

static void row_target(const char *label, const struct series *s,
		       double base, double target)
{
	double ratio = s->munmap_us / base;

	if (quiet)
		return;
	printf("  %-30s %8.2f us  %5.2fx  target <= %.1fx %s\n", label,
	       s->munmap_us, ratio, target,
	       ratio <= target ? "OK" : "MISSED");
}

/* Measure everything in this process; fill *sum. */
static void run_self(long spin_us, enum pin pin, int policy,
		     struct summary *sum)
{
	const struct {
		size_t size;
		bool touch;
		size_t n;
		const char *name;
	} kinds[] = {
		{ 4 * KIB, true, EVENTS_4K, "4 KiB, touched" },
		{ 2 * MIB, false, EVENTS_2M, "2 MiB, untouched" },
		{ 2 * MIB, true, EVENTS_2M, "2 MiB, touched" },
	};
	enum { NKINDS = sizeof(kinds) / sizeof(kinds[0]) };
	struct series none[NKINDS], s, b2b, hook;
	double rd_apart = 0, rd_b2b = 0, kernel_inline = 0;
	struct uhmm_interval_notifier other = { 0 };
	uint64_t gap = (uint64_t)(spin_us < GAP_US ? GAP_US :
				  spin_us + GAP_US) * 1000;
	char *o;
	int k;

	sum->spin_us = spin_us;
	if (!quiet)
		printf("reader spin %ld us%s%s; median of %d runs; "
		       "\"apart\" = %llu us between munmaps\n",
		       spin_us, pin == PIN_SAME ? ", source on main's CPU" :
		       pin == PIN_APART ? ", source on the other CPU" : "",
		       policy == SCHED_FIFO ? ", source SCHED_FIFO" :
		       policy == SCHED_BATCH ? ", source SCHED_BATCH" :
		       policy == SCHED_IDLE ? ", source SCHED_IDLE" : "",
		       BENCH_RUNS,
		       (unsigned long long)gap / 1000);

	/* No uhmm yet: one thread. */
	unmapper = true;
	if (pin != PIN_NONE)
		pin_thread(0, 0);
	for (k = 0; k < NKINDS; k++)
		measure(kinds[k].size, kinds[k].touch, false, munmap, 0, false,
			kinds[k].n, &none[k]);

	/* Relaxed, as written: see the top comment. */
	check(uhmm_mm_open(&mm, UHMM_MM_RELAXED), "uhmm_mm_open");
	find_source_threads();
	for (k = 0; k < 2; k++) {
		pid_t tid = k ? disp_tid : reader_tid;
		struct sched_param sp = {
			.sched_priority = policy == SCHED_FIFO ? 1 : 0,
		};

		if (!tid)
			continue;
		if (pin != PIN_NONE)
			pin_thread(tid, pin == PIN_SAME ? 0 : 1);
		if (policy != SCHED_OTHER &&
		    sched_setscheduler(tid, policy, &sp))
			die("sched_setscheduler", errno);
	}
	/* A subscription elsewhere, so the monitor has something armed. */
	o = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (o == MAP_FAILED)
		die("mmap", errno);
	check(uhmm_interval_notifier_insert(&other, mm, (unsigned long)o, PAGE,
					    &ev_ops),
	      "uhmm_interval_notifier_insert");

	if (!quiet)
		printf("\n1. munmap() per call (mmap, touch, insert/remove "
		       "not timed); ratio vs no uhmm\n");
	for (k = 0; k < NKINDS; k++) {
		if (!quiet)
			printf(" %s\n", kinds[k].name);
		row("no uhmm", &none[k], 0);
		measure(kinds[k].size, kinds[k].touch, false, munmap, 0, false,
			kinds[k].n, &s);
		row_target("uncovered (mm monitored)", &s, none[k].munmap_us,
			   1.1);
		if (k == 0)
			sum->uncov_4k = s.munmap_us;
		measure(kinds[k].size, kinds[k].touch, false, uhmm_munmap, 0,
			false, kinds[k].n, &s);
		row("uncovered, uhmm_munmap()", &s, none[k].munmap_us);
		if (k == 0)
			sum->uncov_hook_4k = s.munmap_us;
		measure(kinds[k].size, kinds[k].touch, true, munmap, gap, false,
			kinds[k].n, &s);
		row_target("registered, apart", &s, none[k].munmap_us, 3);
		measure(kinds[k].size, kinds[k].touch, true, munmap, 0, false,
			kinds[k].n, &b2b);
		row("registered, back-to-back", &b2b, none[k].munmap_us);
		measure(kinds[k].size, kinds[k].touch, true, uhmm_munmap, 0,
			true, kinds[k].n, &hook);
		if (k == 0)
			row_target("registered, uhmm_munmap()", &hook,
				   none[k].munmap_us, HOOK_TARGET);
		else
			row("registered, uhmm_munmap()", &hook,
			    none[k].munmap_us);
		if (!quiet)
			printf("    %-28s %8.2f us  hooks / it %.2fx\n",
			       "(paired: uncovered munmap)", hook.pair_us,
			       hook.munmap_us / hook.pair_us);
		if (k == 0) {
			sum->none_4k = none[k].munmap_us;
			sum->reg_4k = s.munmap_us;
			sum->b2b_4k = b2b.munmap_us;
			sum->lat = s.lat_us;
			sum->lat_p99 = s.lat_p99_us;
			sum->b2b_lat = b2b.lat_us;
			sum->b2b_lat_p99 = b2b.lat_p99_us;
			sum->cpu_apart = s.reader_cpu_us + s.disp_cpu_us;
			sum->cpu_b2b = b2b.reader_cpu_us + b2b.disp_cpu_us;
			rd_apart = s.reader_cpu_us;
			rd_b2b = b2b.reader_cpu_us;
			sum->hook_4k = hook.munmap_us;
			sum->hook_pair_4k = hook.pair_us;
			sum->hook_lat = hook.lat_us;
			sum->hook_lat_p99 = hook.lat_p99_us;
			sum->hook_cpu = hook.reader_cpu_us + hook.disp_cpu_us;
			sum->hook_inline = hook.inline_share;
			kernel_inline = (s.inline_share + b2b.inline_share) / 2;
		} else if (kinds[k].touch) {
			sum->none_2m = none[k].munmap_us;
			sum->reg_2m = s.munmap_us;
		}
	}

	if (!quiet) {
		printf("\n2. event latency, munmap() entry -> callback entry, "
		       "4 KiB, %d events each\n", BENCH_RUNS * EVENTS_4K);
		printf("  %-30s %8.2f us median  %8.2f us p99\n", "apart",
		       sum->lat, sum->lat_p99);
		printf("  %-30s %8.2f us median  %8.2f us p99\n",
		       "back-to-back", sum->b2b_lat, sum->b2b_lat_p99);
		printf("  %-30s %8.2f us median  %8.2f us p99\n",
		       "uhmm_munmap()", sum->hook_lat, sum->hook_lat_p99);
		printf("  CPU per event, reader + dispatcher: "
		       "%.2f + %.2f us apart, %.2f + %.2f us back-to-back; "
		       "%.2f us per uhmm_munmap()\n",
		       rd_apart, sum->cpu_apart - rd_apart, rd_b2b,
		       sum->cpu_b2b - rd_b2b, sum->hook_cpu);
		printf("  callbacks run in the unmapping thread: %.0f%% with "
		       "uhmm_munmap() (the hooks' path), %.0f%% with munmap() "
		       "(the dispatcher's)\n", 100 * sum->hook_inline,
		       100 * kernel_inline);
	}

	check(uhmm_interval_notifier_remove(&other),
	      "uhmm_interval_notifier_remove");
	if (munmap(o, PAGE))
		die("munmap", errno);
	check(uhmm_mm_close(mm), "uhmm_mm_close");
	if (hb_violations) {
		fprintf(stderr, "bench-events: %lu times read_begin() returned "
			"before the callback of a returned munmap() ran\n",
			hb_violations);
		exit(1);
	}
}

static void print_table_head(void)
{
	printf("\n3. reader spin (UHMM_READER_SPIN_US): 4 KiB touched "
	       "unless said, us;\n   cpu = reader + dispatcher CPU "
	       "us/event\n");
	printf("%5s | %6s %6s %6s %6s | %6s %6s %6s | %6s %6s | %6s %6s\n",
	       "spin", "none", "uncov", "apart", "ratio", "lat", "p99",
	       "cpu", "b2b", "lat", "cpu", "2M x");
}

static void print_table_row(const struct summary *s)
{
	printf("%5ld | %6.2f %6.2f %6.2f %5.2fx | %6.2f %6.2f %6.2f "
	       "| %6.2f %6.2f | %6.2f %5.2fx\n",
	       s->spin_us, s->none_4k, s->uncov_4k, s->reg_4k,
	       s->reg_4k / s->none_4k, s->lat, s->lat_p99, s->cpu_apart,
	       s->b2b_4k, s->b2b_lat, s->cpu_b2b, s->reg_2m / s->none_2m);
}

/* The figures of one setting, for `uhmm bench`: munmap against none. */
static void record_summary(const struct summary *s)
{
	bench_record("events.munmap_4k_uncovered",
		     "4 KiB munmap, not covered, mm monitored", s->uncov_4k,
		     "us", s->none_4k, "munmap, no uhmm");
	bench_record("events.munmap_4k_registered",
		     "4 KiB registered munmap, kernel's event", s->reg_4k,
		     "us", s->none_4k, "munmap, no uhmm");
	bench_record("events.munmap_4k_b2b",
		     "4 KiB registered munmap, back-to-back", s->b2b_4k, "us",
		     s->none_4k, "munmap, no uhmm");
	bench_record("events.munmap_4k_hooks",
		     "4 KiB registered munmap, uhmm_munmap()", s->hook_4k,
		     "us", s->none_4k, "munmap, no uhmm");
	bench_record("events.munmap_2m_registered",
		     "2 MiB registered munmap, kernel's event", s->reg_2m,
		     "us", s->none_2m, "munmap, no uhmm");
	bench_record("events.latency", "event latency, munmap -> callback",
		     s->lat, "us", 0, NULL);
	bench_record("events.latency_p99", "event latency, p99", s->lat_p99,
		     "us", 0, NULL);
}

static void print_table_foot(void)
{
	printf("none/uncov/apart: munmap without uhmm / not covered / "
	       "registered, isolated; ratio = apart/none\n"
	       "lat, p99: munmap entry -> callback (apart); "
	       "b2b: back-to-back munmap and latency; 2M x: 2 MiB touched "
	       "registered/none\n");
}

static const char *const pin_name[] = {
	[PIN_NONE] = "unpinned",
	[PIN_SAME] = "same CPU",
	[PIN_APART] = "other CPU",
};

/* Section 4: sums[i] measured with the source's threads at pins[i]. */
static void print_pin_table(const struct summary *sums, const enum pin *pins,
			    int n)
{
	int i;

	printf("\n4. registered 4 KiB munmap, the kernel's event path vs "
	       "uhmm_munmap() (the hooks'),\n   by where the source's threads "
	       "run; spin 0, us, x = / none of the same run\n");
	printf("%-9s | %6s %6s %6s | %6s %6s | %6s %6s | %6s %6s %6s | "
	       "%6s %6s\n", "source", "none", "uncov", "unc-hk", "apart", "x",
	       "b2b", "x", "hooks", "x", "/pair", "lat", "cpu");
	for (i = 0; i < n; i++) {
		const struct summary *s = &sums[i];

		printf("%-9s | %6.2f %6.2f %6.2f | %6.2f %5.2fx | %6.2f %5.2fx "
		       "| %6.2f %5.2fx %5.2fx | %6.2f %6.2f\n",
		       pin_name[pins[i]], s->none_4k, s->uncov_4k,
		       s->uncov_hook_4k, s->reg_4k, s->reg_4k / s->none_4k,
		       s->b2b_4k, s->b2b_4k / s->none_4k, s->hook_4k,
		       s->hook_4k / s->none_4k, s->hook_4k / s->hook_pair_4k,
		       s->hook_lat, s->hook_cpu);
	}
	printf("none/uncov: munmap without uhmm / not covered; unc-hk: not "
	       "covered, uhmm_munmap();\napart/b2b: registered, plain munmap, "
	       "the kernel's path (isolated / back-to-back);\nhooks: "
	       "registered, uhmm_munmap(), back-to-back; x = / none; /pair = / "
	       "the plain munmap\nof an uncovered page paired with each; lat: "
	       "its munmap entry -> callback; cpu: reader\n+ dispatcher us per "
	       "uhmm_munmap()\n");
	printf("\n   target: Registered 4 KiB munmap through the hooks: "
	       "<= %.1fx unregistered\n", HOOK_TARGET);
	for (i = 0; i < n; i++) {
		char label[64];
		double x = sums[i].hook_4k / sums[i].none_4k;

		snprintf(label, sizeof(label), "hooks / no uhmm, source %s",
			 pin_name[pins[i]]);
		printf("%-46s %10.2f x        target <= %-8.1f %-6s  (/pair "
		       "%.2fx)%s\n", label, x, HOOK_TARGET,
		       x <= HOOK_TARGET ? "OK" : "MISSED",
		       sums[i].hook_4k / sums[i].hook_pair_4k,
		       sums[i].hook_inline < 0.999 ? " PATH NOT TAKEN" : "");
	}
}

/* Run this program again with --spin-us for one setting. */
static int run_child(const char *self_args[], long spin_us,
		     struct summary *sum, bool verbose)
{
	char spin[32], fd[32];
	const char *argv[16];
	int pfd[2], status, i = 0, j;
	ssize_t got;
	pid_t pid;

	if (pipe(pfd))
		die("pipe", errno);
	snprintf(spin, sizeof(spin), "%ld", spin_us);
	snprintf(fd, sizeof(fd), "%d", pfd[1]);
	argv[i++] = "bench-events";
	argv[i++] = "--spin-us";
	argv[i++] = spin;
	argv[i++] = "--report-fd";
	argv[i++] = fd;
	if (!verbose)
		argv[i++] = "--quiet";
	for (j = 0; self_args[j] && i < 15; j++)
		argv[i++] = self_args[j];
	argv[i] = NULL;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		close(pfd[0]);
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	got = read(pfd[0], sum, sizeof(*sum));
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status) ||
	    got != (ssize_t)sizeof(*sum)) {
		fprintf(stderr, "bench-events: run with spin %ld us failed\n",
			spin_us);
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-events [--spin-us N] "
		"[--pin same|apart] [--policy fifo|batch|idle]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	enum { NSPIN = sizeof(spin_table) / sizeof(spin_table[0]) };
	struct summary sums[NSPIN], one, pinned[3];
	enum pin pins[3] = { PIN_NONE, PIN_SAME, PIN_APART };
	const char *pass[5] = { NULL }, *pin_pass[7] = { NULL };
	enum pin pin = PIN_NONE;
	long spin_us = -1;
	int report_fd = -1, npass = 0, policy = SCHED_OTHER, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--spin-us") && i + 1 < argc) {
			spin_us = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--report-fd") && i + 1 < argc) {
			report_fd = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--quiet")) {
			quiet = true;
		} else if (!strcmp(argv[i], "--pin") && i + 1 < argc &&
			   npass < 3) {
			pass[npass++] = argv[i];
			pass[npass++] = argv[++i];
			if (!strcmp(argv[i], "same"))
				pin = PIN_SAME;
			else if (!strcmp(argv[i], "apart"))
				pin = PIN_APART;
			else
				usage();
		} else if (!strcmp(argv[i], "--policy") && i + 1 < argc &&
			   npass < 3) {
			pass[npass++] = argv[i];
			pass[npass++] = argv[++i];
			if (!strcmp(argv[i], "fifo"))
				policy = SCHED_FIFO;
			else if (!strcmp(argv[i], "batch"))
				policy = SCHED_BATCH;
			else if (!strcmp(argv[i], "idle"))
				policy = SCHED_IDLE;
			else
				usage();
		} else {
			usage();
		}
	}

	if (spin_us >= 0) {
		char v[32];

		/* Read by the reader thread when the first open starts it. */
		snprintf(v, sizeof(v), "%ld", spin_us);
		setenv("UHMM_READER_SPIN_US", v, 1);
		run_self(spin_us, pin, policy, &one);
		if (report_fd >= 0) {
			if (write(report_fd, &one, sizeof(one)) !=
			    (ssize_t)sizeof(one))
				die("write report", errno);
		} else {
			print_table_head();
			print_table_row(&one);
			print_table_foot();
			record_summary(&one);
		}
		return 0;
	}

	printf("uhmm event-source benchmark, %ld CPUs; full detail for "
	       "spin %ld us\n\n", sysconf(_SC_NPROCESSORS_ONLN),
	       spin_table[0]);
	for (i = 0; i < NSPIN; i++)
		if (run_child(pass, spin_table[i], &sums[i], i == 0))
			return 1;
	print_table_head();
	for (i = 0; i < NSPIN; i++)
		print_table_row(&sums[i]);
	print_table_foot();
	record_summary(&sums[0]);

	/* Section 4: spin 0 unpinned (above), then pinned both ways. */
	pinned[0] = sums[0];
	pins[0] = pin;
	if (pin != PIN_NONE) {
		print_pin_table(pinned, pins, 1);
		return 0;
	}
	pin_pass[0] = "--pin";
	for (i = 0; i < npass; i++)	/* --policy, if given */
		pin_pass[2 + i] = pass[i];
	for (i = 1; i < 3; i++) {
		pin_pass[1] = i == 1 ? "same" : "apart";
		if (run_child(pin_pass, spin_table[0], &pinned[i], false))
			return 1;
	}
	print_pin_table(pinned, pins, 3);
	return 0;
}
