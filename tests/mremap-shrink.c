/* SPDX-License-Identifier: MIT */
/*
 * mremap() shrinking in place: one UHMM_EVENT_UNMAP over the cut tail; the
 * kept head stays watched. Growing in place afterwards sends nothing.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	unsigned long before;
	char *p = t_map(8), *q;

	a = (unsigned long)p;
	/* Keep the last 4 pages free so that growing in place can work. */
	REQUIRE(munmap(p + 4 * P, 4 * P) == 0);
	REQUIRE(t_log_insert(&l, mm, a, 8 * P) == 0);

	q = mremap(p, 4 * P, 2 * P, 0);
	REQUIRE(q == p);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 2 * P, a + 4 * P));

	/* Grow in place: the new tail is part of the registered mapping. */
	before = t_events(mm);
	q = mremap(p, 2 * P, 3 * P, 0);
	REQUIRE(q == p);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_NO_LOG(&l);
	CHECK_EQ(t_events(mm), before);
	CHECK_EQ(t_registered(p + 2 * P), 1);

	REQUIRE(munmap(p, 3 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 3 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
