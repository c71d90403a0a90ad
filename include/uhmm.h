/* SPDX-License-Identifier: MIT */
/*
 * uhmm - Heterogeneous Memory Management for user space.
 *
 * A "device" is anything that caches translations of this process's
 * virtual memory: an RDMA NIC's memory registrations, a GPU's pinned host
 * buffers, io_uring fixed buffers, a DMA engine. uhmm tells the device when
 * a range it mirrors is about to change, with the Linux kernel's
 * mmu_interval_notifier protocol:
 *
 *	again:
 *		seq = uhmm_interval_read_begin(sub);
 *		... build the translation (look up, pin, register) ...
 *		lock(device->lock);
 *		if (uhmm_interval_read_retry(sub, seq)) {
 *			unlock(device->lock);
 *			goto again;
 *		}
 *		... commit the translation to the device ...
 *		unlock(device->lock);
 *
 *	bool invalidate(sub, range, cur_seq)	// the subscription's callback
 *	{
 *		lock(device->lock);
 *		uhmm_interval_set_seq(sub, cur_seq);
 *		... zap the device's translations in range ...
 *		unlock(device->lock);
 *		return true;
 *	}
 *
 * The device's own lock orders the commit against the zap: either the
 * commit happens first and the zap removes it, or read_retry() sees the new
 * sequence and the commit is abandoned. No stale translation survives.
 *
 * Conventions. Addresses are unsigned long; ranges are [start, end).
 * Functions that can fail return 0 or a negative errno and never print or
 * abort on a caller's mistake. The collision-retry functions return a
 * sequence number or a bool, as in the kernel, and cannot fail.
 * Debug builds (UHMM_DEBUG) abort with a message on a caller bug that would
 * otherwise deadlock; release builds document the rule instead.
 */
#ifndef UHMM_H
#define UHMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define UHMM_API __attribute__((visibility("default")))
#else
#define UHMM_API
#endif

/* ------------------------------------------------------------------------
 * Address spaces
 */

/* The calling process's address space, as seen by uhmm. Opaque. */
struct uhmm_mm;

/*
 * Flags for uhmm_mm_open().
 *
 * UHMM_MM_NO_MONITOR: no kernel event source; the address space hears only
 * of changes reported through uhmm_mm_invalidate*(). For allocators that
 * report their own unmaps, for tests, and for environments that forbid
 * userfaultfd (see uhmm_mm_open()).
 */
#define UHMM_MM_NO_MONITOR (1u << 0)

/*
 * Strict mode: whether a lookup also waits for changes the kernel has
 * begun but not yet reported.
 *
 * The kernel removes a mapping, lets go of the address space's lock and
 * only then queues its UNMAP event: another thread's mmap() can get the
 * address in between, and a lookup there must not find what was mapped
 * before. In strict mode uhmm_interval_read_begin() (and so
 * uhmm_range_fault()) and uhmm_rcache_get() first ask the kernel whether
 * an event of uhmm's userfaultfd is in flight - one system call, 0.25 to
 * 0.5 us depending on the CPU's mitigations, skipped while nothing is
 * armed - and if one is, sleep until it
 * has been read and dispatched. Without strict mode they wait only for
 * events already read, which covers every change that returned before
 * the lookup began, but not an address reused by another thread while
 * the munmap() that released it was still running (README.md, "What uhmm
 * guarantees").
 *
 * UHMM_MM_STRICT: strict mode for this mm, whatever the environment says.
 * UHMM_MM_RELAXED: not strict for this mm (a cache may still ask for it).
 * Neither: the environment variable UHMM_STRICT decides, 1 (strict) when
 * unset. Both flags at once are -EINVAL. Meaningless, and accepted, with
 * UHMM_MM_NO_MONITOR.
 */
#define UHMM_MM_STRICT (1u << 1)
#define UHMM_MM_RELAXED (1u << 2)

/*
 * uhmm_mm_open - open the calling process's address space.
 *
 * Every open returns a new struct uhmm_mm holding one user reference.
 * Without UHMM_MM_NO_MONITOR it is fed by the process's kernel event
 * source: one userfaultfd (user-mode faults only, so no privilege is
 * needed) and two threads that read and dispatch its events, all shared by
 * every monitored mm of the process and created by the first open. Subscriptions then hear of every
 * munmap, mremap, madvise(MADV_DONTNEED/FREE/REMOVE), brk shrink and
 * mmap(MAP_FIXED) over their range, from any thread and any library,
 * whether it went through libc or not. mprotect(), shmdt() and fallocate()
 * hole punches send no event (mprotect() and shmdt() are reported when made
 * through uhmm_mprotect() and uhmm_shmdt(), or libuhmm_hooks).
 *
 * An mm belongs to the process that opened it: in a fork child every call
 * on an inherited mm returns -ECHILD, after its subscriptions received
 * UHMM_EVENT_RELEASE (at the child's first call on it). The child opens
 * its own.
 *
 * In the parent, fork() shares the pages of every private writable mapping
 * with the child copy-on-write: a device that kept writing through a
 * translation taken before would write into a page the child sees too.
 * So, as the kernel does for its own secondary MMUs (mm/memory.c,
 * copy_page_range()), uhmm brackets the copy with a blockable
 * UHMM_EVENT_PROTECTION window on every live mm of the process, monitored
 * or UHMM_MM_NO_MONITOR alike, over each private writable mapping that
 * overlaps a subscription: the callbacks run before the copy, in the
 * thread calling fork(), and a read_begin() that collides waits until
 * fork() has returned. MAP_SHARED mappings are not copied on write and
 * hear nothing; a private mapping fork() does not copy (MADV_DONTFORK)
 * is told anyway. These callbacks run inside uhmm's pthread_atfork()
 * handler, with uhmm's list of address spaces locked: there a callback
 * must not call uhmm_mm_open() or fork(), nor wait for a thread that
 * does, nor call uhmm_interval_read_begin() on a subscription of a
 * monitored mm (it may wait for the event dispatcher, which may be
 * waiting for this fork() to end). fork() is seen only through
 * pthread_atfork(): _Fork() and a raw clone() or fork system call are not
 * (vfork() and posix_spawn() copy nothing). A device that pins what it
 * registers (io_uring fixed buffers, RDMA memory regions) is unaffected:
 * the kernel gives the child a copy of every pinned anonymous page and
 * leaves the parent's in place, so such a device may ignore this event.
 * A private mapping that another thread creates in a hole of a subscribed
 * range while fork() runs (no event tells of it) may be missed: the
 * kernel orders mmap() against fork(), uhmm cannot.
 *
 * Returns 0 and sets *mmp, or:
 *   -EINVAL      mmp is NULL, flags has unknown bits, or both
 *                UHMM_MM_STRICT and UHMM_MM_RELAXED
 *   -ENOMEM      out of memory
 *   -EPERM       userfaultfd is forbidden here (a seccomp policy, or a
 *                kernel before 5.11 with vm.unprivileged_userfaultfd=0):
 *                open with UHMM_MM_NO_MONITOR and report changes yourself
 *   -ENOSYS      the kernel has no userfaultfd; likewise
 *   -EOPNOTSUPP  the kernel lacks a needed userfaultfd feature (asynchronous
 *                write protection, Linux 6.7); likewise. Or strict mode
 *                was asked for, and the kernel failed its self-test (run
 *                once per process, at the first strict open: an UNMAP
 *                event held unread must make the in-flight probe answer
 *                yes); open with UHMM_MM_RELAXED, knowing what it costs
 *   -EAGAIN      the event threads (or the thread of strict mode's
 *                self-test) could not be created
 */
