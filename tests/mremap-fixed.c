/* SPDX-License-Identifier: MIT */
/*
 * mremap(MREMAP_MAYMOVE | MREMAP_FIXED) onto a chosen, subscribed address
 * that holds another mapping. The kernel first unmaps the destination
 * (UNMAP over it), then moves: REMAP and UNMAP over the old range. The
 * destination stays watched by its subscription (uhmm keeps a moved
 * mapping registered where a subscription covers it): a later munmap
 * there is heard.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log src, dst;
	unsigned long P = t_page, a, d;
	char *p = t_map(4), *dest, *q;

	a = (unsigned long)p;
	dest = mmap(NULL, 4 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(dest != MAP_FAILED);
	d = (unsigned long)dest;
	REQUIRE(t_log_insert(&src, mm, a, 4 * P) == 0);
	REQUIRE(t_log_insert(&dst, mm, d, 4 * P) == 0);

	q = mremap(p, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
	REQUIRE(q == dest);
	t_log_wait(&src);
	CHECK_LOG(&dst, T_EV(UNMAP, d, d + 4 * P));
	CHECK_LOG(&src, T_EV(REMAP, a, a + 4 * P), T_EV(UNMAP, a, a + 4 * P));
	CHECK_EQ(q[P], 1);
	CHECK_EQ(t_registered(q), 1);

	REQUIRE(munmap(q, 4 * P) == 0);
	t_log_wait(&dst);
	CHECK_LOG(&dst, T_EV(UNMAP, d, d + 4 * P));
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_NO_LOG(&src);

	REQUIRE(uhmm_interval_notifier_remove(&src.dev.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&dst.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
