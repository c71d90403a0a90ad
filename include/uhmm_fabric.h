/* SPDX-License-Identifier: MIT */
/*
 * uhmm_fabric.h - uhmm as libfabric's memory monitor (libuhmm_fabric).
 *
 * libfabric's MR cache keeps memory registrations (fi_mr_reg) of buffers
 * that are used again. It must forget a registration as soon as the memory
 * under it changes, or a later fi_mr_reg of the same address hands the NIC
 * the old pages. Its own monitors are malloc/munmap hooks ("memhooks",
 * which miss a raw syscall(SYS_munmap) and libc's internal calls) and a
 * userfaultfd of its own. uhmm_fabric_import() replaces them with uhmm:
 * every munmap, mremap, madvise discard, brk shrink and mmap(MAP_FIXED)
 * over a cached registration, by any thread and any library.
 *
 * Importing: call uhmm_fabric_import() once, before the first fi_getinfo()
 * of the process (for MPI: before MPI_Init), with FI_MR_CACHE_MONITOR
 * unset - libfabric reads that variable at its first fi_getinfo() and,
 * when set, silently prefers it. Or preload libuhmm_fabric_preload.so
 * (LD_PRELOAD), which imports from a constructor, for applications that
 * cannot be changed.
 *
 * What libfabric's API leaves open: libfabric registers a buffer with the
 * NIC first and subscribes it afterwards, so a change of the buffer
 * between the two is seen by no monitor (libfabric's own neither). uhmm
 * refuses a subscription over memory already unmapped (the registration
 * is then used once and not cached); an unmap *and* a new mapping of the
 * same address in between is the window no monitor can close. README.md,
 * "Using uhmm from libfabric, Open MPI and MPICH".
 */
#ifndef UHMM_FABRIC_H
#define UHMM_FABRIC_H

#include <stdint.h>

#include "uhmm.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * uhmm_fabric_import - make uhmm libfabric's memory monitor, for every
 * domain whose provider caches registrations of host memory (verbs, efa;
 * cxi and lpp in libfabric 2).
 *
 * Opens a monitored uhmm address space, and hands libfabric a monitor
 * (fi_import(..., "mr_cache", ...)). The monitor's table holds at most
 * UHMM_FABRIC_MAX_RANGES subscriptions (environment, default 65536);
 * beyond that the least recently subscribed is evicted and libfabric is
 * told to forget it.
 * Returns 0, or:
 *   -EBUSY    a monitor is imported already (by this call or another
 *             library, e.g. Open MPI's), or a libfabric MR cache already
 *             runs on libfabric's own monitor: import before fi_getinfo();
 *             or FI_MR_CACHE_MONITOR is set, which libfabric would obey
 *             and never call this monitor (unset it to import)
 *   -EINVAL   UHMM_FABRIC_MAX_RANGES is not a number from 1 to 2^24
 *   -ENOMEM   out of memory
 *   -ENOSYS   this libfabric cannot import a monitor (before 1.13)
 *   or an error of uhmm_mm_open() (userfaultfd forbidden, ...)
 */
UHMM_API int uhmm_fabric_import(void);

/*
 * uhmm_fabric_close - take the monitor back from libfabric and close
 * uhmm's address space. Only after every libfabric domain is closed:
 * libfabric merely forgets the monitor, it does not stop a cache using it.
 * Returns 0, -ENOENT (nothing imported), -EBUSY (a domain still uses it:
 * the monitor is started).
 */
UHMM_API int uhmm_fabric_close(void);

/* What the monitor did since it was imported. */
struct uhmm_fabric_stats {
	uint64_t subscribed;	/* subscribe() calls accepted */
	uint64_t refused;	/* subscribe() refused: memory already gone
				 * (-EFAULT), or its range being invalidated */
	uint64_t live;		/* subscriptions watched now (at most
				 * UHMM_FABRIC_MAX_RANGES) */
	uint64_t notified;	/* ranges reported to libfabric (notify()) */
	uint64_t evicted;	/* dropped because the table was full */
	uint64_t valid_false;	/* valid() answers "stale" */
	uint64_t unsubscribed;	/* unsubscribe() calls (libfabric >= 2.1) */
	uint64_t notify_under_lock; /* notify() withheld because the thread
				 * was inside subscribe, valid or
				 * unsubscribe (libfabric's mm_lock held):
				 * a bug of this library, never expected */
};

/*
 * uhmm_fabric_stats - copy the counters. Returns 0, -EINVAL (stats is
 * NULL), -ENOENT (nothing imported).
 */
UHMM_API int uhmm_fabric_stats(struct uhmm_fabric_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_FABRIC_H */
