/* SPDX-License-Identifier: MIT */
/*
 * A software mirror: the "device" of the range-fault tests, modelled on
 * the kernel's lib/test_hmm.c dmirror.
 *
 * One interval notifier over [start, start + npages pages), a device lock,
 * and a page table {valid, write, order, gen}. Translations enter the table
 * ONLY after a clean uhmm_interval_read_retry() under the device lock
 * (through uhmm_range_fault_lock(), or the hand-written read_begin /
 * range_fault / lock / read_retry loop); the invalidate callback zaps the
 * table in its range under the same lock. Every successful fault also
 * checks invariant 9 on the output (REQ_FAULT -> VALID, REQ_FAULT|REQ_WRITE -> WRITE,
 * WRITE -> VALID, never VALID with ERROR, no PFN unless asked).
 *
 * The device "reads" page i by copying from the CPU address into a buffer
 * only if table[i].valid, and "writes" (DMA into the page the CPU sees)
 * only if table[i].write. Both copy under the device lock, so they must
 * not race with an unmap of the page (the event follows the unmap).
 */
#ifndef UHMM_TEST_MIRROR_H
#define UHMM_TEST_MIRROR_H

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "events.h"

/* Tests that fork() a threaded process cannot run under ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define M_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define M_TSAN 1
#endif
#endif

struct m_pte {
	bool valid, write;
	unsigned int order;
	unsigned long gen;	/* the commit that installed it */
};

struct mirror {
	struct uhmm_interval_notifier sub;
	pthread_mutex_t lock;
	unsigned long start;	/* first byte */
	unsigned long npages;
	struct m_pte *pt;	/* [lock] */
	unsigned long gen;	/* [lock] commits so far */
	int invalidations;	/* [lock] callbacks seen */
	uint64_t *pfns;		/* the last fault's output (faulting thread) */
	uint64_t *req;		/* its per-page input, saved */
	unsigned int range_flags; /* UHMM_RANGE_* for the next fault */
	unsigned int timeout_ms;  /* for uhmm_range_fault_lock() */
	/* Optional hook run at the start of the callback, before the lock. */
	void (*hook)(struct mirror *m, const struct uhmm_notifier_range *r,
		     unsigned long cur_seq);
};

static inline struct mirror *m_of(struct uhmm_interval_notifier *sub)
{
	return (struct mirror *)((char *)sub - offsetof(struct mirror, sub));
}

static inline bool m_invalidate(struct uhmm_interval_notifier *sub,
				const struct uhmm_notifier_range *r,
				unsigned long cur_seq)
{
	struct mirror *m = m_of(sub);
	unsigned long end = m->start + m->npages * t_page;
	unsigned long s = r->start > m->start ? r->start : m->start;
	unsigned long e = r->end < end ? r->end : end;

	if (m->hook)
		m->hook(m, r, cur_seq);
	pthread_mutex_lock(&m->lock);
	uhmm_interval_set_seq(sub, cur_seq);
	m->invalidations++;
	for (unsigned long a = s; a < e; a += t_page)
		m->pt[(a - m->start) / t_page] = (struct m_pte){ 0 };
	pthread_mutex_unlock(&m->lock);
	return true;
}

static const struct uhmm_interval_notifier_ops m_ops = {
	.invalidate = m_invalidate,
};

/* Mirror npages pages at p; t_open() must have run (t_page). */
static inline int m_init(struct mirror *m, struct uhmm_mm *mm, void *p,
			 unsigned long npages)
{
	pthread_mutexattr_t a;

	memset(m, 0, sizeof(*m));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&m->lock, &a);
	pthread_mutexattr_destroy(&a);
	m->start = (unsigned long)p;
	m->npages = npages;
	m->pt = calloc(npages, sizeof(*m->pt));
	m->pfns = calloc(npages, sizeof(*m->pfns));
	m->req = calloc(npages, sizeof(*m->req));
	REQUIRE(m->pt && m->pfns && m->req);
	return uhmm_interval_notifier_insert(&m->sub, mm, m->start,
					     npages * t_page, &m_ops);
}