UHMM_API int uhmm_mm_open(struct uhmm_mm **mmp, unsigned int flags);

/*
 * uhmm_mm_get - take another user reference on an address space that still
 * has one (the kernel's mmget_not_zero). Each successful get needs its own
 * uhmm_mm_close().
 * Returns 0, or -EINVAL (mm is NULL), -ESRCH (the last user already closed),
 * -ECHILD (mm was inherited through fork()).
 */
UHMM_API int uhmm_mm_get(struct uhmm_mm *mm);

/*
 * uhmm_mm_close - drop a user reference.
 *
 * A close that is not the last may still find itself last: uhmm's event
 * dispatcher holds a user reference while it runs a batch, and then the
 * release runs on the dispatcher thread when the batch ends.
 *
 * Closing the last user releases the address space: every subscription still
 * inserted gets exactly one invalidation with UHMM_EVENT_RELEASE over the
 * whole address space, after any open invalidation window has closed, and
 * then no other. Subscriptions stay inserted and must still be removed with
 * uhmm_interval_notifier_remove(); the mm's memory lives until the last is.
 * Must not be called from an invalidate callback, nor by a thread that holds
 * a window open with uhmm_mm_invalidate_start().
 * Returns 0, or -EINVAL (mm is NULL), -ESRCH (no user left to drop),
 * -EDEADLK (called from an invalidate callback; nothing was dropped),
 * -ECHILD (mm was inherited through fork(); nothing was dropped).
 */
UHMM_API int uhmm_mm_close(struct uhmm_mm *mm);

/*
 * uhmm_mm_sync - return once every kernel event delivered before the call
 * has been dispatched to the subscriptions, and every removal deferred
 * with uhmm_interval_notifier_remove_deferred() that took effect before
 * the call has called its done function. With UHMM_MM_NO_MONITOR there is
 * no kernel event (and done functions run before the call that ends a
 * removal returns): it returns at once.
 *
 * Not needed for the caller's own unmaps: once munmap() and friends have
 * returned, any uhmm_interval_read_begin() that starts afterwards, in any
 * thread, already waits for their invalidation.
 * Returns 0, or -EINVAL (mm is NULL), -ESRCH (the last user closed),
 * -EDEADLK (called from an invalidate callback), -ECHILD (inherited).
 */
UHMM_API int uhmm_mm_sync(struct uhmm_mm *mm);

/* ------------------------------------------------------------------------
 * Changes reported before they happen
 *
 * uhmm_munmap(), uhmm_mremap(), uhmm_madvise(), uhmm_mmap(),
 * uhmm_mprotect() and uhmm_shmdt() make the system call of that name and
 * return what libc's function returns (-1 or MAP_FAILED with errno set).
 * When what they change lies in a range some subscription of a monitored
 * mm watches, they first open a non-blockable invalidation window over it
 * on every monitored mm, in the calling thread, take the range out of
 * uhmm's userfaultfd, make the call, watch again what the call left or
 * created in subscribed ranges, and close the windows. So:
 *   - the change is seen before it is made: lookups of the range wait
 *     until it is over, so no other thread's mmap() can reuse an address
 *     before its invalidation (strict mode or not), and a discard's zap
 *     is inside its window;
 *   - a registered munmap() does not wait for uhmm's event reader (the
 *     kernel has nothing to report), which makes it several times cheaper
 *     (README.md, "Costs");
 *   - mprotect() (UHMM_EVENT_PROTECTION) and shmdt() (UHMM_EVENT_UNMAP),
 *     which the kernel never reports, are reported.
 * Callbacks therefore run in the thread that makes the change: a callback
 * must honour a window without UHMM_RANGE_BLOCKABLE (return false rather
 * than wait for a lock the unmapping thread may hold). When one returns
 * false, when the calling thread is inside uhmm (a signal handler that
 * interrupted it, or an invalidate callback), when no monitored mm watches
 * the range, or before any monitored mm was opened and in a fork child
 * until it opens one, the call is made as it is and the kernel reports
 * what it reports, as for any other caller. Nothing is allocated, so a
 * signal handler may call them.
 *
 * libuhmm_hooks (LD_PRELOAD, or linked in) puts these in place of libc's
 * munmap, mremap, madvise, mmap, mmap64, mprotect and shmdt for calls
 * through the dynamic linker. Calls that do not go through it - libc's own
 * (free(), realloc()), ld.so's, a raw syscall() - are still reported by
 * the kernel, after the fact.
 */
UHMM_API int uhmm_munmap(void *addr, size_t len);
UHMM_API void *uhmm_mremap(void *old_addr, size_t old_len, size_t new_len,
			   int flags, void *new_addr);
