/* SPDX-License-Identifier: MIT */
/*
 * uhmm bench [--json] [--quick] [--plot DIR]: run the benchmark programs
 * (bench-*) and print one table of their headline figures, each against
 * the baseline its program measured in the same run.
 *
 * The programs print figures for people; for this command each also
 * appends records (bench/bench.h) to the file UHMM_BENCH_RECORD names: a
 * figure (key, label, value, unit, baseline and what it is) or a point of
 * a series (key, x, y) for the plots. Nothing here parses their text.
 *
 * Where the programs are: next to this binary (the build tree), else in
 * libexec/uhmm beside the installed uhmm's bin/, where `make install`
 * puts them. A program the build
 * left out on purpose (bench-fabric without libfabric) is skipped with
 * the reason; one that is missing otherwise, or fails, makes the exit
 * status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#ifndef UHMM_LIBEXEC_REL	/* the installed layout: CMakeLists.txt */
#define UHMM_LIBEXEC_REL "../libexec/uhmm"
#endif

/* --quick: every bench's loops and sizes scaled by this (bench.h). */
#define QUICK_SCALE "0.05"
/* A guard against a hung program only; no figure depends on it. */
#define HANG_SECONDS 1800
/* Seconds a program has to end after the SIGTERM of an interrupt. */
#define KILL_GRACE 5

static const char usage[] =
    "usage: uhmm bench [--json] [--quick] [--plot DIR]\n"
    "  run the benchmark programs (bench-*) and print one table: each\n"
    "  figure against the baseline measured in the same run, and the\n"
    "  ratio; about 5 minutes on 2 CPUs\n"
    "  --json      one JSON document with every figure and series\n"
    "  --quick     shorter runs (UHMM_BENCH_SCALE=" QUICK_SCALE
    "): noisier figures,\n"
    "              for tests\n"
    "  --plot DIR  also write PNG plots (gnuplot), their data and the\n"
    "              gnuplot script to DIR\n";

/* ------------------------------------------------------------------------
 * The programs, in the order they run.
 */

struct program {
	const char *name;      /* bench-NAME */
	const char *what;      /* the table's heading */
	const char *args[3];   /* extra arguments, NULL-terminated */
	const char *not_built; /* why the build left it out, or NULL */
};

static const struct program programs[] = {
    {"notifier", "the interval-notifier core", {NULL}, NULL},
    /* The reader's spin and the pinnings are experiments (README): the
     * headline figures are those of spin 0, unpinned. */
    {"events",
     "the userfaultfd event source, spin 0",
     {"--spin-us", "0", NULL},
     NULL},
    {"range", "range fault, against the kernel's interfaces", {NULL}, NULL},
    {"rcache",
     "the registration cache, against UCX's ucs_rcache",
     {NULL},
     NULL},
    {"fork", "fork() with subscribed mappings", {NULL}, NULL},
    {"fabric",
     "libfabric's MR cache, by monitor",
     {NULL},
#ifdef UHMM_BENCH_FABRIC
     NULL
#else
     "not built (libfabric-dev, libibverbs-dev or librdmacm-dev was "
     "missing)"
#endif
    },
};

#define NPROGRAMS (sizeof(programs) / sizeof(*programs))

enum status { ST_OK, ST_SKIPPED, ST_FAILED };

static const char *const status_name[] = {
    [ST_OK] = "ok",
    [ST_SKIPPED] = "skipped",
    [ST_FAILED] = "failed",
};

struct run {
	enum status status;
	char reason[160]; /* skipped or failed: why */
	char path[PATH_MAX];
	double seconds; /* NaN: not run */
};

/* ------------------------------------------------------------------------
 * The records, as read back.
 */

struct figure {
	int program;
	char *key, *label, *unit, *base_name;
	double value, base; /* base NaN: none */
};

struct point {
	char *key;
	double x, y;
};

static struct figure *figs;
static size_t nfigs;
static struct point *pts;
static size_t npts;

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p) {
		fprintf(stderr, "uhmm bench: out of memory\n");
		exit(1);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	return strcpy(xrealloc(NULL, strlen(s) + 1), s);
}

