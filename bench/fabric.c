/* SPDX-License-Identifier: MIT */
/*
 * bench-fabric: what a memory monitor costs libfabric's MR cache - uhmm's
 * (uhmm_fabric_import()) against libfabric's own, userfaultfd and
 * memhooks (FI_MR_CACHE_MONITOR) - on a verbs domain of the real
 * libfabric over the fake InfiniBand device of tests/fabric/fake-verbs.c.
 * The fake device must be preloaded: when it is not, the bench runs
 * itself again with LD_PRELOAD set to the one installed beside it, or
 * else the one this build made (UHMM_FAKE_VERBS).
 *
 * libfabric has one monitor per process, so each run of each monitor is
 * a child process of its own; a round runs every monitor once, and the
 * BENCH_RUNS rounds follow each other, so that the machine's drifts (it
 * is shared) hit every monitor alike. A run measures:
 *  (a) hit: fi_mr_reg + fi_close of one cached 64 KiB buffer, ns per
 *      pair (a loop of HIT_OPS pairs, after one untimed; every one must
 *      be a hit of the first registration, else the figure is marked
 *      "not cached"). Timed on the thread's CPU clock - the loop never
 *      sleeps, and wall time would count other processes' turns on the
 *      CPU - and, for reference, on the wall clock;
 *  (b) munmap of a registered 64 KiB buffer - mmap, fi_mr_reg, fi_close
 *      (it stays cached), then munmap timed alone - against an
 *      unregistered one (mmap, pages faulted in as the fake device's
 *      ibv_reg_mr does, munmap timed), alternating, UNMAP_OPS of each:
 *      us per munmap, wall clock (the unmapper may wait for a monitor's
 *      thread), the median of the run. What a monitor adds to an unmap:
 *      memhooks' hook finds the range in the cache; a userfaultfd
 *      monitor's munmap waits until its thread has read the event.
 * Every figure is the median of the BENCH_RUNS runs; ratios are against
 * memhooks in the same rounds (libfabric's default where userfaultfd is
 * not allowed, and the cheapest). The target: uhmm's hit at most 1.15
 * times memhooks'. Prints figures only: the exit status is 0 unless a call
 * fails, whatever the times; a monitor that cannot run here (uhmm's
 * adapter missing, userfaultfd forbidden) is reported as such.
 * UHMM_BENCH_SCALE (bench.h) scales HIT_OPS and UNMAP_OPS; with
 * UHMM_BENCH_RECORD set the table's figures are recorded for `uhmm bench`.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "uhmm_fabric.h"
#include "bench.h"
#include "../tools/beside-self.h"
#include "../tests/fabric/fake-verbs.h"

#define BUF_LEN		(64UL << 10)
#define HIT_OPS		hit_ops
#define UNMAP_OPS	unmap_ops
#define HIT_TARGET	1.15	/* uhmm's hit / memhooks' hit */
#define REEXEC_ENV	"UHMM_BENCH_FABRIC_REEXEC"
#define FAKE_VERBS_NAME	"fake-verbs.so"

enum monitor { UHMM, USERFAULTFD, MEMHOOKS, NMONITORS };

static const char *const monitor_name[NMONITORS] = {
	"uhmm", "userfaultfd", "memhooks",
};

/* What a monitor's children measured; in memory shared with the parent. */
struct figures {
	int runs;		/* measured so far */
	bool uncached;		/* (a): some hit was not one */
	int stale;		/* (b): registrations that were not new */
	char unavailable[160];	/* why it cannot run here, if it cannot */
	double hit_cpu_ns[BENCH_RUNS], hit_wall_ns[BENCH_RUNS];
	double reg_us[BENCH_RUNS], plain_us[BENCH_RUNS];
};

/* The medians. */
struct result {
	double hit_cpu_ns, hit_wall_ns, reg_us, plain_us;
};