UHMM_API int uhmm_madvise(void *addr, size_t len, int advice);
UHMM_API void *uhmm_mmap(void *addr, size_t len, int prot, int flags, int fd,
			 off_t offset);
UHMM_API int uhmm_mprotect(void *addr, size_t len, int prot);
UHMM_API int uhmm_shmdt(const void *addr);

/* ------------------------------------------------------------------------
 * Invalidation windows
 */

/* Why a range is being invalidated. */
enum uhmm_event {
	/* The range was unmapped: munmap, mmap(MAP_FIXED) over it, mremap
	 * shrink, brk shrink. */
	UHMM_EVENT_UNMAP = 1,
	/* The pages were discarded but the mapping stays (MADV_DONTNEED,
	 * MADV_FREE, MADV_REMOVE): the next access sees new pages. The
	 * kernel zaps only after uhmm has read the event, so uhmm keeps this
	 * window open until the zap is over (README.md, "Discards"; the
	 * cases it cannot cover are in "Known limits"). */
	UHMM_EVENT_CLEAR,
	/* The range was moved away (mremap); it is the old range. */
	UHMM_EVENT_REMAP,
	/*
	 * The range was write-protected: the pages stay, but a device must
	 * not write through a translation taken before (zap it like any
	 * other; a new uhmm_range_fault() tells what is writable now). uhmm
	 * sends it at fork(), over the private writable mappings that fork()
	 * shares copy-on-write with the child (see uhmm_mm_open()). The
	 * kernel reports no mprotect(): an explicit caller may send it too.
	 */
	UHMM_EVENT_PROTECTION,
	/* The address space went away; sent once, over everything. */
	UHMM_EVENT_RELEASE,
};

/* uhmm_notifier_range.flags: the callbacks may sleep (take blocking locks,
 * wait for hardware). */
#define UHMM_RANGE_BLOCKABLE (1u << 0)

/* One invalidation, as its callbacks see it. */
struct uhmm_notifier_range {
	struct uhmm_mm *mm;	 /* set by uhmm_mm_invalidate_start() */
	unsigned long start;	 /* first byte */
	unsigned long end;	 /* one past the last byte */
	enum uhmm_event event;
	unsigned int flags;	 /* UHMM_RANGE_BLOCKABLE */
	unsigned int private_;	 /* uhmm's: window state */
};

/* uhmm_range_blockable - may the callback sleep for this invalidation? */
static inline bool uhmm_range_blockable(const struct uhmm_notifier_range *range)
{
	return range->flags & UHMM_RANGE_BLOCKABLE;
}

/*
 * uhmm_mm_invalidate - report that [start, end) changed: one complete,
 * blockable invalidation window. Every subscription overlapping the range
 * has its callback run before this returns.
 * Returns 0, or:
 *   -EINVAL  mm is NULL, end <= start, or event is not a uhmm_event
 *            (UHMM_EVENT_RELEASE is the core's own and is refused too)
 *   -ESRCH   the last user closed the mm
 *   -ECHILD  mm was inherited through fork()
 *   -EPROTO  a callback returned false although the window was blockable:
 *            a bug in that callback. The window still ran to its end.
 */
UHMM_API int uhmm_mm_invalidate(struct uhmm_mm *mm, unsigned long start,
				unsigned long end, enum uhmm_event event);

/*
 * uhmm_mm_invalidate_start - open an invalidation window for the caller
 * filled range (start, end, event, flags) and run the overlapping
 * subscriptions' callbacks. The window stays open, holding off the readers
 * of those subscriptions, until uhmm_mm_invalidate_end(mm, range).
 * Without UHMM_RANGE_BLOCKABLE, a callback may return false because it
 * would have to sleep; then the window is ended here and -EAGAIN returned:
 * do NOT call uhmm_mm_invalidate_end(), retry in a context that may block.
 * Returns 0 (window open), or:
 *   -EAGAIN  non-blockable and a callback refused; the window is closed
 *   -EINVAL  mm or range is NULL, end <= start, event is not a uhmm_event
 *            or is UHMM_EVENT_RELEASE, unknown flags, or the range is
 *            already an open window (zero-initialise a new range)
 *   -ESRCH   the last user closed the mm
 *   -ECHILD  mm was inherited through fork()
 */
UHMM_API int uhmm_mm_invalidate_start(struct uhmm_mm *mm,
				      struct uhmm_notifier_range *range);

/*
 * uhmm_mm_invalidate_end - close a window opened by
 * uhmm_mm_invalidate_start(). The last window to close ends the collision:
 * waiting readers proceed, deferred inserts and removes take effect.
 * Returns 0, or:
 *   -EINVAL  mm or range is NULL, or range is not an open window of mm
 *   -ECHILD  mm was inherited through fork()
 *   -EPROTO  the window is closed, but a callback returned false although
 *            it was blockable (a bug in that callback)
 */
UHMM_API int uhmm_mm_invalidate_end(struct uhmm_mm *mm,
				    struct uhmm_notifier_range *range);

/* ------------------------------------------------------------------------
 * Interval notifiers
 */

struct uhmm_interval_notifier;

struct uhmm_interval_notifier_ops {
	/*
	 * Called for every invalidation window overlapping the subscription,
	 * with the device's lock not held. Take the device lock, call
	 * uhmm_interval_set_seq(sub, cur_seq), zap the translations in
	 * range->start..range->end, unlock, return true. Return false only
	 * if !uhmm_range_blockable(range) and the work would have to sleep.
	 *
	 * A callback must not call uhmm_interval_notifier_remove(),
	 * uhmm_mm_close() or uhmm_mm_sync() (refused with -EDEADLK; it may
	 * call uhmm_interval_notifier_remove_deferred()), nor
	 * uhmm_interval_read_begin() on a subscription of the same mm
	 * (it would wait for the window this callback is part of), nor
	 * uhmm_mm_open() or fork() from a fork() window (see
	 * uhmm_mm_open()).
	 *
	 * Windows for kernel events are blockable; a callback that refuses
	 * one is counted as a bug and the window completes anyway.
	 * Kernel events are dispatched on uhmm's dispatcher thread, which
	 * takes no signals. A callback there may unmap or free memory that a
	 * subscription covers: the kernel holds such an unmap until its
	 * event is read, and reading is done by a separate thread that runs
	 * no callback. The new event is dispatched after this one.
	 * A callback that sleeps there holds up, on every thread, what
	 * waits for the dispatch of events already read, on this mm:
	 * uhmm_interval_read_begin() (so range faults) and
	 * uhmm_rcache_get() of a range that its event changes, or an event
	 * read after it (events are dispatched in order), or a read still
	 * in progress; uhmm_interval_read_try_begin() answers -EAGAIN
	 * there. It holds up no munmap(), insert or remove, no lookup of
	 * other ranges, and nothing on another mm (tests/slow-callback.c).
	 */
	bool (*invalidate)(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq);
};

