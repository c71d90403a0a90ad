/* SPDX-License-Identifier: MIT */
/*
 * Interval notifiers and invalidation windows: the collision-retry lock.
 *
 * This is the kernel's mmu_interval_notifier algorithm (mm/mmu_notifier.c),
 * restated for user space. An invalidation is a *window*: it opens, calls
 * the callback of every subscription overlapping its range, and closes once
 * the change it reports is complete. Windows may overlap in time.
 *
 * mm->invalidate_seq moves through three states:
 *
 *   idle         even; no window is open.
 *   open, miss   even; windows are open, none overlapped a subscription.
 *                Nothing is walking the tree, so inserts and removes still
 *                apply at once; an insert makes the mm "colliding" (below),
 *                because an open window may cover the new range.
 *   colliding    odd; at least one open window hit a subscription. Windows
 *                walk the tree without the lock, so the tree is frozen:
 *                inserts and removes go to the deferred list.
 *
 * Only the close of the *last* open window moves colliding -> idle: it
 * increments the seq (odd -> even), applies the deferred list and wakes
 * every waiter. So the seq changes exactly once per collision, however
 * many windows overlapped in it.
 *
 * A subscription's seq is always odd. A callback stores the window's odd
 * seq in it with uhmm_interval_set_seq() under the device lock. Then:
 *
 *   read_begin():  s = sub seq. If s equals the mm seq, the callback has
 *                  already run in the window that is still open: wait
 *                  until the mm seq moves on, then return s.
 *   read_retry():  under the device lock, sub seq != s means a callback
 *                  ran after read_begin(): the read collided.
 *
 * read_begin() reads sub seq and then mm seq without the lock. If a window
 * slips in between the two loads, either its callback has not run (and
 * read_retry() will see it), or the sub seq load already saw its seq and
 * then, by the acquire/release pairing with set_seq, the mm seq load sees
 * that window still open and waits. The mm seq can only leave that value
 * when the window closes, so the answer is never stale; the device lock in
 * read_retry() is what finally orders the commit against the zap.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "core/internal.h"

#define sub_of(n) uhmm_container_of(n, struct uhmm_interval_notifier, node)

/*
 * The mm whose callback this thread is running (innermost), or NULL.
 * Refuses the calls that would wait for the window the thread is part of.
 */
static __thread struct uhmm_mm *callback_mm
	__attribute__((tls_model("initial-exec")));

bool uhmm_in_callback(void)
{
	return callback_mm != NULL;
}

unsigned long uhmm_mm_seq(struct uhmm_mm *mm)
{
	return READ_ONCE_ACQ(mm->invalidate_seq);
}

static bool mm_colliding(const struct uhmm_mm *mm)
{
	return mm->invalidate_seq & 1;
}

static void deferred_add_locked(struct uhmm_mm *mm,
				struct uhmm_interval_notifier *sub)
{
	uhmm_lock_assert_held(&mm->lock);

	sub->deferred_next = mm->deferred_list;
	if (mm->deferred_list)
		mm->deferred_list->deferred_pprev = &sub->deferred_next;
	mm->deferred_list = sub;
	sub->deferred_pprev = &mm->deferred_list;
}

static void deferred_del_locked(struct uhmm_interval_notifier *sub)
{
	*sub->deferred_pprev = sub->deferred_next;
	if (sub->deferred_next)
		sub->deferred_next->deferred_pprev = sub->deferred_pprev;
	sub->deferred_next = NULL;
	sub->deferred_pprev = NULL;
}

/*
 * Under mm->lock, once the last window of a collision has closed. Returns
 * the subscriptions removed with uhmm_interval_notifier_remove_deferred(),
 * linked through deferred_next, for removed_finish() once the lock is
 * dropped (a synchronous remove finishes its own).
 */
static struct uhmm_interval_notifier *apply_deferred_locked(struct uhmm_mm *mm)
{
	struct uhmm_interval_notifier *sub, *removed = NULL;

