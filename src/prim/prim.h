/* SPDX-License-Identifier: MIT */
/*
 * The OS primitives uhmm uses: the only interface through which the rest
 * of the library reaches the kernel (besides pthreads). Every function
 * returns 0 (or a count) or a negative errno, and never prints.
 */
#ifndef UHMM_PRIM_H
#define UHMM_PRIM_H

#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/rseq.h>
#include <sys/types.h>

/* ---- the CPU ---- */

/*
 * The CPU the calling thread runs on, as a hint (it may move at once):
 * for spreading counters, never for correctness. glibc (2.35+) registers
 * an rseq area per thread, whose cpu_id the kernel keeps current: one
 * load, where sched_getcpu() costs a call (4.6 ns here). Without rseq
 * (glibc.pthread.rseq=0, or another library owns it), sched_getcpu();
 * 0 if that fails too.
 */
static inline unsigned int uhmm_prim_cpu(void)
{
	if (__rseq_size >= offsetof(struct rseq, cpu_id) + sizeof(uint32_t)) {
		const struct rseq *rs = (const struct rseq *)(
			(char *)__builtin_thread_pointer() + __rseq_offset);
		int32_t cpu = (int32_t)__atomic_load_n(&rs->cpu_id,
						       __ATOMIC_RELAXED);

		if (cpu >= 0)
			return (unsigned int)cpu;
	}
	int cpu = sched_getcpu();

	return cpu < 0 ? 0 : (unsigned int)cpu;
}

/* ---- userfaultfd, set up as uhmm's event source ---- */

/*
 * Open a userfaultfd for user-mode faults only (no privilege needed),
 * non-blocking and close-on-exec, with the UNMAP, REMOVE and REMAP events
 * and asynchronous write-protect faults, so registering in WP mode never
 * stops a page fault. -EPERM/-ENOSYS when userfaultfd is forbidden or
 * absent; -EOPNOTSUPP when the kernel lacks one of the features.
 */
int uhmm_prim_uffd_open(int *fdp);

/*
 * Register [start, start + len) in write-protect mode (nothing is ever
 * write-protected). Errors are the kernel's: -EBUSY part of the range is
 * registered with another userfaultfd; -EINVAL a mapping that cannot be
 * registered (vdso, vvar, MAP_DROPPABLE), or no mapping in the range.
 */
int uhmm_prim_uffd_register(int fd, unsigned long start, unsigned long len);
int uhmm_prim_uffd_unregister(int fd, unsigned long start, unsigned long len);

/*
 * Is an event of fd in flight - queued, or read while the thread that
 * sent it has not yet resumed? The kernel's userfaultfd context counts
 * them in mmap_changing, and UFFDIO_COPY checks it before anything else
 * (fs/userfaultfd.c, userfaultfd_copy()):
 *
 *	ret = -EAGAIN;
 *	if (unlikely(atomic_read(&ctx->mmap_changing))) {
 *		...
 *		goto out;
 *	}
 *
 * so a copy with an invalid mode answers EAGAIN while one is in flight and
 * EINVAL otherwise, touching no memory. 1, 0, or a negative errno.
 */
int uhmm_prim_uffd_changing(int fd);

/*
 * Does uhmm_prim_uffd_changing() work here? Tried on a userfaultfd of its
 * own with an UNMAP event held unread (a helper thread's munmap()): 0, or
 * -EOPNOTSUPP if the probe did not answer no, yes, no before, while and
 * after; or the error that kept it from trying (-EAGAIN: the helper could
 * not be started, or sent nothing within 10 s). About 100 us.
 */
int uhmm_prim_uffd_changing_selftest(void);
/* For the tests: the self-test's probe answers no from now on. */
void uhmm_prim_uffd_changing_break(void);

/*
 * The address-space system calls, raw (not through libc, whose symbols
 * libuhmm_hooks may replace): the kernel's return, -1 with errno set on
 * error (MAP_FAILED for the two that return a pointer), as libc's.
 */
long uhmm_prim_sys_munmap(void *addr, size_t len);
void *uhmm_prim_sys_mremap(void *old, size_t old_len, size_t new_len,
			   int flags, void *new_addr);
long uhmm_prim_sys_madvise(void *addr, size_t len, int advice);
void *uhmm_prim_sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
			 off_t off);
long uhmm_prim_sys_mprotect(void *addr, size_t len, int prot);
long uhmm_prim_sys_shmdt(const void *addr);

/* Read up to n events; -EAGAIN when there is none. */
ssize_t uhmm_prim_uffd_read(int fd, struct uffd_msg *msgs, size_t n);

/*
 * Wait until fd is readable or wake_fd (an eventfd) was signalled, for at
 * most timeout_us microseconds (-1: forever). Either fd may be -1.
 * Returns a mask of UHMM_PRIM_READABLE (fd) and UHMM_PRIM_WOKEN (wake_fd);
 * 0 on timeout or a signal.
 */
enum {
	UHMM_PRIM_READABLE = 1 << 0,
	UHMM_PRIM_WOKEN = 1 << 1,
};
int uhmm_prim_wait2(int fd, int wake_fd, long long timeout_us);
int uhmm_prim_eventfd(int *fdp);
void uhmm_prim_eventfd_signal(int fd);
void uhmm_prim_eventfd_drain(int fd);
void uhmm_prim_close(int fd);

