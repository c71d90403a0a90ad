/* SPDX-License-Identifier: MIT */
/*
 * A subscription over a range with a hole; a new mapping put into the hole
 * later. Creating a mapping unmaps nothing, so the kernel sends no event,
 * and the new mapping is not registered with uhmm's userfaultfd: its
 * munmap sends no event either - the kernel's behaviour, which
 * uhmm_interval_notifier_arm() exists for (uhmm.h). After arm, the munmap
 * of such a mapping is heard.
 */
#include "events.h"

static char *map_hole(char *at)
{
	char *q = mmap(at, t_page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	REQUIRE(q == at);
	q[0] = 1;
	return q;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a, before;
	char *p = t_map(3);

	a = (unsigned long)p;
	REQUIRE(munmap(p + P, P) == 0);
	REQUIRE(t_log_insert(&l, mm, a, 3 * P) == 0);

	/* Not armed: neither the new mmap nor its munmap is an event. */
	before = t_events(mm);
	map_hole(p + P);
	CHECK_EQ(t_registered(p + P), 0);
	REQUIRE(munmap(p + P, P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_NO_LOG(&l);
	CHECK_EQ(t_events(mm), before);

	/* Armed on demand: heard. */
	map_hole(p + P);
	REQUIRE(uhmm_interval_notifier_arm(&l.dev.sub) == 0);
	CHECK_EQ(t_registered(p + P), 1);
	REQUIRE(munmap(p + P, P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + P, a + 2 * P));

	REQUIRE(munmap(p, 3 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 3 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
