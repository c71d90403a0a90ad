/* SPDX-License-Identifier: MIT */
/*
 * bench-range: what uhmm_range_fault() costs against the kernel interfaces
 * it is built on, over 1 GiB of anonymous private memory.
 *
 *  1. Snapshot (no REQ flags: pfn_flags_mask 0, default_flags 0) of 1 GiB
 *     in four layouts, each in its own mapping with one subscription over
 *     it:
 *       (a) 4 KiB     MADV_NOHUGEPAGE, every page written;
 *       (b) THP       2 MiB aligned, MADV_HUGEPAGE, every page written; the
 *                     huge pages actually obtained are reported (smaps_rollup
 *                     AnonHugePages, and uhmm's order bits);
 *       (c) sparse    MADV_NOHUGEPAGE, every 16th page written;
 *       (d) untouched MADV_NOHUGEPAGE, nothing written.
 *     Per layout, three ways to learn the same thing, interleaved in each
 *     run: uhmm_range_fault() (after uhmm_interval_read_begin(), which is
 *     not timed); a pread() of /proc/self/pagemap, 8 bytes per page, into a
 *     buffer; and the raw PAGEMAP_SCAN ioctl on /proc/self/pagemap
 *     (return_mask PRESENT|SWAPPED|FILE|PFNZERO|HUGE, a vector of 1024
 *     regions, resumed from walk_end until the range is done), and the
 *     same scan without PAGE_IS_FILE (SCAN-F: the kernel then skips the
 *     struct page lookup of every present page). Prints ms and the ratios
 *     uhmm/PAGEMAP_SCAN and pread/uhmm. Correctness, cheaply:
 *     uhmm's VALID pages must number the scan's present pages (and pread's).
 *  2. Fault-in of 1 GiB: uhmm_range_fault() with default_flags
 *     REQ_FAULT|REQ_WRITE on a fresh untouched 4 KiB-page mapping (already
 *     subscribed) vs MADV_POPULATE_WRITE alone on another fresh mapping.
 *  3. For reference, the snapshot of layout (a) with UHMM_RANGE_PFN, which
 *     also reads pagemap.
 *
 * The mm is monitored (userfaultfd): an unmap of subscribed memory waits
 * for uhmm's reader, so the mm stays open until every mapping is gone.
 * Output buffers are touched before timing. Times come from
 * CLOCK_MONOTONIC around single calls; each figure is the median of
 * SNAP_RUNS (section 1, 3) or BENCH_RUNS (section 2) runs after one
 * untimed warm-up. UHMM_BENCH_SCALE (bench.h) scales the 1 GiB; with
 * UHMM_BENCH_RECORD set the headline figures are recorded for `uhmm
 * bench`, each against the kernel interface it is built on. Prints
 * figures only: the exit status is 0 unless a call
 * fails or the page counts disagree, whatever the times.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uhmm.h"
#include "bench.h"
#include "../src/prim/uapi.h"

#define KIB		1024UL
#define MIB		(1024 * KIB)
#define GIB		(1024 * MIB)
#define PAGE		(4 * KIB)
#define HPAGE		(2 * MIB)
#define SPARSE_STRIDE	16
#define SNAP_RUNS	9
#define SCAN_VEC	1024
#define BUSY_TRIES	100

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define SCAN_RETURN_MASK (PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | \
			  PAGE_IS_PFNZERO | PAGE_IS_HUGE)
/* The same without PAGE_IS_FILE, which costs a struct page lookup a page. */
#define SCAN_NOFILE_MASK (SCAN_RETURN_MASK & ~PAGE_IS_FILE)

enum layout { L_4K, L_THP, L_SPARSE, L_UNTOUCHED, L_NR };

static const char *const layout_names[L_NR] = {
	"(a) 4 KiB, populated",
	"(b) THP-backed",
	"(c) sparse, 1 page in 16",
	"(d) untouched",
};

/*
 * The size of every mapping: 1 GiB, scaled by UHMM_BENCH_SCALE (whole
 * huge pages, at least 8 of them); npages of 4 KiB.
 */
static size_t mem_len, npages;

/* Buffers shared by every measurement, touched once. */
static uint64_t *pfns;		/* npages entries */
static uint64_t *pm_buf;	/* npages pagemap entries */
static struct page_region *scan_vec;
static int pagemap_fd = -1;
static bool mismatch;