static inline void m_fini(struct mirror *m)
{
	CHECK_EQ(uhmm_interval_notifier_remove(&m->sub), 0);
	free(m->pt);
	free(m->pfns);
	free(m->req);
}

static inline unsigned long m_addr(struct mirror *m, unsigned long i)
{
	return m->start + i * t_page;
}

/* Invariant 9 on the output of a successful fault of pages [first, +n). */
static inline void m_check_output(struct mirror *m, unsigned long first,
				  unsigned long n, uint64_t mask, uint64_t dflt)
{
	for (unsigned long i = first; i < first + n; i++) {
		uint64_t want = (m->req[i] & mask) | dflt, got = m->pfns[i];
		bool ok = true;

		if ((want & UHMM_PFN_REQ_FAULT) && !(got & UHMM_PFN_VALID))
			ok = false;
		/* REQ_WRITE counts only with REQ_FAULT, as in the kernel. */
		if ((want & UHMM_PFN_REQ_FAULT) &&
		    (want & UHMM_PFN_REQ_WRITE) && !(got & UHMM_PFN_WRITE))
			ok = false;
		if ((got & UHMM_PFN_WRITE) && !(got & UHMM_PFN_VALID))
			ok = false;
		if ((got & UHMM_PFN_VALID) && (got & UHMM_PFN_ERROR))
			ok = false;
		if (!(m->range_flags & UHMM_RANGE_PFN) &&
		    (got & UHMM_PFN_PFN_MASK))
			ok = false;
		if (!ok) {
			fprintf(stderr, "page %lu: request %#llx, got %#llx "
				"(invariant 9)\n", i, (unsigned long long)want,
				(unsigned long long)got);
			t_failed = 1;
		}
	}
}

/* Under m->lock, after a clean read_retry: install pages [first, +n). */
static inline void m_commit(struct mirror *m, unsigned long first,
			    unsigned long n)
{
	m->gen++;
	for (unsigned long i = first; i < first + n; i++) {
		uint64_t f = m->pfns[i];
		bool valid = (f & UHMM_PFN_VALID) && !(f & UHMM_PFN_ERROR);

		m->pt[i] = (struct m_pte){
			.valid = valid,
			.write = valid && (f & UHMM_PFN_WRITE),
			.order = valid ? uhmm_pfn_to_map_order(f) : 0,
			.gen = valid ? m->gen : 0,
		};
	}
}

static inline struct uhmm_range m_range(struct mirror *m, unsigned long first,
					unsigned long n, uint64_t mask,
					uint64_t dflt)
{
	REQUIRE(first + n <= m->npages && n > 0);
	/* pfns[] is the input only through the mask; keep it for checks. */
	for (unsigned long i = first; i < first + n; i++)
		m->req[i] = m->pfns[i];
	return (struct uhmm_range){
		.notifier = &m->sub,
		.start = m_addr(m, first),
		.end = m_addr(m, first + n),
		.pfns = m->pfns + first,
		.default_flags = dflt,
		.pfn_flags_mask = mask,
		.flags = m->range_flags,
	};
}

/*
 * Fault pages [first, first + n) with uhmm_range_fault_lock() and commit
 * them. Per-page requests: set m->pfns[i] beforehand and pass the mask.
 * Returns its result; 0 means committed (the lock is released again).
 */
static inline int m_fault_req(struct mirror *m, unsigned long first,
			      unsigned long n, uint64_t mask, uint64_t dflt)
{
	struct uhmm_range r = m_range(m, first, n, mask, dflt);
	int ret = uhmm_range_fault_lock(&r, &m->lock, m->timeout_ms);

	if (ret)
		return ret;
	/* Held, and the seq is the one the snapshot survived. */
	CHECK(!uhmm_interval_read_retry(&m->sub, r.notifier_seq));
	m_check_output(m, first, n, mask, dflt);
	m_commit(m, first, n);
	CHECK_EQ(pthread_mutex_unlock(&m->lock), 0);
	return 0;
}

static inline int m_fault(struct mirror *m, unsigned long first,
			  unsigned long n, uint64_t dflt)
{
	return m_fault_req(m, first, n, 0, dflt);
}

