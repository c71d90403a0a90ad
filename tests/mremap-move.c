/* SPDX-License-Identifier: MIT */
/*
 * mremap(MREMAP_MAYMOVE) growing a mapping that cannot grow in place: the
 * kernel sends REMAP (from the old range) and then UNMAP of the old range,
 * so the subscription on the old range hears UHMM_EVENT_REMAP then
 * UHMM_EVENT_UNMAP, both over exactly the old range. The moved mapping is
 * still watchable: a subscription inserted on the new address hears a
 * later munmap there, and the old subscription hears nothing of it.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log old, moved;
	unsigned long P = t_page, a, b;
	char *p = t_map(8), *q;

	a = (unsigned long)p;
	/* A blocker right after the first 4 pages forces the move. */
	REQUIRE(mprotect(p + 4 * P, 4 * P, PROT_NONE) == 0);
	REQUIRE(t_log_insert(&old, mm, a, 4 * P) == 0);

	q = mremap(p, 4 * P, 8 * P, MREMAP_MAYMOVE);
	REQUIRE(q != MAP_FAILED);
	REQUIRE(q != p);
	b = (unsigned long)q;
	t_log_wait(&old);
	CHECK_LOG(&old, T_EV(REMAP, a, a + 4 * P), T_EV(UNMAP, a, a + 4 * P));
	CHECK_EQ(q[0], 1);	/* the contents moved */

	REQUIRE(t_log_insert(&moved, mm, b, 8 * P) == 0);
	REQUIRE(munmap(q, 8 * P) == 0);
	t_log_wait(&moved);
	CHECK_LOG(&moved, T_EV(UNMAP, b, b + 8 * P));
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_NO_LOG(&old);

	REQUIRE(uhmm_interval_notifier_remove(&moved.dev.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&old.dev.sub) == 0);
	REQUIRE(munmap(p + 4 * P, 4 * P) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
