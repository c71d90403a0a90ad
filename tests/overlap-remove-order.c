/* SPDX-License-Identifier: MIT */
/*
 * Overlapping subscriptions A = pages [0, 6) and B = [4, 8) of one mapping,
 * removed in both orders. After the first removal the other still hears
 * events over its whole range (the mapping stays registered for it) and
 * the removed one hears nothing; after both removals the mapping is
 * unregistered: a munmap of it reaches the source no more.
 */
#include "events.h"

static void run(struct uhmm_mm *mm, bool a_first)
{
	unsigned long P = t_page, a, before;
	struct t_log A, B, *first, *second;
	char *p = t_map(8);
	unsigned long s2, e2;

	a = (unsigned long)p;
	REQUIRE(t_log_insert(&A, mm, a, 6 * P) == 0);
	REQUIRE(t_log_insert(&B, mm, a + 4 * P, 4 * P) == 0);
	first = a_first ? &A : &B;
	second = a_first ? &B : &A;
	s2 = a_first ? a + 4 * P : a;
	e2 = a_first ? a + 8 * P : a + 6 * P;

	REQUIRE(uhmm_interval_notifier_remove(&first->dev.sub) == 0);
	CHECK_EQ(t_registered(p), 1);
	/* The whole remaining range, then each end of it. */
	REQUIRE(madvise((char *)s2, e2 - s2, MADV_DONTNEED) == 0);
	REQUIRE(madvise((char *)s2, P, MADV_DONTNEED) == 0);
	REQUIRE(madvise((char *)e2 - P, P, MADV_DONTNEED) == 0);
	t_log_wait(second);
	CHECK_LOG(second, T_EV(CLEAR, s2, e2), T_EV(CLEAR, s2, s2 + P),
		  T_EV(CLEAR, e2 - P, e2));
	CHECK_NO_LOG(first);

	REQUIRE(uhmm_interval_notifier_remove(&second->dev.sub) == 0);
	CHECK_EQ(t_registered(p), 0);
	before = t_events(mm);
	REQUIRE(munmap(p, 8 * P) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(t_events(mm), before);
	CHECK_NO_LOG(&A);
	CHECK_NO_LOG(&B);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();

	run(mm, true);
	run(mm, false);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
