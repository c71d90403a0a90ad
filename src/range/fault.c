/* SPDX-License-Identifier: MIT */
/*
 * uhmm_range_fault: the kernel's hmm_range_fault contract in user space.
 *
 * The walk goes mapping by mapping (uhmm_prim_vma_find). For each piece
 * of the range inside one mapping:
 *
 *   1. holes and PROT_NONE: ERROR, or -EFAULT if a page asks for a fault;
 *      a write request to a mapping without PROT_WRITE: -EPERM;
 *   2. snapshot the page state with PAGEMAP_SCAN (one region per run of
 *      pages in the same state, so a populated gigabyte is one region), or
 *      with /proc/self/pagemap where the kernel lacks it;
 *   3. fault in the pages that request a write (MADV_POPULATE_WRITE),
 *      present or not, and the runs of other pages whose request the
 *      snapshot does not meet (MADV_POPULATE_READ), and snapshot again.
 *
 * WRITE needs more than a writable mapping: the page must not be shared
 * copy-on-write, and a CPU write must not move it to another page. The
 * kernel's hmm_range_fault() asks the PTE (pte_write()) and write-faults
 * whenever a write is requested and the PTE is read-only. User space
 * cannot ask: neither PAGEMAP_SCAN nor /proc/self/pagemap has a writable
 * bit. pagemap's "exclusive" bit (mapped once) is no substitute: after
 * fork() the parent's pages stay write-protected when the child exits,
 * mapped once but not anon-exclusive, and the next CPU write copies such
 * a page whenever anything else holds a reference to it (an LRU batch, a
 * GUP, the swap cache) - a new frame, with no event. So:
 *
 *  - a page that requests REQ_FAULT|REQ_WRITE is always write-faulted,
 *    which breaks any sharing and leaves the PTE writable and dirty. For
 *    a page already writable the fault is the kernel's page-table walk,
 *    about 0.25 us per 4 KiB page (a gigabyte: ~80 ms against 6 ms for
 *    the snapshot alone), one step per huge page;
 *  - once the process forked since load, a page of a private mapping is
 *    WRITE only if it was write-faulted so: any other may still be
 *    write-protected, whatever pagemap says;
 *  - before that, a present page of a writable private mapping is WRITE
 *    unless PAGEMAP_SCAN reports the zero page or an unwritten file page.
 *    A read-only PTE there maps an anon-exclusive page (swapped in by a
 *    read, soft-dirty or NUMA hinting), which a CPU write reuses in place;
 *    the exception is a page merged by KSM, which only a process that
 *    asked for merging has and uhmm cannot see.
 *
 * The caller's seq is checked before the walk and after it, once the
 * events already read from the kernel are dispatched; the range is armed
 * with the event source before it is read, and a present page of a
 * mapping created since (in a hole: no event) is caught by the snapshot
 * itself, armed, and read again (snapshot_scan(); not without
 * PAGEMAP_SCAN).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/internal.h"
#include "core/options.h"
#include "prim/prim.h"
#include "prim/uapi.h"

#define REQ_MASK (UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE)
#define SCAN_VEC 256
#define PAGEMAP_CHUNK 1024
#define UNWATCHED_TRIES 8	/* walks that found a new mapping, then -EBUSY */

struct fault_walk {
	struct uhmm_range *range;
	unsigned long page_size;
	unsigned int page_shift;
	/* Per-page requests when they differ (pfn_flags_mask != 0), saved
	 * before the output overwrites pfns[]; else all are default_flags. */
	unsigned char *req;
	bool forked;		/* forked since load: private pages may be COW */
	bool write_faulted;	/* the mapping's write requests were faulted */
	bool scan;		/* PAGEMAP_SCAN works */
	bool watch;		/* the range is armed: check pages are watched */
	bool unwatched;		/* a present page of an unregistered mapping */
};

static unsigned long page_index(const struct fault_walk *w, unsigned long addr)
{
	return (addr - w->range->start) >> w->page_shift;
}

static uint64_t request(const struct fault_walk *w, unsigned long i)
{
	return w->req ? (uint64_t)w->req[i] << 56 : w->range->default_flags;
}

static unsigned int order_of(const struct fault_walk *w,
			     const struct uhmm_vma *vma, bool huge)
{
	unsigned int order = 0;

	if (vma->page_size > w->page_size) {
		/* hugetlb: the mapping's own page size */
		while ((w->page_size << order) < vma->page_size)
			order++;
		return order;
	}
	return huge ? uhmm_prim_pmd_order() : 0;
}

