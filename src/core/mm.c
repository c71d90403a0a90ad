/* SPDX-License-Identifier: MIT */
/*
 * struct uhmm_mm lifetime: open, user references, release, free, fork.
 * See the comment at struct uhmm_mm for the two reference counts.
 *
 * Fork. An mm belongs to the process that opened it. In a fork child the
 * copy is dead: its mappings lost their userfaultfd registration and the
 * reader thread does not exist. The atfork handlers keep the copy usable
 * enough to say so: every mm lock is held across fork(), so no copy is
 * caught mid-update, and the child gets fresh locks and a new fork
 * generation. The first call on a copy delivers UHMM_EVENT_RELEASE to its
 * subscriptions; the calls then return -ECHILD, except remove, which
 * still works so the child can reclaim their memory. In the parent, fork()
 * write-protects private memory: a source's fork ops (core/source.h;
 * source/fork.c) bracket it with UHMM_EVENT_PROTECTION windows.
 */
#include <errno.h>

#include "core/alloc.h"
#include "core/internal.h"
#include "core/options.h"
#include "core/source.h"

unsigned long uhmm_fork_gen;
unsigned long uhmm_forks;

static struct uhmm_mutex all_lock = UHMM_MUTEX_INIT;
static struct uhmm_mm *all_mms;	/* [all_lock] */

static void lock_all_mms(void)
{
	for (struct uhmm_mm *mm = all_mms; mm; mm = mm->all_next)
		uhmm_mutex_lock(&mm->lock);
}

static void unlock_all_mms(void)
{
	for (struct uhmm_mm *mm = all_mms; mm; mm = mm->all_next)
		uhmm_mutex_unlock(&mm->lock);
}

static const struct uhmm_fork_ops *fork_ops;	/* atomic, set once */
/* [all_lock] the ops this fork's prepare handler called: parent and
 * child call the same, even if registered in between. */
static const struct uhmm_fork_ops *fork_ops_now;

