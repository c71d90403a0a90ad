/* SPDX-License-Identifier: MIT */
/*
 * mremap(MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED): the pages move
 * to a new mapping and the old range stays mapped (empty). (Linux 6.18
 * refuses DONTUNMAP without FIXED with EINVAL, so the destination is a
 * reserved range.) The subscription on the
 * old range hears UHMM_EVENT_REMAP over it and no UNMAP; the old mapping
 * stays watched (a later munmap of it is heard). The new mapping is not
 * watched by anyone (uhmm unregisters a moved mapping no subscription
 * covers) until a subscription is inserted over it.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log old, moved;
	unsigned long P = t_page, a, b, before;
	char *p = t_map(4), *q, *dst;

	a = (unsigned long)p;
	REQUIRE(t_log_insert(&old, mm, a, 4 * P) == 0);

	dst = mmap(NULL, 4 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(dst != MAP_FAILED);
	q = mremap(p, 4 * P, 4 * P,
		   MREMAP_MAYMOVE | MREMAP_DONTUNMAP | MREMAP_FIXED, dst);
	if (q == MAP_FAILED && errno == EINVAL)
		SKIP("MREMAP_DONTUNMAP not supported by this kernel");
	REQUIRE(q == dst);
	b = (unsigned long)q;
	t_log_wait(&old);
	CHECK_LOG(&old, T_EV(REMAP, a, a + 4 * P));
	CHECK_EQ(q[0], 1);	/* moved */
	CHECK_EQ(p[0], 0);	/* old range: fresh zero pages */
	CHECK_EQ(t_registered(p), 1);
	CHECK_EQ(t_registered(q), 0);

	/* Unwatched: its munmap is no event at all. */
	before = t_events(mm);
	REQUIRE(munmap(q, P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);

	REQUIRE(t_log_insert(&moved, mm, b, 4 * P) == 0);
	REQUIRE(munmap(q, 4 * P) == 0);
	t_log_wait(&moved);
	CHECK_LOG(&moved, T_EV(UNMAP, b, b + 4 * P));

	REQUIRE(munmap(p, 4 * P) == 0);
	t_log_wait(&old);
	CHECK_LOG(&old, T_EV(UNMAP, a, a + 4 * P));
	CHECK_NO_LOG(&moved);

	REQUIRE(uhmm_interval_notifier_remove(&moved.dev.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&old.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
