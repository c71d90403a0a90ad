/* SPDX-License-Identifier: MIT */
/*
 * hugetlb (MAP_HUGETLB, default huge page size) is watchable: MADV_DONTNEED
 * of a huge page gives UHMM_EVENT_CLEAR and munmap UHMM_EVENT_UNMAP, each
 * over exactly the advised/unmapped range. Skips when the system has no
 * free huge page.
 */
#include "events.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	unsigned long H = t_meminfo("Hugepagesize") * 1024, a;
	struct t_log l;
	char *p;

	if (H == 0 || t_meminfo("HugePages_Free") < 2)
		SKIP("fewer than 2 free huge pages (HugePages_Free in "
		     "/proc/meminfo; set vm.nr_hugepages)");
	p = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED && errno == ENOMEM)
		SKIP("mmap(MAP_HUGETLB): no huge page available");
	REQUIRE(p != MAP_FAILED);
	memset(p, 1, 2 * H);
	a = (unsigned long)p;
	REQUIRE(t_log_insert(&l, mm, a, 2 * H) == 0);
	CHECK_EQ(t_registered(p), 1);

	REQUIRE(madvise(p + H, H, MADV_DONTNEED) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(CLEAR, a + H, a + 2 * H));
	CHECK_EQ(p[H], 0);

	REQUIRE(munmap(p, 2 * H) == 0);
	t_log_wait(&l);
	CHECK_LOG(&l, T_EV(UNMAP, a, a + 2 * H));

	REQUIRE(uhmm_interval_notifier_remove(&l.dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
