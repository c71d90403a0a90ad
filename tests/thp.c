/* SPDX-License-Identifier: MIT */
/*
 * Transparent huge pages: a 2 MiB-aligned MADV_HUGEPAGE mapping, touched.
 * munmap of one 4 KiB page inside it (the kernel splits the huge page)
 * gives one UHMM_EVENT_UNMAP over that page; munmap of the whole 2 MiB
 * one over the whole range. Works whether or not a huge page was actually
 * allocated (the event does not depend on it); prints which.
 */
#include "events.h"

#define HUGE (2UL << 20)

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct t_log l;
	unsigned long P = t_page, a;
	char *raw, *p;

	raw = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(raw != MAP_FAILED);
	a = ((unsigned long)raw + HUGE - 1) & ~(HUGE - 1);
	p = (char *)a;
	/* Keep only the aligned 2 MiB. */
	if (p > raw)
		REQUIRE(munmap(raw, (size_t)(p - raw)) == 0);
	REQUIRE(munmap(p + HUGE, (size_t)(raw + 2 * HUGE - (p + HUGE))) == 0);
	if (madvise(p, HUGE, MADV_HUGEPAGE))
		printf("MADV_HUGEPAGE: %s (testing with small pages)\n",
		       strerror(errno));
	memset(p, 1, HUGE);
	printf("AnonHugePages of the mapping: %ld kB\n", t_anon_huge_kb(p));
	REQUIRE(t_log_insert(&l, mm, a, HUGE) == 0);
	CHECK_EQ(t_registered(p), 1);

	REQUIRE(munmap(p + 5 * P, P) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a + 5 * P, a + 6 * P));
	CHECK_EQ(p[4 * P], 1);
	CHECK_EQ(p[6 * P], 1);

	REQUIRE(munmap(p, HUGE) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + HUGE));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
