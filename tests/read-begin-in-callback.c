/* SPDX-License-Identifier: MIT */
/*
 * read_begin on the subscription being invalidated, from its own callback,
 * would wait for the window the callback is part of: a deadlock. Debug
 * builds catch it and abort with a message; release builds document the
 * rule. Run in a child, since the expected outcome is an abort.
 */
#include <signal.h>
#include <sys/wait.h>

#include "device.h"

static bool read_begin_again(struct t_dev *dev,
			     const struct uhmm_notifier_range *r)
{
	(void)r;
	uhmm_interval_read_begin(&dev->sub);
	return true;
}

int main(void)
{
#ifndef UHMM_DEBUG
	SKIP("built without UHMM_DEBUG: the check exists in debug builds only");
#endif
	struct t_dev dev = { 0 };
	struct uhmm_mm *mm;
	int status;
	pid_t pid;

	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(t_dev_insert(&dev, mm, 0x1000, 0x1000) == 0);
	dev.hook = read_begin_again;

	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		uhmm_mm_invalidate(mm, 0x1000, 0x2000, UHMM_EVENT_UNMAP);
		_exit(0);	/* not reached when the check works */
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);

	dev.hook = NULL;
	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}
