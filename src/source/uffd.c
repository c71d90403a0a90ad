/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd event source.
 *
 * One userfaultfd per process, opened user-mode-only with the UNMAP, REMOVE
 * and REMAP events and asynchronous write protection. Mappings are
 * registered in write-protect mode and never write-protected, so no page
 * fault is ever delivered: the file descriptor only reports changes to the
 * address space. Two threads, started with the first monitored mm, turn
 * each event into a blockable invalidation window on every attached mm: a
 * reader that only reads, and a dispatcher that runs the windows (why two:
 * source.h).
 *
 * Arming. The kernel reports only what happens to registered mappings, and
 * registers only mappings that exist when asked. So:
 *   - inserting a subscription registers every mapping in its range, whole
 *     (registering part of a mapping would split it; a heap split into
 *     thousands of VMAs can exhaust vm.max_map_count);
 *   - a mapping is unregistered when no subscription overlaps it any more;
 *   - mappings created later inside a subscribed range are not registered:
 *     the reader re-arms after every UNMAP/REMAP it sees there (that covers
 *     mmap(MAP_FIXED) over a range), and uhmm_interval_notifier_arm() - or
 *     uhmm_range_fault() - re-arms before a device trusts the range again
 *     (that covers a new mmap into a hole, which sends no event at all).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/internal.h"
#include "core/options.h"
#include "prim/prim.h"
#include "prim/uapi.h"
#include "source/source.h"

/*
 * What the source keeps of a subscription, in its source_private slot:
 * its node in the armed set, and its mm while armed (NULL: not armed).
 * Under arm_lock.
 */
struct arm {
	struct uhmm_itree_node node;
	struct uhmm_mm *mm;
};

_Static_assert(sizeof(struct arm) <= sizeof(((struct uhmm_interval_notifier *)0)->source_private),
	       "struct arm must fit the notifier's source slot");

static struct arm *arm_of(struct uhmm_interval_notifier *sub)
{
	return (struct arm *)sub->source_private;
}

static struct uhmm_interval_notifier *arm_sub_of(struct uhmm_itree_node *n)
{
	return uhmm_container_of(n, struct uhmm_interval_notifier,
				 source_private);
}

static struct uhmm_mutex source_lock = UHMM_MUTEX_INIT;
static struct uffd_source *the_source;	/* [source_lock] this process's */
static struct uffd_source *parent_source; /* a fork child keeps it reachable */
static __thread bool on_dispatcher;

/* ---- arming ---- */

/*
 * Each armed subscription has a node in src->arms covering its range and
 * every mapping registered on its behalf (the "hull"): mappings are
 * registered whole, and may later be split, so a subscription over two
 * pages can hold a registration far wider than itself. A mapping stays
 * registered while any node overlaps it; removing a node re-examines
 * every mapping under its hull. Under arm_lock throughout.
 */

static bool armed_overlap_locked(struct uffd_source *src, unsigned long start,
				 unsigned long end)
{
	uhmm_lock_assert_held(&src->arm_lock);

	return uhmm_itree_first(&src->arms, start, end - 1) != NULL;
}

/*
 * Known mappings. Registering costs two system calls (the mapping's
 * bounds, then UFFDIO_REGISTER), and so does checking that a range is
 * armed (PAGEMAP_SCAN); a runtime arms thousands of buffers inside a few
 * big mappings. So the source remembers, in a small table, private
 * anonymous mappings it registered whole: arming or checking a range
 * inside one is a lookup.
 *
 * Each entry names its owner, the subscription it was registered for,
 * whose hull covers it: while the owner is armed, every piece of the
 * mapping (it may have been split since: mprotect sends no event) stays
 * registered, so disarming another subscription there makes no system
 * call either. The owner's own disarm forgets the entry and looks the
 * mappings up, so a piece no subscription overlaps any more is
 * unregistered.
 *
 * A private anonymous mapping stops being registered only by going away,
 * and that sends an event: munmap, mremap, mmap(MAP_FIXED) over it and
 * brk send UNMAP or REMAP, and the dispatcher forgets the range before
 * the in-flight mark comes down (rearm_after_event()); uhmm's own
 * unregistrations forget it at once. (File and shared mappings are not
 * remembered: shmdt() unmaps with no event.) Between the kernel's read
 * of such an event and the dispatcher, the table is stale, but anything
 * that relied on it is a subscription overlapping the unmapped range,
 * which that event's window invalidates, and whose mapping
 * rearm_after_event() registers: a caller that reads the collision
 * sequence around its check (the rcache's driver loop) sees it.
 *
 * An entry is added only for a mapping wider than the range armed (where
 * other subscriptions may come), and only when a second lookup after the
 * registration finds the same bounds: a mapping that changed in between
 * (a munmap before the registration sends no event to this userfaultfd)
 * is looked up again the next time. The table is a hint: a lookup that misses
 * falls back to the system calls, and a full table forgets its oldest.
 */
static int known_find_locked(struct uffd_source *src, unsigned long addr)
{
	uhmm_lock_assert_held(&src->arm_lock);
	for (int i = 0; i < UHMM_KNOWN_VMAS; i++)
		if (src->known[i].start <= addr && addr < src->known[i].end)
			return i;
	return -1;
}

static void known_forget_locked(struct uffd_source *src, unsigned long start,
				unsigned long end)
{
	uhmm_lock_assert_held(&src->arm_lock);
	for (int i = 0; i < UHMM_KNOWN_VMAS; i++)
		if (src->known[i].start < end && start < src->known[i].end)
			src->known[i].start = src->known[i].end = 0;
}

static void known_add_locked(struct uffd_source *src,
			     const struct uhmm_vma *vma,
			     const struct uhmm_interval_notifier *owner)
{
	struct uhmm_known_vma *k;

	uhmm_lock_assert_held(&src->arm_lock);
	known_forget_locked(src, vma->start, vma->end);
	k = &src->known[src->known_next++ % UHMM_KNOWN_VMAS];
	k->start = vma->start;
	k->end = vma->end;
	k->owner = owner;
}

static void known_forget_owner_locked(struct uffd_source *src,
				      const struct uhmm_interval_notifier *sub)
{
	uhmm_lock_assert_held(&src->arm_lock);
	for (int i = 0; i < UHMM_KNOWN_VMAS; i++)
		if (src->known[i].end && src->known[i].owner == sub)
			src->known[i].start = src->known[i].end = 0;
}

/* Is [start, end) inside one known mapping? */
static bool known_covers_locked(struct uffd_source *src, unsigned long start,
				unsigned long end)
{
	int i = known_find_locked(src, start);

	return i >= 0 && end <= src->known[i].end;
}