/* Splits line at tabs into at most max fields; returns their number. */
static int split(char *line, char **field, int max)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	while (n < max) {
		field[n++] = line;
		line = strchr(line, '\t');
		if (!line)
			break;
		*line++ = '\0';
	}
	return n;
}

static double number(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	return *s && !*end ? v : NAN;
}

/* Reads program p's records from path; lines it cannot read are left. */
static void read_records(const char *path, int p)
{
	FILE *f = fopen(path, "r");
	char line[1024], *fl[8];
	int n;

	if (!f)
		return; /* it recorded nothing */
	while (fgets(line, sizeof(line), f)) {
		n = split(line, fl, 8);
		if (n == 7 && !strcmp(fl[0], "figure")) {
			figs = xrealloc(figs, (nfigs + 1) * sizeof(*figs));
			figs[nfigs++] = (struct figure){
			    .program = p,
			    .key = xstrdup(fl[1]),
			    .label = xstrdup(fl[2]),
			    .value = number(fl[3]),
			    .unit = xstrdup(fl[4]),
			    .base = number(fl[5]) > 0 ? number(fl[5]) : NAN,
			    .base_name = xstrdup(fl[6]),
			};
		} else if (n == 4 && !strcmp(fl[0], "point")) {
			pts = xrealloc(pts, (npts + 1) * sizeof(*pts));
			pts[npts++] = (struct point){
			    .key = xstrdup(fl[1]),
			    .x = number(fl[2]),
			    .y = number(fl[3]),
			};
		}
	}
	fclose(f);
}

static const struct figure *find_figure(const char *key)
{
	for (size_t i = 0; i < nfigs; i++)
		if (!strcmp(figs[i].key, key))
			return &figs[i];
	return NULL;
}

static bool has_series(const char *key)
{
	for (size_t i = 0; i < npts; i++)
		if (!strcmp(pts[i].key, key))
			return true;
	return false;
}

/* value / base, or NaN without a baseline. */
static double ratio(const struct figure *f)
{
	return isnan(f->base) ? NAN : f->value / f->base;
}

/* ------------------------------------------------------------------------
 * Running the programs.
 */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The child being waited for, for the signal handler. */
static volatile sig_atomic_t child_pid, interrupted;
static double interrupted_at;	/* when the loop saw it, 0 before */

/* Stop the program (and whatever it forked) with us. */
static void on_signal(int sig)
{
	interrupted = sig;
	if (child_pid > 0)
		kill(-child_pid, SIGTERM);
}

/*
 * bench-NAME in path: beside this uhmm (the build tree), else where the
 * installed layout puts it relative to the installed uhmm.
 */
static bool find_bench(const char *name, char *path)
{
	char rel[PATH_MAX];

	snprintf(rel, sizeof(rel), "bench-%s", name);
	if (beside_self(rel, X_OK, path))
		return true;
	snprintf(rel, sizeof(rel), "%s/bench-%s", UHMM_LIBEXEC_REL, name);
	return beside_self(rel, X_OK, path);
}

static void progress(bool tty, size_t i, const char *name, double t0,
		     double all0, const char *end)
{
	double t = now_s();

	fprintf(stderr,
		"%suhmm bench: [%zu/%zu] bench-%-9s %4.0f s "
		"(total %d:%02d)%s",
		tty ? "\r" : "", i + 1, NPROGRAMS, name, t - t0,
		(int)(t - all0) / 60, (int)(t - all0) % 60, end);
}

