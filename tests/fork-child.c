/* SPDX-License-Identifier: MIT */
/*
 * Fork: an mm belongs to the process that opened it. In the child the
 * copy is dead - its mappings lost their userfaultfd registration and the
 * reader thread does not exist - so its subscriptions get one
 * UHMM_EVENT_RELEASE, every call on it returns -ECHILD (remove still
 * works), unmapping inherited memory does not hang, and a fresh mm works
 * normally. The parent hears only that fork() write-protected its private
 * memory (tests/fork-write-protect.c).
 */
#include <limits.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "core/internal.h"
#include "device.h"

static long page;

static char *map(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	memset(p, 1, len);
	return p;
}

static int child(struct uhmm_mm *old, struct t_dev *dev, char *mem,
		 struct uhmm_mm *explicit_mm, struct t_dev *explicit_dev)
{
	struct uhmm_notifier_range r = { .start = 0, .end = 1,
		.event = UHMM_EVENT_UNMAP, .flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev other = { 0 }, fresh_dev = { 0 };
	struct uhmm_mm *fresh;
	unsigned long seq;

	/* The first touch releases the copy, once; read_begin never waits.
	 * (The other call is the parent's UHMM_EVENT_PROTECTION at fork:
	 * mem is private memory, now shared copy-on-write.) */
	seq = uhmm_interval_read_begin(&dev->sub);
	CHECK_EQ(dev->release_calls, 1);
	CHECK_EQ(dev->calls, 2);
	CHECK_EQ(dev->last_range.event, UHMM_EVENT_RELEASE);
	CHECK_EQ(dev->last_range.start, 0);
	CHECK_EQ(dev->last_range.end, ULONG_MAX);
	CHECK(uhmm_interval_read_retry(&dev->sub, seq) == false);

	CHECK_EQ(uhmm_mm_sync(old), -ECHILD);
	CHECK_EQ(uhmm_mm_get(old), -ECHILD);
	CHECK_EQ(uhmm_mm_close(old), -ECHILD);
	CHECK_EQ(uhmm_mm_invalidate(old, 0, 1, UHMM_EVENT_UNMAP), -ECHILD);
	CHECK_EQ(uhmm_mm_invalidate_start(old, &r), -ECHILD);
	CHECK_EQ(t_dev_insert(&other, old, (unsigned long)mem, page), -ECHILD);
	CHECK_EQ(uhmm_interval_notifier_arm(&dev->sub), -ECHILD);
	CHECK_EQ(dev->release_calls, 1);

	/* Inherited mappings are not registered in the child: no hang, and
	 * the dead copy hears nothing. */
	REQUIRE(munmap(mem, page) == 0);
	CHECK_EQ(dev->calls, 2);
	CHECK_EQ(uhmm_interval_notifier_remove(&dev->sub), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&dev->sub), -ENOENT);

	/* A window that was open in the parent at fork() is ended here. */
	CHECK_EQ(uhmm_interval_read_begin(&explicit_dev->sub) & 1, 1);
	CHECK_EQ(explicit_dev->release_calls, 1);
	CHECK_EQ(uhmm_mm_invalidate(explicit_mm, 0, 1, UHMM_EVENT_UNMAP),
		 -ECHILD);
	CHECK_EQ(uhmm_interval_notifier_remove(&explicit_dev->sub), 0);

	/* The child's own mm works like any. */
	REQUIRE(uhmm_mm_open(&fresh, 0) == 0);
	CHECK(fresh->source != old->source);
	char *p = map(2 * page);
	REQUIRE(t_dev_insert(&fresh_dev, fresh, (unsigned long)p, 2 * page) == 0);
	REQUIRE(munmap(p + page, page) == 0);
	uhmm_interval_read_begin(&fresh_dev.sub);
	CHECK_EQ(fresh_dev.calls, 1);
	CHECK_EQ(fresh_dev.last_range.event, UHMM_EVENT_UNMAP);
	CHECK_EQ(fresh_dev.last_range.start, (unsigned long)p + page);
	CHECK_EQ(fresh_dev.last_range.end, (unsigned long)p + 2 * page);
	CHECK_EQ(uhmm_interval_notifier_remove(&fresh_dev.sub), 0);
	CHECK_EQ(uhmm_mm_close(fresh), 0);
	REQUIRE(munmap(p, page) == 0);
	return t_result();
}

int main(void)
{
	struct uhmm_notifier_range open_window = { .start = 0x1000,
		.end = 0x2000, .event = UHMM_EVENT_UNMAP,
		.flags = UHMM_RANGE_BLOCKABLE };
	struct t_dev dev = { 0 }, explicit_dev = { 0 };
	struct uhmm_mm *mm, *explicit_mm;
	int status, ret;
	char *mem;
	pid_t pid;

	page = sysconf(_SC_PAGESIZE);
	ret = uhmm_mm_open(&mm, 0);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		SKIP("no userfaultfd event source here (%s)", strerror(-ret));
	REQUIRE(ret == 0);
	mem = map(4 * page);
	REQUIRE(t_dev_insert(&dev, mm, (unsigned long)mem, 4 * page) == 0);

	/* An explicit mm with a window held open across fork(). */
	REQUIRE(uhmm_mm_open(&explicit_mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(t_dev_insert(&explicit_dev, explicit_mm, 0x1000, 0x1000) == 0);
	REQUIRE(uhmm_mm_invalidate_start(explicit_mm, &open_window) == 0);

	/* uhmm's threads idle: GCC 12's ASan allocator is not fork-safe
	 * while another thread allocates. */
	REQUIRE(uhmm_mm_sync(mm) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(child(mm, &dev, mem, explicit_mm, &explicit_dev));

	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* The parent heard only fork()'s write protection of its private
	 * memory, and still hears its own unmaps. */
	REQUIRE(uhmm_mm_invalidate_end(explicit_mm, &open_window) == 0);
	CHECK_EQ(dev.calls, 1);
	CHECK_EQ(dev.last_range.event, UHMM_EVENT_PROTECTION);
	REQUIRE(munmap(mem, page) == 0);
	uhmm_interval_read_begin(&dev.sub);
	CHECK_EQ(dev.calls, 2);
	CHECK_EQ(dev.last_range.event, UHMM_EVENT_UNMAP);
	CHECK_EQ(dev.last_range.start, (unsigned long)mem);
	CHECK_EQ(dev.release_calls, 0);

	CHECK_EQ(uhmm_interval_notifier_remove(&dev.sub), 0);
	CHECK_EQ(uhmm_interval_notifier_remove(&explicit_dev.sub), 0);
	CHECK_EQ(uhmm_mm_close(mm), 0);
	CHECK_EQ(uhmm_mm_close(explicit_mm), 0);
	REQUIRE(munmap(mem + page, 3 * page) == 0);
	return t_result();
}
