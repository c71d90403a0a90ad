/* SPDX-License-Identifier: MIT */
/*
 * uhmm_range_fault()'s input checks and its request model:
 *  - -EINVAL for a NULL range, notifier or pfns, an unaligned start or
 *    end, end <= start, a range not inside the notifier's, unknown flags;
 *    -ENOENT for a notifier that is not inserted (never, or removed);
 *  - -EBUSY when notifier_seq is stale: an invalidation (explicit, or a
 *    kernel event) after read_begin; a fresh seq works again;
 *  - per-page requests: (pfns[i] & pfn_flags_mask) | default_flags. With
 *    mask REQ_FAULT only the marked pages of an untouched buffer are
 *    faulted in; with default REQ_FAULT and mask REQ_WRITE only the marked
 *    pages become writable; an unmarked hole is not an error, a marked one
 *    is -EFAULT. REQ_WRITE alone also faults for write (or -EPERM).
 */
#include "mirror.h"

#define N 16

static int fault(struct uhmm_range *r, struct mirror *m)
{
	r->notifier_seq = uhmm_interval_read_begin(&m->sub);
	return uhmm_range_fault(r);
}

int main(void)
{
	struct uhmm_mm *mm = t_open();
	const uint64_t VWE = UHMM_PFN_VALID | UHMM_PFN_WRITE | UHMM_PFN_ERROR;
	char *p = m_map_anon(N + 2, PROT_READ | PROT_WRITE), *q = p + t_page;
	struct uhmm_interval_notifier never = { 0 };
	struct mirror m, gone;
	struct uhmm_range r, ok;
	unsigned long seq;
	int ret;

	memset(p, 1, (N + 2) * t_page);
	REQUIRE(m_init(&m, mm, q, N) == 0);
	ok = m_range(&m, 0, N, 0, UHMM_PFN_REQ_FAULT);
	CHECK_EQ(fault(&ok, &m), 0);

	CHECK_EQ(uhmm_range_fault(NULL), -EINVAL);
	r = ok; r.notifier = NULL;
	CHECK_EQ(uhmm_range_fault(&r), -EINVAL);
	r = ok; r.pfns = NULL;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.start += 1;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.end -= 1;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.end = r.start;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.end = r.start - t_page;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.start -= t_page;	/* mapped, but not the notifier's */
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.end += t_page;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.flags = 1u << 7;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	r = ok; r.flags = ~0u;
	CHECK_EQ(fault(&r, &m), -EINVAL);
	CHECK_EQ(uhmm_range_fault_lock(NULL, &m.lock, 0), -EINVAL);

	/* Never inserted: it covers nothing, so "not inside" fits too. */
	r = ok; r.notifier = &never; r.notifier_seq = 1;
	ret = uhmm_range_fault(&r);
	CHECK(ret == -ENOENT || ret == -EINVAL);
	REQUIRE(m_init(&gone, mm, q, N) == 0);
	r = ok; r.notifier = &gone.sub;
	r.notifier_seq = uhmm_interval_read_begin(&gone.sub);
	m_fini(&gone);
	CHECK_EQ(uhmm_range_fault(&r), -ENOENT);

	/* A stale seq: an explicit invalidation, then a kernel event. */
	r = ok;
	seq = uhmm_interval_read_begin(&m.sub);
	r.notifier_seq = seq;
	REQUIRE(uhmm_mm_invalidate(mm, m_addr(&m, 2), m_addr(&m, 3),
				   UHMM_EVENT_PROTECTION) == 0);
	CHECK_EQ(uhmm_range_fault(&r), -EBUSY);
	CHECK_EQ(uhmm_range_fault(&r), -EBUSY);
	CHECK_EQ(fault(&r, &m), 0);
	seq = r.notifier_seq;
	REQUIRE(madvise((void *)m_addr(&m, 5), t_page, MADV_DONTNEED) == 0);
	REQUIRE(uhmm_mm_sync(mm) == 0);
	CHECK_EQ(uhmm_range_fault(&r), -EBUSY);
	CHECK_EQ(fault(&r, &m), 0);
	/* An invalidation elsewhere is no collision. */
	seq = r.notifier_seq;
	REQUIRE(uhmm_mm_invalidate(mm, (unsigned long)p, (unsigned long)q,
				   UHMM_EVENT_PROTECTION) == 0);
	CHECK_EQ(uhmm_range_fault(&r), 0);
	CHECK_EQ(r.notifier_seq, seq);

	/* Per-page REQ_FAULT on untouched memory: odd pages only. */
	REQUIRE(madvise(q, N * t_page, MADV_DONTNEED) == 0);
	for (unsigned long i = 0; i < N; i++)
		m.pfns[i] = (i & 1) ? UHMM_PFN_REQ_FAULT : UHMM_PFN_ERROR;
	CHECK_EQ(m_fault_req(&m, 0, N, UHMM_PFN_REQ_FAULT, 0), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i] & VWE, (i & 1) ? UHMM_PFN_VALID : 0);
	CHECK_EQ(m_valid(&m, 0, N), N / 2);

	/* Per-page REQ_WRITE over a default REQ_FAULT: pages 0 and 3. */
	for (unsigned long i = 0; i < N; i++)
		m.pfns[i] = (i == 0 || i == 3) ? UHMM_PFN_REQ_WRITE : 0;
	CHECK_EQ(m_fault_loop_req(&m, 0, N, UHMM_PFN_REQ_WRITE,
				  UHMM_PFN_REQ_FAULT), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i] & VWE, UHMM_PFN_VALID |
			 ((i == 0 || i == 3) ? UHMM_PFN_WRITE : 0));

	/* A hole: unmarked it is ERROR, marked it fails the fault. */
	REQUIRE(munmap((void *)m_addr(&m, 4), t_page) == 0);
	for (unsigned long i = 0; i < N; i++)
		m.pfns[i] = i == 4 ? 0 : UHMM_PFN_REQ_FAULT;
	CHECK_EQ(m_fault_req(&m, 0, N, UHMM_PFN_REQ_FAULT, 0), 0);
	for (unsigned long i = 0; i < N; i++)
		CHECK_EQ(m.pfns[i] & VWE, i == 4 ? UHMM_PFN_ERROR :
			 UHMM_PFN_VALID | ((i == 0 || i == 3) ?
					   UHMM_PFN_WRITE : 0));
	for (unsigned long i = 0; i < N; i++)
		m.pfns[i] = i == 4 ? UHMM_PFN_REQ_FAULT : 0;
	CHECK_EQ(m_fault_req(&m, 0, N, UHMM_PFN_REQ_FAULT, 0), -EFAULT);

	/* REQ_WRITE alone requests nothing, as in the kernel: no fault, no
	 * -EPERM; the pages are reported as they are. */
	REQUIRE(madvise((void *)m_addr(&m, 8), 4 * t_page, MADV_DONTNEED) == 0);
	CHECK_EQ(m_fault(&m, 8, 4, UHMM_PFN_REQ_WRITE), 0);
	for (unsigned long i = 8; i < 12; i++)
		CHECK_EQ(m.pfns[i] & VWE, 0);
	REQUIRE(mprotect((void *)m_addr(&m, 8), 4 * t_page, PROT_READ) == 0);
	CHECK_EQ(m_fault(&m, 8, 4, UHMM_PFN_REQ_WRITE), 0);
	CHECK_EQ(m_fault(&m, 8, 4, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE),
		 -EPERM);

	REQUIRE(munmap(p, (N + 2) * t_page) == 0);
	m_fini(&m);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
