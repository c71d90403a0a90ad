/* SPDX-License-Identifier: MIT */
/*
 * madvise(MADV_FREE): the pages may be discarded at any later moment, so
 * the kernel reports it at once, like MADV_DONTNEED: one UHMM_EVENT_CLEAR
 * over exactly the advised range.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char *p = t_map(4);

	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 4 * P) == 0);

	REQUIRE(madvise(p + P, 2 * P, MADV_FREE) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a + P, a + 3 * P));

	REQUIRE(madvise(p, 4 * P, MADV_FREE) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a, a + 4 * P));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(munmap(p, 4 * P) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
