/* SPDX-License-Identifier: MIT */
/*
 * Read fault of a PROT_NONE buffer (hmm-tests anon_read_prot): REQ_FAULT
 * fails with -EFAULT and the mirror's table stays empty (device reads
 * fail); a snapshot without requests reports every page ERROR and only
 * ERROR. After mprotect(PROT_READ) - which sends no event, so nothing is
 * invalidated - a new fault works and sees the old data.
 */
#include "mirror.h"

#define N 16

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct mirror m;
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE), *buf = malloc(t_page);

	REQUIRE(buf);
	memset(p, 0x5a, N * t_page);
	REQUIRE(mprotect(p, N * t_page, PROT_NONE) == 0);
	REQUIRE(m_init(&m, mm, p, N) == 0);

	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT), -EFAULT);
	CHECK_EQ(m_fault_loop(&m, 0, N, UHMM_PFN_REQ_FAULT), -EFAULT);
	CHECK_EQ(m_fault(&m, 3, 1, UHMM_PFN_REQ_FAULT), -EFAULT);
	CHECK_EQ(m.gen, 0);
	CHECK_EQ(m_valid(&m, 0, N), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m_read(&m, i, buf), -EFAULT);

	memset(m.pfns, 0xff, N * sizeof(*m.pfns)); /* ignored: mask 0 */
	CHECK_EQ(m_snapshot(&m), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i], UHMM_PFN_ERROR);
	CHECK_EQ(m_valid(&m, 0, N), 0);

	/* mprotect sends no event; the next fault sees the new protection. */
	REQUIRE(mprotect(p, N * t_page, PROT_READ) == 0);
	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR), UHMM_PFN_VALID);
		CHECK_EQ(m_read(&m, i, buf), 0);
		CHECK(m_page_is(buf, 0x5a));
	}

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	free(buf);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