	uhmm_lock_assert_held(&mm->lock);
	while ((sub = mm->deferred_list)) {
		deferred_del_locked(sub);
		if (sub->state == UHMM_SUB_DEFERRED_INSERT) {
			uhmm_itree_insert(&mm->itree, &sub->node);
			sub->state = UHMM_SUB_LINKED;
			continue;
		}
		uhmm_itree_remove(&mm->itree, &sub->node);
		sub->state = UHMM_SUB_UNLINKED;
		if (sub->removed) {
			sub->deferred_next = removed;
			removed = sub;
		}
	}
	return removed;
}

/*
 * Deferred removals that took effect (a list through deferred_next), with
 * no lock held: their done functions run on the source's thread, which
 * holds nothing a caller of remove_deferred() may hold - or here, for an
 * mm without one (and in a fork child, whose copy has none).
 */
static void removed_finish(struct uhmm_interval_notifier *list)
{
	while (list) {
		struct uhmm_interval_notifier *sub = list;
		struct uhmm_source *src = sub->mm->source;

		list = sub->deferred_next;
		sub->deferred_next = NULL;
		if (src && src->ops->defer && !uhmm_mm_forked(sub->mm))
			src->ops->defer(src, sub);
		else
			uhmm_notifier_removed(sub);
	}
}

void uhmm_notifier_removed(struct uhmm_interval_notifier *sub)
{
	struct uhmm_mm *mm = sub->mm;
	void (*done)(struct uhmm_interval_notifier *) = sub->removed;

	if (mm->source && !uhmm_mm_forked(mm))
		mm->source->ops->disarm(mm->source, sub);
	__atomic_store_n(&sub->removed, NULL, __ATOMIC_RELAXED);
	sub->mm = NULL;
	uhmm_mm_drop(mm);
	done(sub);
}

/*
 * Open a window over [start, last]. Returns the first subscription it hits
 * (then the mm is colliding and *seq is its odd seq), NULL if none.
 */
/* Model (models/notifier.pml): WINDOW_OPEN. */
static struct uhmm_itree_node *window_open_locked(struct uhmm_mm *mm,
						  unsigned long start,
						  unsigned long last,
						  unsigned long *seq)
{
	struct uhmm_itree_node *first;

	struct uhmm_insert_check *check;

	uhmm_lock_assert_held(&mm->lock);
	mm->active_invalidate_ranges++;
	for (check = mm->insert_checks; check; check = check->next)
		check->hit |= check->start <= last && start <= check->last;
	first = uhmm_itree_first(&mm->itree, start, last);
	if (first && !mm_colliding(mm))
		WRITE_ONCE_REL(mm->invalidate_seq, mm->invalidate_seq | 1);
	*seq = mm->invalidate_seq;
	return first;
}

/* Model (models/notifier.pml): WINDOW_CLOSE, apply_deferred_locked() too. */
static void window_close(struct uhmm_mm *mm)
{
	struct uhmm_interval_notifier *removed = NULL;
	bool wake = false;

	uhmm_mutex_lock(&mm->lock);
	UHMM_WARN_ON(mm->active_invalidate_ranges == 0);
	if (--mm->active_invalidate_ranges == 0) {
		if (mm_colliding(mm)) {
			WRITE_ONCE_REL(mm->invalidate_seq,
				       mm->invalidate_seq + 1);
			removed = apply_deferred_locked(mm);
			wake = true;
		}
		/* uhmm_notifier_release() waits for the last window. */
		wake |= mm->dead;
	}
	uhmm_mutex_unlock(&mm->lock);
	if (wake)
		pthread_cond_broadcast(&mm->wq);
	removed_finish(removed);
}

/*
 * Call every subscription overlapping [start, last] from first on. The tree
 * is frozen (the mm is colliding), so it is walked without the lock.
 * Returns -EAGAIN if a non-blockable callback refused; the caller closes.
 */
/* Model (models/notifier.pml): the callback steps of dispatch(). */
static int window_call(struct uhmm_mm *mm, struct uhmm_notifier_range *range,
		       struct uhmm_itree_node *node, unsigned long last,
		       unsigned long seq)
{
	struct uhmm_mm *outer = callback_mm;
	int ret = 0;

	callback_mm = mm;
	for (; node; node = uhmm_itree_next(node, range->start, last)) {
		struct uhmm_interval_notifier *sub = sub_of(node);

		/* Removed with remove_deferred() before this window opened
		 * (or while it walks the tree): no new call (uhmm.h). */
		if (__atomic_load_n(&sub->removed, __ATOMIC_RELAXED))
			continue;
		if (sub->ops->invalidate(sub, range, seq))
			continue;
		if (!uhmm_range_blockable(range)) {
			ret = -EAGAIN;
			break;
		}
		/* Refusing a blockable window is the callback's bug: the
		 * window cannot be undone, so finish it and report. */
		range->private_ |= UHMM_WINDOW_CALLBACK_BUG;
	}
	callback_mm = outer;
	return ret;
}

