/* SPDX-License-Identifier: MIT */
/*
 * mmap(MAP_FIXED) over a subscribed range unmaps what was there: one
 * UHMM_EVENT_UNMAP over the replaced range. The new mapping is not
 * registered by the kernel, but uhmm re-arms after the event, so the
 * munmap of the NEW mapping is heard too - for a whole replacement and for
 * one in the middle of a mapping.
 */
#include "events.h"

static char *map_fixed(char *at, unsigned long len)
{
	char *q = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	REQUIRE(q == at);
	return q;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char *p = t_map(4);

	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);

	/* Whole. */
	map_fixed(p, 4 * P);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));
	CHECK_EQ(t_registered(p), 1);
	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));

	/* Middle: the hole is gone, so put a mapping back first. */
	REQUIRE(mmap(p, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		     MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == p);
	REQUIRE(uhmm_interval_notifier_arm(&l.dev.sub) == 0);
	map_fixed(p + P, P);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + P, a + 2 * P));
	CHECK_EQ(t_registered(p + P), 1);
	REQUIRE(munmap(p + P, P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + P, a + 2 * P));
	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