int uhmm_fork_ops_register(const struct uhmm_fork_ops *ops)
{
	const struct uhmm_fork_ops *none = NULL;

	return __atomic_compare_exchange_n(&fork_ops, &none, ops, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
		       ? 0 : -EBUSY;
}

/*
 * fork() write-protects the parent's private memory, and the kernel tells
 * its secondary MMUs (mm/memory.c, copy_page_range()):
 *
 *	if (is_cow) {
 *		mmu_notifier_range_init(&range, MMU_NOTIFY_PROTECTION_PAGE,
 *					0, src_mm, addr, end);
 *		mmu_notifier_invalidate_range_start(&range);
 *
 * Here the prepare handler has the fork ops open those windows first
 * (their callbacks may take device locks, so no mm lock is held yet),
 * then takes every mm lock as before and has them check, under the locks,
 * that nothing slipped in meanwhile. all_lock stays held across fork(),
 * so forks are serialised and the list of mms, and the fork ops' record
 * of the windows, stay put.
 */
static void fork_prepare(void)
{
	const struct uhmm_fork_ops *ops;

	uhmm_mutex_lock(&all_lock);
	ops = fork_ops_now = __atomic_load_n(&fork_ops, __ATOMIC_ACQUIRE);
	if (!ops) {
		lock_all_mms();
		return;
	}
	ops->prepare(all_mms);
	for (;;) {
		ops->open();
		lock_all_mms();
		if (ops->check())
			break;
		unlock_all_mms();
	}
}

/*
 * The copy is done: close the windows, as the kernel does after it, once
 * the mm locks are dropped (closing one takes its lock). uhmm_forks moves
 * first, so a read that waited for a window to close sees the fork and
 * treats anonymous pages as shared copy-on-write (range/fault.c).
 */
static void fork_parent(void)
{
	const struct uhmm_fork_ops *ops = fork_ops_now;

	__atomic_fetch_add(&uhmm_forks, 1, __ATOMIC_RELAXED);
	unlock_all_mms();
	if (ops)
		ops->parent();
	uhmm_mutex_unlock(&all_lock);
}

static void fork_child(void)
{
	const struct uhmm_fork_ops *ops = fork_ops_now;

	__atomic_store_n(&uhmm_fork_gen, uhmm_fork_gen + 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&uhmm_forks, 1, __ATOMIC_RELAXED);
	for (struct uhmm_mm *mm = all_mms; mm; mm = mm->all_next) {
		uhmm_mutex_init(&mm->lock);
		uhmm_cond_init_monotonic(&mm->wq);
	}
	uhmm_mutex_init(&all_lock);
	/* The windows were the parent's: notifier.c ends the copies. */
	if (ops)
		ops->child();
}

/*
 * At load time, not at first open: range fault needs to know of every
 * fork since (uhmm_forks), because it leaves anonymous pages shared
 * copy-on-write with the other process.
 */
__attribute__((constructor)) static void atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int uhmm_mm_open_source(struct uhmm_mm **mmp, unsigned int flags,
			const struct uhmm_source_ops *ops)
{
	struct uhmm_mm *mm;
	int ret;

	const unsigned int strictness = UHMM_MM_STRICT | UHMM_MM_RELAXED;

	if (!mmp || (flags & ~(UHMM_MM_NO_MONITOR | strictness)) ||
	    (flags & strictness) == strictness)
		return -EINVAL;

	mm = uhmm_calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	if (uhmm_mutex_init(&mm->lock)) {
		free(mm);
		return -ENOMEM;
	}
	if (uhmm_cond_init_monotonic(&mm->wq)) {
		uhmm_mutex_destroy(&mm->lock);
		free(mm);
		return -ENOMEM;
	}
	mm->invalidate_seq = UHMM_SEQ_INIT;
	mm->itree = (struct uhmm_itree)UHMM_ITREE_INIT;
	mm->users = 1;
	mm->count = 1;
	mm->flags = flags;
	mm->strict = (flags & UHMM_MM_STRICT) ||
		     (!(flags & UHMM_MM_RELAXED) && uhmm_option(UHMM_OPT_STRICT));

	uhmm_mutex_lock(&all_lock);
	mm->fork_gen = uhmm_fork_gen;
	mm->all_next = all_mms;
	if (all_mms)
		all_mms->all_pprev = &mm->all_next;
	mm->all_pprev = &all_mms;
	all_mms = mm;
	uhmm_mutex_unlock(&all_lock);

	if (ops) {
		ret = ops->attach(mm, &mm->source);
		if (!ret && mm->strict)
			ret = uhmm_mm_strict_init(mm);
		if (ret) {
			if (mm->source)
				mm->source->ops->detach(mm->source, mm);
			uhmm_mm_drop(mm);
			return ret;
		}
	}
	*mmp = mm;
	return 0;
}

int uhmm_mm_strict_init(struct uhmm_mm *mm)
{
	struct uhmm_source *src = mm->source;

	return src && src->ops->strict_init ? src->ops->strict_init(src) : 0;
}

void uhmm_mm_grab(struct uhmm_mm *mm)
{
	__atomic_fetch_add(&mm->count, 1, __ATOMIC_RELAXED);
}

void uhmm_mm_drop(struct uhmm_mm *mm)
{
	long count = __atomic_sub_fetch(&mm->count, 1, __ATOMIC_ACQ_REL);

	UHMM_WARN_ON(count < 0);
	if (count)
		return;
	uhmm_mutex_lock(&all_lock);
	*mm->all_pprev = mm->all_next;
	if (mm->all_next)
		mm->all_next->all_pprev = mm->all_pprev;
	uhmm_mutex_unlock(&all_lock);
	pthread_cond_destroy(&mm->wq);
	uhmm_mutex_destroy(&mm->lock);
	free(mm);
}

/* Move users from a positive value by delta; false if it was zero. */
static bool users_add_unless_zero(struct uhmm_mm *mm, int delta, int *now)
{
	int old = __atomic_load_n(&mm->users, __ATOMIC_RELAXED);

	do {
		if (old == 0)
			return false;
	} while (!__atomic_compare_exchange_n(&mm->users, &old, old + delta,
					      false, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	*now = old + delta;
	return true;
}

/* See internal.h: a fork child's copy is released here. */
int uhmm_mm_enter(struct uhmm_mm *mm)
{
	if (!uhmm_mm_forked(mm))
		return 0;
	uhmm_notifier_release_child(mm);
	return -ECHILD;
}

/* 0 if mm is a valid mm of this process, else the error to return. */
static int mm_usable(struct uhmm_mm *mm)
{
	return mm ? uhmm_mm_enter(mm) : -EINVAL;
}

int uhmm_mm_get(struct uhmm_mm *mm)
{
	int now, ret = mm_usable(mm);

	if (ret)
		return ret;
	return users_add_unless_zero(mm, 1, &now) ? 0 : -ESRCH;
}

int uhmm_mm_close(struct uhmm_mm *mm)
{
	int now, ret = mm_usable(mm);

	if (ret)
		return ret;
	/* The release below waits for the window this thread is part of. */
	if (uhmm_in_callback())
		return -EDEADLK;
	if (!users_add_unless_zero(mm, -1, &now))
		return -ESRCH;
	if (now == 0) {
		uhmm_notifier_release(mm);
		if (mm->source)
			mm->source->ops->detach(mm->source, mm);
		uhmm_mm_drop(mm);
	}
	return 0;
}

int uhmm_mm_sync(struct uhmm_mm *mm)
{
	int ret = mm_usable(mm);

	if (ret)
		return ret;
	if (!__atomic_load_n(&mm->users, __ATOMIC_ACQUIRE))
		return -ESRCH;
	if (uhmm_in_callback())
		return -EDEADLK;
	/* Explicit invalidations are dispatched before they return. */
	if (!mm->source)
		return 0;
	return mm->source->ops->sync(mm->source);
}
