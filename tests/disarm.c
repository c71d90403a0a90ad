/* SPDX-License-Identifier: MIT */
/*
 * Removing the only subscription over a mapping unregisters the mapping:
 * its munmap afterwards produces no event at all (the source's event count
 * is unchanged after uhmm_mm_sync()), so it costs the application nothing.
 * Also for a subscription over part of the mapping (it was armed whole).
 */
#include "events.h"

static void run(struct uhmm_mm *mm, unsigned long first, unsigned long n)
{
	unsigned long P = t_page, before;
	struct t_log l;
	char *p = t_map(8);

	REQUIRE(t_log_insert(&l, mm, (unsigned long)p + first * P, n * P) == 0);
	CHECK_EQ(t_registered(p), 1);
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	CHECK_EQ(t_registered(p), 0);

	before = t_events(mm);
	REQUIRE(munmap(p, 8 * P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);
	CHECK_NO_LOG(&l);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();

	run(mm, 0, 8);
	run(mm, 3, 2);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
