/* SPDX-License-Identifier: MIT */
/*
 * Write fault of a hugetlb page (hmm-tests anon_write_hugetlbfs): a
 * MAP_HUGETLB buffer of one default-size huge page, faulted with
 * REQ_FAULT|REQ_WRITE, reports every 4 KiB page VALID|WRITE with the huge
 * page's order (9 for 2 MiB); the device's writes reach the CPU, and a
 * munmap zaps the mirror. Skips when no huge page is free.
 */
#include "mirror.h"

int main(void)
{
	struct uhmm_mm *mm = t_open();
	unsigned long H = t_meminfo("Hugepagesize") * 1024, n;
	unsigned int order = 0;
	struct mirror m;
	char *p;

	if (H == 0 || t_meminfo("HugePages_Free") < 1)
		SKIP("no free huge page (HugePages_Free is 0 in /proc/meminfo;"
		     " set vm.nr_hugepages)");
	n = H / t_page;
	while ((1UL << order) < n)
		order++;
	p = mmap(NULL, H, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED && errno == ENOMEM)
		SKIP("mmap(MAP_HUGETLB): no huge page available");
	REQUIRE(p != MAP_FAILED);
	REQUIRE(m_init(&m, mm, p, n) == 0);

	CHECK_EQ(m_fault(&m, 0, n, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	for (unsigned long i = 0; i < n; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(uhmm_pfn_to_map_order(m.pfns[i]), order);
		CHECK_EQ(m_write(&m, i, m_byte(i, 6)), 0);
	}
	for (unsigned long i = 0; i < n; i++)
		CHECK(m_page_is(p + i * t_page, m_byte(i, 6)));

	REQUIRE(munmap(p, H) == 0);
	(void)uhmm_interval_read_begin(&m.sub);
	CHECK_EQ(m_valid(&m, 0, n), 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
