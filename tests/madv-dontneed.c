/* SPDX-License-Identifier: MIT */
/*
 * madvise(MADV_DONTNEED): one UHMM_EVENT_CLEAR over exactly the advised
 * range (the kernel sends REMOVE before the zap); the mapping stays and
 * stays watched, so a later munmap is heard too. Advice next to the
 * subscription calls nothing.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char *p = t_map(8);

	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a + 2 * P, 4 * P) == 0);

	REQUIRE(madvise(p + 3 * P, 2 * P, MADV_DONTNEED) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a + 3 * P, a + 5 * P));
	CHECK_EQ(p[3 * P], 0);	/* discarded */
	CHECK_EQ(p[2 * P], 1);

	/* Straddling the subscription's start: the advised range. */
	REQUIRE(madvise(p, 3 * P, MADV_DONTNEED) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a, a + 3 * P));

	REQUIRE(madvise(p + 6 * P, 2 * P, MADV_DONTNEED) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_NO_LOG(&l);

	REQUIRE(munmap(p, 8 * P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 8 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