/* Grow sub's node to cover [start, end). */
static void hull_extend_locked(struct uffd_source *src,
			       struct uhmm_interval_notifier *sub,
			       unsigned long start, unsigned long end)
{
	struct uhmm_itree_node *n = &arm_of(sub)->node;

	uhmm_lock_assert_held(&src->arm_lock);
	if (start >= n->start && end - 1 <= n->last)
		return;
	uhmm_itree_remove(&src->arms, n);
	if (start < n->start)
		n->start = start;
	if (end - 1 > n->last)
		n->last = end - 1;
	uhmm_itree_insert(&src->arms, n);
}

/*
 * Register every mapping that overlaps [start, end) for sub, whole.
 *
 * The kernel answers EINVAL both for a mapping it refuses and for a range
 * with no mapping left in it: another thread may unmap the mapping between
 * the lookup and the registration - and map the same address again before
 * a second lookup, which then finds a mapping identical to the first. So
 * an identical second lookup proves nothing, however often it is seen.
 * What refuses is told by its flags instead (uhmm_prim_vma_uffd_refuses():
 * VM_SPECIAL or VM_DROPPABLE in smaps), which ordinary memory never has,
 * however it is remapped; anything else is a race and is looked up again.
 * Only a mapping that keeps refusing without such a flag - one a newer
 * kernel refuses for a reason this code does not know - ends up
 * -EOPNOTSUPP too, after ARM_STRIKES refusals in a row each followed by an
 * identical lookup and a reading of smaps (so each its own lost race, far
 * apart): arming must not loop forever.
 */
#define ARM_STRIKES 16

static int arm_vmas_locked(struct uffd_source *src,
			   struct uhmm_interval_notifier *sub,
			   unsigned long start, unsigned long end)
{
	unsigned long addr = start;
	int strikes = 0;

	uhmm_lock_assert_held(&src->arm_lock);
	while (addr < end) {
		struct uhmm_vma vma, again;
		int ret, k = known_find_locked(src, addr);

		/* Registered already, not on sub's behalf: its hull stays
		 * as it is (its own range covers what it relies on). */
		if (k >= 0) {
			addr = src->known[k].end;
			continue;
		}
		ret = uhmm_prim_vma_find(addr, &vma);
		if (ret == -ENOENT || (ret == 0 && vma.start >= end))
			return 0;
		if (ret)
			return ret;
		/* In the hull before the kernel registers it, so a failure
		 * half way still gets it unregistered. */
		hull_extend_locked(src, sub, vma.start, vma.end);
		ret = uhmm_prim_uffd_register(src->uffd, vma.start,
					      vma.end - vma.start);
		if (ret == -EINVAL) {
			/* Changed meanwhile: a race, look again. */
			if (uhmm_prim_vma_find(addr, &again) ||
			    again.start != vma.start || again.end != vma.end)
				continue;
			ret = uhmm_prim_vma_uffd_refuses(vma.start, vma.end);
			if (ret > 0 || (ret == 0 && ++strikes >= ARM_STRIKES))
				return -EOPNOTSUPP;
			if (ret < 0)
				return ret;
			continue;
		}
		if (ret)
			return ret;
		/* Remembered only if wider than the range: another
		 * subscription may arm inside it next, and the lookup that
		 * proves it costs a third system call. */
		if (!vma.file && !vma.shared &&
		    (vma.start < start || vma.end > end) &&
		    !uhmm_prim_vma_find(addr, &again) &&
		    again.start == vma.start && again.end == vma.end)
			known_add_locked(src, &vma, sub);
		addr = vma.end;
	}
	return 0;
}

/* Unregister the mappings overlapping [start, end] that no node overlaps. */
static void disarm_vmas_locked(struct uffd_source *src, unsigned long start,
			       unsigned long last)
{
	unsigned long addr = start;
	struct uhmm_vma vma;

	uhmm_lock_assert_held(&src->arm_lock);
	while (addr <= last) {
		int k = known_find_locked(src, addr);

		/* Its owner's hull overlaps every piece of it. */
		if (k >= 0) {
			addr = src->known[k].end;
			continue;
		}
		if (uhmm_prim_vma_find(addr, &vma) || vma.start > last)
			return;
		/* Another uffd's mapping refuses with EINVAL: not ours. */
		if (!armed_overlap_locked(src, vma.start, vma.end)) {
			known_forget_locked(src, vma.start, vma.end);
			uhmm_prim_uffd_unregister(src->uffd, vma.start,
						  vma.end - vma.start);
		}
		addr = vma.end;
	}
}

/*
 * Take [start, end) out of the userfaultfd, holes and all, whoever's
 * range it is in: the caller is about to change it itself. One call
 * usually; mapping by mapping if the kernel refuses the whole (a mapping
 * another userfaultfd registered refuses: it is not ours).
 */
static void unregister_range_locked(struct uffd_source *src,
				    unsigned long start, unsigned long end)
{
	unsigned long addr = start;
	struct uhmm_vma vma;

	uhmm_lock_assert_held(&src->arm_lock);
	known_forget_locked(src, start, end);
	if (!uhmm_prim_uffd_unregister(src->uffd, start, end - start))
		return;
	while (addr < end && uhmm_prim_vma_find(addr, &vma) == 0 &&
	       vma.start < end) {
		unsigned long s = vma.start > start ? vma.start : start;
		unsigned long e = vma.end < end ? vma.end : end;

		uhmm_prim_uffd_unregister(src->uffd, s, e - s);
		addr = vma.end;
	}
}

static void disarm_locked(struct uffd_source *src,
			  struct uhmm_interval_notifier *sub)
{
	uhmm_lock_assert_held(&src->arm_lock);

	if (!arm_of(sub)->mm)
		return;
	uhmm_itree_remove(&src->arms, &arm_of(sub)->node);
	known_forget_owner_locked(src, sub);
	arm_of(sub)->mm = NULL;
	__atomic_fetch_sub(&src->narmed, 1, __ATOMIC_RELEASE);
	disarm_vmas_locked(src, arm_of(sub)->node.start,
			   arm_of(sub)->node.last);
}

static int source_arm(struct uhmm_source *base, struct uhmm_mm *mm,
		      struct uhmm_interval_notifier *sub)
{
	struct uffd_source *src = uffd_of(base);
	int ret;