/* Private: a node of the address space's interval tree. */
struct uhmm_itree_node {
	struct uhmm_itree_node *parent, *left, *right;
	unsigned long start;	     /* first byte */
	unsigned long last;	     /* last byte, inclusive: the top byte fits */
	unsigned long subtree_last;  /* greatest last in this subtree */
	int height;		     /* balance information */
};

/*
 * A subscription to changes of [start, start + length). The caller owns the
 * memory (embed it in the device's object); every field is private to uhmm.
 * It may be freed once uhmm_interval_notifier_remove() returned 0, or
 * before it was ever inserted.
 */
struct uhmm_interval_notifier {
	struct uhmm_itree_node node;	 /* in the mm's tree */
	const struct uhmm_interval_notifier_ops *ops;
	struct uhmm_mm *mm;
	struct uhmm_interval_notifier *deferred_next;
	struct uhmm_interval_notifier **deferred_pprev;
	unsigned long invalidate_seq;
	unsigned int state;
	void (*removed)(struct uhmm_interval_notifier *sub); /* deferred */
	void *source_private[8];	 /* the mm's event source's */
};

/*
 * uhmm_interval_notifier_insert - subscribe sub to [start, start + length)
 * of mm. Takes a reference on mm's memory, dropped by remove, so remove is
 * always safe even after the last user closed the mm.
 * If an invalidation window is open, sub starts out colliding: its first
 * read_begin waits until the window closes. If that window is already
 * calling callbacks, the insert takes effect when it closes and that window
 * does not call sub.
 * With the kernel event source, insert arms the range: every mapping in it
 * is registered with uhmm's userfaultfd, whole (so no mapping is split);
 * holes are fine. A mapping created later inside the range is not seen
 * until re-armed: uhmm re-arms after every unmap event in a subscribed
 * range (which covers mmap(MAP_FIXED) over it), and
 * uhmm_interval_notifier_arm() re-arms on demand (a new mmap into a hole
 * sends no event at all). Call it after read_begin and before trusting any
 * mapping created after insert.
 *
 * Returns 0, or:
 *   -EINVAL     sub, mm, ops or ops->invalidate is NULL
 *   -EOVERFLOW  length is 0 or start + length wraps past the top
 *   -ESRCH      the last user closed mm
 *   -ECHILD     mm was inherited through fork()
 *   -EBUSY      a mapping in the range is registered with another
 *               userfaultfd: the application's own, or a second copy of
 *               uhmm linked into the process
 *   -EOPNOTSUPP a mapping in the range cannot be watched (vdso, vvar,
 *               MAP_DROPPABLE, or another VM_IO, VM_PFNMAP, VM_MIXEDMAP or
 *               VM_DONTEXPAND mapping such as io_uring's rings)
 *   -EPERM      a read-only MAP_SHARED file mapping in the range (the
 *               kernel refuses to register it)
 *   -ENOMEM     out of memory, in uhmm or in the kernel
 */
UHMM_API int uhmm_interval_notifier_insert(
	struct uhmm_interval_notifier *sub, struct uhmm_mm *mm,
	unsigned long start, unsigned long length,
	const struct uhmm_interval_notifier_ops *ops);

/*
 * Flags for uhmm_interval_notifier_insert_flags().
 *
 * UHMM_INSERT_REQUIRE_MAPPED: refuse (-EFAULT) unless every page of the
 * range lies in a mapping, decided after the range is armed: a
 * subscription that is inserted covers memory whose every later change
 * invalidates it, and one over a hole - which would never hear of the
 * memory it was meant for - is never inserted. For a cache that registers
 * memory first and subscribes afterwards (libfabric's MR cache), it tells
 * memory unmapped in between. Memory unmapped *and* mapped anew in between
 * is refused if the new mapping was created after arming, and otherwise
 * cannot be told from the old (the check sees mappings, not pages).
 */
#define UHMM_INSERT_REQUIRE_MAPPED (1u << 0)

/*
 * uhmm_interval_notifier_insert_flags - uhmm_interval_notifier_insert(),
 * with flags (UHMM_INSERT_REQUIRE_MAPPED). Never waits for an
 * invalidation window, so it may be called under a lock that callbacks
 * take. Returns what insert returns, or:
 *   -EINVAL      unknown flags
 *   -EFAULT      REQUIRE_MAPPED: a page of the range lies in no mapping,
 *                or in a mapping created after the range was armed
 *   -EAGAIN      REQUIRE_MAPPED: an invalidation window opened over the
 *                range while it was being armed and checked (the range
 *                changed, or an earlier change of it was still being
 *                dispatched); nothing was inserted: try again
 *   -EOPNOTSUPP  REQUIRE_MAPPED on an mm opened with UHMM_MM_NO_MONITOR:
 *                only the kernel event source can tell later unmaps, so
 *                there is nothing to check against
 * The check is one PAGEMAP_SCAN system call, none inside a mapping uhmm
 * already knows to be armed.
 */
UHMM_API int uhmm_interval_notifier_insert_flags(
	struct uhmm_interval_notifier *sub, struct uhmm_mm *mm,
	unsigned long start, unsigned long length,
	const struct uhmm_interval_notifier_ops *ops, unsigned int flags);

