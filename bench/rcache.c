/* SPDX-License-Identifier: MIT */
/*
 * bench-rcache: the registration cache's hit path, against UCX's, what
 * strict mode costs it, and what it buys io_uring.
 *
 * Strict mode (uhmm.h, UHMM_MM_STRICT, the default) makes every get ask
 * the kernel first whether an event is in flight: one system call. The
 * sections written before it (1, 3 and 4) measure RELAXED caches
 * (UHMM_RCACHE_RELAXED, set explicitly whatever UHMM_STRICT says), so
 * their figures stay comparable with earlier runs and with UCX, which
 * makes no such call; section 2 measures the same loop in strict mode.
 * The mm itself is opened UHMM_MM_RELAXED: every cache says its mode.
 *
 *  1. Hit, RELAXED: uhmm_rcache_get() + uhmm_rcache_put() of a 64 KiB
 *     buffer already in the cache, in a loop, on a no-op device (reg hands
 *     out a counter, dereg does nothing). ns per get+put with 1 thread;
 *     aggregate M ops/s with 2 threads, each on its own buffer (the
 *     realistic case), and on one shared buffer (for reference). Each
 *     worker thread is pinned to its own CPU and runs for RUN_MS while the
 *     main thread sleeps. A run in which the workers were off their CPUs
 *     (CLOCK_THREAD_CPUTIME_ID against wall time) more than 5% of the time
 *     is run again, up to MAX_ATTEMPTS runs: the machine is shared, and
 *     such a run measures someone else's load.
 *  2. Strict vs relaxed: the loop of section 1, the same buffers and
 *     threads, on a cache created UHMM_RCACHE_STRICT (a subscription is
 *     armed, so every get makes the in-flight probe; nothing is ever in
 *     flight, so none waits). ns per get+put with 1 and 2 threads (per
 *     thread), strict / relaxed against section 1's figures, and the
 *     2-thread aggregate as a multiple of 1 thread. For reference, the
 *     probe's system call alone (ioctl(UFFDIO_COPY) with an invalid mode
 *     on a userfaultfd of the bench's own, which fails the same way the
 *     probe's does when nothing is in flight), with 1 and 2 threads,
 *     and the cheapest system call (getppid) for the cost of entering the
 *     kernel on this machine.
 *  3. The loop of section 1 against UCX's ucs_rcache (ucs_rcache_get() +
 *     ucs_rcache_region_put(), PROT_READ | PROT_WRITE, the same no-op
 *     device behind mem_reg/mem_dereg), if the bench was built with libucs,
 *     compared with section 1 (relaxed). UCX is set up only after sections
 *     1 and 2 ran: its memory hooks are then not installed while uhmm is
 *     measured.
 *  4. io_uring reads of 4 KiB and 64 KiB at random aligned offsets of a
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
 * The monitored mm stays open until every buffer registered through it is
 * unmapped: a munmap of such a buffer waits for uhmm's reader thread to
 * read the event. Times come from CLOCK_MONOTONIC, around whole loops but
 * in section 4; every figure is the median of BENCH_RUNS runs and every
 * ratio is computed from figures of this run. Prints figures and targets
 * only: the exit status is 0 unless a call fails, whatever the times.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
#define HIT_LEN		(64UL << 10)
#define RUN_MS		100
#define MAX_ATTEMPTS	(3 * BENCH_RUNS)
#define FULL_SHARE	0.95	/* of the wall time on a CPU */
#define BATCH		256
#define MAX_THREADS	2

#define FILE_SIZE	(64UL << 20)
#define IO_MAX		(64UL << 10)
#define IO_RUN_NS	150000000ULL	/* aim per mode and run: 150 ms */
#define IO_MIN		100
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

/* ---- the no-op device, shared by both caches ---- */

static unsigned long noop_regs;	/* atomic */

