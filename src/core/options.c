/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>

#include "core/options.h"

struct option_desc {
	const char *env;
	long def, min, max;
};

static const struct option_desc options[UHMM_OPT_COUNT] = {
	[UHMM_OPT_READER_SPIN_US] = { "UHMM_READER_SPIN_US", 0, 0, 1000000 },
	[UHMM_OPT_PAGEMAP_SCAN] = { "UHMM_PAGEMAP_SCAN", 1, 0, 1 },
	[UHMM_OPT_REMOVE_GRACE_US] = { "UHMM_REMOVE_GRACE_US", 100000, 0,
				       10000000 },
	[UHMM_OPT_STRICT] = { "UHMM_STRICT", 1, 0, 1 },
};

static long values[UHMM_OPT_COUNT];
static int loaded[UHMM_OPT_COUNT];	/* atomic */

/* A malformed or out-of-range value falls back to the default. */
static long parse(const struct option_desc *d)
{
	const char *s = getenv(d->env);
	char *end;
	long v;

	if (!s || !*s)
		return d->def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < d->min || v > d->max)
		return d->def;
	return v;
}

long uhmm_option(enum uhmm_option opt)
{
	if (!__atomic_load_n(&loaded[opt], __ATOMIC_ACQUIRE)) {
		/* Racing first readers compute the same value. */
		__atomic_store_n(&values[opt], parse(&options[opt]),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&loaded[opt], 1, __ATOMIC_RELEASE);
	}
	return __atomic_load_n(&values[opt], __ATOMIC_RELAXED);
}