/*
 * uhmm_interval_notifier_remove - unsubscribe. After it returns 0 no
 * callback for sub is running or will run, and sub's memory is the caller's
 * again. May wait for an open invalidation window to close, so the caller
 * must not hold a lock its callbacks take, nor hold a window open. Removing
 * an insert that is still deferred does not wait.
 * In a fork child, removing a subscription of an inherited mm works (and
 * is how the child reclaims it).
 * Returns 0, or:
 *   -EINVAL   sub is NULL
 *   -ENOENT   sub is not inserted (never was, or already removed)
 *   -EDEADLK  called from an invalidate callback; sub stays inserted
 */
UHMM_API int uhmm_interval_notifier_remove(struct uhmm_interval_notifier *sub);

/*
 * uhmm_interval_notifier_remove_deferred - unsubscribe without waiting:
 * from an invalidate callback (sub's own too), or under a lock that
 * callbacks take. done(sub) is called exactly once, when no callback for
 * sub is running or will run; from then on sub's memory is the caller's
 * again (done may free it).
 *
 * The removal takes effect at once, or, while windows may be calling sub,
 * when the last of them closes: until then a window already open may
 * still call sub, and no new one does after this returns. done runs
 *   - on a monitored mm: on uhmm's event dispatcher thread, outside every
 *     lock of uhmm's and of the caller's - so it may take the locks the
 *     caller held, or call back into the library that called this (what
 *     libfabric's notify() needs). Like a callback there, it holds up the
 *     dispatch of later events while it runs: keep it short;
 *   - with UHMM_MM_NO_MONITOR, and in a fork child on an inherited mm:
 *     in the thread that closes the last window, after closing it, or
 *     before this returns if no window may be calling sub.
 * Returns 0, or:
 *   -EINVAL   sub or done is NULL
 *   -ENOENT   sub is not inserted, or its removal has begun already
 */
UHMM_API int uhmm_interval_notifier_remove_deferred(
	struct uhmm_interval_notifier *sub,
	void (*done)(struct uhmm_interval_notifier *sub));

/*
 * uhmm_interval_notifier_arm - watch the mappings now in sub's range, also
 * those created after insert (see uhmm_interval_notifier_insert()). Call it
 * after uhmm_interval_read_begin() and before reading translations of
 * mappings that may be new. A no-op with UHMM_MM_NO_MONITOR.
 * A no-op (0) once the last user closed the mm: nothing is watched then.
 * Returns 0, or -EINVAL (sub is NULL), -ENOENT (sub is not inserted),
 * -ECHILD, -EBUSY, -EOPNOTSUPP, -ENOMEM as for insert.
 */
UHMM_API int uhmm_interval_notifier_arm(struct uhmm_interval_notifier *sub);

/*
 * uhmm_interval_read_begin - start reading the translations of sub's range.
 * Returns the sequence number to hand to uhmm_interval_read_retry(). If
 * sub's callback already ran in a window that is still open, waits (once)
 * until that window closes. With the kernel event source it also waits
 * while events that the kernel has already handed to uhmm and that change
 * sub's range (or may: a read still in progress) are still being
 * dispatched: once munmap() has returned in any thread, a read_begin that
 * starts afterwards sees its invalidation. Events elsewhere do not hold
 * it up. In strict mode (UHMM_MM_STRICT)
 * it first waits for the events in flight too, so that an munmap() still
 * running is not missed either; not from an invalidate callback (the
 * window it runs in may be what delivering them waits for). sub must be
 * inserted. On a
 * subscription inherited through fork() it delivers the child's
 * UHMM_EVENT_RELEASE (see uhmm_mm_open()) and never waits.
 */
UHMM_API unsigned long
uhmm_interval_read_begin(struct uhmm_interval_notifier *sub);

/*
 * uhmm_interval_read_begin_timeout - uhmm_interval_read_begin(), waiting at
 * most timeout_ms milliseconds in all (0: no bound). On 0 *seq is set.
 * Returns 0, or -ETIMEDOUT (an invalidation window that hit sub, or the
 * dispatch of events already read or in flight, is still open), or -EINVAL (sub or
 * seq is NULL).
 */
UHMM_API int uhmm_interval_read_begin_timeout(struct uhmm_interval_notifier *sub,
					      unsigned int timeout_ms,
					      unsigned long *seq);

/*
 * uhmm_interval_read_try_begin - uhmm_interval_read_begin() that never
 * waits, for a caller that may not sleep (a registration cache's lookup
 * under its own lock, libfabric's valid()). Lock-free: two loads of the
 * event clock and two of the seqs when nothing is pending.
 *
 * It answers -EAGAIN exactly where read_begin would wait: a window that
 * already called sub is still open; or an event read from the kernel and
 * not yet dispatched changes sub's range - or may: while the read itself
 * is in progress, its events' ranges are not known yet, and so count as
 * changing every range. Events that change other ranges only do not
 * count. Unlike read_begin it never waits for events in flight (strict
 * mode): a change still running when it is called may be missed.
 *
 * A caller that keeps a translation checks it with a seq it got at the
 * time it read the translation: the translation is current if this
 * returns 0 and the same seq. On a subscription inherited through fork()
 * it delivers the child's UHMM_EVENT_RELEASE first, as read_begin does.
 * Returns 0 and sets *seq, or -EAGAIN, or -EINVAL (sub or seq is NULL),
 * -ENOENT (sub is not inserted).
 */
UHMM_API int uhmm_interval_read_try_begin(struct uhmm_interval_notifier *sub,
					  unsigned long *seq);

/*
 * uhmm_interval_read_retry - under the device lock that the callback also
 * takes: true if an invalidation collided with the read that seq began, in
 * which case the translation must be thrown away and the read restarted.
 */
UHMM_API bool uhmm_interval_read_retry(struct uhmm_interval_notifier *sub,
				       unsigned long seq);

/*
 * uhmm_interval_check_retry - the same test without the device lock: a
 * cheap early exit for long reads. A false answer proves nothing; only
 * read_retry() under the lock does.
 */
UHMM_API bool uhmm_interval_check_retry(struct uhmm_interval_notifier *sub,
					unsigned long seq);

/*
 * uhmm_interval_set_seq - from the invalidate callback, under the device
 * lock: record that this window collided with sub.
 */
UHMM_API void uhmm_interval_set_seq(struct uhmm_interval_notifier *sub,
				    unsigned long cur_seq);


