/* SPDX-License-Identifier: MIT */
/*
 * Partial munmap(): the event carries the range the kernel reports - the
 * range passed to munmap(), not clipped to the subscription nor to the
 * mapping - and the subscription is called once per munmap():
 *   - a hole punched in the middle of a subscribed range;
 *   - a munmap straddling the subscription's end and the mapping's end
 *     (into a hole);
 *   - a munmap covering two mappings of the range: still one event.
 * A munmap next to the subscription, in the same (whole-armed) mapping,
 * calls nothing.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char *p;

	/* Middle: sub over pages [2, 6) of 8, unmap [3, 5). */
	p = t_map(8);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a + 2 * P, 4 * P) == 0);
	REQUIRE(munmap(p + 3 * P, 2 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 3 * P, a + 5 * P));
	/* Outside the subscription, in its mapping: nothing for sub. */
	REQUIRE(munmap(p + 7 * P, P) == 0);
	REQUIRE(munmap(p, P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_NO_LOG(&l);
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(munmap(p, 8 * P) == 0);

	/* Straddling: mapping is pages [0, 4) of 8 (pages 4..7 a hole), sub
	 * over [0, 3); unmap [2, 8). */
	p = t_map(8);
	a = (unsigned long)p;
	REQUIRE(munmap(p + 4 * P, 4 * P) == 0);
	REQUIRE(t_log_insert(&l, mm, a, 3 * P) == 0);
	REQUIRE(munmap(p + 2 * P, 6 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 2 * P, a + 8 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(munmap(p, 2 * P) == 0);

	/* Two mappings (different protections, so not merged) in one sub:
	 * one munmap over both is one event. */
	p = t_map(4);
	a = (unsigned long)p;
	REQUIRE(mprotect(p + 2 * P, 2 * P, PROT_READ) == 0);
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);
	REQUIRE(munmap(p + P, 2 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + P, a + 3 * P));
	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 4 * P));
	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);

	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
