/* SPDX-License-Identifier: MIT */
/*
 * A mapping created in a hole of a mirrored range while range faults run
 * must not end up in the mirror unwatched.
 *
 * The mirror covers three pages: mapped, a hole, mapped. One thread runs
 * the driver loop (uhmm_range_fault_lock() and a commit) over all three,
 * again and again; the main thread maps the hole (MAP_FIXED_NOREPLACE),
 * touches it and unmaps it, in a loop. A new mmap() into a hole sends no
 * event, so uhmm_range_fault() arms the range before reading it - but a
 * mapping created after that arm and read by the walk is watched by no
 * one: its munmap() sends no event, and the mirror keeps a translation of
 * a page that is gone, committed cleanly (no collision) and never zapped.
 *
 * After each munmap() has returned, read_begin waits for its event (if
 * there was one) to be dispatched; under the mirror's lock, with no
 * collision since, any valid translation of the hole is then stale: the
 * page it names was unmapped and nothing is mapped there now. The count
 * of such stale translations must be 0. 2 x 10^4 iterations at scale 1;
 * the faulting thread must also never fail (-EOPNOTSUPP here was the
 * arming race of tests/arm-remap-race.c). Skipped where the check cannot
 * be made: no PAGEMAP_SCAN, or UHMM_PAGEMAP_SCAN=0.
 */
#include <pthread.h>
#include <sched.h>

#include "core/options.h"
#include "mirror.h"
#include "prim/prim.h"

#define ITERS 20000
#define NP 3			/* mapped, hole, mapped */
#define HOLE 1

static struct mirror m;
static int done;		/* atomic */
static long faults;		/* [faulter] then read after the join */
static long fault_errors;
static int last_error;

static void *faulter(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		/* A snapshot, no request: the hole is ERROR, not -EFAULT. */
		int ret = m_fault(&m, 0, NP, 0);

		if (ret) {
			fault_errors++;
			last_error = ret;
		}
		faults++;
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	long iters = (long)(ITERS * t_scale()), stale = 0;
	char *p = m_map_anon(NP, PROT_READ | PROT_WRITE), *hole;
	pthread_t thread;

	/* The check rides on PAGEMAP_SCAN: without it, the documented gap. */
	if (!uhmm_option(UHMM_OPT_PAGEMAP_SCAN))
		SKIP("UHMM_PAGEMAP_SCAN=0: range fault reads /proc/self/pagemap, "
		     "which cannot tell a watched mapping (uhmm.h)");
	if (uhmm_prim_pagemap_wp_coverage((unsigned long)p,
					  (unsigned long)p + t_page) < 0)
		SKIP("no PAGEMAP_SCAN (Linux before 6.7): a mapping created in "
		     "a hole cannot be told unwatched (uhmm.h)");
	hole = p + HOLE * t_page;
	memset(p, 1, NP * t_page);
	REQUIRE(munmap(hole, t_page) == 0);
	REQUIRE(m_init(&m, mm, p, NP) == 0);
	REQUIRE(pthread_create(&thread, NULL, faulter, NULL) == 0);

	for (long i = 0; i < iters; i++) {
		char *q = mmap(hole, t_page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS |
			       MAP_FIXED_NOREPLACE, -1, 0);
		unsigned long seq;

		REQUIRE(q == hole);
		q[0] = (char)i;
		/* Give the faulter a chance to see it mapped. */
		if (i & 1)
			sched_yield();
		REQUIRE(munmap(q, t_page) == 0);

		/* Waits until the munmap's event, if any, is dispatched. */
		seq = uhmm_interval_read_begin(&m.sub);
		pthread_mutex_lock(&m.lock);
		if (!uhmm_interval_read_retry(&m.sub, seq)) {
			if (m.pt[HOLE].valid)
				stale++;
		}
		/* Count each stale translation once. */
		m.pt[HOLE] = (struct m_pte){ 0 };
		pthread_mutex_unlock(&m.lock);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	REQUIRE(pthread_join(thread, NULL) == 0);

	printf("%ld iterations (scale %g), %ld faults, %ld stale translations "
	       "of the unmapped page, %ld fault errors (last %d)\n",
	       iters, t_scale(), faults, stale, fault_errors, last_error);
	CHECK_EQ(stale, 0);
	CHECK_EQ(fault_errors, 0);

	m_fini(&m);
	munmap(p, NP * t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