/*
 * len bytes of private anonymous memory straight from the kernel (never
 * through malloc, whose locks another thread may hold), or NULL.
 */
void *uhmm_prim_map_anon(size_t len);
void uhmm_prim_unmap(void *p, size_t len);

/*
 * Take and drop the process's mmap_lock for writing (an mprotect() of
 * page, a private PROT_NONE page of uhmm's own, to what it is): returns
 * once every thread that held it for reading at the call has dropped it.
 */
int uhmm_prim_mmap_barrier(void *page);

/* The calling thread's timer slack: how late its timed sleeps may end. */
void uhmm_prim_set_timer_slack_ns(unsigned long ns);

/* Let another thread run on this CPU. */
void uhmm_prim_yield(void);

/* CLOCK_MONOTONIC in nanoseconds. */

/* ---- the process's mappings ---- */

struct uhmm_vma {
	unsigned long start, end;	/* [start, end) */
	unsigned int prot;		/* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;
	bool file;			/* backed by a file (or shmem) */
	unsigned long page_size;	/* 4 KiB, or the hugetlb page size */
};

/*
 * The fd of path (read-only), opened on first use and kept in *fdp (-1
 * until then; a fork child sets it back to -1): the fd, or -errno.
 */
int uhmm_prim_open_once(int *fdp, const char *path);

/*
 * The mapping that covers addr, or else the first one above it.
 * -ENOENT if there is none. Uses PROCMAP_QUERY where the kernel has it
 * (6.11+), else parses /proc/self/maps.
 */
int uhmm_prim_vma_find(unsigned long addr, struct uhmm_vma *vma);

/*
 * Is [start, end) exactly one mapping now, with a flag for which
 * userfaultfd refuses to register it whatever the timing (VM_SPECIAL:
 * vdso, vvar, io_uring and perf rings, device memory; or MAP_DROPPABLE)?
 * 1 yes, 0 no (or no such mapping now), or a negative errno. Reads
 * /proc/self/smaps: slow, for the rare path.
 */
int uhmm_prim_vma_uffd_refuses(unsigned long start, unsigned long end);

/* ---- page state ---- */

/*
 * PAGEMAP_SCAN (Linux 6.7+) over [start, end): fills up to n regions of
 * pages with identical categories among those in return_mask, skipping
 * pages with none of anyof_mask. Returns the count, and in *walk_end where
 * the walk stopped (the kernel may report it too early when vec fills:
 * resuming there repeats regions but loses none). -ENOTTY/-EINVAL: no
 * PAGEMAP_SCAN here.
 */
struct page_region;
long uhmm_prim_pagemap_scan(unsigned long start, unsigned long end,
			    struct page_region *vec, size_t n,
			    unsigned long long anyof_mask,
			    unsigned long long return_mask,
			    unsigned long *walk_end);

/*
 * Does every page of [start, end) lie in a mapping registered with a
 * userfaultfd in asynchronous write-protect mode (PAGEMAP_SCAN's
 * PAGE_IS_WPALLOWED)? Each mapping's registration is read at one instant
 * with its pages. Returns
 *   UHMM_PRIM_WP_ALL      every page does;
 *   UHMM_PRIM_WP_MISSING  some page lies in a mapping that is not
 *                         registered;
 *   UHMM_PRIM_WP_HOLE     none such, but some page lies in no mapping, or
 *                         in one PAGEMAP_SCAN skips (VM_PFNMAP);
 * or -ENOTTY/-EINVAL: no PAGEMAP_SCAN (Linux before 6.7).
 */
enum { UHMM_PRIM_WP_ALL, UHMM_PRIM_WP_MISSING, UHMM_PRIM_WP_HOLE };
int uhmm_prim_pagemap_wp_coverage(unsigned long start, unsigned long end);

/* /proc/self/pagemap entries of npages pages from start. */
int uhmm_prim_pagemap_read(unsigned long start, size_t npages,
			   unsigned long long *entries);

/* The kernel's bits in a /proc/self/pagemap entry. */
#define UHMM_PM_PRESENT (1ULL << 63)
#define UHMM_PM_SWAPPED (1ULL << 62)
#define UHMM_PM_FILE (1ULL << 61)	/* file page or shared anonymous */
#define UHMM_PM_EXCLUSIVE (1ULL << 56) /* mapped once */
#define UHMM_PM_PFN_MASK ((1ULL << 55) - 1)

/*
 * Fault [start, start + len) in, for write if write: MADV_POPULATE_READ or
 * _WRITE. Errors are madvise's: -EINVAL (PROT_NONE, VM_PFNMAP, write to a
 * read-only mapping), -ENOMEM (a hole), -EFAULT (SIGBUS/SIGSEGV).
 */
int uhmm_prim_populate(unsigned long start, unsigned long len, bool write);

/* log2 of the PMD size in pages (THP order): 9 on x86-64. */
unsigned int uhmm_prim_pmd_order(void);

/* Forget per-process state (open files of /proc/self) in a fork child. */
void uhmm_prim_after_fork_child(void);
void uhmm_prim_pagemap_after_fork_child(void);

#endif
