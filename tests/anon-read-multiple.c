/* SPDX-License-Identifier: MIT */
/*
 * Several mirrors at once (hmm-tests anon_read_multiple): four
 * subscriptions - three over disjoint thirds of a buffer and one over the
 * whole - are faulted in turn, alternating the two driver loops, over
 * several rounds in which the CPU rewrites the data. Each mirror reads
 * exactly what the CPU wrote. MADV_DONTNEED of one third invalidates only
 * the mirrors that cover it; the others keep their translations (same
 * commit generation) and still read correctly.
 */
#include "mirror.h"

#define T 8		/* pages per third */
#define N (3 * T)

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct mirror third[3], whole;
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE), *buf = malloc(t_page);

	REQUIRE(buf);
	for (int k = 0; k < 3; k++)
		REQUIRE(m_init(&third[k], mm, p + k * T * t_page, T) == 0);
	REQUIRE(m_init(&whole, mm, p, N) == 0);

	for (int round = 0; round < 4; round++) {
		for (unsigned long i = 0; i < N; i++)
			memset(p + i * t_page, m_byte(i, round), t_page);
		for (int k = 0; k < 3; k++) {
			int (*fault)(struct mirror *, unsigned long,
				     unsigned long, uint64_t) =
				(k + round) & 1 ? m_fault_loop : m_fault;

			CHECK_EQ(fault(&third[k], 0, T, UHMM_PFN_REQ_FAULT), 0);
		}
		CHECK_EQ(m_fault(&whole, 0, N, UHMM_PFN_REQ_FAULT), 0);
		for (unsigned long i = 0; i < N; i++) {
			CHECK_EQ(m_read(&third[i / T], i % T, buf), 0);
			CHECK(m_page_is(buf, m_byte(i, round)));
			CHECK_EQ(m_read(&whole, i, buf), 0);
			CHECK(m_page_is(buf, m_byte(i, round)));
		}
	}

	/* Discard the middle third: only its mirror and the whole one hear. */
	unsigned long g0 = m_pte(&third[0], 0).gen, g2 = m_pte(&third[2], 0).gen;

	REQUIRE(madvise(p + T * t_page, T * t_page, MADV_DONTNEED) == 0);
	(void)uhmm_interval_read_begin(&whole.sub);
	CHECK_EQ(m_valid(&third[1], 0, T), 0);
	CHECK_EQ(m_valid(&whole, T, T), 0);
	CHECK_EQ(m_valid(&whole, 0, T), T);
	CHECK_EQ(m_valid(&whole, 2 * T, T), T);
	CHECK_EQ(m_valid(&third[0], 0, T), T);
	CHECK_EQ(m_valid(&third[2], 0, T), T);
	CHECK_EQ(m_pte(&third[0], T - 1).gen, g0);
	CHECK_EQ(m_pte(&third[2], T - 1).gen, g2);
	CHECK_EQ(m_read(&third[0], 1, buf), 0);
	CHECK(m_page_is(buf, m_byte(1, 3)));
	CHECK_EQ(m_read(&third[1], 1, buf), -EFAULT);

	/* Faulted again, the middle reads the new (zero) pages. */
	CHECK_EQ(m_fault_loop(&third[1], 0, T, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < T; i++) {
		CHECK_EQ(m_read(&third[1], i, buf), 0);
		CHECK(m_page_is(buf, 0));
	}

	REQUIRE(munmap(p, N * t_page) == 0);
	for (int k = 0; k < 3; k++)
		m_fini(&third[k]);
	m_fini(&whole);
	free(buf);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
