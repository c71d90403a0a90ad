/* SPDX-License-Identifier: MIT */
/*
 * Write fault of a PROT_READ buffer (hmm-tests anon_write_prot):
 * REQ_WRITE fails with -EPERM and installs nothing; a read fault works but
 * gives no WRITE, so the device cannot write. mprotect() sends no event
 * (the kernel reports none): after mprotect(PROT_READ|PROT_WRITE) nothing
 * was invalidated, and a new REQ_WRITE fault works and the device's writes
 * reach the CPU.
 */
#include "mirror.h"

#define N 16

int main(void)
{
	struct uhmm_mm *mm = t_open();
	struct mirror m;
	char *p = m_map_anon(N, PROT_READ | PROT_WRITE);
	const uint64_t RW = UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE;
	int calls;

	memset(p, 7, N * t_page);
	REQUIRE(mprotect(p, N * t_page, PROT_READ) == 0);
	REQUIRE(m_init(&m, mm, p, N) == 0);

	CHECK_EQ(m_fault(&m, 0, N, RW), -EPERM);
	CHECK_EQ(m_fault_loop(&m, 0, N, RW), -EPERM);
	CHECK_EQ(m.gen, 0);
	CHECK_EQ(m_valid(&m, 0, N), 0);

	CHECK_EQ(m_fault(&m, 0, N, UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i], UHMM_PFN_VALID);
		CHECK_EQ(m_write(&m, i, 9), -EPERM);
	}
	CHECK(m_page_is(p, 7));

	pthread_mutex_lock(&m.lock);
	calls = m.invalidations;
	pthread_mutex_unlock(&m.lock);
	REQUIRE(mprotect(p, N * t_page, PROT_READ | PROT_WRITE) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	pthread_mutex_lock(&m.lock);
	CHECK_EQ(m.invalidations, calls);	/* mprotect: no event */
	pthread_mutex_unlock(&m.lock);

	CHECK_EQ(m_fault(&m, 0, N, RW), 0);
	for (unsigned long i = 0; i < N; i++) {
		CHECK_EQ(m.pfns[i] & (UHMM_PFN_VALID | UHMM_PFN_WRITE |
				      UHMM_PFN_ERROR),
			 UHMM_PFN_VALID | UHMM_PFN_WRITE);
		CHECK_EQ(m_write(&m, i, m_byte(i, 4)), 0);
		CHECK(m_page_is(p + i * t_page, m_byte(i, 4)));
	}

	REQUIRE(munmap(p, N * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