/*
 * Output flags of a present page from its PAGEMAP_SCAN categories. For
 * private memory, a file page is one not yet copied on write, and the zero
 * page is never writable.
 */
static uint64_t present_flags(const struct fault_walk *w,
			      const struct uhmm_vma *vma,
			      unsigned long long cat)
{
	uint64_t flags = UHMM_PFN_VALID;

	if ((vma->prot & PROT_WRITE) && !(cat & PAGE_IS_PFNZERO) &&
	    (vma->shared || !(cat & PAGE_IS_FILE)))
		flags |= UHMM_PFN_WRITE;
	return flags | ((uint64_t)order_of(w, vma, cat & PAGE_IS_HUGE)
			<< UHMM_PFN_ORDER_SHIFT);
}

static void fill(struct fault_walk *w, unsigned long start, unsigned long end,
		 uint64_t flags)
{
	uint64_t *p = w->range->pfns;
	unsigned long first = page_index(w, start), last = page_index(w, end);

	for (unsigned long i = first; i < last; i++)
		p[i] = flags;
}

/*
 * PAGEMAP_SCAN reports only present pages, one region per run of pages in
 * the same state: each entry is written once, a region's flags or 0 for
 * the gaps between them. PAGE_IS_FILE costs the kernel a page lookup per
 * page; it matters only in private file mappings (a page not yet copied
 * on write), so only there is it asked for.
 *
 * The range was armed before the walk, but a mapping created in a hole
 * since then is not registered, and its munmap() will send no event: a
 * translation read from it would never be invalidated. The scan reports
 * each page with its mapping's PAGE_IS_WPALLOWED, read under the same
 * mmap_lock as the page itself (uhmm_prim_pagemap_wp_coverage() quotes
 * the kernel), so a present page without it is caught in the very read
 * that found it: -EAGAIN, and uhmm_range_fault() arms and walks again.
 * Pages not present give no translation, so need no check.
 */
static int snapshot_scan(struct fault_walk *w, const struct uhmm_vma *vma,
			 unsigned long start, unsigned long end)
{
	unsigned long long mask = PAGE_IS_PRESENT | PAGE_IS_PFNZERO |
				  PAGE_IS_HUGE;
	struct page_region vec[SCAN_VEC];
	unsigned long addr = start, done = start;

	if (vma->file && !vma->shared)
		mask |= PAGE_IS_FILE;
	if (w->watch)
		mask |= PAGE_IS_WPALLOWED;
	while (addr < end) {
		unsigned long walk_end;
		long n = uhmm_prim_pagemap_scan(addr, end, vec, SCAN_VEC,
						PAGE_IS_PRESENT, mask,
						&walk_end);

		if (n < 0)
			return (int)n;
		for (long i = 0; i < n; i++) {
			if (w->watch &&
			    !(vec[i].categories & PAGE_IS_WPALLOWED)) {
				w->unwatched = true;
				return -EAGAIN;
			}
			/* A resumed walk may repeat a region. */
			if (vec[i].start > done)
				fill(w, done, vec[i].start, 0);
			fill(w, vec[i].start, vec[i].end,
			     present_flags(w, vma, vec[i].categories));
			if (vec[i].end > done)
				done = vec[i].end;
		}
		/* A full vector may report walk_end early: resuming there
		 * repeats regions, loses none. */
		if (n < SCAN_VEC || walk_end <= addr)
			break;
		addr = walk_end;
	}
	if (done < end)
		fill(w, done, end, 0);
	return 0;
}

/*
 * /proc/self/pagemap: the fallback snapshot, and PFNs. Without
 * PAGEMAP_SCAN the zero page cannot be told from a shared page, and
 * either way it is not mapped exclusively: no WRITE.
 */
