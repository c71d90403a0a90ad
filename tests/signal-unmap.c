/* SPDX-License-Identifier: MIT */
/*
 * munmap() from a signal handler, in the middle of uhmm calls: a thread
 * loops in uhmm_mm_sync() and uhmm_interval_read_begin(); its SIGUSR1
 * handler unmaps a subscribed page. munmap() is async-signal-safe, and
 * it sleeps until uhmm's reader has read its event, so the reader must
 * never wait for anything the interrupted thread may hold. When the
 * reader took the source's queue lock before read(), the process
 * deadlocked here within a few hundred signals.
 */
#include <signal.h>

#include "events.h"

#define SIGNALS 5000

static struct uhmm_mm *mm;
static struct t_dev looper_dev;	/* the looping thread's subscription */
static char *victim;		/* atomic: the page the handler unmaps */
static int handled;		/* atomic: handlers that returned */
static int stop;		/* atomic */

static void on_sigusr1(int sig)
{
	(void)sig;
	munmap(__atomic_load_n(&victim, __ATOMIC_ACQUIRE), t_page);
	__atomic_add_fetch(&handled, 1, __ATOMIC_RELEASE);
}

static void *looper(void *arg)
{
	unsigned long calls = 0;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		if (calls++ & 1)
			CHECK_EQ(uhmm_mm_sync(mm), 0);
		else
			uhmm_interval_read_begin(&looper_dev.sub);
	}
	return NULL;
}

int main(void)
{
	int n = (int)(SIGNALS * t_scale());
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	char *mine;
	pthread_t th;

	mm = t_open();
	mine = t_map(1);
	REQUIRE(t_dev_insert(&looper_dev, mm, (unsigned long)mine, t_page) ==
		0);
	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
	REQUIRE(pthread_create(&th, NULL, looper, NULL) == 0);

	for (int i = 1; i <= n; i++) {
		struct t_dev dev = { 0 };

		char *p = t_map(1);

		REQUIRE(t_dev_insert(&dev, mm, (unsigned long)p, t_page) == 0);
		__atomic_store_n(&victim, p, __ATOMIC_RELEASE);
		REQUIRE(pthread_kill(th, SIGUSR1) == 0);
		/* A deadlock hangs here (ctest's timeout ends it). */
		while (__atomic_load_n(&handled, __ATOMIC_ACQUIRE) != i)
			sched_yield();
		/* The unmap returned: its invalidation is visible. */
		uhmm_interval_read_begin(&dev.sub);
		pthread_mutex_lock(&dev.lock);
		CHECK_EQ(dev.calls, 1);
		CHECK_EQ(dev.last_range.event, UHMM_EVENT_UNMAP);
		pthread_mutex_unlock(&dev.lock);
		REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	printf("%d munmaps from a signal handler interrupting uhmm_mm_sync() "
	       "and uhmm_interval_read_begin(): no deadlock\n", n);

	REQUIRE(uhmm_interval_notifier_remove(&looper_dev.sub) == 0);
	munmap(mine, t_page);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