static int noop_reg(void *dev, void *addr, size_t len, unsigned int access,
		    uint64_t *handle)
{
	(void)dev;
	(void)addr;
	(void)len;
	(void)access;
	*handle = __atomic_add_fetch(&noop_regs, 1, __ATOMIC_RELAXED);
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

/* ---- timed loops on pinned threads ---- */

struct worker {
	pthread_t thread;
	int cpu;
	void *cache;
	void *buf;
	int (*loop)(struct worker *w);
	unsigned long ops;
	uint64_t ns, cpu_ns;	/* wall and this thread's CPU time */
	int err;
};

static pthread_barrier_t start_barrier;
static int stop;	/* atomic */

static bool stopped(void)
{
	return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

static int loop_uhmm(struct worker *w)
{
	struct uhmm_rcache *rc = w->cache;
	struct uhmm_region *region;
	int ret;

	do {
		for (int i = 0; i < BATCH; i++) {
			ret = uhmm_rcache_get(rc, w->buf, HIT_LEN,
					      UHMM_ACCESS_READ |
					      UHMM_ACCESS_WRITE, &region);
			if (ret)
				return ret;
			ret = uhmm_rcache_put(rc, region);
			if (ret)
				return ret;
		}
		w->ops += BATCH;
	} while (!stopped());
	return 0;
}

static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t t0, c0;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	/* Best effort: unpinned figures are only noisier. */
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	pthread_barrier_wait(&start_barrier);
	c0 = cpu_now_ns();
	t0 = bench_now_ns();
	w->err = w->loop(w);
	w->ns = bench_now_ns() - t0;
	w->cpu_ns = cpu_now_ns() - c0;
	return NULL;
}

/*
 * One run: nthreads workers run loop for RUN_MS, worker i on bufs[i].
 * Returns the aggregate ops per second (wall time); sets *share to the
 * fraction of the wall time the workers were on a CPU.
 */
static double run_once(int (*loop)(struct worker *), void *cache,
		       void **bufs, int nthreads, double *share)
{
	struct timespec ts = { .tv_nsec = RUN_MS * 1000000L };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double rate = 0, wall = 0, cpu = 0;
	struct worker w[MAX_THREADS];

	__atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
	pthread_barrier_init(&start_barrier, NULL, nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){
			.cpu = ncpu > 0 ? i % ncpu : 0,
			.cache = cache,
			.buf = bufs[i],
			.loop = loop,
		};
		check(-pthread_create(&w[i].thread, NULL, worker_main, &w[i]),
		      "pthread_create");
	}
	pthread_barrier_wait(&start_barrier);
	nanosleep(&ts, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].thread, NULL);
		check(w[i].err, "get/put loop");
		rate += w[i].ops * 1e9 / w[i].ns;
		wall += w[i].ns;
		cpu += w[i].cpu_ns;
	}
	pthread_barrier_destroy(&start_barrier);
	*share = cpu / wall;
	return rate;
}

/*
 * The machine is shared: a run in which the workers were off their CPUs
 * more than 5% of the time measured someone else's load. Runs until
 * BENCH_RUNS runs had the CPUs (at most MAX_ATTEMPTS runs) and returns the
 * median rate of those, or of all runs if none did; *kept says how many.
 */
static double run_threads(int (*loop)(struct worker *), void *cache,
			  void **bufs, int nthreads, int *kept)
{
	double good[MAX_ATTEMPTS], all[MAX_ATTEMPTS], share;
	int ngood = 0, nall = 0;

	while (ngood < BENCH_RUNS && nall < MAX_ATTEMPTS) {
		all[nall] = run_once(loop, cache, bufs, nthreads, &share);
		if (share >= FULL_SHARE)
			good[ngood++] = all[nall];
		nall++;
	}
	*kept = ngood;
	return ngood ? bench_median(good, ngood) : bench_median(all, nall);
}

struct hit_figures {
	double ns1;		/* ns per get+put, 1 thread */
	double mops2;		/* M ops/s, 2 threads, own buffers */
	double mops2_same;	/* M ops/s, 2 threads, one buffer */
	int kept[3];		/* runs kept for each, see run_threads() */
};

static void measure_hits(struct hit_figures *f, int (*loop)(struct worker *),
			 void *cache, void **bufs)
{
	void *same[MAX_THREADS] = { bufs[0], bufs[0] };

	f->ns1 = 1e9 / run_threads(loop, cache, bufs, 1, &f->kept[0]);
	f->mops2 = run_threads(loop, cache, bufs, 2, &f->kept[1]) / 1e6;
	f->mops2_same = run_threads(loop, cache, same, 2, &f->kept[2]) / 1e6;
}

static void print_hits(const char *who, const struct hit_figures *f)
{
	char label[80];

	snprintf(label, sizeof(label), "%s hit, 1 thread", who);
	bench_line(label, f->ns1, "ns/op", -1, NULL);
	snprintf(label, sizeof(label), "%s 1 thread", who);
	bench_line(label, 1e3 / f->ns1, "M ops/s", -1, NULL);
	snprintf(label, sizeof(label), "%s 2 threads, own buffers", who);
	bench_line(label, f->mops2, "M ops/s", -1, NULL);
	snprintf(label, sizeof(label), "%s 2 threads, one buffer (ref.)", who);
	bench_line(label, f->mops2_same, "M ops/s", -1, NULL);
	printf("  (runs with the CPUs to themselves: %d, %d, %d of %d%s)\n",
	       f->kept[0], f->kept[1], f->kept[2], BENCH_RUNS,
	       f->kept[0] && f->kept[1] && f->kept[2] ? "" :
	       "; MACHINE BUSY, figures unreliable");
}