/* Runs program p with its records to rec and its output to log. */
static void run_program(size_t p, struct run *r, const char *rec,
			const char *log, double all0)
{
	const struct program *pr = &programs[p];
	bool tty = isatty(STDERR_FILENO);
	const char *argv[8];
	int status, fd, i = 0;
	double t0 = now_s();
	pid_t pid, got;

	argv[i++] = r->path;
	for (int a = 0; pr->args[a]; a++)
		argv[i++] = pr->args[a];
	argv[i] = NULL;
	progress(tty, p, pr->name, t0, all0, tty ? "" : " ...\n");

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(r->reason, sizeof(r->reason), "fork: %s",
			 strerror(errno));
		r->status = ST_FAILED;
		return;
	}
	if (pid == 0) {
		/* A group of its own: a hang or a ^C stops its children. */
		setpgid(0, 0);
		/* A bench must not outlive the command (killed, OOM): it
		 * would pin both CPUs for minutes with no one to read it. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
			_exit(126);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
		    dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		setenv("UHMM_BENCH_RECORD", rec, 1);
		execv(r->path, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", r->path, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* either may run first */
	child_pid = pid;
	for (;;) {
		struct timespec tick = {0, 250000000L};

		got = waitpid(pid, &status, WNOHANG);
		if (got == pid || (got < 0 && errno != EINTR))
			break;
		if (interrupted && !interrupted_at)
			interrupted_at = now_s();
		/* A hang, or a program still running KILL_GRACE s after the
		 * SIGTERM of an interrupt: SIGKILL, to its whole group. */
		if (now_s() - t0 > HANG_SECONDS ||
		    (interrupted && now_s() - interrupted_at > KILL_GRACE))
			kill(-pid, SIGKILL);
		nanosleep(&tick, NULL);
		if (tty)
			progress(tty, p, pr->name, t0, all0, "");
	}
	child_pid = 0;
	r->seconds = now_s() - t0;
	if (got != pid) {
		snprintf(r->reason, sizeof(r->reason), "waitpid: %s",
			 strerror(errno));
		r->status = ST_FAILED;
	} else if (WIFEXITED(status) && !WEXITSTATUS(status)) {
		r->status = ST_OK;
	} else {
		r->status = ST_FAILED;
		if (WIFEXITED(status))
			snprintf(r->reason, sizeof(r->reason), "exit status %d",
				 WEXITSTATUS(status));
		else
			snprintf(r->reason, sizeof(r->reason),
				 "killed by signal %d (%s)", WTERMSIG(status),
				 strsignal(WTERMSIG(status)));
	}
	progress(tty, p, pr->name, t0, all0, "");
	fprintf(stderr, " %s\n", r->status == ST_OK ? "done" : "FAILED");
}

/* The last lines of a failed program's output, to stderr. */
static void show_tail(const char *log, int lines)
{
	FILE *f = fopen(log, "r");
	char buf[256][256];
	int n = 0;

	if (!f)
		return;
	while (fgets(buf[n % 256], sizeof(buf[0]), f))
		n++;
	fclose(f);
	for (int i = n > lines ? n - lines : 0; i < n; i++)
		fprintf(stderr, "  | %s", buf[i % 256]);
}

/* ------------------------------------------------------------------------
 * The table.
 */