/* The device: a lock and set_seq, nothing to zap. */
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;

static bool dev_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq)
{
	(void)range;
	pthread_mutex_lock(&dev_lock);
	uhmm_interval_set_seq(sub, cur_seq);
	pthread_mutex_unlock(&dev_lock);
	return true;
}

static const struct uhmm_interval_notifier_ops dev_ops = {
	.invalidate = dev_invalidate,
};

static void die(const char *what, int err)
{
	fprintf(stderr, "bench-range: %s: %s\n", what, strerror(err));
	exit(1);
}

static void check(int ret, const char *what)
{
	if (ret)
		die(what, -ret);
}

static void *xmalloc_touched(size_t size)
{
	void *p = malloc(size);

	if (!p)
		die("malloc", ENOMEM);
	memset(p, 0, size);
	return p;
}

static double ms_since(uint64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e6;
}

/*
 * A mapping in the given layout: exactly [p, p + mem_len), one VMA.
 * THP: over-map by 2 MiB and trim, so that it is 2 MiB aligned.
 */
static char *map_layout(enum layout l)
{
	size_t len = l == L_THP ? mem_len + HPAGE : mem_len;
	char *raw, *p;
	size_t i, head;

	raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap", errno);
	p = raw;
	if (l == L_THP) {
		p = (char *)(((uintptr_t)raw + HPAGE - 1) & ~(HPAGE - 1));
		head = p - raw;
		if (head && munmap(raw, head))
			die("munmap head", errno);
		if (HPAGE - head && munmap(p + mem_len, HPAGE - head))
			die("munmap tail", errno);
	}
	if (madvise(p, mem_len, l == L_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise", errno);
	switch (l) {
	case L_4K:
	case L_THP:
		for (i = 0; i < mem_len; i += PAGE)
			p[i] = 1;
		break;
	case L_SPARSE:
		for (i = 0; i < mem_len; i += SPARSE_STRIDE * PAGE)
			p[i] = 1;
		break;
	default:
		break;
	}
	return p;
}

/* AnonHugePages of the whole process, in kB; -1 if unknown. */
static long anon_huge_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * uhmm: read_begin (untimed), then uhmm_range_fault() (timed). Retries on
 * -EBUSY, which nothing here should cause.
 */
static int uhmm_snap(struct uhmm_interval_notifier *sub, char *p,
		     uint64_t default_flags, unsigned int flags, double *ms)
{
	struct uhmm_range range = {
		.notifier = sub,
		.start = (unsigned long)p,
		.end = (unsigned long)p + mem_len,
		.pfns = pfns,
		.default_flags = default_flags,
		.pfn_flags_mask = 0,
		.flags = flags,
	};
	int tries = 0, ret;
	uint64_t t0;

	do {
		range.notifier_seq = uhmm_interval_read_begin(sub);
		t0 = bench_now_ns();
		ret = uhmm_range_fault(&range);
		*ms = ms_since(t0);
	} while (ret == -EBUSY && ++tries < BUSY_TRIES);
	return ret;
}

/* pread of pagemap, [p, p + mem_len) into pm_buf. */
static int pread_pagemap(char *p, double *ms)
{
	size_t len = npages * sizeof(uint64_t), done = 0;
	off_t off = (off_t)((uintptr_t)p / PAGE * sizeof(uint64_t));
	uint64_t t0 = bench_now_ns();
	ssize_t n;

	while (done < len) {
		n = pread(pagemap_fd, (char *)pm_buf + done, len - done,
			  off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n;
	}
	*ms = ms_since(t0);
	return 0;
}

struct scan_count {
	unsigned long present;
	unsigned long huge;
};

/*
 * Raw PAGEMAP_SCAN over [p, p + mem_len), counting present and huge pages.
 * walk_end may be stale when the vector fills, so a resumed walk can
 * repeat regions: count only what lies past what was already counted.
 */
static int scan_pagemap(char *p, unsigned long mask, double *ms,
			struct scan_count *c)
{
	unsigned long end = (unsigned long)p + mem_len;
	unsigned long covered = (unsigned long)p;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (unsigned long)p,
		.end = end,
		.vec = (uintptr_t)scan_vec,
		.vec_len = SCAN_VEC,
		.return_mask = mask,
	};
	uint64_t t0 = bench_now_ns();
	long n, i;

	c->present = c->huge = 0;
	while (arg.start < end) {
		n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0)
			return -errno;
		for (i = 0; i < n; i++) {
			const struct page_region *r = &scan_vec[i];
			unsigned long s = r->start > covered ? r->start : covered;
			unsigned long pages;

			if (r->end <= s)
				continue;
			pages = (r->end - s) / PAGE;
			covered = r->end;
			if (r->categories & PAGE_IS_PRESENT)
				c->present += pages;
			if (r->categories & PAGE_IS_HUGE)
				c->huge += pages;
		}
		if (arg.walk_end <= arg.start)
			return -EIO;
		arg.start = arg.walk_end;
	}
	*ms = ms_since(t0);
	return 0;
}

struct pfn_count {
	unsigned long valid, write, error, order9;
};

static void count_pfns(struct pfn_count *c)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < npages; i++) {
		c->valid += !!(pfns[i] & UHMM_PFN_VALID);
		c->write += !!(pfns[i] & UHMM_PFN_WRITE);
		c->error += !!(pfns[i] & UHMM_PFN_ERROR);
		c->order9 += uhmm_pfn_to_map_order(pfns[i]) == 9;
	}
}