static int snapshot_pagemap(struct fault_walk *w, const struct uhmm_vma *vma,
			    unsigned long start, unsigned long end, bool fresh)
{
	unsigned long long pm[PAGEMAP_CHUNK];
	uint64_t *p = w->range->pfns;
	bool want_pfn = w->range->flags & UHMM_RANGE_PFN;

	for (unsigned long addr = start; addr < end;) {
		size_t n = (end - addr) >> w->page_shift;
		unsigned long i = page_index(w, addr);
		int ret;

		if (n > PAGEMAP_CHUNK)
			n = PAGEMAP_CHUNK;
		ret = uhmm_prim_pagemap_read(addr, n, pm);
		if (ret)
			return ret;
		for (size_t k = 0; k < n; k++, i++) {
			unsigned long long e = pm[k];

			if (fresh) {
				p[i] = 0;
				if (!(e & UHMM_PM_PRESENT))
					continue;
				p[i] = present_flags(w, vma,
					(e & UHMM_PM_FILE) ? PAGE_IS_FILE : 0);
				if (!vma->shared && !(e & UHMM_PM_FILE) &&
				    !(e & UHMM_PM_EXCLUSIVE))
					p[i] &= ~UHMM_PFN_WRITE;
			}
			if (want_pfn && (p[i] & UHMM_PFN_VALID))
				p[i] |= e & UHMM_PM_PFN_MASK;
		}
		addr += n << w->page_shift;
	}
	return 0;
}

/* Does page i request a write fault (REQ_WRITE counts only with REQ_FAULT)? */
static bool wants_write(const struct fault_walk *w, unsigned long i)
{
	return (request(w, i) & REQ_MASK) == REQ_MASK;
}

/*
 * After a fork, no page of a private mapping is known to be writable but
 * one this walk write-faulted: fork() write-protected them all, and a
 * page the child no longer maps is still write-protected (and copied on
 * the CPU's next write if anything else holds a reference to it), which
 * neither snapshot can tell. A fork after the write fault opens a
 * PROTECTION window over the mapping, a collision.
 */
static void forked_no_write(struct fault_walk *w, const struct uhmm_vma *vma,
			    unsigned long start, unsigned long end)
{
	uint64_t *p = w->range->pfns;
	unsigned long first = page_index(w, start), last = page_index(w, end);

	if (!w->forked || vma->shared)
		return;
	for (unsigned long i = first; i < last; i++)
		if (!w->write_faulted || !wants_write(w, i))
			p[i] &= ~UHMM_PFN_WRITE;
}

static int snapshot(struct fault_walk *w, const struct uhmm_vma *vma,
		    unsigned long start, unsigned long end)
{
	int ret = 0;

	if (w->scan) {
		ret = snapshot_scan(w, vma, start, end);
		if (ret == -ENOTTY || ret == -EINVAL)
			w->scan = false;	/* before Linux 6.7 */
		else if (ret)
			return ret;
	}
	if (!w->scan)
		ret = snapshot_pagemap(w, vma, start, end, true);
	else if (w->range->flags & UHMM_RANGE_PFN)	/* only in pagemap */
		ret = snapshot_pagemap(w, vma, start, end, false);
	if (ret)
		return ret;
	forked_no_write(w, vma, start, end);
	return 0;
}

/*
 * Must page i be faulted in? Until this walk write-faulted the mapping's
 * pages, every one that requests a write must be, whatever the snapshot
 * says (see the top of the file); after that, and for the others, those
 * whose snapshot does not meet their request.
 */
static bool needs_fault(const struct fault_walk *w, unsigned long i)
{
	uint64_t req = request(w, i), out = w->range->pfns[i];

	if (!(req & UHMM_PFN_REQ_FAULT))
		return false;
	if (!w->write_faulted && wants_write(w, i))
		return true;
	if (!(out & UHMM_PFN_VALID))
		return true;
	return (req & UHMM_PFN_REQ_WRITE) && !(out & UHMM_PFN_WRITE);
}

/* Fault in every run of pages that need it; the number of pages faulted. */
static long fault_runs(struct fault_walk *w, unsigned long start,
		       unsigned long end)
{
	unsigned long first = page_index(w, start), last = page_index(w, end);
	long faulted = 0;

	for (unsigned long i = first; i < last;) {
		unsigned long j;
		bool write;
		int ret;

		if (!needs_fault(w, i)) {
			i++;
			continue;
		}
		write = wants_write(w, i);
		for (j = i + 1; j < last && needs_fault(w, j) &&
				wants_write(w, j) == write;
		     j++)
			;
		ret = uhmm_prim_populate(w->range->start + (i << w->page_shift),
					 (j - i) << w->page_shift, write);
		if (ret)
			return ret;
		faulted += (long)(j - i);
		i = j;
	}
	return faulted;
}