/* ------------------------------------------------------------------------
 * Range fault: what is mapped where (the kernel's hmm_range_fault)
 */

/*
 * One uint64_t per page of a range, in and out.
 *
 * In (a request, see struct uhmm_range):
 *   UHMM_PFN_REQ_FAULT  the page must be made present (faulted in).
 *   UHMM_PFN_REQ_WRITE  the page must be made writable (with REQ_FAULT).
 * Out:
 *   UHMM_PFN_VALID   the page is present and readable: a device may read
 *                    it and sees what the CPU sees now.
 *   UHMM_PFN_WRITE   a device may write the page and the CPU will see the
 *                    write: the mapping is writable and the page present
 *                    and not shared copy-on-write - not the zero page, not
 *                    a private file page before its first write, not an
 *                    anonymous page shared with a fork child (or parent)
 *                    until written. Implies VALID.
 *   UHMM_PFN_ERROR   no page can be there: a hole, PROT_NONE, or a
 *                    mapping uhmm cannot handle.
 *   order            bits UHMM_PFN_ORDER_SHIFT..: log2 of the size of the
 *                    mapping the page is part of, in pages: 0 for 4 KiB, 9
 *                    for a 2 MiB THP or hugetlb page, 18 for 1 GiB.
 *   PFN              the low bits (UHMM_PFN_PFN_MASK), only with
 *                    UHMM_RANGE_PFN and only where the process may see
 *                    PFNs (CAP_SYS_ADMIN); 0 otherwise.
 */
#define UHMM_PFN_VALID (1ULL << 63)
#define UHMM_PFN_WRITE (1ULL << 62)
#define UHMM_PFN_ERROR (1ULL << 61)
#define UHMM_PFN_ORDER_SHIFT 56
#define UHMM_PFN_ORDER_MASK (0x1fULL << UHMM_PFN_ORDER_SHIFT)
#define UHMM_PFN_PFN_MASK ((1ULL << 55) - 1)
#define UHMM_PFN_REQ_FAULT UHMM_PFN_VALID
#define UHMM_PFN_REQ_WRITE UHMM_PFN_WRITE

static inline unsigned int uhmm_pfn_to_map_order(uint64_t pfn)
{
	return (unsigned int)((pfn & UHMM_PFN_ORDER_MASK) >>
			      UHMM_PFN_ORDER_SHIFT);
}

/* uhmm_range.flags */
#define UHMM_RANGE_PFN (1u << 0) /* fill in PFNs (slower: reads pagemap) */

struct uhmm_range {
	struct uhmm_interval_notifier *notifier; /* covers [start, end) */
	unsigned long notifier_seq;	/* from uhmm_interval_read_begin() */
	unsigned long start;		/* page aligned */
	unsigned long end;		/* page aligned, > start */
	uint64_t *pfns;			/* (end - start) / page size entries */
	uint64_t default_flags;		/* requested for every page */
	uint64_t pfn_flags_mask;	/* which bits of pfns[i] request */
	unsigned int flags;		/* UHMM_RANGE_* */
};

/*
 * uhmm_range_fault - fault in and snapshot [range->start, range->end).
 *
 * Each page's request is (pfns[i] & pfn_flags_mask) | default_flags; set
 * pfn_flags_mask to 0 to request the same for every page. Pages that
 * request REQ_FAULT and are not present are faulted in with
 * MADV_POPULATE_READ. Pages that request REQ_FAULT|REQ_WRITE are always
 * faulted with MADV_POPULATE_WRITE, present or not: the kernel write-faults
 * a page whose PTE is read-only, and no interface shows user space that
 * bit (for a page already writable the fault is a page-table walk).
 * REQ_WRITE alone requests nothing, as in the kernel. Every pfns[i] is
 * then overwritten with what is mapped: VALID, WRITE, ERROR, order, PFN.
 * A requested fault implies VALID in the output, a requested write fault
 * WRITE (and a writable, dirty PTE, as in the kernel). The output
 * bits VALID and WRITE are the request bits REQ_FAULT and REQ_WRITE, so
 * after -EBUSY pfns[] may be passed again as it is (as in the kernel);
 * uhmm_range_fault_lock() restores the original requests itself.
 *
 * WRITE in a shared mapping of a regular file is what the mapping allows
 * when the page is present: the kernel may still write-protect the page
 * for writeback without any event, so a device that writes such pages
 * should fault them for write (REQ_WRITE) and msync().
 *
 * The range is armed with the event source before it is read, so a change
 * after the snapshot reaches the notifier. A mapping created in a hole of
 * the range meanwhile sends no event, and is not armed: a present page of
 * it is caught by the snapshot itself (PAGEMAP_SCAN reports whether each
 * page's mapping is registered, in the same read), the range is armed and
 * read again, so no page is returned whose unmap would go unseen. This
 * needs PAGEMAP_SCAN (Linux 6.7+): with /proc/self/pagemap instead (older
 * kernels, or UHMM_PAGEMAP_SCAN=0) the check cannot be made, and a
 * mapping created in a hole while the range is read can be returned
 * VALID and its munmap() never reported. The result is only as good as
 * notifier_seq: check it with uhmm_interval_read_retry() under the device
 * lock before using it (or use uhmm_range_fault_lock()).
 *
 * Once this process has forked since uhmm was loaded, a page of a private
 * mapping is WRITE only if it requested REQ_FAULT|REQ_WRITE: fork()
 * write-protects them all, and a page the child no longer maps (pagemap's
 * "exclusive") may still be write-protected and copied to a new page by
 * the CPU's next write, with no event. Before any fork, a present page of
 * a writable private mapping is WRITE unless it is the zero page or a file
 * page not yet written; a page merged by KSM (which the process must have
 * asked for) passes for writable. uhmm sees fork() through
 * pthread_atfork(), not a raw clone system call.
 *
 * Returns 0, or:
 *   -EBUSY   an invalidation collided with notifier_seq (before or after
 *            the walk), or new mappings kept appearing in the range's
 *            holes while it was read: read_begin again and retry
 *   -EFAULT  a page that requests REQ_FAULT is in a hole, PROT_NONE, or a
 *            mapping that cannot be faulted in (or faulting raised SIGBUS)
 *   -EPERM   a page that requests REQ_FAULT|REQ_WRITE is in a mapping
 *            without PROT_WRITE
 *   -EINVAL  range or its notifier or pfns is NULL, start or end is not
 *            page aligned, end <= start, the range is not inside the
 *            notifier's, or flags has unknown bits
 *   -ENOMEM  out of memory
 *   -ENOENT  the notifier is not inserted
 *   -ECHILD  the notifier's mm was inherited through fork()
 *   -EEXIST  a mapping in the range is registered with another
 *            userfaultfd, so its changes would go unseen (insert's -EBUSY;
 *            here -EBUSY means a collision only)
 *   -EOPNOTSUPP a mapping in the range cannot be watched: userfaultfd
 *            refuses it whenever asked (vdso, vvar, MAP_DROPPABLE, or
 *            another VM_IO/VM_PFNMAP/VM_MIXEDMAP/VM_DONTEXPAND mapping
 *            such as io_uring's rings) - never a mapping that was merely
 *            being unmapped or replaced meanwhile
 */
