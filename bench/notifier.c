/* SPDX-License-Identifier: MIT */
/*
 * bench-notifier: the cost of the interval-notifier core.
 *
 *  1. uhmm_interval_read_begin() + uhmm_interval_read_retry() on an idle mm
 *     (one subscription, 10^8 pairs): the reader's fast path.
 *  2. uhmm_mm_invalidate() dispatch, ns per call, with 10, 10^3 and 10^6
 *     subscriptions on disjoint 4 KiB pages with a page gap between any two
 *     (sub i covers [BASE + 2*i*4 KiB, +4 KiB)), invalidating a range that
 *     overlaps 0 (a gap), 1 or 100 (10 subs: all 10) of them, at a random
 *     position each call. The callback is a minimal device: one shared
 *     pthread mutex around uhmm_interval_set_seq().
 *  3. Inserting 10^6 subscriptions and removing them all, each in a random
 *     order (ops/s); and a steady-state remove + insert pair (the sub moves
 *     to a random page) on a tree of 10^6 (ns per pair).
 *
 * The 10^6 figures are memory-bound (the tree is ~100 MB, each level of a
 * lookup a likely cache miss), so section 2 also prints the same-gap figure
 * (path cached) and the cost of one dependent cache miss for reference.
 *
 * UHMM_BENCH_SCALE (bench.h) scales the loops and the largest tree (10^6
 * subscriptions, at least 10^4). With UHMM_BENCH_RECORD set the headline
 * figures, and section 2's cost against the number of subscriptions, are
 * also recorded for `uhmm bench`.
 *
 * UHMM_MM_NO_MONITOR: every invalidation is explicit. Times come from
 * CLOCK_MONOTONIC around whole loops; every figure is the median of
 * BENCH_RUNS runs. Prints figures only: the exit status is 0 unless an API
 * call fails (or a callback count is wrong), whatever the times.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uhmm.h"
#include "bench.h"

#define PAGE		4096UL
#define BASE		(1UL << 32)
#define SEED		0x75686d6d /* "uhmm" */

#define READ_ITERS	read_iters
#define BIG_N		big_n
#define CHURN_ITERS	churn_iters

/*
 * Scaled once in main() (UHMM_BENCH_SCALE): 10^8 read pairs, the largest
 * tree of 10^6 subscriptions, 10^5 remove+insert pairs.
 */
static unsigned long read_iters, churn_iters;
static size_t big_n;

/* The device: one lock shared by every subscription. */
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long dev_calls;	/* [dev_lock] */

static bool dev_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq)
{
	(void)range;
	pthread_mutex_lock(&dev_lock);
	uhmm_interval_set_seq(sub, cur_seq);
	dev_calls++;
	pthread_mutex_unlock(&dev_lock);
	return true;
}

static const struct uhmm_interval_notifier_ops dev_ops = {
	.invalidate = dev_invalidate,
};

static void check(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "bench-notifier: %s: %s\n", what,
			strerror(-ret));
		exit(1);
	}
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p) {
		fprintf(stderr, "bench-notifier: out of memory\n");
		exit(1);
	}
	return p;
}

static unsigned long sub_start(size_t i)
{
	return BASE + 2 * i * PAGE;
}

static void insert_perm(struct uhmm_mm *mm, struct uhmm_interval_notifier *subs,
			const size_t *perm, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		size_t i = perm[k];

		check(uhmm_interval_notifier_insert(&subs[i], mm, sub_start(i),
						    PAGE, &dev_ops),
		      "uhmm_interval_notifier_insert");
	}
}

static void remove_perm(struct uhmm_interval_notifier *subs, const size_t *perm,
			size_t n)
{
	size_t k;

	for (k = 0; k < n; k++)
		check(uhmm_interval_notifier_remove(&subs[perm[k]]),
		      "uhmm_interval_notifier_remove");
}

static size_t *perm_or_die(struct bench_rng *rng, size_t n)
{
	size_t *perm = bench_perm(rng, n);

	if (!perm) {
		fprintf(stderr, "bench-notifier: out of memory\n");
		exit(1);
	}
	return perm;
}

/* 1. ns per read_begin + read_retry pair, idle mm. */
static double bench_read(struct uhmm_mm *mm)
{
	struct uhmm_interval_notifier *sub = xcalloc(1, sizeof(*sub));
	double runs[BENCH_RUNS];
	unsigned long sum = 0, retries = 0, i;
	/* A local: the calls could change a global, reloaded each time. */
	const unsigned long iters = READ_ITERS;
	uint64_t t0;
	int r;

	check(uhmm_interval_notifier_insert(sub, mm, BASE, PAGE, &dev_ops),
	      "uhmm_interval_notifier_insert");
	for (r = 0; r < BENCH_RUNS; r++) {
		t0 = bench_now_ns();
		for (i = 0; i < iters; i++) {
			unsigned long seq = uhmm_interval_read_begin(sub);

			retries += uhmm_interval_read_retry(sub, seq);
			sum += seq;
		}
		runs[r] = (double)(bench_now_ns() - t0) / READ_ITERS;
	}
	bench_keep(sum);
	if (retries) {
		fprintf(stderr, "bench-notifier: read_retry true %lu times "
			"on an idle mm\n", retries);
		exit(1);
	}
	check(uhmm_interval_notifier_remove(sub),
	      "uhmm_interval_notifier_remove");
	free(sub);
	return bench_median(runs, BENCH_RUNS);
}