/* What a request of the pages in [start, end) asks of a mapping. */
static uint64_t requests_in(const struct fault_walk *w, unsigned long start,
			    unsigned long end)
{
	uint64_t any = 0;

	if (!w->req)
		return w->range->default_flags & REQ_MASK;
	for (unsigned long i = page_index(w, start); i < page_index(w, end);
	     i++) {
		uint64_t r = request(w, i);

		/* REQ_WRITE alone requests nothing: not another page's
		 * REQ_FAULT | REQ_WRITE (-EPERM) either. */
		if (r & UHMM_PFN_REQ_FAULT)
			any |= r;
	}
	return any;
}

/* [start, end) lies in no mapping, or in one that cannot be read. */
static int walk_unreadable(struct fault_walk *w, unsigned long start,
			   unsigned long end)
{
	if (requests_in(w, start, end) & UHMM_PFN_REQ_FAULT)
		return -EFAULT;
	fill(w, start, end, UHMM_PFN_ERROR);
	return 0;
}

static int walk_mapping(struct fault_walk *w, const struct uhmm_vma *vma,
			unsigned long start, unsigned long end)
{
	uint64_t req = requests_in(w, start, end);
	long faulted;
	int ret;

	if (!(vma->prot & PROT_READ))
		return walk_unreadable(w, start, end);
	if ((req & UHMM_PFN_REQ_FAULT) && (req & UHMM_PFN_REQ_WRITE) &&
	    !(vma->prot & PROT_WRITE))
		return -EPERM;

	w->write_faulted = false;
	/* When every page requests a write, all are write-faulted whatever
	 * a snapshot says: skip it. */
	if (w->req || (req & REQ_MASK) != REQ_MASK) {
		ret = snapshot(w, vma, start, end);
		if (ret || !(req & UHMM_PFN_REQ_FAULT))
			return ret;
	}
	/* Until a snapshot meets every request: a page can be reclaimed
	 * between being faulted in and being looked at. The first round
	 * write-faulted every page that requests a write. */
	while ((faulted = fault_runs(w, start, end)) > 0) {
		w->write_faulted = true;
		ret = snapshot(w, vma, start, end);
		if (ret)
			return ret;
	}
	if (faulted == -EINVAL || faulted == -ENOMEM)
		return -EFAULT;	/* cannot be faulted in, or gone meanwhile */
	return (int)faulted;
}

static int walk_mappings(struct fault_walk *w)
{
	unsigned long addr = w->range->start, end = w->range->end;

	while (addr < end) {
		struct uhmm_vma vma;
		int ret = uhmm_prim_vma_find(addr, &vma);

		if (ret == -ENOENT || (!ret && vma.start >= end))
			return walk_unreadable(w, addr, end);
		if (ret)
			return ret;
		if (vma.start > addr) {
			ret = walk_unreadable(w, addr, vma.start);
			if (ret)
				return ret;
			addr = vma.start;
		}
		ret = walk_mapping(w, &vma, addr, vma.end < end ? vma.end : end);
		if (ret)
			return ret;
		addr = vma.end;
	}
	return 0;
}

static bool range_valid(const struct uhmm_range *r, unsigned long page_size)
{
	const struct uhmm_interval_notifier *sub = r->notifier;

	return r->pfns && sub && r->end > r->start &&
	       !(r->start & (page_size - 1)) && !(r->end & (page_size - 1)) &&
	       !(r->flags & ~UHMM_RANGE_PFN) && r->start >= sub->node.start &&
	       r->end - 1 <= sub->node.last;
}

/*
 * Has the walk collided with an invalidation? Events already read from the
 * kernel that change the range count, and in strict mode those in flight too: wait for their
 * dispatch first, until deadline_ns (0: no bound). -EBUSY, -ETIMEDOUT, or 0.
 */
static int collided(struct uhmm_range *r, unsigned long long deadline_ns)
{
	struct uhmm_mm *mm = r->notifier->mm;

	if (uhmm_mm_wait_events(mm, mm->strict, r->start, r->end, deadline_ns))
		return -ETIMEDOUT;
	return uhmm_interval_check_retry(r->notifier, r->notifier_seq) ? -EBUSY
									: 0;
}

