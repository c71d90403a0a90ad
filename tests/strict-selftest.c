/* SPDX-License-Identifier: MIT */
/*
 * Strict mode rests on one kernel detail: UFFDIO_COPY answers EAGAIN
 * while an event is in flight (src/prim/prim.h). Its self-test must pass
 * here (Linux 6.18 behaves so), and when the probe does not answer as it
 * should, strict mode must be refused with -EOPNOTSUPP - by the mm open
 * and by a strict cache - never run without it, while relaxed mode still
 * works. The self-test is run before anything strict is opened, and its
 * failure is faked with the test hook uhmm_prim_uffd_changing_break(): a
 * process keeps the first verdict, so each part forks a child.
 */
#include <sys/wait.h>

#include "rcache.h"
#include "prim/prim.h"

static void child_passes(void)
{
	struct uhmm_mm *mm;

	REQUIRE(uhmm_prim_uffd_changing_selftest() == 0);
	CHECK_EQ(t_open_flags(&mm, UHMM_MM_STRICT), 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
}

static void child_refuses(void)
{
	struct uhmm_rcache_config strict = { .flags = UHMM_RCACHE_STRICT };
	struct uhmm_rcache_config relaxed = { .flags = UHMM_RCACHE_RELAXED };
	struct uhmm_rcache *rc;
	struct t_fdev dev;
	struct uhmm_mm *mm;

	t_fdev_init(&dev);
	uhmm_prim_uffd_changing_break();
	REQUIRE(uhmm_prim_uffd_changing_selftest() == -EOPNOTSUPP);
	/* Strict by flag, and by default (UHMM_STRICT unset). */
	CHECK_EQ(uhmm_mm_open(&mm, UHMM_MM_STRICT), -EOPNOTSUPP);
	if (!getenv("UHMM_STRICT"))
		CHECK_EQ(uhmm_mm_open(&mm, 0), -EOPNOTSUPP);
	/* Relaxed works; a strict cache on it does not. */
	CHECK_EQ(uhmm_mm_open(&mm, UHMM_MM_RELAXED), 0);
	CHECK_EQ(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &dev, &strict),
		 -EOPNOTSUPP);
	CHECK_EQ(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &dev, &relaxed), 0);
	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	/* Without a kernel source there is nothing to be strict about. */
	CHECK_EQ(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR | UHMM_MM_STRICT), 0);
	CHECK_EQ(uhmm_rcache_create(&rc, mm, &t_fdev_ops, &dev, &strict), 0);
	CHECK_EQ(uhmm_rcache_destroy(rc), 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
}

static void run_child(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	REQUIRE(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(t_result());
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == T_SKIP)
		SKIP("the child skipped");
	CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, T_PASS);
}

int main(void)
{
	struct uhmm_mm *mm;
	int ret = uhmm_mm_open(&mm, UHMM_MM_RELAXED);

	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		SKIP("no userfaultfd event source here: %s", strerror(-ret));
	REQUIRE(ret == 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	CHECK_EQ(uhmm_mm_open(&mm, UHMM_MM_STRICT | UHMM_MM_RELAXED), -EINVAL);

	run_child(child_passes);
	run_child(child_refuses);
	return t_result();
}