UHMM_API int uhmm_range_fault(struct uhmm_range *range);

/*
 * uhmm_range_fault_lock - the driver loop: read_begin, fault, lock, and
 * read_retry, until a snapshot survives; returns 0 with *lock held and
 * range->pfns valid for range->notifier_seq (the device commits, then
 * unlocks). The seq is refreshed on every retry. timeout_ms bounds the
 * whole loop, including its waits for invalidation windows and for the
 * dispatch of events already read (0: no bound).
 * Returns 0 (lock held), or without the lock: -ETIMEDOUT, or an error of
 * uhmm_range_fault() other than -EBUSY.
 */
UHMM_API int uhmm_range_fault_lock(struct uhmm_range *range,
				   pthread_mutex_t *lock,
				   unsigned int timeout_ms);


/* ------------------------------------------------------------------------
 * Registration cache
 *
 * "This buffer is already registered with the device: reuse it." A region
 * is a device registration of a page-aligned range, mirrored with an
 * interval notifier, so the cache never hands out a registration of pages
 * the process no longer has there: once munmap(), mremap(), madvise()
 * discard or an mmap(MAP_FIXED) over the buffer has returned in any
 * thread, a later get registers the new pages.
 *
 * Address reuse: the kernel reports an munmap() only after it has
 * released the address, so without strict mode a mapping another thread
 * creates there before that munmap() returned can be handed the old
 * registration. In strict mode (the default: UHMM_MM_STRICT,
 * UHMM_RCACHE_STRICT) a get first waits for every change in flight, and
 * never does (README.md, "What uhmm guarantees").
 *
 * Devices: the cache is for devices that pin what they register (io_uring
 * fixed buffers, RDMA memory regions, pinned GPU host buffers): ops->reg
 * pins the pages, so a registration names the same pages as long as it
 * lives. A protection change (UHMM_EVENT_PROTECTION) therefore leaves
 * regions valid: it moves no page, and fork(), which write-protects the
 * private mappings, gives the child a copy of every pinned anonymous page
 * and leaves the parent's in place. A device that mirrors the page tables
 * without pinning uses interval notifiers and uhmm_range_fault() instead.
 *
 * Policy: a get reuses a valid region that covers the whole request with
 * at least the requested access; otherwise it registers the request's
 * pages as a new region (no merging: overlapping regions may coexist).
 * A get that misses while another thread's miss is registering pages that
 * will serve it waits for that registration instead of registering the
 * same pages again. (Two misses whose ranges only overlap each register;
 * if the later one's request turns out covered by the other's region at
 * its commit, it takes that region and deregisters its own.)
 * An invalidated region stays registered for those who hold it; after the
 * last put the cache's worker thread deregisters it - never the event
 * dispatcher, so a device may block in dereg.
 *
 * Limits: a region counts against max_regions and max_bytes from its
 * reservation (before ops->reg) to the return of its ops->dereg, valid or
 * invalidated. A miss that would exceed a limit makes room itself and
 * deregisters what it chose before it registers: first invalidated
 * regions no one holds (it does not wait for the worker), then idle valid
 * regions, chosen by a CLOCK hand in O(1) amortised (a region hit since
 * the hand last passed is spared once). If nothing else can go while
 * other threads are deregistering, it waits for their deregs. Held
 * regions, valid or invalidated, stay registered until their last put,
 * and a miss does not wait for a put (the caller may hold regions
 * itself). When every region is held (as the miss finds them: hits take
 * no lock), the miss registers anyway and the cache grows past its limits
 * rather than fail. So only held regions (and regions other misses are
 * registering) ever take the device past max_regions: invalidated regions
 * waiting to be deregistered never do, however fast invalidations come.
 */

/* Access a device needs. */
#define UHMM_ACCESS_READ (1u << 0)  /* the device reads the memory */
#define UHMM_ACCESS_WRITE (1u << 1) /* the device writes the memory */

struct uhmm_rcache;

/*
 * What uhmm_rcache_get() returns: read-only for the caller. Each CPU has
 * its own copy of a region's (so hits share no cache line): two gets of
 * one region may return different pointers. Tell regions apart by handle,
 * and put the pointer the get returned.
 */
struct uhmm_region {
	void *addr;		/* page aligned, covers the request */
	size_t len;
	unsigned int access;	/* UHMM_ACCESS_* registered */
	uint64_t handle;	/* the device's, from ops->reg */
};

struct uhmm_rcache_ops {
	/*
	 * Register [addr, addr + len) with the device for access, pinning
	 * its pages until dereg (see "Devices" above); store the device's
	 * handle. May sleep. 0 or a negative errno, which get returns to its
	 * caller. Called by the thread whose get missed, under no lock of
	 * the cache: regs and deregs of several threads may run at once on
	 * one device (a device that cannot take that serialises them with a
	 * lock of its own), while hits and other misses go on.
	 */
	int (*reg)(void *dev, void *addr, size_t len, unsigned int access,
		   uint64_t *handle);
	/*
	 * Undo reg. May sleep. Called by the cache's worker thread, by a get
	 * that makes room (an invalidated region no one holds, or an
	 * eviction) or by destroy, under no lock of the cache (as reg);
	 * never from an invalidate callback.
	 */
	void (*dereg)(void *dev, uint64_t handle);
};