	uhmm_mutex_lock(&src->arm_lock);
	arm_of(sub)->node.start = sub->node.start;
	arm_of(sub)->node.last = sub->node.last;
	uhmm_itree_insert(&src->arms, &arm_of(sub)->node);
	arm_of(sub)->mm = mm;
	/* Counted before anything is registered for it (source_settle()). */
	__atomic_fetch_add(&src->narmed, 1, __ATOMIC_SEQ_CST);
	ret = arm_vmas_locked(src, sub, sub->node.start, uhmm_sub_end(sub));
	if (ret)
		disarm_locked(src, sub);
	uhmm_mutex_unlock(&src->arm_lock);
	return ret;
}

static int source_rearm(struct uhmm_source *base,
			struct uhmm_interval_notifier *sub, unsigned long start,
			unsigned long end)
{
	struct uffd_source *src = uffd_of(base);
	int ret = 0;

	uhmm_mutex_lock(&src->arm_lock);
	/* Not armed: its mm was released, nothing is watched for it. */
	if (arm_of(sub)->mm)
		ret = arm_vmas_locked(src, sub, start, end);
	uhmm_mutex_unlock(&src->arm_lock);
	return ret;
}

/*
 * Is a change of [start, end) in flight, or read and not yet dispatched?
 * The probe first: an event it no longer sees was read, and its read
 * started - counted by the clock - before. (Any event in flight answers
 * yes; a probe that fails answers no.)
 */
static bool change_pending(struct uffd_source *src, unsigned long start,
			   unsigned long end)
{
	return uhmm_prim_uffd_changing(src->uffd) > 0 ||
	       uhmm_clock_pending_range(&src->base.clock, start, end);
}

/*
 * A mapping created in a hole of sub's range after the range was armed is
 * not registered: neither its mmap() nor its munmap() sends an event, so
 * whatever a device read from it would never be invalidated. One
 * PAGEMAP_SCAN reads the registration of every mapping in the range at
 * one instant (uhmm_prim_pagemap_wp_coverage()); a mapping it finds
 * unregistered is armed here, and the caller reads again.
 *
 * Such a mapping may also be one that arming skipped: a known entry of
 * the mapping it replaced, whose UNMAP or REMAP is not dispatched yet
 * (the dispatcher forgets the entry then; a range over two entries, or
 * an entry forgotten between arming and the check - its owner's disarm,
 * or the dispatcher just before that event's windows - is scanned). Then
 * the answer is -EBUSY: that change's window is still to come.
 *
 * The scan runs outside arm_lock: it walks the range's page tables, and
 * the dispatcher takes arm_lock after events. arm_of(sub)->armed is read under
 * it; if sub is disarmed meanwhile, source_rearm() does nothing.
 */
static int source_check_armed(struct uhmm_source *base,
			      struct uhmm_interval_notifier *sub,
			      unsigned long start, unsigned long end)
{
	struct uffd_source *src = uffd_of(base);
	bool armed, known;
	int ret;

	uhmm_mutex_lock(&src->arm_lock);
	armed = arm_of(sub)->mm != NULL;
	known = known_covers_locked(src, start, end);
	uhmm_mutex_unlock(&src->arm_lock);
	/* Its mm was released: nothing is watched for it any more. Or it is
	 * inside a mapping known to be registered. */
	if (!armed || known)
		return 0;
	ret = uhmm_prim_pagemap_wp_coverage(start, end);
	switch (ret) {
	case UHMM_PRIM_WP_ALL:
		return 0;
	case UHMM_PRIM_WP_HOLE:
		return -ENOENT;
	case UHMM_PRIM_WP_MISSING:
		ret = source_rearm(base, sub, start, end);
		if (ret)
			return ret;
		return change_pending(src, start, end) ? -EBUSY : -EAGAIN;
	case -EINVAL:
		return -ENOTTY;	/* no PAGEMAP_SCAN: Linux before 6.7 */
	default:
		return ret;
	}
}

static void source_disarm(struct uhmm_source *base,
			  struct uhmm_interval_notifier *sub)
{
	struct uffd_source *src = uffd_of(base);

	uhmm_mutex_lock(&src->arm_lock);
	disarm_locked(src, sub);
	uhmm_mutex_unlock(&src->arm_lock);
}

/*
 * Register, in [start, end), every mapping that some subscription's own
 * range overlaps there (whole, on behalf of one of them). It walks the
 * mappings, not the subscriptions, so it allocates nothing and a node
 * that grows under it (hull_extend_locked()) does not matter.
 */
static int rearm_range_locked(struct uffd_source *src, unsigned long start,
			      unsigned long end)
{
	unsigned long addr = start;
	int err = 0;

	uhmm_lock_assert_held(&src->arm_lock);
	while (addr < end) {
		struct uhmm_itree_node *n;
		struct uhmm_vma vma;
		unsigned long s, e;
		int ret = uhmm_prim_vma_find(addr, &vma);

		if (ret == -ENOENT || (ret == 0 && vma.start >= end))
			break;
		if (ret)
			return ret;
		s = vma.start > start ? vma.start : start;
		e = vma.end < end ? vma.end : end;
		for (n = uhmm_itree_first(&src->arms, s, e - 1); n;
		     n = uhmm_itree_next(n, s, e - 1)) {
			struct uhmm_interval_notifier *sub = arm_sub_of(n);

			/* Only the subscription's own range asks for it. */
			if (sub->node.start >= e || sub->node.last < s)
				continue;
			ret = arm_vmas_locked(src, sub, s, e);
			if (ret)
				err = ret;
			break;
		}
		addr = vma.end;
	}
	return err;
}

/*
 * After an UNMAP or REMAP over [start, end): a new mapping may have taken
 * the place of the old one (mmap(MAP_FIXED)), unregistered. Forget what
 * was known there, and register it where a subscription's range covers
 * it, before the in-flight mark comes down. (Not after a REMOVE: the
 * mappings are the same ones.)
 */
static void rearm_after_event(struct uffd_source *src, unsigned long start,
			      unsigned long end)
{
	uhmm_mutex_lock(&src->arm_lock);
	known_forget_locked(src, start, end);
	if (rearm_range_locked(src, start, end))
		__atomic_fetch_add(&src->arm_errors, 1, __ATOMIC_RELAXED);
	uhmm_mutex_unlock(&src->arm_lock);
}

/* After a REMAP to [start, end): the moved mapping stays registered; keep
 * it so only where a subscription needs it. */
static void disarm_after_move(struct uffd_source *src, unsigned long start,
			      unsigned long end)
{
	uhmm_mutex_lock(&src->arm_lock);
	known_forget_locked(src, start, end);
	disarm_vmas_locked(src, start, end - 1);
	uhmm_mutex_unlock(&src->arm_lock);
}

/* ---- the dispatcher ---- */

/*
 * The next attached mm after prev (the first if prev is NULL) that still
 * has users, with a user reference taken, so it is neither released nor
 * unlinked while its windows run.
 */