static bool event_valid(enum uhmm_event event)
{
	return event >= UHMM_EVENT_UNMAP && event < UHMM_EVENT_RELEASE;
}

int uhmm_mm_invalidate_start(struct uhmm_mm *mm,
			     struct uhmm_notifier_range *range)
{
	struct uhmm_itree_node *first;
	unsigned long seq;
	int ret;

	if (!mm || !range || range->end <= range->start ||
	    !event_valid(range->event) ||
	    (range->flags & ~UHMM_RANGE_BLOCKABLE) ||
	    (range->private_ & UHMM_WINDOW_OPEN))
		return -EINVAL;
	ret = uhmm_mm_enter(mm);
	if (ret)
		return ret;

	uhmm_mutex_lock(&mm->lock);
	if (mm->dead) {
		uhmm_mutex_unlock(&mm->lock);
		return -ESRCH;
	}
	first = window_open_locked(mm, range->start, range->end - 1, &seq);
	uhmm_mutex_unlock(&mm->lock);

	range->mm = mm;
	range->private_ = UHMM_WINDOW_OPEN;
	ret = window_call(mm, range, first, range->end - 1, seq);
	if (ret) {
		/* The non-blocking caller may not call _end(): close here. */
		range->private_ = 0;
		window_close(mm);
	}
	return ret;
}

int uhmm_mm_invalidate_end(struct uhmm_mm *mm,
			   struct uhmm_notifier_range *range)
{
	bool bug;

	if (!mm || !range || range->mm != mm ||
	    !(range->private_ & UHMM_WINDOW_OPEN))
		return -EINVAL;
	if (uhmm_mm_enter(mm))
		return -ECHILD;
	bug = range->private_ & UHMM_WINDOW_CALLBACK_BUG;
	range->private_ = 0;
	window_close(mm);
	return bug ? -EPROTO : 0;
}

int uhmm_mm_invalidate(struct uhmm_mm *mm, unsigned long start,
		       unsigned long end, enum uhmm_event event)
{
	struct uhmm_notifier_range range = {
		.start = start,
		.end = end,
		.event = event,
		.flags = UHMM_RANGE_BLOCKABLE,
	};
	int ret;

	ret = uhmm_mm_invalidate_start(mm, &range);
	if (ret)
		return ret;
	return uhmm_mm_invalidate_end(mm, &range);
}

/*
 * Called with mm->lock held, no window open and mm->dead set: run the one
 * RELEASE window over everything. Returns with the lock dropped.
 */
static void release_window(struct uhmm_mm *mm)
{
	struct uhmm_notifier_range range = {
		.mm = mm,
		.start = 0,
		.end = ULONG_MAX,
		.event = UHMM_EVENT_RELEASE,
		.flags = UHMM_RANGE_BLOCKABLE,
		.private_ = UHMM_WINDOW_OPEN,
	};
	struct uhmm_itree_node *first;
	unsigned long seq;

	first = window_open_locked(mm, 0, ULONG_MAX, &seq);
	uhmm_mutex_unlock(&mm->lock);
	window_call(mm, &range, first, ULONG_MAX, seq);
	window_close(mm);
}

void uhmm_notifier_release(struct uhmm_mm *mm)
{
	/*
	 * Refuse new windows and inserts, then let the open windows close so
	 * that their deferred inserts are in the tree: every subscription
	 * inserted before this point gets exactly one RELEASE, and none
	 * inserted after it exists.
	 */
	uhmm_mutex_lock(&mm->lock);
	mm->dead = true;
	while (mm->active_invalidate_ranges)
		uhmm_cond_wait(&mm->wq, &mm->lock);
	release_window(mm);
}

