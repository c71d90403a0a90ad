/* SPDX-License-Identifier: MIT */
/*
 * Read fault of a populated anonymous buffer (hmm-tests anon_read):
 * REQ_FAULT over the whole range makes every page VALID with order 0
 * (4 KiB pages, THP off for the buffer), and device reads through the
 * mirror see exactly what the CPU wrote. Without UHMM_RANGE_PFN the PFN
 * bits are 0; with it they match /proc/self/pagemap where the process may
 * see PFNs. Both driver loops (uhmm_range_fault_lock and the hand-written
 * one) are used.
 */
#include "mirror.h"

#define N 64

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct mirror m;
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE), *buf;

	for (unsigned long i = 0; i < N; i++)
		memset(p + i * t_page, m_byte(i, 0), t_page);
	buf = malloc(t_page);
	REQUIRE(buf);
	REQUIRE(m_init(&m, mm, p, N) == 0);

	/* Nothing is mirrored before a fault. */
	CHECK_EQ(m_read(&m, 0, buf), -EFAULT);

	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N; i++) {
		uint64_t f = m.pfns[i];

		CHECK(f & UHMM_PFN_VALID);
		CHECK(!(f & UHMM_PFN_ERROR));
		CHECK_EQ(uhmm_pfn_to_map_order(f), 0);
		CHECK_EQ(f & UHMM_PFN_PFN_MASK, 0);
		CHECK_EQ(m_read(&m, i, buf), 0);
		CHECK(m_page_is(buf, m_byte(i, 0)));
	}

	/* The CPU changes the data: the device still reads what it sees. */
	for (unsigned long i = 0; i < N; i++)
		memset(p + i * t_page, m_byte(i, 3), t_page);
	CHECK_EQ(m_fault_loop(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK(m.pfns[i] & UHMM_PFN_VALID);
		CHECK_EQ(m_read(&m, i, buf), 0);
		CHECK(m_page_is(buf, m_byte(i, 3)));
	}

	/* PFNs, where this process may see them. */
	m.range_flags = UHMM_RANGE_PFN;
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	if (m_pagemap_pfn(p) == 0)
		printf("PFNs are hidden here (no CAP_SYS_ADMIN): expecting 0\n");
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i] & UHMM_PFN_PFN_MASK,
			 m_pagemap_pfn(p + i * t_page));

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	free(buf);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