/* About four significant digits, without exponents in the usual range. */
static const char *num(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (fabs(v) >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (fabs(v) >= 100)
		snprintf(buf, len, "%.1f", v);
	else if (fabs(v) >= 1)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3g", v);
	return buf;
}

static void print_table(const struct run *runs, double seconds,
			const char *scale)
{
	char v[32], b[32], x[40];

	printf("uhmm bench: %zu programs in %d min %02d s, scale %s\n",
	       NPROGRAMS, (int)seconds / 60, (int)seconds % 60, scale);
	printf("ratio = value / baseline, both from the same run of the "
	       "same program\n(for times lower is better, for ops/s "
	       "higher)\n\n");
	printf("  %-44s %9s %-6s %9s %7s  %s\n", "figure", "value", "unit",
	       "baseline", "ratio", "baseline is");
	for (size_t p = 0; p < NPROGRAMS; p++) {
		const struct run *r = &runs[p];

		printf("bench-%s: %s", programs[p].name, programs[p].what);
		if (r->status == ST_OK)
			printf(" (%.0f s)\n", r->seconds);
		else
			printf("\n  %s: %s\n", status_name[r->status],
			       r->reason);
		for (size_t i = 0; i < nfigs; i++) {
			const struct figure *f = &figs[i];
			double q = ratio(f);

			if (f->program != (int)p)
				continue;
			snprintf(x, sizeof(x), "%sx", num(b, sizeof(b), q));
			printf("  %-44.44s %9s %-6s %9s %7s%s%s\n", f->label,
			       num(v, sizeof(v), f->value), f->unit,
			       num(b, sizeof(b), f->base), isnan(q) ? "-" : x,
			       isnan(q) ? "" : "  ",
			       isnan(q) ? "" : f->base_name);
		}
	}
}

/* ------------------------------------------------------------------------
 * JSON.
 */

/* A series' points, in the order recorded: [[x, y], ...] on one line. */
static void j_points(struct json *j, const char *key)
{
	bool first = true;

	j_key(j, "points");
	putchar('[');
	for (size_t i = 0; i < npts; i++) {
		if (strcmp(pts[i].key, key))
			continue;
		if (isfinite(pts[i].x) && isfinite(pts[i].y))
			printf("%s[%.6g, %.6g]", first ? "" : ", ", pts[i].x,
			       pts[i].y);
		else
			printf("%s[null, null]", first ? "" : ", ");
		first = false;
	}
	putchar(']');
}

static void print_json(const struct run *runs, double seconds,
		       const char *scale, const char *plot_dir,
		       const char *const *pngs, size_t npngs)
{
	struct json j = {0};

	j_open(&j, NULL);
	j_double(&j, "scale", number(scale));
	j_double(&j, "seconds", seconds);

	j_array_open(&j, "programs");
	for (size_t p = 0; p < NPROGRAMS; p++) {
		const struct run *r = &runs[p];
		char name[64];

		snprintf(name, sizeof(name), "bench-%s", programs[p].name);
		j_open(&j, NULL);
		j_str(&j, "name", name);
		j_str(&j, "status", status_name[r->status]);
		j_str(&j, "reason", r->status == ST_OK ? NULL : r->reason);
		j_double(&j, "seconds", r->seconds); /* null: not run */
		j_close(&j);
	}
	j_array_close(&j);

	/* ratio: value / baseline, printed rounded like them. */
	j_array_open(&j, "figures");
	for (size_t i = 0; i < nfigs; i++) {
		const struct figure *f = &figs[i];
		char name[64];

		snprintf(name, sizeof(name), "bench-%s",
			 programs[f->program].name);
		j_open(&j, NULL);
		j_str(&j, "name", f->key);
		j_str(&j, "program", name);
		j_str(&j, "label", f->label);
		j_double(&j, "value", f->value);
		j_str(&j, "unit", f->unit);
		j_double(&j, "baseline", f->base);
		j_str(&j, "baseline_name",
		      isnan(f->base) ? NULL : f->base_name);
		j_double(&j, "ratio", ratio(f));
		j_close(&j);
	}
	j_array_close(&j);

	j_array_open(&j, "series");
	for (size_t i = 0; i < npts; i++) {
		size_t k;

		for (k = 0; k < i && strcmp(pts[k].key, pts[i].key); k++)
			;
		if (k < i)
			continue; /* listed at its first point */
		j_open(&j, NULL);
		j_str(&j, "name", pts[i].key);
		j_points(&j, pts[i].key);
		j_close(&j);
	}
	j_array_close(&j);

	j_str(&j, "plot_dir", plot_dir);
	j_array_open(&j, "plots");
	for (size_t i = 0; i < npngs; i++)
		j_str(&j, NULL, pngs[i]);
	j_array_close(&j);
	j_close(&j);
	j_end(&j);
}

/* ------------------------------------------------------------------------
 * Plots: data files, a gnuplot script that reads them, and gnuplot.
 */

struct line {
	const char *series; /* a point series' key */
	const char *title;  /* in the legend */
	int style;	    /* the script's line style */
};

struct panel {
	const char *title, *xlabel, *ylabel;
	int logx, logy; /* log scale base, or 0 */
	struct line lines[7];
};

struct plot {
	const char *png;
	const char *title;
	struct panel panel[2]; /* one, or two side by side */
};

/*
 * Styles: 1-3 uhmm (by thread count or buffer count), 4-6 UCX in the
 * same colours, dashed.
 */
static const char styles[] =
    "set style line 1 lc rgb '#1f77b4' lw 2 pt 7\n"
    "set style line 2 lc rgb '#2ca02c' lw 2 pt 9\n"
    "set style line 3 lc rgb '#d62728' lw 2 pt 5\n"
    "set style line 4 lc rgb '#1f77b4' lw 2 pt 6 dt 2\n"
    "set style line 5 lc rgb '#2ca02c' lw 2 pt 8 dt 2\n"
    "set style line 6 lc rgb '#d62728' lw 2 pt 4 dt 2\n";

/* A table, one line a line of the plot: kept as laid out. */
/* clang-format off */
#define VS_BUFFERS(what, ylabel)					\
	{ "against the working set, by threads", "cached buffers",	\
	  ylabel, 10, 10, {						\
		{ "rcache." what ".uhmm.t1", "uhmm, 1 thread", 1 },	\
		{ "rcache." what ".uhmm.t2", "uhmm, 2 threads", 2 },	\
		{ "rcache." what ".uhmm.t4", "uhmm, 4 threads", 3 },	\
		{ "rcache." what ".ucx.t1", "UCX, 1 thread", 4 },	\
		{ "rcache." what ".ucx.t2", "UCX, 2 threads", 5 },	\
		{ "rcache." what ".ucx.t4", "UCX, 4 threads", 6 } } }
#define VS_THREADS(what, ylabel)					\
	{ "against threads, by working set", "threads",		\
	  ylabel, 2, 10, {						\
		{ "rcache." what ".uhmm.b1", "uhmm, 1 buffer", 1 },	\
		{ "rcache." what ".uhmm.b100", "uhmm, 100 buffers", 2 },\
		{ "rcache." what ".uhmm.b10000", "uhmm, 10000 buffers", 3 },\
		{ "rcache." what ".ucx.b1", "UCX, 1 buffer", 4 },	\
		{ "rcache." what ".ucx.b100", "UCX, 100 buffers", 5 },	\
		{ "rcache." what ".ucx.b10000", "UCX, 10000 buffers", 6 } } }

static const struct plot plots[] = {
	{ "invalidation.png",
	  "uhmm_mm_invalidate(): cost against the number of subscriptions "
	  "(bench-notifier)",
	  { { "", "subscriptions in the mm", "ns per invalidation", 10, 10,
	      { { "notifier.invalidate.gap",
		  "range in a gap (no callback)", 1 },
		{ "notifier.invalidate.1", "1 subscription overlapping", 2 },
		{ "notifier.invalidate.100",
		  "100 overlapping (all 10 of 10)", 3 } } } } },
	{ "hit-latency.png",
	  "Registration cache hit, uhmm against UCX (bench-rcache, "
	  "section 4)",
	  { VS_BUFFERS("hit_ns", "CPU ns per get + put"),
	    VS_THREADS("hit_ns", "CPU ns per get + put") } },
	{ "throughput.png",
	  "Registration cache hits per second, all threads, uhmm against "
	  "UCX (bench-rcache, section 4)",
	  { VS_BUFFERS("mops", "M get + put per second"),
	    VS_THREADS("mops", "M get + put per second") } },
};
/* clang-format on */

/* Plot 4's bars: figures whose baseline is the unregistered munmap. */
static const struct bar {
	const char *key, *label;
} munmap_bars[] = {
    {"events.munmap_4k_registered", "4 KiB, kernel event"},
    {"events.munmap_4k_b2b", "4 KiB, kernel event, back-to-back"},
    {"events.munmap_4k_hooks", "4 KiB, uhmm_munmap() (hooks)"},
    {"events.munmap_2m_registered", "2 MiB, kernel event"},
    {"fabric.munmap_uhmm", "64 KiB, libfabric + uhmm"},
    {"fabric.munmap_userfaultfd", "64 KiB, libfabric + userfaultfd"},
    {"fabric.munmap_memhooks", "64 KiB, libfabric + memhooks"},
};

#define MUNMAP_PNG "munmap.png"

static int cmp_point_x(const void *a, const void *b)
{
	const struct point *p = a, *q = b;

	return (p->x > q->x) - (p->x < q->x);
}

/* DIR/KEY.dat: "x y" lines, by x. */
static int write_series(const char *dir, const char *key)
{
	struct point *v = NULL;
	char path[PATH_MAX];
	size_t n = 0;
	FILE *f;

	for (size_t i = 0; i < npts; i++)
		if (!strcmp(pts[i].key, key)) {
			v = xrealloc(v, (n + 1) * sizeof(*v));
			v[n++] = pts[i];
		}
	qsort(v, n, sizeof(*v), cmp_point_x);
	snprintf(path, sizeof(path), "%s/%s.dat", dir, key);
	f = fopen(path, "w");
	if (!f) {
		free(v);
		return -errno;
	}
	fprintf(f, "# %s: x y (uhmm bench)\n", key);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%.9g %.9g\n", v[i].x, v[i].y);
	free(v);
	return fclose(f) ? -errno : 0;
}

/* One panel's commands; false if it has no data. */
static bool script_panel(FILE *gp, const struct panel *pa)
{
	bool any = false;

	fprintf(gp, "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\n",
		pa->title, pa->xlabel, pa->ylabel);
	/* Room on the right for the last tic's number. */
	fprintf(gp, "unset logscale\nset format '%%g'\nset rmargin 4\n");
	if (pa->logx)
		fprintf(gp, "set logscale x %d\n", pa->logx);
	if (pa->logy)
		fprintf(gp, "set logscale y %d\n", pa->logy);
	/* Under the graph (the lines fill its corners), below the label. */
	fprintf(gp, "set key below vertical maxrows 3\nset bmargin 7\nplot");
	for (size_t l = 0; l < 7 && pa->lines[l].series; l++) {
		const struct line *li = &pa->lines[l];

		if (!has_series(li->series))
			continue;
		fprintf(gp,
			"%s \\\n  '%s.dat' using 1:2 with linespoints "
			"ls %d title '%s'",
			any ? "," : "", li->series, li->style, li->title);
		any = true;
	}
	fprintf(gp, "\n");
	return any;
}

/* Writes the data; the script to gp; the PNGs it makes to pngs[]. */
static int script_plots(FILE *gp, const char *dir, const char **pngs,
			size_t *npngs)
{
	int ret;

	for (size_t p = 0; p < sizeof(plots) / sizeof(*plots); p++) {
		const struct plot *pl = &plots[p];
		int npanels = pl->panel[1].title ? 2 : 1;
		bool any = false;

		for (int k = 0; k < npanels; k++)
			for (size_t l = 0; l < 7; l++) {
				const char *s = pl->panel[k].lines[l].series;

				if (!s || !has_series(s))
					continue;
				ret = write_series(dir, s);
				if (ret)
					return ret;
				any = true;
			}
		if (!any) {
			fprintf(stderr,
				"uhmm bench: no data for %s: not "
				"plotted\n",
				pl->png);
			continue;
		}
		fprintf(gp,
			"\n# %s\nset terminal pngcairo noenhanced size "
			"%d,560 font ',10'\nset output '%s'\n",
			pl->png, npanels * 640, pl->png);
		fprintf(gp, "set multiplot layout 1,%d title '%s'\n", npanels,
			pl->title);
		for (int k = 0; k < npanels; k++)
			if (!script_panel(gp, &pl->panel[k]))
				fprintf(gp, "set title 'no data'\nunset key\n"
					    "plot [0:1] NaN notitle\n");
		fprintf(gp, "unset multiplot\nset output\n");
		pngs[(*npngs)++] = pl->png;
	}
	return 0;
}

/* Plot 4: munmap.dat and its bar chart. */
static int script_munmap(FILE *gp, const char *dir, const char **pngs,
			 size_t *npngs)
{
	char path[PATH_MAX];
	int rows = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/munmap.dat", dir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "# munmap, us: case, unregistered (the baseline of the "
		   "same run), registered (uhmm bench)\n");
	for (size_t i = 0; i < sizeof(munmap_bars) / sizeof(*munmap_bars);
	     i++) {
		const struct figure *fg = find_figure(munmap_bars[i].key);

		if (!fg || isnan(fg->base))
			continue;
		fprintf(f, "\"%s\" %.9g %.9g\n", munmap_bars[i].label, fg->base,
			fg->value);
		rows++;
	}
	if (fclose(f))
		return -errno;
	if (!rows) {
		fprintf(stderr, "uhmm bench: no data for %s: not plotted\n",
			MUNMAP_PNG);
		return 0;
	}
	fprintf(gp,
		"\n# %s\nset terminal pngcairo noenhanced size 1000,560 "
		"font ',10'\nset output '%s'\n",
		MUNMAP_PNG, MUNMAP_PNG);
	fprintf(gp, "set title 'munmap() of registered memory against "
		    "unregistered, same run (bench-events, bench-fabric)'\n"
		    "unset logscale\nset logscale y 10\nset yrange [0.1:*]\n"
		    "set bmargin -1\n"
		    "set xlabel ''\nset ylabel 'us per munmap (log scale)'\n"
		    "set style data histograms\n"
		    "set style histogram clustered gap 1\n"
		    "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
		    "set xtics rotate by 20 right nomirror\n"
		    "set key inside top left\nset grid ytics\n"
		    "plot 'munmap.dat' using 2:xtic(1) lc rgb '#999999' "
		    "title 'unregistered (baseline)', \\\n"
		    "  '' using 3 lc rgb '#1f77b4' title 'registered'\n"
		    "unset grid\nset xtics norotate\nset style data points\n"
		    "set output\n");
	pngs[(*npngs)++] = MUNMAP_PNG;
	return 0;
}