struct uhmm_rcache_config {
	size_t max_regions;	/* 0: UHMM_RCACHE_DEFAULT_REGIONS */
	size_t max_bytes;	/* 0: UHMM_RCACHE_DEFAULT_BYTES */
	unsigned int flags;	/* UHMM_RCACHE_* */
};

/*
 * Strict mode for the cache's gets (see UHMM_MM_STRICT): STRICT or
 * RELAXED whatever the mm is; neither, as the mm is.
 */
#define UHMM_RCACHE_STRICT (1u << 0)
#define UHMM_RCACHE_RELAXED (1u << 1)

#define UHMM_RCACHE_DEFAULT_REGIONS 4096
#define UHMM_RCACHE_DEFAULT_BYTES (1UL << 30)

struct uhmm_rcache_stats {
	unsigned long hits;		/* gets served by a cached region
					 * (approximate while threads hit
					 * one region at once) */
	unsigned long misses;		/* gets that registered a region */
	unsigned long invalidations;	/* regions invalidated by a change */
	unsigned long evictions;	/* idle regions evicted for the limits */
	unsigned long deregistrations;	/* ops->dereg calls returned */
	unsigned long regions;		/* registered now, or being
					 * registered or deregistered */
	unsigned long bytes_registered;	/* the same, in bytes */
};

/*
 * uhmm_rcache_create - a cache over the device (ops, dev) for the address
 * space mm, which must stay open until destroy. cfg may be NULL.
 * Returns 0, or -EINVAL (NULL rcp, mm or ops, or an op missing, unknown
 * cfg->flags, or both STRICT and RELAXED), -ENOMEM, -EAGAIN (the worker
 * thread, or the thread of strict mode's self-test, could not be
 * started), -EOPNOTSUPP (strict mode on a monitored mm, and the kernel
 * failed its self-test: see uhmm_mm_open()).
 */
UHMM_API int uhmm_rcache_create(struct uhmm_rcache **rcp, struct uhmm_mm *mm,
				const struct uhmm_rcache_ops *ops, void *dev,
				const struct uhmm_rcache_config *cfg);

/*
 * uhmm_rcache_destroy - deregister every region and free the cache.
 * Returns 0, or -EINVAL (rc is NULL), -EBUSY (a region is still held:
 * nothing was freed), -EDEADLK (called from an invalidate callback).
 */
UHMM_API int uhmm_rcache_destroy(struct uhmm_rcache *rc);

/*
 * uhmm_rcache_get - a region registered with the device that covers
 * [addr, addr + len) with at least access, holding a reference: the
 * registration stays valid for the caller until uhmm_rcache_put(), even
 * if the memory changes meanwhile. A hit takes no lock, for any number of
 * regions and caches: it finds the region in a hash of region starts (or,
 * for a request from inside a region, in the interval tree) read without
 * a lock, and counts its hold on a per-CPU line.
 * On a monitored mm, a get first waits for the dispatch of the events
 * already read that change [addr, addr + len) (or may: one whose read is
 * still in progress, when its range is not known yet): a change of the
 * requested range that returned in any thread before the get is never
 * missed, and events elsewhere do not hold it up. In strict mode
 * it also waits for the events in flight: a change that has begun is not
 * missed either (an address another thread just got from mmap()); not
 * from an invalidate callback, nor, on uhmm's event dispatcher, for the
 * events already read (they are the dispatcher's own to deliver).
 * A miss registers a new region, after making room for it if a limit
 * would be exceeded (see "Limits" above): it may then call ops->dereg
 * itself, and so block as long as the device does. When every region is
 * held, it registers past max_regions and max_bytes: it neither waits for
 * a put nor fails.
 * Returns 0 and sets *regionp, or:
 *   -EINVAL      rc, addr or regionp is NULL, len is 0 or wraps, access
 *                is 0 or has unknown bits
 *   -ENOMEM      out of memory
 *   -EDEADLK     from an invalidate callback (of any mm), a get that is
 *                not a hit: a miss may remove notifiers, which a callback
 *                cannot
 *   -EFAULT      the range has a hole that ops->reg registered anyway, 16
 *                times in a row, each time with a new mapping appearing
 *                in it (a device that does not pin what it registers)
 *   any error of ops->reg, or of uhmm_interval_notifier_insert() (-EBUSY,
 *   -EOPNOTSUPP, -EPERM, -ESRCH, -ECHILD)
 */
UHMM_API int uhmm_rcache_get(struct uhmm_rcache *rc, void *addr, size_t len,
			     unsigned int access, struct uhmm_region **regionp);

/*
 * uhmm_rcache_get_many - uhmm_rcache_get() for n buffers at once
 * ([addrs[i], addrs[i] + lens[i]), each with access): the regions in
 * regions[0..n-1], each held (put each). One wait for the events to see -
 * in strict mode one system call - serves them all, so a runtime that
 * posts many buffers pays it once. All or nothing: on error no region is
 * held. Returns 0, or -EINVAL (rc, addrs, lens or regions is NULL, n is
 * 0, or any buffer is refused as uhmm_rcache_get() would), or an error of
 * uhmm_rcache_get() for the first buffer that failed.
 */
UHMM_API int uhmm_rcache_get_many(struct uhmm_rcache *rc, size_t n,
				  void *const *addrs, const size_t *lens,
				  unsigned int access,
				  struct uhmm_region **regions);

/* uhmm_rcache_put - drop the reference a get took, from any thread. Never
 * blocks. Returns 0, or -EINVAL (rc or region is NULL, or region is not
 * held). */
UHMM_API int uhmm_rcache_put(struct uhmm_rcache *rc, struct uhmm_region *region);

/* uhmm_rcache_stats - counters; returns 0 or -EINVAL. */
UHMM_API int uhmm_rcache_stats(struct uhmm_rcache *rc,
			       struct uhmm_rcache_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* UHMM_H */