static struct uhmm_mm *next_live_mm(struct uffd_source *src,
				    struct uhmm_mm *prev)
{
	struct uhmm_mm *mm;

	uhmm_mutex_lock(&src->mms_lock);
	mm = prev ? prev->source_next : src->mms;
	while (mm && uhmm_mm_get(mm))
		mm = mm->source_next;
	uhmm_mutex_unlock(&src->mms_lock);
	return mm;
}

/* Decode an event; false for one uhmm did not ask for. */
static bool decode(const struct uffd_msg *msg, unsigned long *start,
		   unsigned long *end, enum uhmm_event *event)
{
	switch (msg->event) {
	case UFFD_EVENT_UNMAP:
		*start = msg->arg.remove.start;
		*end = msg->arg.remove.end;
		*event = UHMM_EVENT_UNMAP;
		break;
	case UFFD_EVENT_REMOVE:
		*start = msg->arg.remove.start;
		*end = msg->arg.remove.end;
		*event = UHMM_EVENT_CLEAR;
		break;
	case UFFD_EVENT_REMAP:
		*start = msg->arg.remap.from;
		*end = msg->arg.remap.from + msg->arg.remap.len;
		*event = UHMM_EVENT_REMAP;
		break;
	default:
		/* WP_ASYNC: no fault events; nothing else was asked for. */
		return false;
	}
	return *end > *start;
}

static void count_callback_bug(struct uffd_source *src, int ret)
{
	if (ret == -EPROTO)
		__atomic_fetch_add(&src->callback_bugs, 1, __ATOMIC_RELAXED);
}

/* ---- discards ---- */

/*
 * madvise(MADV_DONTNEED/FREE/REMOVE) queues REMOVE, sleeps until the event
 * is read, and only then re-takes mmap_lock and zaps (mm/madvise.c,
 * madvise_dontneed_free()):
 *
 *	if (!userfaultfd_remove(madv_behavior->vma, range->start,
 *				range->end)) {
 *		...
 *		mark_mmap_lock_dropped(madv_behavior);
 *		mmap_read_lock(mm);
 *		...
 *	}
 *	...
 *	return madvise_dontneed_single_vma(madv_behavior);
 *
 * A window that closed at dispatch would let a registration (a pin, a
 * snapshot) made between the read and the zap take the very page the zap
 * then discards, with a clean read_retry and no callback ever after. So a
 * REMOVE window stays open after dispatch until the zap is over. While it
 * is open, read_begin() of a subscription it hit waits, and a new
 * subscription starts colliding, so nothing registers the doomed pages.
 *
 * No event follows the zap; what orders it is mmap_lock. The madvising
 * thread, once the event is read, resumes in
 * userfaultfd_event_wait_completion(), which ends with
 *
 *	atomic_dec(&ctx->mmap_changing);
 *
 * then returns to madvise, which takes mmap_lock for reading and zaps
 * under it. So once mmap_changing is seen at zero (uhmm_prim_uffd_changing)
 * every thread whose event was read has resumed, and taking mmap_lock for
 * writing afterwards (uhmm_prim_mmap_barrier) returns only after the zaps
 * of those that already hold it for reading. The windows open at the
 * probe then close. What is left (README.md, "Known limits"): a madvising
 * thread preempted in the few instructions between that atomic_dec() and
 * its mmap_read_lock() zaps after the barrier; and when events stay in
 * flight continuously, mmap_changing never reads zero and a window closes
 * UHMM_REMOVE_GRACE_US after the read, whether or not the zap is done.
 * Option value 0 closes REMOVE windows at dispatch (the behaviour without
 * this mechanism).
 */
#define ZAP_POLL_US 20

struct mm_window {
	struct mm_window *next;
	struct uhmm_mm *mm;		/* a user reference is held */
	struct uhmm_notifier_range range;
};

struct uhmm_remove_window {
	struct uhmm_remove_window *next;
	unsigned long long deadline_ns;
	struct mm_window *windows;
};

/* Are the zaps of every REMOVE event read so far over? (See above.) */
/* Model (models/notifier.pml): poll()'s probe and barrier; variants
 * BAD_NO_BARRIER, KERNEL_GAP and KERNEL_MADV_REMOVE (README, Known limits). */
static bool zaps_over(struct uffd_source *src)
{
	return uhmm_prim_uffd_changing(src->uffd) == 0 &&
	       uhmm_prim_mmap_barrier(src->barrier_page) == 0;
}

static void remove_window_close(struct uffd_source *src,
				struct uhmm_remove_window *rw)
{
	struct mm_window *w;

	while ((w = rw->windows)) {
		rw->windows = w->next;
		count_callback_bug(src, uhmm_mm_invalidate_end(w->mm,
							       &w->range));
		uhmm_mm_close(w->mm);
		free(w);
	}
	free(rw);
}

/*
 * Without memory for the bookkeeping: one window on mm held open right
 * here, until the zap is over or the grace period ends. Other events wait
 * meanwhile: slower, never less safe.
 */
static void remove_window_inline(struct uffd_source *src, struct uhmm_mm *mm,
				 unsigned long start, unsigned long end,
				 unsigned long long deadline_ns)
{
	struct uhmm_notifier_range range = {
		.start = start,
		.end = end,
		.event = UHMM_EVENT_CLEAR,
		.flags = UHMM_RANGE_BLOCKABLE,
	};

	if (uhmm_mm_invalidate_start(mm, &range))
		return;
	while (!zaps_over(src) && uhmm_now_ns() < deadline_ns)
		uhmm_prim_wait2(-1, -1, ZAP_POLL_US);
	count_callback_bug(src, uhmm_mm_invalidate_end(mm, &range));
}

/* Open a REMOVE window over [start, end) on every attached mm. */
/* Model (models/notifier.pml): dispatch()'s REMOVE branch; variant
 * BAD_CLOSE_AT_DISPATCH is UHMM_REMOVE_GRACE_US=0, GRACE_EXPIRES the grace
 * period running out. */
