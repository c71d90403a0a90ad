/* SPDX-License-Identifier: MIT */
/*
 * Write fault of a transparent huge page (hmm-tests anon_write_huge): a
 * 2 MiB-aligned MADV_HUGEPAGE buffer, faulted with REQ_FAULT|REQ_WRITE,
 * reports every 4 KiB page VALID|WRITE with order 9 (and, where PFNs are
 * visible, 512 consecutive PFNs); the device's writes reach the CPU.
 * Skips, saying why, when THP is off or the kernel gave no huge page.
 */
#include "mirror.h"

#define HUGE (2UL << 20)

static bool thp_never(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char line[128] = "";
	bool never;

	if (!f)
		return true;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	never = strstr(line, "[never]") != NULL || line[0] == 0;
	return never;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	unsigned long n = HUGE / t_page;
	struct mirror m;
	char *raw, *p;
	uint64_t pfn0;

	if (thp_never())
		SKIP("transparent huge pages are \"never\" (or absent) in "
		     "/sys/kernel/mm/transparent_hugepage/enabled");
	raw = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(raw != MAP_FAILED);
	p = (char *)(((unsigned long)raw + HUGE - 1) & ~(HUGE - 1));
	if (p > raw)
		REQUIRE(munmap(raw, (size_t)(p - raw)) == 0);
	REQUIRE(munmap(p + HUGE, (size_t)(raw + 2 * HUGE - (p + HUGE))) == 0);
	REQUIRE(madvise(p, HUGE, MADV_HUGEPAGE) == 0);
	REQUIRE(m_init(&m, mm, p, n) == 0);

	m.range_flags = UHMM_RANGE_PFN;
	CHECK_EQ(m_fault(&m, 0, n, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE), 0);
	if (t_anon_huge_kb(p) < (long)(HUGE >> 10)) {
		printf("AnonHugePages %ld kB, page 0 order %u\n",
		       t_anon_huge_kb(p), uhmm_pfn_to_map_order(m.pfns[0]));
		REQUIRE(munmap(p, HUGE) == 0);
		m_fini(&m);
		REQUIRE(uhmm_mm_close(mm) == 0);
		if (t_failed)
			return T_FAIL;
		SKIP("the kernel did not back the buffer with a huge page");
	}
	pfn0 = m.pfns[0] & UHMM_PFN_PFN_MASK;
	for (unsigned long i = 0; i < n; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(uhmm_pfn_to_map_order(m.pfns[i]), 9);
		if (pfn0)
			CHECK_EQ(m.pfns[i] & UHMM_PFN_PFN_MASK, pfn0 + i);
		CHECK_EQ(m_pte(&m, i).order, 9);
		CHECK_EQ(m_write(&m, i, m_byte(i, 5)), 0);
	}
	for (unsigned long i = 0; i < n; i++)
		CHECK(m_page_is(p + i * t_page, m_byte(i, 5)));
	CHECK_EQ(t_anon_huge_kb(p), HUGE >> 10);	/* still one huge page */

	REQUIRE(munmap(p, HUGE) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
