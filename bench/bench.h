/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by uhmm's benchmark programs: a monotonic clock, the
 * median of repeated runs, a seeded PRNG and a shuffle, a scale factor and
 * machine-readable records of the figures. Benchmarks print figures and
 * never assert on time; the machine they run on is shared and noisy, so
 * every figure is the median of several runs.
 */
#ifndef UHMM_BENCH_H
#define UHMM_BENCH_H

#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Runs per measurement; the median is reported. */
#define BENCH_RUNS 5

/* Compiler barrier: keeps a value "used" without costing an instruction. */
#define bench_keep(x) __asm__ __volatile__("" : : "r"(x) : "memory")

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of v[0..n); sorts v in place. n must be > 0. */
static inline double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	if (n & 1)
		return v[n / 2];
	return (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* splitmix64: tiny, seedable, good enough to pick keys and shuffle. */
struct bench_rng {
	uint64_t s;
};

static inline void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
	r->s = seed;
}

static inline uint64_t bench_rand(struct bench_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0), by multiply-shift: no division. */
static inline uint64_t bench_rand_below(struct bench_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)bench_rand(r) * n) >> 64);
}

/* Fisher-Yates shuffle of v[0..n). */
static inline void bench_shuffle(struct bench_rng *r, size_t *v, size_t n)
{
	size_t i, j, t;

	for (i = n; i > 1; i--) {
		j = bench_rand_below(r, i);
		t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* A permutation of 0..n-1 in random order; NULL if out of memory. */
static inline size_t *bench_perm(struct bench_rng *r, size_t n)
{
	size_t *v = malloc(n * sizeof(*v));
	size_t i;

	if (!v)
		return NULL;
	for (i = 0; i < n; i++)
		v[i] = i;
	bench_shuffle(r, v, n);
	return v;
}

/*
 * Reference for memory-bound figures: ns per dependent load when chasing a
 * random cycle through n objects of `stride` bytes (stride >= a pointer),
 * i.e. roughly one cache (or TLB) miss once n * stride exceeds the caches.
 * Median of BENCH_RUNS runs of `steps` loads; returns < 0 if out of memory.
 */
static inline double bench_chase_ns(size_t n, size_t stride, size_t steps)
{
	char *buf = calloc(n, stride);
	double runs[BENCH_RUNS];
	struct bench_rng r;
	size_t i, j, *perm;
	void **p;
	int run;

	if (!buf)
		return -1;
	bench_rng_seed(&r, 1);
	perm = bench_perm(&r, n);
	if (!perm) {
		free(buf);
		return -1;
	}
	/* One cycle through all n objects, in random order. */
	for (i = 0; i < n; i++) {
		j = perm[(i + 1) % n];
		*(void **)(buf + perm[i] * stride) = buf + j * stride;
	}
	p = (void **)buf;
	for (run = 0; run < BENCH_RUNS; run++) {
		uint64_t t0 = bench_now_ns();

		for (i = 0; i < steps; i++)
			p = (void **)*p;
		runs[run] = (double)(bench_now_ns() - t0) / steps;
	}
	bench_keep(p);
	free(perm);
	free(buf);
	return bench_median(runs, BENCH_RUNS);
}

/*
 * One result line: label, value, unit, and optionally a target (value must
 * be <= target) marked OK or MISSED. Pass target < 0 for no target.
 */
static inline void bench_line(const char *label, double value,
			      const char *unit, double target,
			      const char *target_text)
{
	printf("%-46s %10.2f ", label, value);
	if (target >= 0)
		printf("%-7s  target <= %-8s %s\n", unit, target_text,
		       value <= target ? "OK" : "MISSED");
	else
		printf("%s\n", unit);
}

/*
 * UHMM_BENCH_SCALE (default 1): a factor on every bench's iteration
 * counts, sizes and run times, so that `uhmm bench --quick` and its test
 * finish in seconds. Figures at a small scale are noisier, not different
 * in kind; the output says the scale when it is not 1. Unset, empty or
 * not a number in (0, 10]: 1.
 */
static inline double bench_scale(void)
{
	static double scale;	/* 0: not read yet */
	const char *v;
	char *end;
	double s;

	if (scale)
		return scale;
	scale = 1;
	v = getenv("UHMM_BENCH_SCALE");
	if (v && *v) {
		s = strtod(v, &end);
		if (!*end && s > 0 && s <= 10)
			scale = s;
	}
	return scale;
}

/*
 * n scaled, at least min (a count that must stay meaningful). Not for a
 * timed loop's condition: compute the count before the loop.
 */
static inline size_t bench_scaled(size_t n, size_t min)
{
	double v = (double)n * bench_scale();

	return v < (double)min ? min : (size_t)v;
}

/*
 * Machine-readable records, for `uhmm bench`: one tab-separated line per
 * call appended to the file UHMM_BENCH_RECORD names; nothing when it is
 * unset, so a bench run by hand prints exactly what it always did. Each
 * line is one write() to a file opened O_APPEND, so a bench's children
 * may record too. Keys are stable names (`program.figure`); labels and
 * units are for people and must not hold a tab or a newline.
 */
static inline void bench_record_line(const char *line, int len)
{
	const char *path = getenv("UHMM_BENCH_RECORD");
	int fd;

	if (!path || !*path || len <= 0)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)len) != len)
		fprintf(stderr, "bench: cannot write to UHMM_BENCH_RECORD\n");
	close(fd);
}

/*
 * A headline figure: value in unit, and the baseline the bench measured
 * in the same run (in the same unit; base <= 0 or NaN: none) with what it
 * is. `uhmm bench` tabulates value / base.
 *   figure <TAB> key <TAB> label <TAB> value <TAB> unit <TAB> base
 *   <TAB> base_name
 */
static inline void bench_record(const char *key, const char *label,
				double value, const char *unit, double base,
				const char *base_name)
{
	char line[512];
	int n;

	if (!(base > 0) || !isfinite(base))
		base = NAN;
	n = snprintf(line, sizeof(line), "figure\t%s\t%s\t%.9g\t%s\t%.9g\t%s\n",
		     key, label, value, unit, base,
		     !isnan(base) && base_name ? base_name : "-");
	bench_record_line(line, n < (int)sizeof(line) ? n : 0);
}

/* A point (x, y) of a series, for plots: point <TAB> key <TAB> x <TAB> y */
static inline void bench_point(const char *key, double x, double y)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "point\t%s\t%.9g\t%.9g\n",
			 key, x, y);

	bench_record_line(line, n < (int)sizeof(line) ? n : 0);
}

#endif