static void remove_window_open(struct uffd_source *src, unsigned long start,
			       unsigned long end, unsigned long long read_ns)
{
	unsigned long long grace_ns =
		(unsigned long long)uhmm_option(UHMM_OPT_REMOVE_GRACE_US) * 1000;
	struct uhmm_remove_window *rw = NULL;
	struct uhmm_mm *mm, *next;

	if (grace_ns)
		rw = uhmm_calloc(1, sizeof(*rw));
	if (rw)
		rw->deadline_ns = read_ns + grace_ns;
	for (mm = next_live_mm(src, NULL); mm; mm = next) {
		struct mm_window *w = rw ? uhmm_calloc(1, sizeof(*w)) : NULL;

		next = next_live_mm(src, mm);
		if (!w) {
			if (grace_ns)
				remove_window_inline(src, mm, start, end,
						     read_ns + grace_ns);
			else
				count_callback_bug(src, uhmm_mm_invalidate(
					mm, start, end, UHMM_EVENT_CLEAR));
			uhmm_mm_close(mm);
			continue;
		}
		w->mm = mm;
		w->range = (struct uhmm_notifier_range){
			.start = start,
			.end = end,
			.event = UHMM_EVENT_CLEAR,
			.flags = UHMM_RANGE_BLOCKABLE,
		};
		if (uhmm_mm_invalidate_start(mm, &w->range)) {
			uhmm_mm_close(mm);	/* released meanwhile */
			free(w);
			continue;
		}
		w->next = rw->windows;
		rw->windows = w;
	}
	if (!rw)
		return;
	rw->next = src->removes;
	src->removes = rw;
}

/* Close the REMOVE windows whose zap is over, or whose time is up. */
static void remove_windows_poll(struct uffd_source *src)
{
	struct uhmm_remove_window **pp = &src->removes, *rw;
	unsigned long long now = uhmm_now_ns();
	bool zapped = zaps_over(src);

	while ((rw = *pp)) {
		if (!zapped && now < rw->deadline_ns) {
			pp = &rw->next;
			continue;
		}
		*pp = rw->next;
		__atomic_fetch_add(zapped ? &src->removes_zapped
					  : &src->removes_expired,
				   1, __ATOMIC_RELAXED);
		remove_window_close(src, rw);
	}
}

/*
 * Run one window per event on every attached mm (REMOVE windows stay
 * open, above), then fix the armed set: mappings that replaced unmapped
 * ones, and mappings moved by mremap.
 */
static void dispatch_batch(struct uffd_source *src, struct uhmm_batch *b)
{
	unsigned long start, end;
	enum uhmm_event event;
	struct uhmm_mm *mm, *next;

	for (size_t i = 0; i < b->n; i++) {
		if (!decode(&b->msgs[i], &start, &end, &event))
			continue;
		if (event == UHMM_EVENT_CLEAR) {
			remove_window_open(src, start, end, b->read_ns);
			continue;
		}
		/* Gone before its windows open: a check that trusted the
		 * entry was registered before them (check_mapped_locked()). */
		uhmm_mutex_lock(&src->arm_lock);
		known_forget_locked(src, start, end);
		uhmm_mutex_unlock(&src->arm_lock);
		for (mm = next_live_mm(src, NULL); mm; mm = next) {
			count_callback_bug(src, uhmm_mm_invalidate(mm, start,
								   end, event));
			next = next_live_mm(src, mm);
			uhmm_mm_close(mm);
		}
	}

	for (size_t i = 0; i < b->n; i++) {
		const struct uffd_msg *msg = &b->msgs[i];

		if (!decode(msg, &start, &end, &event) ||
		    event == UHMM_EVENT_CLEAR)
			continue;
		rearm_after_event(src, start, end);
		if (event == UHMM_EVENT_REMAP)
			disarm_after_move(src, msg->arg.remap.to,
					  msg->arg.remap.to +
						  msg->arg.remap.len);
	}
	__atomic_fetch_add(&src->events, b->n, __ATOMIC_RELAXED);
}

/* Batches the reader pushed since the last call, oldest first. */
static struct uhmm_batch *take_pending(struct uffd_source *src)
{
	struct uhmm_batch *b = __atomic_exchange_n(&src->pending, NULL,
						   __ATOMIC_ACQUIRE);
	struct uhmm_batch *oldest_first = NULL;

	while (b) {
		struct uhmm_batch *next = b->next;

		b->next = oldest_first;
		oldest_first = b;
		b = next;
	}
	return oldest_first;
}

/*
 * Lock-free push of node on the stack at *top, linked through its field
 * link; the other side takes the whole stack at once (an exchange), so a
 * node cannot come back to the top behind the compare (no ABA). A macro:
 * the stacks hold batches and subscriptions.
 */
#define STACK_PUSH(top, node, link)                                            \
	do {                                                                   \
		(node)->link = __atomic_load_n((top), __ATOMIC_RELAXED);       \
		while (!__atomic_compare_exchange_n((top), &(node)->link,      \
						    (node), true,              \
						    __ATOMIC_RELEASE,          \
						    __ATOMIC_RELAXED))         \
			;                                                      \
	} while (0)

/*
 * A deferred removal took effect, perhaps under a lock of the caller's
 * (libfabric's mm_lock): its done function runs on the dispatcher, which
 * holds none. Called from any thread; an eventfd write, no wait.
 */
static void source_defer(struct uhmm_source *base,
			 struct uhmm_interval_notifier *sub)
{
	struct uffd_source *src = uffd_of(base);

	STACK_PUSH(&src->removed, sub, deferred_next);
	uhmm_prim_eventfd_signal(src->dispatch_fd);
}

/* The dispatcher: finish what source_defer() handed it. */
static void finish_removed(struct uffd_source *src)
{
	struct uhmm_interval_notifier *sub =
		__atomic_exchange_n(&src->removed, NULL, __ATOMIC_ACQUIRE);

	while (sub) {
		struct uhmm_interval_notifier *next = sub->deferred_next;

		sub->deferred_next = NULL;
		uhmm_notifier_removed(sub);
		sub = next;
	}
}

/* Report batch b dispatched, with the settle requests it answers, and
 * sync requests answered: those only once no REMOVE window is open. */
static void publish(struct uffd_source *src, const struct uhmm_batch *b)
{
	struct uhmm_event_clock *clock = &src->base.clock;

	uhmm_mutex_lock(&clock->done_lock);
	if (b) {
		uhmm_clock_done_locked(clock, b->ticket);
		src->sync_pending = b->sync_seen;
		src->settle_done = b->settle_seen;
	}
	if (!src->removes)
		src->sync_done = src->sync_pending;
	uhmm_mutex_unlock(&clock->done_lock);
	pthread_cond_broadcast(&clock->done_cond);
}

/*
 * While REMOVE windows are open, the threads that discard are resuming:
 * look again at once, yielding the CPU to them for up to ZAP_SPIN_NS,
 * then every ZAP_POLL_US (with a fine timer slack, see below).
 */
#define ZAP_SPIN_NS 50000ULL

/* Model (models/notifier.pml): proctype dispatcher; dispatch_batch() is
 * inline dispatch(), remove_windows_poll() inline poll(). */