/* 200000 and 400, scaled once in main() (UHMM_BENCH_SCALE). */
static int hit_ops, unmap_ops;

static fake_verbs_mr_lookup_fn *mr_lookup;
static struct fid_domain *domain;

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-fabric: %s: %s\n", what, strerror(err));
	exit(1);
}

static void fi_check(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "bench-fabric: %s: %s\n", what,
			fi_strerror(-ret));
		exit(1);
	}
}

/*
 * The fake device: the one installed beside this program (make install
 * puts both in libexec/uhmm), else the one this build made.
 */
static const char *fake_verbs_path(void)
{
	static char path[PATH_MAX];

	return beside_self(FAKE_VERBS_NAME, R_OK, path) ? path
							: UHMM_FAKE_VERBS;
}

/*
 * The fake device, or run again with it preloaded. The marker variable
 * stops a loop when the preload did not take (a missing file: ld.so
 * only warns).
 */
static void need_fake_verbs(char **argv)
{
	const char *old = getenv("LD_PRELOAD");
	const char *fake;
	char *preload;

	mr_lookup = (fake_verbs_mr_lookup_fn *)dlsym(RTLD_DEFAULT,
						     "fake_verbs_mr_lookup");
	if (mr_lookup)
		return;
	fake = fake_verbs_path();
	if (getenv(REEXEC_ENV)) {
		fprintf(stderr, "bench-fabric: %s did not load (LD_PRELOAD)\n",
			fake);
		exit(1);
	}
	if (asprintf(&preload, "%s%s%s", fake, old ? ":" : "",
		     old ? old : "") < 0)
		die("asprintf", ENOMEM);
	setenv("LD_PRELOAD", preload, 1);
	setenv(REEXEC_ENV, "1", 1);
	fflush(NULL);
	execv("/proc/self/exe", argv);
	die("execv /proc/self/exe", errno);
}