/* Whether path is a PNG file: its 8-byte signature. */
static bool is_png(const char *path)
{
	static const unsigned char magic[8] = {
	    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
	};
	unsigned char buf[8];
	FILE *f = fopen(path, "rb");
	bool ok;

	if (!f)
		return false;
	ok = fread(buf, 1, 8, f) == 8 && !memcmp(buf, magic, 8);
	fclose(f);
	return ok;
}

/* gnuplot plots.gp in dir; 0, or 1 with the reason said. */
static int run_gnuplot(const char *dir)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "uhmm bench: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		/* Its chatter is not the command's output. */
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || chdir(dir))
			_exit(126);
		execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
		_exit(errno == ENOENT ? 127 : 126);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		fprintf(stderr,
			"uhmm bench: gnuplot not found: no plots "
			"(install it: Debian package gnuplot-nox); the data "
			"and %s/plots.gp are written\n",
			dir);
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "uhmm bench: gnuplot %s/plots.gp failed\n",
			dir);
		return 1;
	}
	return 0;
}

/* --plot DIR: 0, or 1 if a plot could not be made (said why). */
static int make_plots(const char *dir, const char **pngs, size_t *npngs)
{
	char path[PATH_MAX];
	size_t kept = 0;
	int ret = 0;
	FILE *gp;

	if (mkdir(dir, 0777) && errno != EEXIST) {
		fprintf(stderr, "uhmm bench: mkdir %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/plots.gp", dir);
	gp = fopen(path, "w");
	if (!gp) {
		fprintf(stderr, "uhmm bench: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(gp,
		"# uhmm bench --plot: run again with `cd %s && gnuplot "
		"plots.gp`.\n# The data: one KEY.dat per series (x y), "
		"munmap.dat (case, unregistered,\n# registered).\n%s",
		dir, styles);
	ret = script_plots(gp, dir, pngs, npngs);
	if (!ret)
		ret = script_munmap(gp, dir, pngs, npngs);
	if (fclose(gp) && !ret)
		ret = -errno;
	if (ret) {
		fprintf(stderr, "uhmm bench: writing to %s: %s\n", dir,
			strerror(-ret));
		return 1;
	}
	if (run_gnuplot(dir)) {
		*npngs = 0;
		return 1;
	}
	/* Only the plots made are listed. */
	for (size_t i = 0; i < *npngs; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, pngs[i]);
		if (is_png(path)) {
			pngs[kept++] = pngs[i];
			continue;
		}
		fprintf(stderr, "uhmm bench: gnuplot made no PNG %s\n", path);
		ret = 1;
	}
	*npngs = kept;
	return ret;
}

/* ------------------------------------------------------------------------
 * The command.
 */

/* A directory of our own for the records and the programs' output. */
static bool make_tmp(char *tmp)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmp, PATH_MAX, "%s/uhmm-bench-XXXXXX",
		 base && *base ? base : "/tmp");
	return mkdtemp(tmp);
}