static void *dispatcher_main(void *arg)
{
	struct uffd_source *src = arg;
	unsigned long long active_ns = 0;

	on_dispatcher = true;
	uhmm_clock_set_dispatcher(&src->base.clock);
	uhmm_prim_set_timer_slack_ns(1000);
	for (;;) {
		struct uhmm_batch *b = take_pending(src), *next;

		if (b)
			active_ns = uhmm_now_ns();
		for (; b; b = next) {
			next = b->next;
			dispatch_batch(src, b);
			/* Before the batch answers a sync: a removal
			 * deferred before uhmm_mm_sync() is finished
			 * when it returns. Not while a REMOVE window of
			 * this thread's is open (a sync is not answered
			 * then either): done may wait for windows. */
			if (!src->removes)
				finish_removed(src);
			publish(src, b);
			STACK_PUSH(&src->spare, b, next);
		}
		if (!src->removes)
			finish_removed(src);	/* woken by source_defer() */
		if (src->removes) {
			remove_windows_poll(src);
			if (!src->removes) {
				finish_removed(src);
				publish(src, NULL);
			}
		}
		if (!src->removes) {
			uhmm_prim_wait2(src->dispatch_fd, -1, -1);
		} else if (uhmm_now_ns() - active_ns < ZAP_SPIN_NS) {
			uhmm_prim_yield();
			continue;
		} else {
			uhmm_prim_wait2(src->dispatch_fd, -1, ZAP_POLL_US);
		}
		uhmm_prim_eventfd_drain(src->dispatch_fd);
	}
	return NULL;
}

/* ---- the reader ---- */

/*
 * A spare batch. Memory comes from mmap(), never malloc(): a thread that
 * holds malloc's lock may be the one waiting for this read. Batches are
 * never unmapped; the dispatcher hands them back.
 */
static struct uhmm_batch *batch_get(struct uffd_source *src)
{
	enum { CHUNK = 64 * 1024 };
	struct uhmm_batch *b = src->reader_spare;

	if (!b)
		b = __atomic_exchange_n(&src->spare, NULL, __ATOMIC_ACQUIRE);
	while (!b) {
		char *chunk = uhmm_prim_map_anon(CHUNK);

		if (!chunk) {
			/* Events cannot be left unread: wait for memory. */
			uhmm_prim_wait2(-1, -1, 1000);
			continue;
		}
		for (size_t off = 0; off + sizeof(*b) <= CHUNK;
		     off += sizeof(*b)) {
			struct uhmm_batch *nb = (struct uhmm_batch *)(chunk + off);

			nb->next = b;
			b = nb;
		}
	}
	src->reader_spare = b->next;
	b->next = NULL;
	return b;
}

/*
 * The reader takes no lock, calls no allocator and runs no user code:
 * tickets and batches move through atomics, the dispatcher is woken with
 * an eventfd. After a batch it keeps polling, yielding in between, for
 * UHMM_READER_SPIN_US before it sleeps: the next unmap of a burst then
 * finds the reader awake instead of paying a wake-up (bench/events.c has
 * the figures).
 *
 * Settle requests (strict mode, source_settle()) are answered by a batch
 * after whose read the kernel had no event in flight: every change that
 * had begun when they were made was read by then, in that batch or an
 * earlier one, and is dispatched once the batch is. Until the probe says
 * so the reader looks again every SETTLE_POLL_US: a change that has begun
 * may not have queued its event yet, and one that was read counts until
 * its thread has resumed, which sends nothing either.
 */
#define SETTLE_POLL_US 10

/*
 * What read b changes, for waits on one range (core's clock): each
 * event's range, and a move's destination too.
 */
static void publish_ranges(struct uffd_source *src,
			   const struct uhmm_batch *b)
{
	struct uhmm_clock_range ranges[2 * UHMM_BATCH_MSGS];
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct uffd_msg *msg = &b->msgs[i];
		unsigned long start, end;
		enum uhmm_event event;

		if (!decode(msg, &start, &end, &event))
			continue;
		ranges[n++] = (struct uhmm_clock_range){ b->ticket, start, end };
		if (event == UHMM_EVENT_REMAP)
			ranges[n++] = (struct uhmm_clock_range){
				b->ticket, msg->arg.remap.to,
				msg->arg.remap.to + msg->arg.remap.len
			};
	}
	uhmm_clock_read_ranges(&src->base.clock, b->ticket, ranges, n);
}

/* Model (models/notifier.pml): proctype uffd_reader. */
static void *reader_main(void *arg)
{
	struct uffd_source *src = arg;
	unsigned long long spin_ns =
		(unsigned long long)uhmm_option(UHMM_OPT_READER_SPIN_US) * 1000;
	unsigned long long spin_until = 0;
	unsigned long sync_answered = 0, settle_answered = 0;
	bool settling = false;

	uhmm_prim_set_timer_slack_ns(1000);
	for (;;) {
		unsigned long sync_seen, settle_seen;
		struct uhmm_batch *b;
		ssize_t n;
		int ready;

		if (settling) {
			ready = uhmm_prim_wait2(src->uffd, src->wake_fd,
						SETTLE_POLL_US);
		} else if (spin_until) {
			ready = uhmm_prim_wait2(src->uffd, src->wake_fd, 0);
			if (ready == 0) {
				/* Yield: the unmapping thread may need this
				 * CPU to send the next event. */
				if (uhmm_now_ns() > spin_until)
					spin_until = 0;
				else
					uhmm_prim_yield();
				continue;
			}
		} else {
			ready = uhmm_prim_wait2(src->uffd, src->wake_fd, -1);
		}
		if (ready < 0)
			continue;
		if (ready & UHMM_PRIM_WOKEN)
			uhmm_prim_eventfd_drain(src->wake_fd);

		/* The ticket goes up before read(): see source.h. */
		b = batch_get(src);
		sync_seen = __atomic_load_n(&src->sync_requested,
					    __ATOMIC_ACQUIRE);
		settle_seen = __atomic_load_n(&src->settle_requested,
					      __ATOMIC_SEQ_CST);
		b->ticket = uhmm_clock_read_start(&src->base.clock);

		n = uhmm_prim_uffd_read(src->uffd, b->msgs, UHMM_BATCH_MSGS);
		b->read_ns = uhmm_now_ns();
		b->n = n > 0 ? (size_t)n : 0;
		/* A full batch may have left events of a sync's past in the
		 * kernel: answer the sync with a batch that emptied it. */
		if (b->n < UHMM_BATCH_MSGS)
			sync_answered = sync_seen;
		b->sync_seen = sync_answered;
		/* After the read: see above. An error cannot be waited out;
		 * the self-test showed the probe works, so it is counted. */
		settling = settle_seen != settle_answered;
		if (settling) {
			int changing = uhmm_prim_uffd_changing(src->uffd);

			if (changing < 0)
				__atomic_fetch_add(&src->probe_errors, 1,
						   __ATOMIC_RELAXED);
			if (changing <= 0) {
				settle_answered = settle_seen;
				settling = false;
			}
		}
		b->settle_seen = settle_answered;

		publish_ranges(src, b);
		STACK_PUSH(&src->pending, b, next);
		uhmm_prim_eventfd_signal(src->dispatch_fd);

		if (n > 0 && spin_ns)
			spin_until = uhmm_now_ns() + spin_ns;
	}
	return NULL;
}