/*
 * 2. ns per uhmm_mm_invalidate() over n subs, the range overlapping
 * `overlap` of them (0: the gap after a sub) at a random position, or
 * always the same gap if `same`. The PRNG's few ns are included.
 */
static double bench_invalidate(struct uhmm_mm *mm, size_t n, size_t overlap,
			       bool same, struct bench_rng *rng)
{
	unsigned long iters = bench_scaled(overlap ? 2000000UL / (overlap + 1)
						 : 1000000UL, 100);

	/* The big tree is memory-bound: ~1 us a call, fewer are enough. */
	if (n >= BIG_N)
		iters /= 5;
	double runs[BENCH_RUNS];
	unsigned long i, calls;
	uint64_t t0;
	int r;

	for (r = 0; r < BENCH_RUNS; r++) {
		calls = dev_calls;
		t0 = bench_now_ns();
		for (i = 0; i < iters; i++) {
			unsigned long start, end;
			size_t k;

			if (!overlap) {
				k = same ? n / 2 : bench_rand_below(rng, n);
				start = sub_start(k) + PAGE;
				end = start + PAGE;
			} else {
				k = bench_rand_below(rng, n - overlap + 1);
				start = sub_start(k);
				end = sub_start(k + overlap - 1) + PAGE;
			}
			check(uhmm_mm_invalidate(mm, start, end,
						 UHMM_EVENT_UNMAP),
			      "uhmm_mm_invalidate");
		}
		runs[r] = (double)(bench_now_ns() - t0) / iters;
		calls = dev_calls - calls;
		if (calls != iters * overlap) {
			fprintf(stderr, "bench-notifier: %lu callbacks for "
				"%lu invalidations of %zu subs each\n",
				calls, iters, overlap);
			exit(1);
		}
	}
	return bench_median(runs, BENCH_RUNS);
}

/*
 * The largest tree's invalidation in a gap (v ns, line label): its target,
 * and for reference the small tree's, the same gap every call (the path
 * cached) and one cache miss over the tree's memory.
 */
static void big_gap(struct uhmm_mm *mm, struct uhmm_interval_notifier *subs,
		    const char *label, double v, double gap10,
		    struct bench_rng *rng)
{
	double same, miss;

	bench_line(label, v, "ns/call", 1000, "1 us");
	bench_line("  for reference: 10 subs, 0 overlapping", gap10, "ns/call",
		   -1, NULL);
	same = bench_invalidate(mm, BIG_N, 0, true, rng);
	bench_line("  10^6 subs, 0 overlapping, same gap", same, "ns/call", -1,
		   NULL);
	miss = bench_chase_ns(BIG_N, sizeof(*subs),
			      bench_scaled(2000000, 10000));
	bench_line("  one cache miss over 10^6 subs' memory", miss, "ns", -1,
		   NULL);
	/* Against a miss: about how many misses a lookup costs. */
	bench_record("notifier.invalidate_gap",
		     "invalidation, largest tree, in a gap", v, "ns", miss,
		     "one cache miss");
	bench_record("notifier.invalidate_same_gap",
		     "invalidation, largest tree, same gap", same, "ns", miss,
		     "one cache miss");
}

static void section_invalidate(struct uhmm_mm *mm,
			       struct uhmm_interval_notifier *subs,
			       struct bench_rng *rng)
{
	const size_t ns[] = { 10, 1000, BIG_N };
	static const char *const series[] = {
		"notifier.invalidate.gap", "notifier.invalidate.1",
		"notifier.invalidate.100",
	};
	char names[3][24] = { "10", "10^3", "10^6" };
	double gap10 = 0, v;
	char label[80];
	size_t j, o, *perm;

	if (BIG_N != 1000000UL)
		snprintf(names[2], sizeof(names[2]), "%zu", BIG_N);

