/* SPDX-License-Identifier: MIT */
/*
 * The lock assertions of debug builds (core/lock.h) fire: a function that
 * must run under a lock aborts when called without it, or while another
 * thread holds it, and not when this thread holds it. Each bad case runs
 * in a child, which must die of SIGABRT. A release build has no
 * assertions: the test skips there.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/lock.h"
#include "test.h"

static struct uhmm_mutex lock = UHMM_MUTEX_INIT;
static pthread_mutex_t handoff = PTHREAD_MUTEX_INITIALIZER;

static void *hold_forever(void *arg)
{
	(void)arg;
	uhmm_mutex_lock(&lock);
	pthread_mutex_unlock(&handoff);
	pause();
	return NULL;
}

/* Run fn in a child; how it ended (the signal, or 0 for a clean exit). */
static int in_child(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	REQUIRE(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void not_held(void)
{
	uhmm_lock_assert_held(&lock);
}

static void held_by_other(void)
{
	pthread_t th;

	pthread_mutex_lock(&handoff);
	REQUIRE(pthread_create(&th, NULL, hold_forever, NULL) == 0);
	pthread_mutex_lock(&handoff);	/* the thread holds it now */
	uhmm_lock_assert_held(&lock);
}

static void held_here(void)
{
	uhmm_mutex_lock(&lock);
	uhmm_lock_assert_held(&lock);
	uhmm_mutex_unlock(&lock);
}

int main(void)
{
#ifndef UHMM_DEBUG
	SKIP("built without UHMM_DEBUG: lock assertions exist in debug builds "
	     "only");
#endif
	CHECK_EQ(in_child(not_held), SIGABRT);
	CHECK_EQ(in_child(held_by_other), SIGABRT);
	CHECK_EQ(in_child(held_here), 0);
	printf("lock assertions: abort without the lock and under another "
	       "thread's, pass under our own\n");
	return t_result();
}
