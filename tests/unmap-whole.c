/* SPDX-License-Identifier: MIT */
/*
 * munmap() of a whole subscribed mapping: the subscription hears exactly
 * one UHMM_EVENT_UNMAP over exactly the unmapped range. Insert registered
 * the mapping with uhmm's userfaultfd (VmFlags "uw").
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	char *p = t_map(4);
	unsigned long a = (unsigned long)p;

	REQUIRE(t_log_insert(&l, mm, a, 4 * t_page) == 0);
	CHECK_EQ(t_registered(p), 1);

	REQUIRE(munmap(p, 4 * t_page) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * t_page));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