void uhmm_notifier_release_child(struct uhmm_mm *mm)
{
	struct uhmm_interval_notifier *removed = NULL;

	uhmm_mutex_lock(&mm->lock);
	if (mm->child_released) {
		uhmm_mutex_unlock(&mm->lock);
		return;
	}
	mm->child_released = true;
	/* Released in the parent before fork(), its RELEASE window closed:
	 * each subscription had its one RELEASE, and no other comes. */
	if (mm->dead && !mm->active_invalidate_ranges) {
		uhmm_mutex_unlock(&mm->lock);
		return;
	}
	mm->dead = true;
	/*
	 * Windows open in the parent at fork() never close here: their
	 * threads do not exist. End them now, as if they had.
	 */
	if (mm->active_invalidate_ranges) {
		mm->active_invalidate_ranges = 0;
		if (mm_colliding(mm)) {
			WRITE_ONCE_REL(mm->invalidate_seq,
				       mm->invalidate_seq + 1);
			removed = apply_deferred_locked(mm);
		}
	}
	release_window(mm);
	removed_finish(removed);
}

/*
 * UHMM_INSERT_REQUIRE_MAPPED: is every page of sub's range, armed, in a
 * mapping the source watches? The answer must hold from the check on, so
 * it is asked after arming - a mapping removed later sends its event -
 * and every window that opens over the range from before arming until sub
 * is linked, which would not call sub, marks the insert's check instead
 * (window_open_locked()): then the range changed, or may have, while it
 * was armed and checked, and the insert says -EAGAIN. That also covers a
 * mapping the source believed armed because an earlier unmap there was
 * not dispatched yet: its window comes after the check was added.
 */
static void insert_check_add(struct uhmm_mm *mm, struct uhmm_insert_check *c)
{
	uhmm_mutex_lock(&mm->lock);
	c->next = mm->insert_checks;
	mm->insert_checks = c;
	uhmm_mutex_unlock(&mm->lock);
}

/* Returns whether a window hit it. */
static bool insert_check_del_locked(struct uhmm_mm *mm,
				    struct uhmm_insert_check *c)
{
	struct uhmm_insert_check **pp;