static int source_sync(struct uhmm_source *base)
{
	struct uffd_source *src = uffd_of(base);
	unsigned long ticket;

	if (on_dispatcher)
		return -EDEADLK;
	ticket = __atomic_add_fetch(&src->sync_requested, 1, __ATOMIC_RELEASE);
	uhmm_prim_eventfd_signal(src->wake_fd);

	return uhmm_clock_wait_for(&src->base.clock, &src->sync_done, ticket,
				   0);
}

/* ---- changes reported before they happen (source/change.c) ---- */

/*
 * A thread about to change [start, end) itself (uhmm_munmap() and
 * friends, the functions libuhmm_hooks puts in place of libc's) need not
 * let the kernel report it afterwards: it opens the windows now, in its
 * own thread, takes the range out of the userfaultfd under arm_lock, makes
 * the system call - which then waits for no reader - re-arms what the
 * call left, and closes the windows. Lookups wait for the windows, so no
 * address reuse can slip in between, and the change is seen before it is
 * made: a discard's zap, an mprotect() and a shmdt() included.
 *
 * The windows are not blockable: their callbacks run in whatever thread
 * unmaps, which may hold the very lock a callback needs. A callback that
 * refuses, a thread that holds one of uhmm's locks (a signal handler that
 * interrupted uhmm) or runs a callback, more mms than fit in c: then the
 * change is not taken over, and the kernel reports it as it would have.
 * Nothing here allocates.
 */
bool uhmm_uffd_change_begin(struct uhmm_change *c)
{
	struct uffd_source *src = __atomic_load_n(&the_source, __ATOMIC_ACQUIRE);
	struct uhmm_mm *mm, *next;
	bool armed = false;

	c->nwindows = 0;
	/* Nothing armed (narmed, as source_settle()): no lock taken. */
	if (!src || uhmm_locks_held || uhmm_in_callback() ||
	    !__atomic_load_n(&src->narmed, __ATOMIC_SEQ_CST))
		return false;
	uhmm_mutex_lock(&src->arm_lock);
	for (int i = 0; i < c->nranges; i++)
		armed |= armed_overlap_locked(src, c->range[i].start,
					      c->range[i].end);
	uhmm_mutex_unlock(&src->arm_lock);
	/* Nothing registered there: the kernel has nothing to report. */
	if (!armed)
		return false;

	c->src = src;
	for (mm = next_live_mm(src, NULL); mm; mm = next) {
		int opened = 0;

		for (int i = 0; i < c->nranges; i++) {
			struct uhmm_change_window *w = &c->window[c->nwindows];
			int ret = -EAGAIN;

			/* One user reference per window: take one more. */
			if (opened && uhmm_mm_get(mm))
				break;		/* released meanwhile */
			if (c->nwindows < UHMM_CHANGE_MAX_WINDOWS) {
				w->mm = mm;
				w->range = (struct uhmm_notifier_range){
					.start = c->range[i].start,
					.end = c->range[i].end,
					.event = c->range[i].event,
				};
				ret = uhmm_mm_invalidate_start(mm, &w->range);
			}
			if (!ret) {
				c->nwindows++;
				opened++;
				continue;
			}
			if (opened || ret == -EAGAIN)
				uhmm_mm_close(mm);
			if (ret == -EAGAIN) {
				uhmm_uffd_change_abort(c);
				return false;
			}
			break;			/* -ESRCH: released */
		}
		next = next_live_mm(src, mm);
		if (!opened)
			uhmm_mm_close(mm);
	}

	uhmm_mutex_lock(&src->arm_lock);
	if (c->unregister) {
		for (int i = 0; i < c->nranges; i++)
			unregister_range_locked(src, c->range[i].start,
						c->range[i].end);
	}
	return true;
}

/*
 * Close the windows (arm_lock not held), then drop their references: a
 * close that turns out to be the last releases its mm, which waits for
 * that mm's windows, so none of ours may still be open then.
 */
void uhmm_uffd_change_abort(struct uhmm_change *c)
{
	for (int i = c->nwindows - 1; i >= 0; i--)
		count_callback_bug(c->src, uhmm_mm_invalidate_end(
						   c->window[i].mm,
						   &c->window[i].range));
	for (int i = 0; i < c->nwindows; i++)
		uhmm_mm_close(c->window[i].mm);
	c->nwindows = 0;
}

/* The call was made: re-arm what c->rearm says is left, close up. errno
 * stays the call's. */
void uhmm_uffd_change_end(struct uhmm_change *c)
{
	struct uffd_source *src = c->src;
	int err = errno;

	for (int i = 0; i < c->nrearm; i++) {
		if (rearm_range_locked(src, c->rearm[i].start, c->rearm[i].end))
			__atomic_fetch_add(&src->arm_errors, 1,
					   __ATOMIC_RELAXED);
	}
	uhmm_mutex_unlock(&src->arm_lock);
	__atomic_fetch_add(&src->changes_before, 1, __ATOMIC_RELAXED);
	uhmm_uffd_change_abort(c);
	errno = err;
}

/*
 * Strict mode (uhmm.h, UHMM_MM_STRICT): is an event in flight? The probe
 * is a system call (uhmm_prim_uffd_changing()); no lookup needs it while
 * nothing is armed. If one is, the reader is asked to answer once none
 * is, after a read (reader_main()), and the caller sleeps until the
 * dispatcher has dispatched that read.
 *
 * The munmap() that released an address another thread got from mmap()
 * counted its event in flight under the mmap write lock, before the
 * mapping left the tree (mm/vma.c, do_vmi_align_munmap() ->
 * userfaultfd_unmap_prep()), and the mmap() took that lock after it: a
 * probe made after the mmap() sees the count, however late the event is
 * queued.
 */