static unsigned long count_pagemap_present(void)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; i < npages; i++)
		n += pm_buf[i] >> 63;
	return n;
}

/* A figure with a lower bound, in bench_line()'s format. */
static void line_ge(const char *label, double value, const char *unit,
		    double target, const char *target_text)
{
	printf("%-46s %10.2f %-7s  target >= %-8s %s\n", label, value, unit,
	       target_text, value >= target ? "OK" : "MISSED");
}

struct snap_result {
	double uhmm, pread, scan, scan_nofile, uhmm_pfn;
	struct pfn_count pc;
	struct scan_count sc;
	unsigned long pread_present;
	long thp_kb;
};

static void snapshot_layout(struct uhmm_mm *mm, enum layout l,
			    struct snap_result *res)
{
	double u[SNAP_RUNS], pr[SNAP_RUNS], sc[SNAP_RUNS], snf[SNAP_RUNS];
	double up[SNAP_RUNS];
	struct scan_count nofile;
	struct uhmm_interval_notifier sub = { 0 };
	double dummy;
	char *p;
	int r;

	p = map_layout(l);
	res->thp_kb = anon_huge_kb();
	check(uhmm_interval_notifier_insert(&sub, mm, (unsigned long)p, mem_len,
					    &dev_ops),
	      "uhmm_interval_notifier_insert");

	/* Warm-up, untimed. */
	check(uhmm_snap(&sub, p, 0, 0, &dummy), "uhmm_range_fault");
	check(pread_pagemap(p, &dummy), "pread /proc/self/pagemap");
	check(scan_pagemap(p, SCAN_RETURN_MASK, &dummy, &res->sc),
	      "PAGEMAP_SCAN");
	check(scan_pagemap(p, SCAN_NOFILE_MASK, &dummy, &nofile),
	      "PAGEMAP_SCAN");

	for (r = 0; r < SNAP_RUNS; r++) {
		check(uhmm_snap(&sub, p, 0, 0, &u[r]), "uhmm_range_fault");
		check(pread_pagemap(p, &pr[r]), "pread /proc/self/pagemap");
		check(scan_pagemap(p, SCAN_RETURN_MASK, &sc[r], &res->sc),
		      "PAGEMAP_SCAN");
		check(scan_pagemap(p, SCAN_NOFILE_MASK, &snf[r], &nofile),
		      "PAGEMAP_SCAN");
	}
	res->uhmm = bench_median(u, SNAP_RUNS);
	res->pread = bench_median(pr, SNAP_RUNS);
	res->scan = bench_median(sc, SNAP_RUNS);
	res->scan_nofile = bench_median(snf, SNAP_RUNS);
	res->pread_present = count_pagemap_present();
	count_pfns(&res->pc);
	if (res->pc.valid != res->sc.present ||
	    res->pc.valid != res->pread_present ||
	    nofile.present != res->sc.present || res->pc.error)
		mismatch = true;

