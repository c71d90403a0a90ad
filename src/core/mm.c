/* SPDX-License-Identifier: MIT */
/*
 * struct uhmm_mm lifetime: open, user references, release, free.
 * See the comment at struct uhmm_mm for the two reference counts.
 */
#include <errno.h>

#include "core/internal.h"

int uhmm_mm_open(struct uhmm_mm **mmp, unsigned int flags)
{
	struct uhmm_mm *mm;

	if (!mmp || (flags & ~UHMM_MM_NO_MONITOR))
		return -EINVAL;
	if (!(flags & UHMM_MM_NO_MONITOR))
		return -EOPNOTSUPP;

	mm = calloc(1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	if (pthread_mutex_init(&mm->lock, NULL)) {
		free(mm);
		return -ENOMEM;
	}
	if (pthread_cond_init(&mm->wq, NULL)) {
		pthread_mutex_destroy(&mm->lock);
		free(mm);
		return -ENOMEM;
	}
	mm->invalidate_seq = UHMM_SEQ_INIT;
	mm->itree = (struct uhmm_itree)UHMM_ITREE_INIT;
	mm->users = 1;
	mm->count = 1;
	mm->flags = flags;
	*mmp = mm;
	return 0;
}

void uhmm_mm_grab(struct uhmm_mm *mm)
{
	__atomic_fetch_add(&mm->count, 1, __ATOMIC_RELAXED);
}

void uhmm_mm_drop(struct uhmm_mm *mm)
{
	if (__atomic_sub_fetch(&mm->count, 1, __ATOMIC_ACQ_REL))
		return;
	pthread_cond_destroy(&mm->wq);
	pthread_mutex_destroy(&mm->lock);
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

int uhmm_mm_get(struct uhmm_mm *mm)
{
	int now;

	if (!mm)
		return -EINVAL;
	return users_add_unless_zero(mm, 1, &now) ? 0 : -ESRCH;
}

int uhmm_mm_close(struct uhmm_mm *mm)
{
	int now;

	if (!mm)
		return -EINVAL;
	/* The release below waits for the window this thread is part of. */
	if (uhmm_in_callback())
		return -EDEADLK;
	if (!users_add_unless_zero(mm, -1, &now))
		return -ESRCH;
	if (now == 0) {
		uhmm_notifier_release(mm);
		uhmm_mm_drop(mm);
	}
	return 0;
}

int uhmm_mm_sync(struct uhmm_mm *mm)
{
	if (!mm)
		return -EINVAL;
	if (!__atomic_load_n(&mm->users, __ATOMIC_ACQUIRE))
		return -ESRCH;
	/* Explicit invalidations are dispatched before they return. */
	return 0;
}