/* The same with the driver loop written out, as in the kernel's docs. */
static inline int m_fault_loop_req(struct mirror *m, unsigned long first,
				   unsigned long n, uint64_t mask,
				   uint64_t dflt)
{
	struct uhmm_range r = m_range(m, first, n, mask, dflt);
	int ret;

	for (;;) {
		r.notifier_seq = uhmm_interval_read_begin(&m->sub);
		/* pfns[] was overwritten by a failed attempt: re-request. */
		for (unsigned long i = first; i < first + n; i++)
			m->pfns[i] = m->req[i];
		ret = uhmm_range_fault(&r);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		pthread_mutex_lock(&m->lock);
		if (uhmm_interval_read_retry(&m->sub, r.notifier_seq)) {
			pthread_mutex_unlock(&m->lock);
			continue;
		}
		m_check_output(m, first, n, mask, dflt);
		m_commit(m, first, n);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
}

static inline int m_fault_loop(struct mirror *m, unsigned long first,
			       unsigned long n, uint64_t dflt)
{
	return m_fault_loop_req(m, first, n, 0, dflt);
}

/* A snapshot of every page without any request; output in m->pfns. */
static inline int m_snapshot(struct mirror *m)
{
	return m_fault(m, 0, m->npages, 0);
}

/* read_retry under the mirror's lock, as a device checks a commit. */
static inline bool m_read_retry(struct mirror *m, unsigned long seq)
{
	bool r;

	pthread_mutex_lock(&m->lock);
	r = uhmm_interval_read_retry(&m->sub, seq);
	pthread_mutex_unlock(&m->lock);
	return r;
}

static inline struct m_pte m_pte(struct mirror *m, unsigned long i)
{
	struct m_pte e;

	pthread_mutex_lock(&m->lock);
	e = m->pt[i];
	pthread_mutex_unlock(&m->lock);
	return e;
}

/* Device read of page i into buf: 0, or -EFAULT without a translation. */
static inline int m_read(struct mirror *m, unsigned long i, void *buf)
{
	int ret = -EFAULT;

	pthread_mutex_lock(&m->lock);
	if (m->pt[i].valid) {
		memcpy(buf, (void *)m_addr(m, i), t_page);
		ret = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* Device write of page i (fill with byte c): 0, or -EPERM. */
static inline int m_write(struct mirror *m, unsigned long i, int c)
{
	int ret = -EPERM;

	pthread_mutex_lock(&m->lock);
	if (m->pt[i].write) {
		memset((void *)m_addr(m, i), c, t_page);
		ret = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* Number of valid translations in [first, first + n). */
static inline unsigned long m_valid(struct mirror *m, unsigned long first,
				    unsigned long n)
{
	unsigned long v = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned long i = first; i < first + n; i++)
		v += m->pt[i].valid;
	pthread_mutex_unlock(&m->lock);
	return v;
}

/* n pages of private anonymous memory, untouched, never THP-backed. */
static inline char *m_map_anon(unsigned long n, int prot)
{
	char *p = mmap(NULL, n * t_page, prot, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	REQUIRE(p != MAP_FAILED);
	(void)madvise(p, n * t_page, MADV_NOHUGEPAGE);
	return p;
}

/* Fill page i of p with a byte derived from i and salt. */
static inline int m_byte(unsigned long i, int salt)
{
	return (int)((i * 7 + (unsigned long)salt) % 251) + 1;
}

static inline bool m_page_is(const void *page, int c)
{
	const unsigned char *b = page;

	for (unsigned long k = 0; k < t_page; k++)
		if (b[k] != (unsigned char)c)
			return false;
	return true;
}

/* The PFN of the page at addr from /proc/self/pagemap; 0 if hidden. */
static inline uint64_t m_pagemap_pfn(const void *addr)
{
	FILE *f = fopen("/proc/self/pagemap", "re");
	uint64_t e = 0;

	if (!f)
		return 0;
	if (fseek(f, (long)((unsigned long)addr / t_page * 8), SEEK_SET) ||
	    fread(&e, 8, 1, f) != 1)
		e = 0;
	fclose(f);
	return (e >> 63) ? (e & ((1ULL << 55) - 1)) : 0;
}

#endif