	res->uhmm_pfn = -1;
	if (l == L_4K) {
		check(uhmm_snap(&sub, p, 0, UHMM_RANGE_PFN, &dummy),
		      "uhmm_range_fault(UHMM_RANGE_PFN)");
		for (r = 0; r < SNAP_RUNS; r++)
			check(uhmm_snap(&sub, p, 0, UHMM_RANGE_PFN, &up[r]),
			      "uhmm_range_fault(UHMM_RANGE_PFN)");
		res->uhmm_pfn = bench_median(up, SNAP_RUNS);
	}

	check(uhmm_interval_notifier_remove(&sub),
	      "uhmm_interval_notifier_remove");
	if (munmap(p, mem_len))
		die("munmap", errno);
}

/* 2. One fault-in of a fresh 1 GiB mapping each way; ms. */
static void fault_in_once(struct uhmm_mm *mm, double *uhmm_ms, double *pop_ms)
{
	struct uhmm_interval_notifier sub = { 0 };
	struct pfn_count pc;
	uint64_t t0;
	char *p;

	p = map_layout(L_UNTOUCHED);
	check(uhmm_interval_notifier_insert(&sub, mm, (unsigned long)p, mem_len,
					    &dev_ops),
	      "uhmm_interval_notifier_insert");
	check(uhmm_snap(&sub, p, UHMM_PFN_REQ_FAULT | UHMM_PFN_REQ_WRITE, 0,
			uhmm_ms),
	      "uhmm_range_fault(REQ_FAULT|REQ_WRITE)");
	count_pfns(&pc);
	if (pc.valid != npages || pc.write != npages) {
		fprintf(stderr, "bench-range: fault-in: %lu valid, %lu "
			"writable of %lu pages\n", pc.valid, pc.write, npages);
		mismatch = true;
	}
	check(uhmm_interval_notifier_remove(&sub),
	      "uhmm_interval_notifier_remove");
	if (munmap(p, mem_len))
		die("munmap", errno);

	p = map_layout(L_UNTOUCHED);
	t0 = bench_now_ns();
	if (madvise(p, mem_len, MADV_POPULATE_WRITE))
		die("madvise(MADV_POPULATE_WRITE)", errno);
	*pop_ms = ms_since(t0);
	if (munmap(p, mem_len))
		die("munmap", errno);
}

