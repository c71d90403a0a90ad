/* SPDX-License-Identifier: MIT */
/*
 * Finding the process's mappings: PROCMAP_QUERY (an ioctl on
 * /proc/self/maps, Linux 6.11+) answers one lookup without reading the
 * whole list; older kernels get /proc/self/maps parsed line by line.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "prim/prim.h"
#include "prim/uapi.h"

/*
 * /proc/self/maps, opened once. The file names the process that opened
 * it, so a fork child must reopen it: uhmm_prim_after_fork_child().
 */
static int maps_fd = -1;
static int procmap_query_works = -1;	/* unknown until first tried */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

int uhmm_prim_open_once(int *fdp, const char *path)
{
	int fd = __atomic_load_n(fdp, __ATOMIC_ACQUIRE), none = -1;

	if (fd >= 0)
		return fd;
	/* Racing openers keep the first fd and close theirs: no lock, so
	 * that a signal handler's lookup never waits for one. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!__atomic_compare_exchange_n(fdp, &none, fd, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		close(fd);
		fd = none;
	}
	return fd;
}

static int maps_open(void)
{
	return uhmm_prim_open_once(&maps_fd, "/proc/self/maps");
}

static int vma_query(int fd, unsigned long addr, struct uhmm_vma *vma)
{
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
		.query_addr = addr,
	};

	if (ioctl(fd, PROCMAP_QUERY, &q))
		return -errno;
	vma->start = q.vma_start;
	vma->end = q.vma_end;
	vma->prot = (q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
		    (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
		    (q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0);
	vma->shared = q.vma_flags & PROCMAP_QUERY_VMA_SHARED;
	vma->file = q.inode != 0;
	vma->page_size = q.vma_page_size;
	return 0;
}

/* The fallback: the first line of /proc/self/maps ending above addr. */
static int vma_parse(unsigned long addr, struct uhmm_vma *vma)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, inode;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s %*s %*s %lu", &start, &end, perms,
			   &inode) != 4)
			continue;
		/* A line longer than the buffer continues on the next read. */
		if (!strchr(line, '\n')) {
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		if (end <= addr)
			continue;
		vma->start = start;
		vma->end = end;
		vma->prot = (perms[0] == 'r' ? PROT_READ : 0) |
			    (perms[1] == 'w' ? PROT_WRITE : 0) |
			    (perms[2] == 'x' ? PROT_EXEC : 0);
		vma->shared = perms[3] == 's';
		vma->file = inode != 0;
		vma->page_size = (unsigned long)sysconf(_SC_PAGESIZE);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int uhmm_prim_vma_find(unsigned long addr, struct uhmm_vma *vma)
{
	int works = __atomic_load_n(&procmap_query_works, __ATOMIC_RELAXED);
	int fd, ret;

	if (works != 0) {
		fd = maps_open();
		if (fd >= 0) {
			/*
			 * One query at a time on the shared file: the kernel
			 * keeps per-file state for it. Never waited for: the
			 * holder may be the thread a signal handler that
			 * calls uhmm_munmap() interrupted. If it is taken,
			 * the query goes to a file of its own.
			 */
			if (pthread_mutex_trylock(&maps_lock) == 0) {
				ret = vma_query(fd, addr, vma);
				pthread_mutex_unlock(&maps_lock);
			} else {
				int own = open("/proc/self/maps",
					       O_RDONLY | O_CLOEXEC);

				ret = own < 0 ? -errno : vma_query(own, addr, vma);
				if (own >= 0)
					close(own);
			}
			if (ret == 0 || ret == -ENOENT) {
				__atomic_store_n(&procmap_query_works, 1,
						 __ATOMIC_RELAXED);
				return ret;
			}
			/* ENOTTY: a kernel before 6.11. */
			if (ret != -ENOTTY && ret != -EINVAL)
				return ret;
			__atomic_store_n(&procmap_query_works, 0,
					 __ATOMIC_RELAXED);
		}
	}
	return vma_parse(addr, vma);
}

/*
 * Does the mapping [start, end) carry a flag for which userfaultfd refuses
 * to register it? Its "VmFlags" line in /proc/self/smaps tells, with the
 * mnemonics of show_smap_vma_flags() (fs/proc/task_mmu.c):
 *
 *	[ilog2(VM_IO)]		= "io",
 *	[ilog2(VM_DONTEXPAND)]	= "de",
 *	[ilog2(VM_PFNMAP)]	= "pf",
 *	[ilog2(VM_MIXEDMAP)]	= "mm",
 *	[ilog2(VM_DROPPABLE)]	= "dp",
 *
 * The first four are VM_SPECIAL. Measured on Linux 6.18, UFFDIO_REGISTER
 * in write-protect mode answers EINVAL for exactly such mappings: the
 * vdso ("de"), vvar and vvar_vclock ("pf io de"), io_uring's rings ("de
 * mm"), and MAP_DROPPABLE ones, which vma_can_userfault() turns away
 * itself ("if (vma->vm_flags & VM_DROPPABLE) return false;"). These flags
 * are set when a mapping is created and never by mmap() of ordinary
 * memory, so no unmap and mmap() again at the same address can make an
 * ordinary mapping look like one of these.
 *
 * smaps has no lookup by address, and reading it walks the page tables
 * of every mapping listed before ours: this is for the rare path only.
 */
int uhmm_prim_vma_uffd_refuses(unsigned long start, unsigned long end)
{
	static const char *const refusing[] = { "io", "de", "pf", "mm", "dp" };
	FILE *f = fopen("/proc/self/smaps", "re");
	bool in = false;
	char line[512];
	int ret = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char *save, *tok;

		/* A line longer than the buffer continues on the next read. */
		if (!strchr(line, '\n')) {
			int c;

			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		/* A mapping's first line: "start-end perms ...". */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (s >= end)
				break;
			in = s == start && e == end;
			continue;
		}
		if (!in || strncmp(line, "VmFlags:", 8))
			continue;
		for (tok = strtok_r(line + 8, " \n", &save); tok && !ret;
		     tok = strtok_r(NULL, " \n", &save)) {
			for (size_t i = 0; i < sizeof(refusing) /
					       sizeof(refusing[0]); i++)
				if (!strcmp(tok, refusing[i]))
					ret = 1;
		}
		break;
	}
	fclose(f);
	return ret;
}

void uhmm_prim_after_fork_child(void)
{
	/* The fd still shows the parent's mappings; just drop it. */
	if (maps_fd >= 0)
		close(maps_fd);
	maps_fd = -1;
	pthread_mutex_init(&maps_lock, NULL);
	uhmm_prim_pagemap_after_fork_child();
}
