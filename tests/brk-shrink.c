/* SPDX-License-Identifier: MIT */
/*
 * Shrinking the heap with brk: the kernel unmaps the cut pages, one
 * UHMM_EVENT_UNMAP over exactly them. Growing it back sends nothing.
 * (Nothing between the sbrk() calls here may malloc: the main arena
 * lives at the break too, so no stdio and no t_registered().)
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a, pad, before;
	char *cur, *p;

	/* Page-align the break, then grow it by 4 pages: [a, a + 4P). */
	cur = sbrk(0);
	REQUIRE(cur != (void *)-1);
	pad = (P - (unsigned long)cur % P) % P;
	REQUIRE(sbrk((intptr_t)pad) != (void *)-1);
	p = sbrk((intptr_t)(4 * P));
	if (p == (void *)-1)
		SKIP("sbrk cannot grow the heap here: %s", strerror(errno));
	a = (unsigned long)p;
	memset(p, 1, 4 * P);
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);

	REQUIRE(sbrk(-(intptr_t)(2 * P)) != (void *)-1);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 2 * P, a + 4 * P));

	/* Grow again: no event (nothing was unmapped). */
	before = t_events(mm);
	REQUIRE(sbrk((intptr_t)P) != (void *)-1);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);
	CHECK_NO_LOG(&l);

	REQUIRE(sbrk(-(intptr_t)(3 * P)) != (void *)-1);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 3 * P));
	REQUIRE(sbrk(-(intptr_t)pad) != (void *)-1);

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
