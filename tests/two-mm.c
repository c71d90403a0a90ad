/* SPDX-License-Identifier: MIT */
/*
 * Two monitored uhmm_mm in one process share one kernel event source (one
 * userfaultfd, one reader), and one munmap is delivered to the
 * subscriptions of both, once each.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm1 = t_open(), *mm2 = t_open();
	struct t_log l1, l2;
	unsigned long P = t_page, a;
	char *p = t_map(4);

	CHECK(mm1 != mm2);
	REQUIRE(mm1->source != NULL);
	CHECK(mm1->source == mm2->source);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l1, mm1, a, 4 * P) == 0);
	REQUIRE(t_log_insert(&l2, mm2, a + 2 * P, 2 * P) == 0);

	REQUIRE(madvise(p, P, MADV_DONTNEED) == 0);
	t_log_wait(&l1);
	CHECK_LOG(&l1, T_EV(CLEAR, a, a + P));
	CHECK_NO_LOG(&l2);

	REQUIRE(munmap(p + P, 3 * P) == 0);
	t_log_wait(&l1);
	t_log_wait(&l2);
	CHECK_LOG(&l1, T_EV(UNMAP, a + P, a + 4 * P));
	CHECK_LOG(&l2, T_EV(UNMAP, a + P, a + 4 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l1.dev.sub) == 0);
	REQUIRE(uhmm_interval_notifier_remove(&l2.dev.sub) == 0);
	REQUIRE(munmap(p, P) == 0);
	REQUIRE(uhmm_mm_close(mm1) == 0);
	REQUIRE(uhmm_mm_close(mm2) == 0);
	return t_result();
}