static int source_settle(struct uhmm_source *base,
			 unsigned long long deadline_ns)
{
	struct uffd_source *src = uffd_of(base);
	unsigned long ticket;
	int ret;

	/* Not from a callback: the window it runs in may be what the
	 * dispatcher waits for before it answers. */
	if (on_dispatcher || uhmm_in_callback() ||
	    !__atomic_load_n(&src->narmed, __ATOMIC_SEQ_CST))
		return 0;
	ret = uhmm_prim_uffd_changing(src->uffd);
	if (!ret)
		return 0;
	UHMM_WARN_ON(ret < 0);	/* the self-test saw it work */
	__atomic_fetch_add(&src->settles, 1, __ATOMIC_RELAXED);
	ticket = __atomic_add_fetch(&src->settle_requested, 1,
				    __ATOMIC_SEQ_CST);
	uhmm_prim_eventfd_signal(src->wake_fd);

	return uhmm_clock_wait_for(&src->base.clock, &src->settle_done, ticket,
				   deadline_ns);
}

/*
 * Strict mode rests on a kernel detail (the probe above), so it is tried
 * once per process before the first strict mm or cache is used, and
 * refused if it does not hold (uhmm_prim_uffd_changing_selftest()).
 */
static struct uhmm_mutex selftest_lock = UHMM_MUTEX_INIT;
static int selftest_result = 1;	/* [selftest_lock] 1: not run yet */

static int source_strict_init(struct uhmm_source *base)
{
	int ret;

	(void)base;
	uhmm_mutex_lock(&selftest_lock);
	ret = selftest_result;
	if (ret == 1) {
		ret = uhmm_prim_uffd_changing_selftest();
		/* A verdict is kept; -ENOMEM or -EAGAIN (no thread) is not. */
		if (ret == 0 || ret == -EOPNOTSUPP)
			selftest_result = ret;
		else if (ret != -ENOMEM)
			ret = -EAGAIN;
	}
	uhmm_mutex_unlock(&selftest_lock);
	return ret;
}

/* ---- the process's source ---- */

static int source_create(struct uffd_source **srcp)
{
	struct uffd_source *src;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	int ret;

	src = uhmm_calloc(1, sizeof(*src));
	if (!src)
		return -ENOMEM;
	src->uffd = src->wake_fd = src->dispatch_fd = -1;
	ret = uhmm_prim_uffd_open(&src->uffd);
	if (!ret)
		ret = uhmm_prim_eventfd(&src->wake_fd);
	if (!ret)
		ret = uhmm_prim_eventfd(&src->dispatch_fd);
	if (ret)
		goto fail;
	src->base.ops = &uhmm_uffd_source_ops;
	uhmm_clock_init(&src->base.clock);
	uhmm_mutex_init(&src->mms_lock);
	uhmm_mutex_init(&src->arm_lock);

	src->barrier_page = uhmm_alloc_injected() ? NULL :
		uhmm_prim_map_anon((size_t)sysconf(_SC_PAGESIZE));
	if (!src->barrier_page) {
		ret = -ENOMEM;
		goto fail;
	}
	uhmm_prim_mmap_barrier(src->barrier_page);	/* now PROT_NONE */

	/*
	 * Neither thread takes signals: a handler running on the reader that
	 * unmapped registered memory would wait for the reader itself.
	 */
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&thread, &attr, dispatcher_main, src);
	if (!ret)
		ret = -pthread_create(&thread, &attr, reader_main, src);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	/* A dispatcher without a reader waits forever, harmlessly; the
	 * source is then not published and the next open tries again. */
	if (ret)
		goto fail;
	/*
	 * One full pass before the first open returns: both threads have
	 * started and are idle, so a fork() right after the open does not
	 * catch either of them half way through its start.
	 */
	source_sync(&src->base);
	*srcp = src;
	return 0;
fail:
	uhmm_prim_close(src->uffd);
	uhmm_prim_close(src->wake_fd);
	uhmm_prim_close(src->dispatch_fd);
	if (src->barrier_page)
		uhmm_prim_unmap(src->barrier_page,
				(size_t)sysconf(_SC_PAGESIZE));
	free(src);
	return ret;
}

static int source_attach(struct uhmm_mm *mm, struct uhmm_source **srcp)
{
	struct uffd_source *src;
	int ret = 0;

	uhmm_mutex_lock(&source_lock);
	if (!the_source)
		ret = source_create(&the_source);
	src = the_source;
	uhmm_mutex_unlock(&source_lock);
	if (ret)
		return ret;

	uhmm_mutex_lock(&src->mms_lock);
	mm->source_next = src->mms;
	src->mms = mm;
	uhmm_mutex_unlock(&src->mms_lock);
	*srcp = &src->base;
	return 0;
}

static void source_detach(struct uhmm_source *base, struct uhmm_mm *mm)
{
	struct uffd_source *src = uffd_of(base);
	struct uhmm_itree_node *n, *next;
	struct uhmm_mm **pp;

	uhmm_mutex_lock(&src->mms_lock);
	for (pp = &src->mms; *pp; pp = &(*pp)->source_next) {
		if (*pp == mm) {
			*pp = mm->source_next;
			break;
		}
	}
	uhmm_mutex_unlock(&src->mms_lock);

	/*
	 * The mm is released: no window will run for its subscriptions, so
	 * nothing needs watching for them. Their removal later finds them
	 * disarmed. A node's successor stays in the set when the node leaves.
	 */
	uhmm_mutex_lock(&src->arm_lock);
	for (n = uhmm_itree_first(&src->arms, 0, ~0UL); n; n = next) {
		struct uhmm_interval_notifier *sub = arm_sub_of(n);

		next = uhmm_itree_next(n, 0, ~0UL);
		if (arm_of(sub)->mm == mm)
			disarm_locked(src, sub);
	}
	uhmm_mutex_unlock(&src->arm_lock);
}

const struct uhmm_source_ops uhmm_uffd_source_ops = {
	.flags = UHMM_SOURCE_WATCHES_UFFD_WP,
	.attach = source_attach,
	.detach = source_detach,
	.arm = source_arm,
	.rearm = source_rearm,
	.check_armed = source_check_armed,
	.disarm = source_disarm,
	.defer = source_defer,
	.sync = source_sync,
	.settle = source_settle,
	.strict_init = source_strict_init,
};

void uhmm_uffd_after_fork_child(void)
{
	/*
	 * The parent's userfaultfd: reading it here would steal the parent's
	 * events, and its reader thread does not exist in the child. Close
	 * it; the next monitored open creates the child's own source.
	 */
	if (the_source) {
		uhmm_prim_close(the_source->uffd);
		uhmm_prim_close(the_source->wake_fd);
		uhmm_prim_close(the_source->dispatch_fd);
		parent_source = the_source;
		the_source = NULL;
	}
	uhmm_mutex_init(&source_lock);
	uhmm_mutex_init(&selftest_lock);
}