	uhmm_lock_assert_held(&mm->lock);
	for (pp = &mm->insert_checks; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	return c->hit;
}

/* The source's answer, as insert_flags() returns it. */
static int check_mapped(struct uhmm_mm *mm, struct uhmm_interval_notifier *sub)
{
	switch (mm->source->ops->check_armed(mm->source, sub, sub->node.start,
					     uhmm_sub_end(sub))) {
	case 0:
		return 0;
	case -ENOENT:	/* a hole */
	case -EAGAIN:	/* a mapping not armed: created after arming */
		return -EFAULT;
	case -EBUSY:	/* not armed, and a change of the range is not yet
			 * dispatched: arming may have trusted what it
			 * replaced (the source's known mappings). Its window
			 * is still to come: as if it had opened. */
		return -EAGAIN;
	case -ENOTTY:	/* no PAGEMAP_SCAN: the check cannot be made */
		return -EOPNOTSUPP;
	default:
		return -ENOMEM;
	}
}

int uhmm_interval_notifier_insert(struct uhmm_interval_notifier *sub,
				  struct uhmm_mm *mm, unsigned long start,
				  unsigned long length,
				  const struct uhmm_interval_notifier_ops *ops)
{
	return uhmm_interval_notifier_insert_flags(sub, mm, start, length, ops,
						   0);
}

/* Model (models/notifier.pml): insert_B(); variant BAD_INSERT_IDLE_SEQ. */
int uhmm_interval_notifier_insert_flags(
	struct uhmm_interval_notifier *sub, struct uhmm_mm *mm,
	unsigned long start, unsigned long length,
	const struct uhmm_interval_notifier_ops *ops, unsigned int flags)
{
	bool require_mapped = flags & UHMM_INSERT_REQUIRE_MAPPED;
	struct uhmm_insert_check check = { 0 };
	unsigned long last;
	int ret;

	if (!sub || !mm || !ops || !ops->invalidate ||
	    (flags & ~UHMM_INSERT_REQUIRE_MAPPED))
		return -EINVAL;
	if (length == 0 || __builtin_add_overflow(start, length - 1, &last))
		return -EOVERFLOW;
	ret = uhmm_mm_enter(mm);
	if (ret)
		return ret;
	if (require_mapped && !mm->source)
		return -EOPNOTSUPP;

	sub->node.start = start;
	sub->node.last = last;
	sub->ops = ops;
	sub->deferred_next = NULL;
	sub->deferred_pprev = NULL;
	sub->removed = NULL;
	memset(sub->source_private, 0, sizeof(sub->source_private));

	if (require_mapped) {
		check.start = start;
		check.last = last;
		insert_check_add(mm, &check);
	}
	/* Armed before it can be called, so no change after insert()
	 * returns goes unseen. */
	if (mm->source)
		ret = mm->source->ops->arm(mm->source, mm, sub);
	if (!ret && require_mapped)
		ret = check_mapped(mm, sub);

	uhmm_mutex_lock(&mm->lock);
	/* The range changed meanwhile: whatever the check saw may be gone. */
	if (require_mapped && insert_check_del_locked(mm, &check) &&
	    (!ret || ret == -EFAULT))
		ret = -EAGAIN;
	if (mm->dead || ret) {
		uhmm_mutex_unlock(&mm->lock);
		if (mm->source)
			mm->source->ops->disarm(mm->source, sub);
		return ret ? ret : -ESRCH;
	}
	uhmm_mm_grab(mm);
	sub->mm = mm;
	if (mm->active_invalidate_ranges) {
		/*
		 * An open window may cover the new range and has not called
		 * it: start out colliding, so the first read_begin() waits
		 * for the window to close.
		 */
		if (mm_colliding(mm)) {
			deferred_add_locked(mm, sub);
			sub->state = UHMM_SUB_DEFERRED_INSERT;
		} else {
			WRITE_ONCE_REL(mm->invalidate_seq,
				       mm->invalidate_seq | 1);
			uhmm_itree_insert(&mm->itree, &sub->node);
			sub->state = UHMM_SUB_LINKED;
		}
		WRITE_ONCE_REL(sub->invalidate_seq, mm->invalidate_seq);
	} else {
		/* Odd, and not the mm seq for a long time to come. */
		WRITE_ONCE_REL(sub->invalidate_seq, mm->invalidate_seq - 1);
		uhmm_itree_insert(&mm->itree, &sub->node);
		sub->state = UHMM_SUB_LINKED;
	}
	uhmm_mutex_unlock(&mm->lock);
	return 0;
}

/* Model (models/notifier.pml): remove_B(); variant BAD_REMOVE_NO_WAIT,
 * checked by remove_while_cb and cb_after_remove. */
/*
 * Take sub out of mm, under mm->lock: at once if no window can be calling
 * it (1), else (0) when the last window open now closes, which then
 * finishes the removal (apply_deferred_locked()); -ENOENT if it is already
 * removed, or being removed by another thread.
 */
static int unlink_or_defer_locked(struct uhmm_mm *mm,
				  struct uhmm_interval_notifier *sub)
{
	uhmm_lock_assert_held(&mm->lock);
	switch (sub->state) {
	case UHMM_SUB_DEFERRED_INSERT:
		/* Never reached the tree, so no window can be calling it. */
		deferred_del_locked(sub);
		break;
	case UHMM_SUB_LINKED:
		if (mm_colliding(mm)) {
			deferred_add_locked(mm, sub);
			sub->state = UHMM_SUB_DEFERRED_REMOVE;
			return 0;
		}
		uhmm_itree_remove(&mm->itree, &sub->node);
		break;
	default:
		return -ENOENT;
	}
	sub->state = UHMM_SUB_UNLINKED;
	return 1;
}

int uhmm_interval_notifier_remove(struct uhmm_interval_notifier *sub)
{
	struct uhmm_mm *mm;
	unsigned long seq;
	bool forked;
	int ret;

	if (!sub)
		return -EINVAL;
	mm = sub->mm;
	if (!mm)
		return -ENOENT;
	/* Waiting below for the window this thread is part of never ends. */
	if (callback_mm)
		return -EDEADLK;
	/* In a fork child the copy is released first; removing still works. */
	forked = uhmm_mm_enter(mm) != 0;

	uhmm_mutex_lock(&mm->lock);
	ret = unlink_or_defer_locked(mm, sub);
	if (ret < 0) {
		uhmm_mutex_unlock(&mm->lock);
		return ret;
	}
	/* A window may be calling sub right now: wait until all have closed. */
	seq = ret ? 0 : mm->invalidate_seq;
	while (seq && mm->invalidate_seq == seq)
		uhmm_cond_wait(&mm->wq, &mm->lock);
	uhmm_mutex_unlock(&mm->lock);

	/* The parent's event source is not the child's to touch. */
	if (mm->source && !forked)
		mm->source->ops->disarm(mm->source, sub);
	sub->mm = NULL;
	uhmm_mm_drop(mm);
	return 0;
}

/*
 * remove() for a caller that may not wait: a callback (sub's own too), or
 * a thread holding a lock that callbacks take (libfabric's mm_lock). The
 * removal takes effect now, or - if windows may be calling sub - when the
 * last of them closes; then done(sub) runs where it may do anything a
 * thread outside uhmm may (removed_finish()).
 */
int uhmm_interval_notifier_remove_deferred(
	struct uhmm_interval_notifier *sub,
	void (*done)(struct uhmm_interval_notifier *sub))
{
	struct uhmm_mm *mm;
	int ret;

	if (!sub || !done)
		return -EINVAL;
	mm = sub->mm;
	if (!mm)
		return -ENOENT;
	/* In a fork child the copy is released first; removing still works. */
	uhmm_mm_enter(mm);

	uhmm_mutex_lock(&mm->lock);
	ret = unlink_or_defer_locked(mm, sub);
	if (ret >= 0)
		__atomic_store_n(&sub->removed, done, __ATOMIC_RELAXED);
	uhmm_mutex_unlock(&mm->lock);
	if (ret < 0)
		return ret;
	removed_finish(ret ? sub : NULL);
	return 0;
}

int uhmm_interval_notifier_arm(struct uhmm_interval_notifier *sub)
{
	struct uhmm_mm *mm;
	int ret;

	if (!sub)
		return -EINVAL;
	mm = sub->mm;
	if (!mm)
		return -ENOENT;
	ret = uhmm_mm_enter(mm);
	if (ret)
		return ret;
	return uhmm_mm_rearm(sub, sub->node.start, uhmm_sub_end(sub));
}

int uhmm_mm_rearm(struct uhmm_interval_notifier *sub, unsigned long start,
		  unsigned long end)
{
	struct uhmm_mm *mm = sub->mm;

	return mm->source ? mm->source->ops->rearm(mm->source, sub, start, end)
			  : 0;
}

int uhmm_mm_check_armed(struct uhmm_interval_notifier *sub,
			unsigned long start, unsigned long end)
{
	struct uhmm_mm *mm = sub->mm;
	int ret = mm->source ? mm->source->ops->check_armed(mm->source, sub,
							    start, end)
			     : 0;

	/* Armed now, whatever kept it from being armed before. */
	return ret == -EBUSY ? -EAGAIN : ret;
}

/*
 * read_begin with an optional CLOCK_MONOTONIC deadline (0: none). Returns 0
 * and sets *seqp, or -ETIMEDOUT.
 */
/* Model (models/notifier.pml): read_begin(); variant BAD_READ_BEGIN_NO_WAIT,
 * checked by rb_open_seq. */
int uhmm_interval_read_begin_until(struct uhmm_interval_notifier *sub,
				   unsigned long long deadline_ns,
				   unsigned long *seqp)
{
	struct uhmm_mm *mm = sub->mm;
	struct timespec ts = uhmm_deadline_ts(deadline_ns);
	unsigned long seq;
	int ret = 0;

	/* Events read but not yet dispatched count as not yet happened
	 * (core/source.h, the clock), and in strict mode those in flight;
	 * a fork child's copy is released and never waits. */
	if (uhmm_mm_forked(mm))
		uhmm_notifier_release_child(mm);
	else
		ret = uhmm_mm_wait_events(mm, mm->strict, sub->node.start,
					  uhmm_sub_end(sub), deadline_ns);
	if (ret)
		return ret;

	seq = READ_ONCE_ACQ(sub->invalidate_seq);
	*seqp = seq;
	UHMM_WARN_ON(!(seq & 1));	/* subscription seqs are odd */
	if (seq != READ_ONCE_ACQ(mm->invalidate_seq))
		return 0;

	UHMM_BUG_ON(callback_mm == mm,
		    "uhmm_interval_read_begin() from an invalidate callback "
		    "waits for its own window: deadlock");
	uhmm_mutex_lock(&mm->lock);
	while (mm->invalidate_seq == seq) {
		if (!deadline_ns) {
			uhmm_cond_wait(&mm->wq, &mm->lock);
		} else if (uhmm_cond_timedwait(&mm->wq, &mm->lock, &ts) ==
			   ETIMEDOUT) {
			ret = mm->invalidate_seq == seq ? -ETIMEDOUT : 0;
			break;
		}
	}
	uhmm_mutex_unlock(&mm->lock);
	return ret;
}

unsigned long uhmm_interval_read_begin(struct uhmm_interval_notifier *sub)
{
	unsigned long seq = 0;

	/* Without a deadline it cannot fail. */
	uhmm_interval_read_begin_until(sub, 0, &seq);
	return seq;
}

int uhmm_interval_read_begin_timeout(struct uhmm_interval_notifier *sub,
				     unsigned int timeout_ms,
				     unsigned long *seq)
{
	if (!sub || !seq)
		return -EINVAL;
	return uhmm_interval_read_begin_until(
		sub,
		timeout_ms ? uhmm_now_ns() +
				     (unsigned long long)timeout_ms * 1000000ULL
			   : 0,
		seq);
}

/* read_try_begin()'s second question: is a window open over sub? */
static inline int try_begin_seq(struct uhmm_interval_notifier *sub,
				struct uhmm_mm *mm, unsigned long *seqp)
{
	unsigned long seq = READ_ONCE_ACQ(sub->invalidate_seq);