/*
 * Section 1's loop on a cache of mode flags (UHMM_RCACHE_STRICT or
 * UHMM_RCACHE_RELAXED). Returns 0, or -EOPNOTSUPP if the cache refused
 * strict mode (the kernel failed its self-test); dies on other errors.
 */
static int measure_uhmm_hits(struct uhmm_mm *mm, unsigned int flags,
			     void **bufs, struct hit_figures *f,
			     struct uhmm_rcache_stats *st)
{
	const struct uhmm_rcache_config cfg = { .flags = flags };
	struct uhmm_rcache *rc;
	int ret;

	ret = uhmm_rcache_create(&rc, mm, &noop_ops, NULL, &cfg);
	if (ret == -EOPNOTSUPP && (flags & UHMM_RCACHE_STRICT))
		return ret;
	check(ret, "uhmm_rcache_create");
	measure_hits(f, loop_uhmm, rc, bufs);
	check(uhmm_rcache_stats(rc, st), "uhmm_rcache_stats");
	check(uhmm_rcache_destroy(rc), "uhmm_rcache_destroy");
	return 0;
}

static void bench_uhmm_hits(struct uhmm_mm *mm, void **bufs,
			    struct hit_figures *f)
{
	struct uhmm_rcache_stats st;

	check(measure_uhmm_hits(mm, UHMM_RCACHE_RELAXED, bufs, f, &st),
	      "uhmm_rcache_create (relaxed)");
	printf("\n1. uhmm_rcache hit, RELAXED mode (get + put, 64 KiB buffer, "
	       "no-op device)\n");
	print_hits("uhmm relaxed", f);
	bench_line("uhmm relaxed hit, 1 thread", f->ns1, "ns/op", 30, "30");
	line_ge("uhmm relaxed 2 threads own buffers / 1 thread",
		f->mops2 * f->ns1 / 1e3, "x", 1.8, "1.8");
	printf("  (%lu hits, %lu misses)\n", st.hits, st.misses);
}

/* ---- strict mode ---- */

/*
 * The probe's system call alone: UFFDIO_COPY with a mode no kernel
 * accepts on a userfaultfd of our own, which fails with EINVAL (EAGAIN if
 * an event were in flight: never here). w->cache points to the fd.
 */
static int loop_probe(struct worker *w)
{
	int fd = *(int *)w->cache;

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

static void bench_strict(struct uhmm_mm *mm, void **bufs,
			 const struct hit_figures *r)
{
	struct hit_figures s;
	struct uhmm_rcache_stats st;
	double s2, r2, p1 = -1, p2 = -1, sys1;
	int kept[3], fd;

	printf("\n2. strict mode (UHMM_RCACHE_STRICT): section 1's loop, each "
	       "get probing first\n");
	if (measure_uhmm_hits(mm, UHMM_RCACHE_STRICT, bufs, &s, &st)) {
		printf("  skipped: strict mode refused (-EOPNOTSUPP: the kernel "
		       "failed its self-test)\n");
		return;
	}
	fd = probe_fd();
	if (fd >= 0) {
		p1 = 1e9 / run_threads(loop_probe, &fd, bufs, 1, &kept[0]);
		p2 = 2e9 / run_threads(loop_probe, &fd, bufs, 2, &kept[1]);
		close(fd);
	}
	sys1 = 1e9 / run_threads(loop_syscall, NULL, bufs, 1, &kept[2]);
	print_hits("strict", &s);
	printf("  (%lu hits, %lu misses)\n", st.hits, st.misses);

	/* ns per get+put of each thread, with 2 threads on their own buffers */
	s2 = 2e3 / s.mops2;
	r2 = 2e3 / r->mops2;
	printf("\n   strict vs relaxed (section 1), same run: ns per get+put "
	       "(per thread)\n");
	bench_line("relaxed, 1 thread", r->ns1, "ns/op", -1, NULL);
	bench_line("strict, 1 thread", s.ns1, "ns/op", -1, NULL);
	printf("%-46s %10.2f x\n", "strict / relaxed, 1 thread", s.ns1 / r->ns1);
	bench_line("relaxed, 2 threads own buffers", r2, "ns/op", -1, NULL);
	bench_line("strict, 2 threads own buffers", s2, "ns/op", -1, NULL);
	printf("%-46s %10.2f x\n", "strict / relaxed, 2 threads", s2 / r2);
	printf("%-46s %10.2f x\n", "relaxed 2 threads / 1 thread (throughput)",
	       r->mops2 * r->ns1 / 1e3);
	printf("%-46s %10.2f x\n", "strict 2 threads / 1 thread (throughput)",
	       s.mops2 * s.ns1 / 1e3);
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
			   s.ns1 - r->ns1 - p1, "ns/op", -1, NULL);
	} else {
		printf("  (no userfaultfd of our own: probe reference "
		       "skipped)\n");
	}
	bench_line("  getppid() syscall, 1 thread (kernel entry)", sys1,
		   "ns/call", -1, NULL);
	printf("\n   targets, strict mode\n");
	bench_line("Strict-mode get+put, 1 thread", s.ns1, "ns/op", 400, "400");
	line_ge("strict 2 threads / one thread (throughput)",
		s.mops2 * s.ns1 / 1e3, "x", 1.5, "1.5");
}

