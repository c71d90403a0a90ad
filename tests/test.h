/* SPDX-License-Identifier: MIT */
/*
 * Minimal harness for uhmm's test programs.
 *
 * Each test is one standalone program about one behaviour. It exits with
 * T_PASS, T_FAIL or T_SKIP (77, which ctest maps to "skipped"); a skip
 * always prints its reason. CHECK() reports the failing expression with
 * its location and fails the test at the end of main (via t_failed).
 */
#ifndef UHMM_TEST_H
#define UHMM_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

static int t_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n",          \
				__FILE__, __LINE__, #cond);                    \
			t_failed = 1;                                          \
		}                                                              \
	} while (0)

/* CHECK_EQ prints both values; both sides are evaluated once, as long long. */
#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_) {                                                \
			fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s): %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, a_, b_);           \
			t_failed = 1;                                          \
		}                                                              \
	} while (0)

/* For conditions after which continuing makes no sense. */
#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n",        \
				__FILE__, __LINE__, #cond);                    \
			exit(T_FAIL);                                          \
		}                                                              \
	} while (0)

#define SKIP(...)                                                              \
	do {                                                                   \
		printf("SKIP: ");                                              \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
		exit(T_SKIP);                                                  \
	} while (0)

static inline int t_result(void)
{
	return t_failed ? T_FAIL : T_PASS;
}

/*
 * Scale for long-running tests: UHMM_TEST_SCALE (default 1.0) multiplies
 * iteration counts, so CI may run a shorter pass and say so.
 */
static inline double t_scale(void)
{
	const char *s = getenv("UHMM_TEST_SCALE");
	double v = s ? atof(s) : 1.0;
	return v > 0 ? v : 1.0;
}

#endif
