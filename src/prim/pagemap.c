/* SPDX-License-Identifier: MIT */
/*
 * Page state and faulting: /proc/self/pagemap (its PAGEMAP_SCAN ioctl and
 * plain reads) and MADV_POPULATE_READ/WRITE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "prim/prim.h"
#include "prim/uapi.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* Like maps_fd in vma.c: names the process that opened it. */
static int pagemap_fd = -1;

static int pagemap_open(void)
{
	return uhmm_prim_open_once(&pagemap_fd, "/proc/self/pagemap");
}

/* One PAGEMAP_SCAN: the regions found, or a negative errno. */
static long pagemap_scan(struct pm_scan_arg *arg)
{
	int fd = pagemap_open();
	long n;

	if (fd < 0)
		return fd;
	n = ioctl(fd, PAGEMAP_SCAN, arg);
	return n < 0 ? -errno : n;
}

long uhmm_prim_pagemap_scan(unsigned long start, unsigned long end,
			    struct page_region *vec, size_t n,
			    unsigned long long anyof_mask,
			    unsigned long long return_mask,
			    unsigned long *walk_end)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (unsigned long)vec,
		.vec_len = n,
		.category_anyof_mask = anyof_mask,
		.return_mask = return_mask,
	};
	long ret = pagemap_scan(&arg);

	if (ret >= 0)
		*walk_end = arg.walk_end;
	return ret;
}

/*
 * The kernel's PAGEMAP_SCAN (fs/proc/task_mmu.c) gives each page the
 * category of its mapping as well as its own:
 *
 *	pagemap_scan_test_walk():
 *		bool wp_allowed = userfaultfd_wp_async(vma) &&
 *		    userfaultfd_wp_use_markers(vma);
 *		...
 *		if (wp_allowed)
 *			vma_category |= PAGE_IS_WPALLOWED;
 *		...
 *		if (!pagemap_scan_is_interesting_vma(vma_category, p))
 *			return 1;
 *		p->cur_vma_category = vma_category;
 *
 * and every page walked, present or not, is reported with it: PTEs as
 * "p->cur_vma_category | pagemap_page_category(...)", unpopulated ranges
 * by pagemap_scan_pte_hole() as "p->cur_vma_category" (it returns early
 * only "if (!vma || ...)": addresses in no mapping are never reported).
 * The VMA flag and the pages are read under one mmap_read_lock. For an
 * anonymous mapping userfaultfd_wp_use_markers() needs
 * UFFD_FEATURE_WP_UNPOPULATED, which userfaultfd_api() turns on with
 * WP_ASYNC ("WP_ASYNC relies on WP_UNPOPULATED, choose it
 * unconditionally"), so a mapping registered by uhmm_prim_uffd_register()
 * is WPALLOWED whatever it maps.
 *
 * Two scans, each stopping at its first extra region (vec_len 1):
 *  1. every page, only WPALLOWED returned: a range wholly in registered
 *     mappings is one region, [start, end), WPALLOWED - the usual answer;
 *  2. otherwise, only pages whose mapping is NOT WPALLOWED
 *     (category_mask = category_inverted = WPALLOWED, which
 *     pagemap_scan_is_interesting_vma() applies to the whole mapping):
 *     any region means a mapping is not registered; none, that the rest
 *     is holes.
 */
int uhmm_prim_pagemap_wp_coverage(unsigned long start, unsigned long end)
{
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (unsigned long)&r,
		.vec_len = 1,
		.return_mask = PAGE_IS_WPALLOWED,
	};
	long n = pagemap_scan(&arg);

	if (n < 0)
		return (int)n;
	if (n == 1 && r.start == start && r.end == end &&
	    (r.categories & PAGE_IS_WPALLOWED))
		return UHMM_PRIM_WP_ALL;

	arg.category_mask = PAGE_IS_WPALLOWED;
	arg.category_inverted = PAGE_IS_WPALLOWED;
	arg.max_pages = 1;
	n = pagemap_scan(&arg);
	if (n < 0)
		return (int)n;
	return n ? UHMM_PRIM_WP_MISSING : UHMM_PRIM_WP_HOLE;
}

int uhmm_prim_pagemap_read(unsigned long start, size_t npages,
			   unsigned long long *entries)
{
	long page = sysconf(_SC_PAGESIZE);
	off_t off = (off_t)(start / (unsigned long)page) * 8;
	size_t want = npages * 8, got = 0;
	int fd = pagemap_open();

	if (fd < 0)
		return fd;
	while (got < want) {
		ssize_t r = pread(fd, (char *)entries + got, want - got,
				  off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

int uhmm_prim_populate(unsigned long start, unsigned long len, bool write)
{
	int advice = write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
	int ret;

	do
		ret = (int)uhmm_prim_sys_madvise((void *)start, len, advice);
	while (ret && errno == EINTR);
	return ret ? -errno : 0;
}

unsigned int uhmm_prim_pmd_order(void)
{
	static unsigned int order;	/* 0 until read */
	unsigned int o = __atomic_load_n(&order, __ATOMIC_RELAXED);
	unsigned long size = 0;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f;

	if (o)
		return o;
	f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
	if (f) {
		if (fscanf(f, "%lu", &size) != 1)
			size = 0;
		fclose(f);
	}
	if (!size)
		size = 512UL * (unsigned long)page;	/* x86-64's 2 MiB */
	for (o = 0; (1UL << o) * (unsigned long)page < size; o++)
		;
	__atomic_store_n(&order, o, __ATOMIC_RELAXED);
	return o;
}

void uhmm_prim_pagemap_after_fork_child(void)
{
	if (pagemap_fd >= 0)
		close(pagemap_fd);
	pagemap_fd = -1;
}