/* uhmm_range_fault(), with a bound on the wait at its end (0: none). */
static int range_fault_until(struct uhmm_range *range,
			     unsigned long long deadline_ns)
{
	struct fault_walk w = {
		.range = range,
		.page_size = (unsigned long)sysconf(_SC_PAGESIZE),
		.forked = __atomic_load_n(&uhmm_forks, __ATOMIC_RELAXED) != 0,
		.scan = uhmm_option(UHMM_OPT_PAGEMAP_SCAN) != 0,
	};
	struct uhmm_mm *mm;
	unsigned long npages;
	int ret;

	if (!range || !range->notifier || !range->pfns)
		return -EINVAL;
	mm = range->notifier->mm;
	if (!mm)
		return -ENOENT;
	if (!range_valid(range, w.page_size))
		return -EINVAL;
	ret = uhmm_mm_enter(mm);
	if (ret)
		return ret;
	while ((1UL << w.page_shift) < w.page_size)
		w.page_shift++;
	npages = (range->end - range->start) >> w.page_shift;

	if (uhmm_interval_check_retry(range->notifier, range->notifier_seq))
		return -EBUSY;
	ret = uhmm_mm_rearm(range->notifier, range->start, range->end);
	if (ret)
		return ret == -EBUSY ? -EEXIST : ret;

	if (range->pfn_flags_mask & REQ_MASK) {
		w.req = uhmm_malloc(npages);
		if (!w.req)
			return -ENOMEM;
		for (unsigned long i = 0; i < npages; i++)
			w.req[i] = (unsigned char)((((range->pfns[i] &
						      range->pfn_flags_mask) |
						     range->default_flags) &
						    REQ_MASK) >> 56);
	}
	/*
	 * Walk until no page was read from an unregistered mapping (see
	 * snapshot_scan()), arming what was found each time; a mapping that
	 * keeps being replaced by new ones is a collision. Checked only where
	 * "watched" means "registered with a userfaultfd in WP mode" (the
	 * source says so), and while the mm has users: once released,
	 * nothing is watched for it.
	 */
	for (int tries = 0;; tries++) {
		w.watch = mm->source &&
			  (mm->source->ops->flags &
			   UHMM_SOURCE_WATCHES_UFFD_WP) &&
			  __atomic_load_n(&mm->users, __ATOMIC_ACQUIRE) > 0;
		w.unwatched = false;
		ret = walk_mappings(&w);
		if (!w.unwatched)
			break;
		if (tries == UNWATCHED_TRIES) {
			ret = -EBUSY;
			break;
		}
		ret = uhmm_mm_rearm(range->notifier, range->start,
				    range->end);
		if (ret) {
			ret = ret == -EBUSY ? -EEXIST : ret;
			break;
		}
	}
	free(w.req);
	/* A failure caused by a concurrent change is a collision. */
	return collided(range, deadline_ns) ?: ret;
}

int uhmm_range_fault(struct uhmm_range *range)
{
	return range_fault_until(range, 0);
}

int uhmm_range_fault_lock(struct uhmm_range *range, pthread_mutex_t *lock,
			  unsigned int timeout_ms)
{
	unsigned long long deadline = 0;
	uint64_t *requests = NULL;
	size_t bytes = 0;
	int ret;

	if (!range || !lock || !range->notifier || !range->pfns)
		return -EINVAL;
	if (!range->notifier->mm)
		return -ENOENT;
	if (range->end <= range->start)
		return -EINVAL;
	/* Each attempt overwrites pfns[]; per-page requests must survive. */
	if (range->pfn_flags_mask & REQ_MASK) {
		bytes = (range->end - range->start) /
			(unsigned long)sysconf(_SC_PAGESIZE) * sizeof(uint64_t);
		requests = uhmm_malloc(bytes);
		if (!requests)
			return -ENOMEM;
		memcpy(requests, range->pfns, bytes);
	}
	if (timeout_ms)
		deadline = uhmm_now_ns() +
			   (unsigned long long)timeout_ms * 1000000ULL;
	for (;;) {
		if (requests)
			memcpy(range->pfns, requests, bytes);
		ret = uhmm_interval_read_begin_until(range->notifier, deadline,
						     &range->notifier_seq);
		if (ret)
			break;
		ret = range_fault_until(range, deadline);
		if (ret == 0) {
			pthread_mutex_lock(lock);
			if (!uhmm_interval_read_retry(range->notifier,
						      range->notifier_seq))
				break;
			pthread_mutex_unlock(lock);
		} else if (ret != -EBUSY) {
			break;
		}
		if (deadline && uhmm_now_ns() > deadline) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	free(requests);
	return ret;
}
