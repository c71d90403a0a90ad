/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "core/alloc.h"

/* Per thread: allocations counted since the hook was set, and its nth. */
static __thread unsigned long fail_from, counted, failed;

void uhmm_alloc_fail_from(unsigned long nth)
{
	fail_from = nth;
	counted = 0;
}

unsigned long uhmm_alloc_failed(void)
{
	return failed;
}

bool uhmm_alloc_injected(void)
{
	if (__builtin_expect(!fail_from, 1) || ++counted < fail_from)
		return false;
	failed++;
	errno = ENOMEM;
	return true;
}
