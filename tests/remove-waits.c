/* SPDX-License-Identifier: MIT */
/*
 * Invariant 5: after remove returns, no callback for the subscription is
 * running or will run. Remove waits for an open window that may be calling
 * it; removing a still-deferred insert does not wait; remove from inside a
 * callback is refused with -EDEADLK instead of deadlocking.
 */
#include <semaphore.h>

#include "core/internal.h"
#include "device.h"
#include "invariant.h"

static sem_t in_callback, let_go;
static int callback_done;	/* atomic */

/* A slow callback: blocks until the test lets it go. */
static bool slow(struct t_dev *dev, const struct uhmm_notifier_range *r)
{
	(void)dev;
	(void)r;
	sem_post(&in_callback);
	sem_wait(&let_go);
	__atomic_store_n(&callback_done, 1, __ATOMIC_RELEASE);
	return true;
}

static int remove_ret = 1;
static bool remove_from_callback(struct t_dev *dev,
				 const struct uhmm_notifier_range *r)
{
	(void)r;
	remove_ret = uhmm_interval_notifier_remove(&dev->sub);
	return true;
}

struct remover {
	struct t_dev *dev;
	pid_t tid;		/* atomic */
	int ret;
	int callback_done_at_return;
};

static void *remover_main(void *arg)
{
	struct remover *rm = arg;

	__atomic_store_n(&rm->tid, t_gettid(), __ATOMIC_RELEASE);
	rm->ret = uhmm_interval_notifier_remove(&rm->dev->sub);
	rm->callback_done_at_return =
		__atomic_load_n(&callback_done, __ATOMIC_ACQUIRE);
	return NULL;
}

static void *invalidator_main(void *arg)
{
	CHECK_EQ(uhmm_mm_invalidate(arg, 0x1000, 0x2000, UHMM_EVENT_UNMAP), 0);
	return NULL;
}

static pid_t start_remover(pthread_t *th, struct remover *rm)
{
	pid_t tid;

	REQUIRE(pthread_create(th, NULL, remover_main, rm) == 0);
	while (!(tid = __atomic_load_n(&rm->tid, __ATOMIC_ACQUIRE)))
		usleep(1000);
	return tid;
}

int main(void)
{
	struct uhmm_notifier_range w = { .start = 0x1000, .end = 0x2000,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct remover rm = { .dev = &a };
	struct uhmm_mm *mm;
	pthread_t th, inv;

	sem_init(&in_callback, 0, 0);
	sem_init(&let_go, 0, 0);
	mm = t_open_variant();

	/* (1) A callback is running: remove waits until it has finished. */
	REQUIRE(t_dev_insert(&a, mm, 0x1000, 0x1000) == 0);
	a.hook = slow;
	REQUIRE(pthread_create(&inv, NULL, invalidator_main, mm) == 0);
	sem_wait(&in_callback);
	t_wait_blocked(start_remover(&th, &rm));
	sem_post(&let_go);
	pthread_join(th, NULL);
	pthread_join(inv, NULL);
	CHECK_EQ(rm.ret, 0);
	CHECK_EQ(rm.callback_done_at_return, 1);
	CHECK_EQ(t_dev_calls(&a), 1);
	/* Removed: later windows do not call it. */
	REQUIRE(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&a), 1);

	/* (2) A window that hit b is open: remove waits for its end. */
	REQUIRE(t_dev_insert(&b, mm, 0x1000, 0x1000) == 0);
	REQUIRE(uhmm_mm_invalidate_start(mm, &w) == 0);
	rm = (struct remover){ .dev = &b };
	t_wait_blocked(start_remover(&th, &rm));
	uhmm_mutex_lock(&mm->lock);
	CHECK_EQ(b.sub.state, UHMM_SUB_DEFERRED_REMOVE);
	uhmm_mutex_unlock(&mm->lock);
	/* Still in the frozen tree, so a concurrent window may call it. */
	REQUIRE(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&b), 2);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w) == 0);
	pthread_join(th, NULL);
	CHECK_EQ(rm.ret, 0);
	REQUIRE(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&b), 2);

	/* (3) A deferred insert is removed at once, without waiting: this
	 * thread holds the window open, so a wait would never end. */
	REQUIRE(t_dev_insert(&c, mm, 0x1000, 0x1000) == 0);
	REQUIRE(uhmm_mm_invalidate_start(mm, &w) == 0);
	REQUIRE(t_dev_insert(&d, mm, 0x1000, 0x1000) == 0);
	CHECK_EQ(d.sub.state, UHMM_SUB_DEFERRED_INSERT);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), 0);
	REQUIRE(uhmm_mm_invalidate_end(mm, &w) == 0);
	REQUIRE(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&d), 0);

	/* (4) Remove from a callback is refused; the sub stays inserted. */
	c.hook = remove_from_callback;
	REQUIRE(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(remove_ret, -EDEADLK);
	c.hook = NULL;
	int before = t_dev_calls(&c);
	REQUIRE(uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP) == 0);
	CHECK_EQ(t_dev_calls(&c), before + 1);
	CHECK_EQ(uhmm_interval_notifier_remove(&c.sub), 0);

	/* (5) Removed subs are gone for good; a second remove says so. */
	CHECK_EQ(uhmm_interval_notifier_remove(&a.sub), -ENOENT);
	CHECK_EQ(uhmm_interval_notifier_remove(&d.sub), -ENOENT);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
