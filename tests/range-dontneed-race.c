/* SPDX-License-Identifier: MIT */
/*
 * MADV_DONTNEED racing a range-fault mirror: the kernel reads the REMOVE
 * event *before* it zaps the pages, so a snapshot taken by another thread
 * between the read and the zap commits translations of pages the zap then
 * discards - with a clean read_retry and no callback ever after.
 *
 * One thread keeps faulting the range (REQ_FAULT | REQ_WRITE, with PFNs)
 * into a mirror; the main thread discards the range, writes it, and once
 * read_begin has waited for the event, checks under the mirror's lock
 * that every valid entry holds the PFN the application now sees. With the
 * REMOVE window closed at dispatch (UHMM_REMOVE_GRACE_US=0) stale entries
 * appear within a few thousand discards. Needs PFNs (CAP_SYS_ADMIN).
 */
#include "mirror.h"

#define N 4
#define ITERATIONS 20000

static struct mirror m;
static uint64_t committed[N];	/* [m.lock] PFN of each valid entry */
static int stop;		/* atomic */
static unsigned long faults;	/* faulting thread only */

static void *faulter(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct uhmm_range r = m_range(&m, 0, N, 0,
					      UHMM_PFN_REQ_FAULT |
						      UHMM_PFN_REQ_WRITE);

		if (uhmm_range_fault_lock(&r, &m.lock, 0))
			continue;
		m_commit(&m, 0, N);
		for (int i = 0; i < N; i++)
			committed[i] = m.pfns[i] & UHMM_PFN_PFN_MASK;
		pthread_mutex_unlock(&m.lock);
		faults++;
	}
	return NULL;
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	int n = (int)(ITERATIONS * t_scale()), stale = 0;
	pthread_t th;
	char *p;

	p = m_map_anon(N, PROT_READ | PROT_WRITE);
	memset(p, 1, N * t_page);
	if (!m_pagemap_pfn(p))
		SKIP("PFNs are hidden here (they need CAP_SYS_ADMIN)");
	REQUIRE(m_init(&m, mm, p, N) == 0);
	m.range_flags = UHMM_RANGE_PFN;
	REQUIRE(pthread_create(&th, NULL, faulter, NULL) == 0);

	for (int k = 0; k < n; k++) {
		REQUIRE(madvise(p, N * t_page, MADV_DONTNEED) == 0);
		memset(p, 2, N * t_page);
		/* The discard returned: its invalidation must be visible. */
		uhmm_interval_read_begin(&m.sub);
		pthread_mutex_lock(&m.lock);
		for (int i = 0; i < N; i++)
			if (m.pt[i].valid &&
			    committed[i] != m_pagemap_pfn(p + i * t_page))
				stale++;
		pthread_mutex_unlock(&m.lock);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);

	printf("%d discards, %d mirror entries held a discarded page after "
	       "the discard returned; the other thread committed %lu "
	       "snapshots\n", n, stale, faults);
	CHECK_EQ(stale, 0);
	m_fini(&m);
	munmap(p, N * t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