static void *map_buf(void)
{
	void *p = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

static struct fid_mr *reg(void *buf)
{
	struct fid_mr *mr;

	fi_check(fi_mr_reg(domain, buf, BUF_LEN, FI_SEND | FI_RECV, 0, 0, 0,
			   &mr, NULL), "fi_mr_reg");
	return mr;
}

static uint64_t gen_of(struct fid_mr *mr)
{
	struct fake_verbs_mr_info info;

	if (mr_lookup((uint32_t)fi_mr_key(mr), &info))
		die("no fake registration under an MR", ENOENT);
	return info.gen;
}

/* Make mon libfabric's monitor; false (and why in f) if it cannot be. */
static bool monitor_start(enum monitor mon, struct figures *f)
{
	int ret;

	if (mon != UHMM) {
		setenv("FI_MR_CACHE_MONITOR", monitor_name[mon], 1);
		return true;
	}
	/* Set, the variable would win over the import, silently. */
	unsetenv("FI_MR_CACHE_MONITOR");
	ret = uhmm_fabric_import();
	if (ret) {
		snprintf(f->unavailable, sizeof(f->unavailable),
			 "uhmm_fabric_import: %s", strerror(-ret));
		return false;
	}
	return true;
}

static void domain_open(struct fi_info **hintsp, struct fi_info **infop,
			struct fid_fabric **fabric)
{
	fi_check(fake_verbs_getinfo(hintsp, infop),
		 "fi_getinfo(verbs, FI_EP_DGRAM)");
	fi_check(fi_fabric((*infop)->fabric_attr, fabric, NULL), "fi_fabric");
	fi_check(fi_domain(*fabric, *infop, &domain, NULL), "fi_domain");
}

static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hit_loop(void *buf)
{
	struct fid_mr *mr;
	const int n = HIT_OPS;	/* a local: not reloaded each time */

	for (int i = 0; i < n; i++) {
		fi_check(fi_mr_reg(domain, buf, BUF_LEN, FI_SEND | FI_RECV, 0,
				   0, 0, &mr, NULL), "fi_mr_reg");
		fi_close(&mr->fid);
	}
}

/* (a) ns per fi_mr_reg + fi_close of a cached buffer: CPU and wall. */
static void hit_ns(struct figures *f, int run)
{
	void *buf = map_buf();
	struct fid_mr *mr = reg(buf);
	uint64_t gen = gen_of(mr), t0, c0;

	fi_close(&mr->fid);
	hit_loop(buf);
	c0 = cpu_now_ns();
	t0 = bench_now_ns();
	hit_loop(buf);
	f->hit_wall_ns[run] = (double)(bench_now_ns() - t0) / HIT_OPS;
	f->hit_cpu_ns[run] = (double)(cpu_now_ns() - c0) / HIT_OPS;
	/* No monitor event touched buf: it was the same registration. */
	mr = reg(buf);
	if (gen_of(mr) != gen)
		f->uncached = true;
	fi_close(&mr->fid);
	munmap(buf, BUF_LEN);
}

static double unmap_us(void *p)
{
	uint64_t t0 = bench_now_ns();

	if (munmap(p, BUF_LEN))
		die("munmap", errno);
	return (double)(bench_now_ns() - t0) / 1000;
}

/*
 * (b) us per munmap of a registered and of an unregistered buffer. Each
 * registration must be new: mmap gives the address just unmapped again,
 * and a stale cache hit there - the monitor missed the munmap - would
 * time the munmap of pages never faulted in.
 */
static void unmap_figures(struct figures *f, int run)
{
	double *reg_one = calloc(UNMAP_OPS, sizeof(double));
	double *plain_one = calloc(UNMAP_OPS, sizeof(double));
	uint64_t last = 0;

	if (!reg_one || !plain_one)
		die("calloc", ENOMEM);

	for (int i = 0; i < UNMAP_OPS; i++) {
		void *p = map_buf();
		struct fid_mr *mr = reg(p);
		uint64_t gen = gen_of(mr);

		if (gen <= last)
			f->stale++;
		last = gen > last ? gen : last;
		fi_close(&mr->fid);
		reg_one[i] = unmap_us(p);

		p = map_buf();
		/* The state ibv_reg_mr leaves: every page present. */
		if (madvise(p, BUF_LEN, MADV_POPULATE_WRITE))
			die("madvise(MADV_POPULATE_WRITE)", errno);
		plain_one[i] = unmap_us(p);
	}
	f->reg_us[run] = bench_median(reg_one, UNMAP_OPS);
	f->plain_us[run] = bench_median(plain_one, UNMAP_OPS);
	free(reg_one);
	free(plain_one);
}

/* The table's figures of monitor m, for `uhmm bench`. */
static void record(enum monitor m, const struct result *x,
		   const struct result *mh)
{
	char key[64], label[96];

	if (m != MEMHOOKS && mh) {
		snprintf(key, sizeof(key), "fabric.hit_%s", monitor_name[m]);
		snprintf(label, sizeof(label), "MR cache hit (CPU), %s "
			 "monitor", monitor_name[m]);
		bench_record(key, label, x->hit_cpu_ns, "ns", mh->hit_cpu_ns,
			     "memhooks monitor");
	}
	snprintf(key, sizeof(key), "fabric.munmap_%s", monitor_name[m]);
	snprintf(label, sizeof(label), "registered 64 KiB munmap, %s",
		 monitor_name[m]);
	bench_record(key, label, x->reg_us, "us", x->plain_us,
		     "unregistered munmap");
}

/* One run of monitor mon, in a child process. */
static void measure(enum monitor mon, struct figures *f)
{
	struct fi_info *hints, *info;
	struct fid_fabric *fabric;

	if (!monitor_start(mon, f))
		return;
	domain_open(&hints, &info, &fabric);
	hit_ns(f, f->runs);
	unmap_figures(f, f->runs);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	fi_freeinfo(hints);
	if (mon == UHMM)
		uhmm_fabric_close();
	f->runs++;
}

static struct result medians(struct figures *f)
{
	return (struct result){
		.hit_cpu_ns = bench_median(f->hit_cpu_ns, f->runs),
		.hit_wall_ns = bench_median(f->hit_wall_ns, f->runs),
		.reg_us = bench_median(f->reg_us, f->runs),
		.plain_us = bench_median(f->plain_us, f->runs),
	};
}

int main(int argc, char **argv)
{
	struct result res[NMONITORS], *mh = &res[MEMHOOKS];
	struct figures *fig;
	bool mh_done;

	(void)argc;
	need_fake_verbs(argv);
	hit_ops = (int)bench_scaled(200000, 1000);
	unmap_ops = (int)bench_scaled(400, 20);
	fig = mmap(NULL, NMONITORS * sizeof(*fig), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fig == MAP_FAILED)
		die("mmap", errno);
	memset(fig, 0, NMONITORS * sizeof(*fig));

	printf("libfabric MR cache monitors: median of %d runs; verbs domain "
	       "over the fake device; every run a process of its own, the "
	       "monitors taking turns\n", BENCH_RUNS);
	for (int r = 0; r < BENCH_RUNS; r++) {
		for (int m = 0; m < NMONITORS; m++) {
			int status;
			pid_t pid;

			if (fig[m].unavailable[0])
				continue;
			fflush(NULL);
			pid = fork();
			if (pid < 0)
				die("fork", errno);
			if (pid == 0) {
				measure((enum monitor)m, &fig[m]);
				exit(0);
			}
			if (waitpid(pid, &status, 0) != pid)
				die("waitpid", errno);
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				fprintf(stderr, "bench-fabric: a %s run "
					"failed\n", monitor_name[m]);
				return 1;
			}
		}
	}
	for (int m = 0; m < NMONITORS; m++)
		if (fig[m].runs)
			res[m] = medians(&fig[m]);
	mh_done = fig[MEMHOOKS].runs > 0;

	printf("\n  (a) hit: fi_mr_reg + fi_close of one cached 64 KiB buffer, "
	       "ns per pair: thread CPU time (wall)\n"
	       "  (b) munmap of a 64 KiB buffer, us: registered (fi_mr_reg + "
	       "fi_close, still cached) and not\n"
	       "  mh: memhooks\n\n");
	printf("  %-12s %17s %9s %9s %9s   %7s %7s\n", "monitor", "(a) hit",
	       "(b) reg.", "unreg.", "reg/unreg", "hit/mh", "reg/mh");
	for (int m = 0; m < NMONITORS; m++) {
		const struct result *x = &res[m];

		if (!fig[m].runs) {
			printf("  %-12s not measured: %s\n", monitor_name[m],
			       fig[m].unavailable);
			continue;
		}
		printf("  %-12s %7.2f (%7.2f) %9.2f %9.2f %8.2fx",
		       monitor_name[m], x->hit_cpu_ns, x->hit_wall_ns,
		       x->reg_us, x->plain_us, x->reg_us / x->plain_us);
		if (mh_done)
			printf("   %6.2fx %6.2fx",
			       x->hit_cpu_ns / mh->hit_cpu_ns,
			       x->reg_us / mh->reg_us);
		record((enum monitor)m, x, mh_done ? mh : NULL);
		if (fig[m].uncached)
			printf("   (a): NOT CACHED");
		if (fig[m].stale)
			printf("   (b): %d STALE", fig[m].stale);
		printf("\n");
	}

	printf("\n   target\n");
	if (fig[UHMM].runs && mh_done)
		bench_line("uhmm hit / memhooks hit (CPU time)",
			   res[UHMM].hit_cpu_ns / mh->hit_cpu_ns, "x",
			   HIT_TARGET, "1.15");
	else
		printf("%-46s not measured\n", "uhmm hit / memhooks hit");
	return 0;
}
