/* SPDX-License-Identifier: MIT */
/*
 * What uhmm adds to fork(): before the copy it opens a UHMM_EVENT_PROTECTION
 * window over every private writable mapping a subscription covers, and
 * closes them after (README, "Fork"). Each subscribed mapping costs a
 * lookup and a window.
 *
 * Prints the median time of fork() + the child's _exit() + waitpid() in the
 * parent, with S subscriptions each over its own private mapping, against
 * the baseline measured in the same run: the same process and mappings
 * with no subscription at all (the mm open, as a user's would be).
 * UHMM_BENCH_SCALE (bench.h) scales the number of forks per run; with
 * UHMM_BENCH_RECORD set the figures are recorded for `uhmm bench`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uhmm.h>

#include "bench.h"

#define FORKS forks
#define MAX_SUBS 1000

/* 200, scaled once in main() (UHMM_BENCH_SCALE). */
static int forks;

static bool nop_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq)
{
	(void)range;
	uhmm_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct uhmm_interval_notifier_ops nop_ops = {
	.invalidate = nop_invalidate,
};

/* Median microseconds of one fork + child exit + wait. */
static double fork_us(void)
{
	double t[BENCH_RUNS];

	for (int r = 0; r < BENCH_RUNS; r++) {
		uint64_t t0 = bench_now_ns();

		for (int i = 0; i < FORKS; i++) {
			pid_t pid = fork();

			if (pid == 0)
				_exit(0);
			if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
				perror("fork");
				exit(1);
			}
		}
		t[r] = (double)(bench_now_ns() - t0) / FORKS / 1000;
	}
	return bench_median(t, BENCH_RUNS);
}

int main(void)
{
	static struct uhmm_interval_notifier subs[MAX_SUBS];
	static char *maps[MAX_SUBS];
	static const int counts[] = { 10, 100, 1000 };
	long page = sysconf(_SC_PAGESIZE);
	struct uhmm_mm *mm;
	double base;
	int ret;

	forks = (int)bench_scaled(200, 5);
	ret = uhmm_mm_open(&mm, 0);

	if (ret) {
		fprintf(stderr, "uhmm_mm_open: %d\n", ret);
		return 1;
	}
	/* Separate mappings (a guard page apart, so they do not merge). */
	for (int i = 0; i < MAX_SUBS; i++) {
		maps[i] = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (maps[i] == MAP_FAILED ||
		    mprotect(maps[i] + page, page, PROT_NONE)) {
			perror("mmap");
			return 1;
		}
		maps[i][0] = 1;
	}

	base = fork_us();
	printf("fork + exit + wait, %d private mappings, median of %d x %d\n",
	       MAX_SUBS, BENCH_RUNS, FORKS);
	printf("%-28s %10.1f us  (baseline)\n", "no subscription", base);
	for (size_t c = 0, done = 0; c < sizeof(counts) / sizeof(*counts);
	     c++) {
		char key[32], label[80];
		double us;

		for (; done < (size_t)counts[c]; done++) {
			ret = uhmm_interval_notifier_insert(
				&subs[done], mm, (unsigned long)maps[done],
				(unsigned long)page, &nop_ops);
			if (ret) {
				fprintf(stderr, "insert: %d\n", ret);
				return 1;
			}
		}
		us = fork_us();
		snprintf(key, sizeof(key), "fork.subs_%d", counts[c]);
		snprintf(label, sizeof(label), "fork + exit + wait, %d "
			 "subscriptions", counts[c]);
		bench_record(key, label, us, "us", base, "no subscription");
		printf("%4d subscribed mappings      %10.1f us  %5.2fx  "
		       "(+%.2f us per mapping)\n",
		       counts[c], us, us / base, (us - base) / counts[c]);
	}

	for (int i = 0; i < MAX_SUBS; i++)
		uhmm_interval_notifier_remove(&subs[i]);
	uhmm_mm_close(mm);
	return 0;
}
