/* SPDX-License-Identifier: MIT */
/*
 * Write fault of an untouched anonymous buffer (hmm-tests anon_write):
 * REQ_FAULT|REQ_WRITE makes every page VALID|WRITE (order 0), and what the
 * device writes through the mirror is what the CPU reads. Before the
 * fault the device may not write; a read-only fault of untouched memory
 * maps the zero page, which is VALID but not WRITE.
 */
#include "mirror.h"

#define N 64

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct mirror m;
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
	const uint64_t RW = UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE;

	REQUIRE(m_init(&m, mm, p, N) == 0);
	CHECK_EQ(m_write(&m, 0, 1), -EPERM);

	/* Read-fault the first half: the zero page, not writable. */
	CHECK_EQ(m_fault(&m, 0, N / 2, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N / 2; i++) {
		CHECK_EQ(m.pfns[i], UHMM_PFN_VALID);
		CHECK_EQ(m_write(&m, i, 1), -EPERM);
	}

	CHECK_EQ(m_fault(&m, 0, N, RW), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(uhmm_pfn_to_map_order(m.pfns[i]), 0);
		CHECK_EQ(m_write(&m, i, m_byte(i, 1)), 0);
	}
	for (unsigned long i = 0; i < N; i++)
		CHECK(m_page_is(p + i * t_page, m_byte(i, 1)));

	/* The hand-written loop gives the same. */
	CHECK_EQ(m_fault_loop(&m, 0, N, RW), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK(m.pfns[i] & UHMM_PFN_WRITE);
		CHECK_EQ(m_write(&m, i, m_byte(i, 2)), 0);
		CHECK(m_page_is(p + i * t_page, m_byte(i, 2)));
	}

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