/* ---- UCX ---- */

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

static int loop_ucx(struct worker *w)
{
	ucs_rcache_t *rcache = w->cache;
	ucs_rcache_region_t *region;
	ucs_status_t st;

	do {
		for (int i = 0; i < BATCH; i++) {
			st = ucs_rcache_get(rcache, w->buf, HIT_LEN,
					    PROT_READ | PROT_WRITE, NULL,
					    &region);
			if (st != UCS_OK)
				return -EIO;
			ucs_rcache_region_put(rcache, region);
		}
		w->ops += BATCH;
	} while (!stopped());
	return 0;
}

/* Returns false (and says why) if UCX could not be set up. */
static bool bench_ucx_hits(void **bufs, struct hit_figures *f)
{
	ucs_rcache_params_t params = {
		.region_struct_size = sizeof(struct ucx_region),
		.alignment = UCS_RCACHE_MIN_ALIGNMENT,
		.max_alignment = PAGE,
		.ucm_events = UCM_EVENT_VM_UNMAPPED,
		.ucm_event_priority = 1000,
		.ops = &ucx_ops,
		.context = NULL,
		.flags = UCS_RCACHE_FLAG_NO_PFN_CHECK,
		.max_regions = ULONG_MAX,
		.max_size = SIZE_MAX,
		.max_unreleased = SIZE_MAX,
	};
	ucs_rcache_t *rcache;
	ucs_status_t st;

	printf("\n3. UCX ucs_rcache hit (ucs_rcache_get + "
	       "ucs_rcache_region_put, same device)\n");
	st = ucs_rcache_create(&params, "bench", NULL, &rcache);
	if (st != UCS_OK) {
		printf("  skipped: ucs_rcache_create: %s\n",
		       ucs_status_string(st));
		return false;
	}
	measure_hits(f, loop_ucx, rcache, bufs);
	ucs_rcache_destroy(rcache);
	print_hits("UCX", f);
	return true;
}
#else
static bool bench_ucx_hits(void **bufs, struct hit_figures *f)
{
	(void)bufs;
	(void)f;
	printf("\n3. UCX ucs_rcache hit\n"
	       "  skipped: built without libucs (libucx-dev not found)\n");
	return false;
}
#endif

static void compare(const struct hit_figures *u, const struct hit_figures *x)
{
	printf("\n   uhmm (RELAXED, section 1) vs UCX, same run\n");
	bench_line("uhmm relaxed / UCX ns per hit, 1 thread", u->ns1 / x->ns1, "x",
		   0.5, "0.5");
	printf("%-46s %10.2f x\n", "uhmm / UCX aggregate, 2 threads own buffers",
	       u->mops2 / x->mops2);
	printf("%-46s %10.2f x\n", "UCX 2 threads own buffers / 1 thread",
	       x->mops2 * x->ns1 / 1e3);
	printf("%-46s %10.2f x\n", "uhmm / UCX aggregate, 2 threads one buffer",
	       u->mops2_same / x->mops2_same);
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

	printf("\n4. io_uring reads, random offsets, queue depth 1 "
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

int main(void)
{
	struct hit_figures u, x;
	void *bufs[MAX_THREADS];
	struct uhmm_mm *mm;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("uhmm registration-cache benchmark: median of %d runs, "
	       "%d ms each for hits; %ld CPUs\n", BENCH_RUNS, RUN_MS,
	       sysconf(_SC_NPROCESSORS_ONLN));
	/* Relaxed: each cache says its own mode (see the top comment). */
	check(uhmm_mm_open(&mm, UHMM_MM_RELAXED), "uhmm_mm_open");
	for (int i = 0; i < MAX_THREADS; i++)
		bufs[i] = map_buf(HIT_LEN);

	bench_uhmm_hits(mm, bufs, &u);
	bench_strict(mm, bufs, &u);
	if (bench_ucx_hits(bufs, &x))
		compare(&u, &x);
	bench_io(mm);

	/* Unmap while the monitored mm is open: its reader reads the events. */
	for (int i = 0; i < MAX_THREADS; i++)
		munmap(bufs[i], HIT_LEN);
	check(uhmm_mm_close(mm), "uhmm_mm_close");
	return 0;
}
