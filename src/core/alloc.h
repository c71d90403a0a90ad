/* SPDX-License-Identifier: MIT */
/*
 * Every heap allocation of the library goes through these wrappers, so a
 * test can make any one of them fail (tests/alloc-fail.c walks them all):
 * each public call that allocates must then return -ENOMEM and leave its
 * objects as they were. The reader thread never allocates from the heap
 * (source/uffd.c says why); it is not covered and needs not be.
 */
#ifndef UHMM_CORE_ALLOC_H
#define UHMM_CORE_ALLOC_H

#include <stdbool.h>
#include <stdlib.h>

/*
 * Test hook. From the nth allocation of the calling thread on (1: the
 * next one), every allocation of that thread fails, until the hook is
 * called again; 0 turns it off. Other threads are not affected, so the
 * failures are the same on every run.
 */
void uhmm_alloc_fail_from(unsigned long nth);
/* Allocations of the calling thread that the hook failed so far. */
unsigned long uhmm_alloc_failed(void);

/* Should this allocation fail? Sets errno to ENOMEM when it should. */
bool uhmm_alloc_injected(void);

static inline void *uhmm_malloc(size_t size)
{
	return uhmm_alloc_injected() ? NULL : malloc(size);
}

static inline void *uhmm_calloc(size_t n, size_t size)
{
	return uhmm_alloc_injected() ? NULL : calloc(n, size);
}

static inline void *uhmm_realloc(void *p, size_t size)
{
	return uhmm_alloc_injected() ? NULL : realloc(p, size);
}

static inline void *uhmm_aligned_alloc(size_t align, size_t size)
{
	return uhmm_alloc_injected() ? NULL : aligned_alloc(align, size);
}

#endif