int main(void)
{
	double fu[BENCH_RUNS], fp[BENCH_RUNS], uhmm_f, pop_f;
	struct snap_result res[L_NR];
	const char *mode = "monitored";
	struct uhmm_mm *mm;
	long thp_pages;
	int ret, r;
	enum layout l;

	mem_len = bench_scaled(GIB / HPAGE, 8) * HPAGE;
	npages = mem_len / PAGE;
	ret = uhmm_mm_open(&mm, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		mode = "UHMM_MM_NO_MONITOR (userfaultfd unavailable)";
		ret = uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR);
	}
	check(ret, "uhmm_mm_open");
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap_fd < 0)
		die("open /proc/self/pagemap", errno);
	pfns = xmalloc_touched(npages * sizeof(*pfns));
	pm_buf = xmalloc_touched(npages * sizeof(*pm_buf));
	scan_vec = xmalloc_touched(SCAN_VEC * sizeof(*scan_vec));

	printf("uhmm range-fault benchmark: 1 GiB anonymous, %s mm, "
	       "median of %d runs (fault-in: %d)\n", mode, SNAP_RUNS,
	       BENCH_RUNS);
	if (mem_len != GIB)
		printf("UHMM_BENCH_SCALE %g: %zu MiB, not 1 GiB\n",
		       bench_scale(), mem_len / MIB);

	for (l = 0; l < L_NR; l++)
		snapshot_layout(mm, l, &res[l]);

	printf("\n1. Snapshot of 1 GiB, ms (no REQ flags)\n");
	printf("%-26s %8s %8s %8s %8s %10s %10s %7s %7s\n", "layout", "uhmm",
	       "pread", "SCAN", "SCAN-F", "uhmm/SCAN", "pread/uhmm",
	       "valid", "present");
	for (l = 0; l < L_NR; l++) {
		struct snap_result *s = &res[l];

		printf("%-26s %8.3f %8.3f %8.3f %8.3f %9.2fx %9.2fx %7lu "
		       "%7lu%s\n", layout_names[l], s->uhmm, s->pread, s->scan,
		       s->scan_nofile,
		       s->uhmm / s->scan, s->pread / s->uhmm, s->pc.valid,
		       s->sc.present,
		       s->pc.valid == s->sc.present &&
		       s->pc.valid == s->pread_present && !s->pc.error ?
		       "" : "  MISMATCH");
	}
	printf("SCAN: return_mask PRESENT|SWAPPED|FILE|PFNZERO|HUGE; "
	       "SCAN-F: the same without FILE\n");
	thp_pages = res[L_THP].thp_kb < 0 ? -1 : res[L_THP].thp_kb / 2048;
	if (thp_pages <= 0)
		printf("THP: none obtained (AnonHugePages %ld kB): THP is "
		       "unavailable, (b) is 4 KiB pages\n",
		       res[L_THP].thp_kb);
	else
		printf("THP: %ld of %lu huge pages (AnonHugePages), uhmm "
		       "order-9 pages %lu, SCAN huge pages %lu\n", thp_pages,
		       mem_len / HPAGE, res[L_THP].pc.order9 / 512,
		       res[L_THP].sc.huge / 512);
	bench_line("(a) uhmm / PAGEMAP_SCAN", res[L_4K].uhmm / res[L_4K].scan,
		   "x", 1.2, "1.2x");
	bench_line("  for reference: (a) uhmm / SCAN-F",
		   res[L_4K].uhmm / res[L_4K].scan_nofile, "x", -1, NULL);
	line_ge("(a) pread / uhmm", res[L_4K].pread / res[L_4K].uhmm, "x",
		1.5, "1.5x");
	bench_line("(b) THP-backed uhmm snapshot", res[L_THP].uhmm, "ms", 0.1,
		   "0.1 ms");
	for (l = 0; l < L_NR; l++) {
		static const char *const keys[L_NR] = {
			"range.snapshot_4k", "range.snapshot_thp",
			"range.snapshot_sparse", "range.snapshot_untouched",
		};
		char label[80];

		snprintf(label, sizeof(label), "snapshot %s",
			 layout_names[l] + 4);
		bench_record(keys[l], label, res[l].uhmm, "ms", res[l].scan,
			     "raw PAGEMAP_SCAN");
	}

	fault_in_once(mm, &fu[0], &fp[0]);	/* warm-up */
	for (r = 0; r < BENCH_RUNS; r++)
		fault_in_once(mm, &fu[r], &fp[r]);
	uhmm_f = bench_median(fu, BENCH_RUNS);
	pop_f = bench_median(fp, BENCH_RUNS);
	printf("\n2. Fault-in of 1 GiB, fresh 4 KiB-page mapping\n");
	bench_line("uhmm_range_fault(REQ_FAULT|REQ_WRITE)", uhmm_f, "ms", -1,
		   NULL);
	bench_line("MADV_POPULATE_WRITE alone", pop_f, "ms", -1, NULL);
	bench_line("uhmm / MADV_POPULATE_WRITE", uhmm_f / pop_f, "x", -1,
		   NULL);
	bench_record("range.fault_in", "fault-in (REQ_FAULT|REQ_WRITE)",
		     uhmm_f, "ms", pop_f, "MADV_POPULATE_WRITE");

	printf("\n3. Snapshot of (a) with UHMM_RANGE_PFN (reads pagemap)\n");
	bench_line("uhmm_range_fault(UHMM_RANGE_PFN)", res[L_4K].uhmm_pfn,
		   "ms", -1, NULL);
	bench_line("  / pread of pagemap", res[L_4K].uhmm_pfn / res[L_4K].pread,
		   "x", -1, NULL);
	bench_line("  / uhmm without PFNs", res[L_4K].uhmm_pfn / res[L_4K].uhmm,
		   "x", -1, NULL);
	bench_record("range.snapshot_pfn", "snapshot 4 KiB, with PFNs",
		     res[L_4K].uhmm_pfn, "ms", res[L_4K].pread,
		     "pread of pagemap");

	close(pagemap_fd);
	free(scan_vec);
	free(pm_buf);
	free(pfns);
	check(uhmm_mm_close(mm), "uhmm_mm_close");
	if (mismatch) {
		fprintf(stderr, "bench-range: page counts disagree\n");
		return 1;
	}
	return 0;
}