	printf("\n2. uhmm_mm_invalidate() dispatch, per call "
	       "(callback: mutex + set_seq)\n");
	for (j = 0; j < sizeof(ns) / sizeof(ns[0]); j++) {
		size_t n = ns[j];
		size_t overlaps[] = { 0, 1, n < 100 ? n : 100 };

		perm = perm_or_die(rng, n);
		insert_perm(mm, subs, perm, n);
		for (o = 0; o < 3; o++) {
			v = bench_invalidate(mm, n, overlaps[o], false, rng);
			snprintf(label, sizeof(label),
				 "%s subs, %zu overlapping%s", names[j],
				 overlaps[o],
				 overlaps[o] == 0 ? " (gap)" :
				 overlaps[o] == n ? " (all)" : "");
			bench_point(series[o], (double)n, v);
			if (n == BIG_N && overlaps[o] == 0)
				big_gap(mm, subs, label, v, gap10, rng);
			else
				bench_line(label, v, "ns/call", -1, NULL);
			if (n == BIG_N && overlaps[o] == 100)
				bench_record("notifier.invalidate_100",
					     "invalidation, largest tree, "
					     "100 overlapping", v, "ns", 0,
					     NULL);
			if (n == 10 && overlaps[o] == 0)
				gap10 = v;
		}
		remove_perm(subs, perm, n);
		free(perm);
	}
}

static void section_insert_remove(struct uhmm_mm *mm,
				  struct uhmm_interval_notifier *subs,
				  struct bench_rng *rng)
{
	double ins[BENCH_RUNS], rem[BENCH_RUNS], churn[BENCH_RUNS];
	size_t *perm, i;
	uint64_t t0;
	int r;

	printf("\n3. insert / remove, 10^6 subs, random order\n");
	for (r = 0; r < BENCH_RUNS; r++) {
		perm = perm_or_die(rng, BIG_N);
		t0 = bench_now_ns();
		insert_perm(mm, subs, perm, BIG_N);
		ins[r] = BIG_N * 1e3 / (double)(bench_now_ns() - t0);
		bench_shuffle(rng, perm, BIG_N);
		t0 = bench_now_ns();
		remove_perm(subs, perm, BIG_N);
		rem[r] = BIG_N * 1e3 / (double)(bench_now_ns() - t0);
		free(perm);
	}
	bench_line("insert 10^6 (into a growing tree)",
		   bench_median(ins, BENCH_RUNS), "Mops/s", -1, NULL);
	bench_line("remove 10^6 (from a shrinking tree)",
		   bench_median(rem, BENCH_RUNS), "Mops/s", -1, NULL);
	bench_record("notifier.insert", "insert, largest tree, random order",
		     bench_median(ins, BENCH_RUNS), "Mops/s", 0, NULL);
	bench_record("notifier.remove", "remove, largest tree, random order",
		     bench_median(rem, BENCH_RUNS), "Mops/s", 0, NULL);

	/* Steady state: remove a random sub, reinsert it at a random page. */
	perm = perm_or_die(rng, BIG_N);
	insert_perm(mm, subs, perm, BIG_N);
	for (r = 0; r < BENCH_RUNS; r++) {
		t0 = bench_now_ns();
		for (i = 0; i < CHURN_ITERS; i++) {
			size_t k = bench_rand_below(rng, BIG_N);
			unsigned long start =
				BASE + bench_rand_below(rng, 2 * BIG_N) * PAGE;

			check(uhmm_interval_notifier_remove(&subs[k]),
			      "uhmm_interval_notifier_remove");
			check(uhmm_interval_notifier_insert(&subs[k], mm, start,
							    PAGE, &dev_ops),
			      "uhmm_interval_notifier_insert");
		}
		churn[r] = (double)(bench_now_ns() - t0) / CHURN_ITERS;
	}
	bench_line("remove+insert pair on a tree of 10^6",
		   bench_median(churn, BENCH_RUNS), "ns/pair", -1, NULL);
	bench_record("notifier.churn", "remove + insert pair, largest tree",
		     bench_median(churn, BENCH_RUNS), "ns", 0, NULL);
	remove_perm(subs, perm, BIG_N);
	free(perm);
}

int main(void)
{
	struct uhmm_interval_notifier *subs;
	struct bench_rng rng;
	struct uhmm_mm *mm;

	double read_ns;

	read_iters = bench_scaled(100000000UL, 100000);
	big_n = bench_scaled(1000000UL, 10000);
	churn_iters = bench_scaled(100000UL, 1000);
	bench_rng_seed(&rng, SEED);
	check(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR), "uhmm_mm_open");
	subs = xcalloc(BIG_N, sizeof(*subs));

	printf("uhmm notifier benchmark: median of %d runs, "
	       "UHMM_MM_NO_MONITOR, 4 KiB subs\n", BENCH_RUNS);
	if (bench_scale() != 1)
		printf("UHMM_BENCH_SCALE %g: loops scaled; the largest tree "
		       "(\"10^6\" below) has %zu subs\n", bench_scale(),
		       BIG_N);
	printf("\n1. read side\n");
	read_ns = bench_read(mm);
	bench_line("read_begin+read_retry (idle)", read_ns, "ns/op", 5,
		   "5 ns");
	bench_record("notifier.read_pair", "read_begin + read_retry, idle mm",
		     read_ns, "ns", 0, NULL);

	section_invalidate(mm, subs, &rng);
	section_insert_remove(mm, subs, &rng);

	check(uhmm_mm_close(mm), "uhmm_mm_close");
	free(subs);
	return 0;
}