/* tmp/NAME.EXT into path (PATH_MAX); mkdtemp's names are short. */
static void tmp_file(char *path, const char *tmp, const char *name,
		     const char *ext)
{
	if (snprintf(path, PATH_MAX, "%s/%s.%s", tmp, name, ext) >= PATH_MAX)
		path[0] = '\0';
}

static void remove_tmp(const char *tmp)
{
	char path[PATH_MAX];

	for (size_t p = 0; p < NPROGRAMS; p++) {
		tmp_file(path, tmp, programs[p].name, "rec");
		unlink(path);
		tmp_file(path, tmp, programs[p].name, "log");
		unlink(path);
	}
	rmdir(tmp);
}

int cmd_bench(int argc, char **argv)
{
	const char *plot_dir = NULL, *pngs[8], *scale;
	char tmp[PATH_MAX], rec[PATH_MAX], log[PATH_MAX];
	struct run runs[NPROGRAMS];
	struct sigaction sa = {.sa_handler = on_signal};
	bool json = false, failed = false;
	size_t npngs = 0;
	double all0;
	int i, ret = 0;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--quick")) {
			setenv("UHMM_BENCH_SCALE", QUICK_SCALE, 1);
		} else if (!strcmp(argv[i], "--plot") && i + 1 < argc &&
			   argv[i + 1][0]) {
			plot_dir = argv[++i];
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "uhmm bench: %s '%s'\n%s",
				!strcmp(argv[i], "--plot") ? "missing DIR after"
							   : "unknown option",
				argv[i], usage);
			return 2;
		}
	}
	/* As the programs read it (bench_scale()): else they run at 1. */
	scale = getenv("UHMM_BENCH_SCALE");
	if (!scale || !(number(scale) > 0 && number(scale) <= 10)) {
		if (scale && *scale)
			fprintf(stderr, "uhmm bench: UHMM_BENCH_SCALE=%s is "
				"not in (0, 10]: scale 1\n", scale);
		scale = "1";
	}
	if (!make_tmp(tmp)) {
		fprintf(stderr, "uhmm bench: mkdtemp %s: %s\n", tmp,
			strerror(errno));
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	all0 = now_s();
	for (size_t p = 0; p < NPROGRAMS; p++) {
		struct run *r = &runs[p];

		*r = (struct run){.status = ST_SKIPPED, .seconds = NAN};
		if (interrupted) {
			snprintf(r->reason, sizeof(r->reason), "interrupted");
			continue;
		}
		if (programs[p].not_built) {
			snprintf(r->reason, sizeof(r->reason), "%s",
				 programs[p].not_built);
			continue;
		}
		if (!find_bench(programs[p].name, r->path)) {
			r->status = ST_FAILED;
			snprintf(r->reason, sizeof(r->reason),
				 "bench-%s is neither beside this uhmm nor in "
				 "%s from it", programs[p].name,
				 UHMM_LIBEXEC_REL);
			continue;
		}
		tmp_file(rec, tmp, programs[p].name, "rec");
		tmp_file(log, tmp, programs[p].name, "log");
		run_program(p, r, rec, log, all0);
		read_records(rec, (int)p);
		if (r->status == ST_FAILED && !interrupted) {
			fprintf(stderr,
				"uhmm bench: bench-%s failed (%s); "
				"its last lines:\n",
				programs[p].name, r->reason);
			show_tail(log, 12);
		}
	}
	remove_tmp(tmp);

	for (size_t p = 0; p < NPROGRAMS; p++)
		if (runs[p].status == ST_FAILED) {
			fprintf(stderr, "uhmm bench: bench-%s failed: %s\n",
				programs[p].name, runs[p].reason);
			failed = true;
		}
	if (interrupted) {
		fprintf(stderr, "uhmm bench: interrupted\n");
		return 1;
	}
	if (plot_dir)
		ret = make_plots(plot_dir, pngs, &npngs);
	if (json)
		print_json(runs, now_s() - all0, scale, plot_dir, pngs, npngs);
	else
		print_table(runs, now_s() - all0, scale);
	if (!json && npngs) {
		printf("\nplots in %s (gnuplot script: plots.gp):", plot_dir);
		for (size_t k = 0; k < npngs; k++)
			printf(" %s", pngs[k]);
		putchar('\n');
	}
	return failed || ret ? 1 : 0;
}