	if (seq == READ_ONCE_ACQ(mm->invalidate_seq))
		return -EAGAIN;
	*seqp = seq;
	return 0;
}

/* A fork child's first touch, or reads not all done: ask the log. */
static __attribute__((noinline)) int
try_begin_slow(struct uhmm_interval_notifier *sub, struct uhmm_mm *mm,
	       unsigned long *seqp)
{
	if (uhmm_mm_forked(mm))
		uhmm_notifier_release_child(mm);
	else if (uhmm_clock_pending_range(&mm->source->clock,
					  sub->node.start, uhmm_sub_end(sub)))
		return -EAGAIN;
	return try_begin_seq(sub, mm, seqp);
}

/*
 * read_begin()'s two waits, as questions: the clock first (a munmap() that
 * returned was read before this load, and its window's set_seq is ordered
 * before the done_ticket that answers "not pending"), then the seqs.
 * Lock-free, and call-free when every read is done: a cache's hit path.
 */
int uhmm_interval_read_try_begin(struct uhmm_interval_notifier *sub,
				 unsigned long *seqp)
{
	struct uhmm_mm *mm;

	if (!sub || !seqp)
		return -EINVAL;
	mm = sub->mm;
	if (!mm)
		return -ENOENT;
	if (__builtin_expect(uhmm_mm_forked(mm) ||
			     (mm->source && uhmm_clock_busy(&mm->source->clock)),
			     0))
		return try_begin_slow(sub, mm, seqp);
	return try_begin_seq(sub, mm, seqp);
}

/* Model (models/notifier.pml): read_cycle()'s commit step (stale_commit). */
bool uhmm_interval_read_retry(struct uhmm_interval_notifier *sub,
			      unsigned long seq)
{
	return __atomic_load_n(&sub->invalidate_seq, __ATOMIC_RELAXED) != seq;
}

bool uhmm_interval_check_retry(struct uhmm_interval_notifier *sub,
			       unsigned long seq)
{
	return __atomic_load_n(&sub->invalidate_seq, __ATOMIC_ACQUIRE) != seq;
}

void uhmm_interval_set_seq(struct uhmm_interval_notifier *sub,
			   unsigned long cur_seq)
{
	/* A window's seq is the mm's while colliding: odd (invariant 1). */
	UHMM_BUG_ON(!(cur_seq & 1), "uhmm_interval_set_seq() with a seq that "
		    "no window passed to the callback");
	WRITE_ONCE_REL(sub->invalidate_seq, cur_seq);
}
