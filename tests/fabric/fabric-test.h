/* SPDX-License-Identifier: MIT */
/*
 * What the tests of libfabric's MR cache under a memory monitor share
 * (mr-cache-steps.c, mr-cache-concurrency.c):
 *
 *  - the monitor under test, named by the program's argument: "uhmm"
 *    (uhmm_fabric_import() before the first fi_getinfo(), with
 *    FI_MR_CACHE_MONITOR unset, since libfabric prefers the variable), or
 *    "userfaultfd" / "memhooks" (libfabric's own, by FI_MR_CACHE_MONITOR,
 *    nothing imported);
 *  - a verbs FI_EP_DGRAM domain over fake-verbs.so (LD_PRELOAD), and a
 *    registration with what the fake device saw of it (its generation,
 *    and the first 8 bytes of the buffer when it registered);
 *  - a watchdog: each measurement runs in a child process, because the
 *    monitor is per process and because libfabric 1.17's userfaultfd
 *    monitor can hang a process for good (a page fault in a range it
 *    registered, which it never resolves). The parent waits for the
 *    child, and kills it when its progress counter has not moved for
 *    FT_STALL_SEC: a bound on silence, not on the test's duration, so a
 *    slow machine is never mistaken for a hang.
 *
 * Exit status of the programs: 0 pass, 1 fail, 77 skip (with the reason:
 * fake-verbs.so not preloaded, no uhmm adapter, no userfaultfd here).
 */
#ifndef UHMM_FABRIC_TEST_H
#define UHMM_FABRIC_TEST_H

#include <dlfcn.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "uhmm_fabric.h"
#include "../test.h"
#include "fake-verbs.h"

/* A child whose progress counter stays still this long is hung. */
#define FT_STALL_SEC	30

enum ft_monitor {
	FT_UHMM,
	FT_USERFAULTFD,
	FT_MEMHOOKS,
	FT_NMONITORS,
};

static const char *const ft_monitor_name[FT_NMONITORS] = {
	[FT_UHMM] = "uhmm",
	[FT_USERFAULTFD] = "userfaultfd",
	[FT_MEMHOOKS] = "memhooks",
};

static inline int ft_monitor_parse(const char *s)
{
	for (int m = 0; m < FT_NMONITORS; m++)
		if (s && !strcmp(s, ft_monitor_name[m]))
			return m;
	return -1;
}

/*
 * memhooks patches libc's madvise, among others, and glibc madvises the
 * stack of every thread that exits, after ThreadSanitizer has let go of
 * the thread: the hook's pthread_rwlock_rdlock then crashes TSan's
 * interceptor.
 */
#define FT_TSAN_MEMHOOKS                                                      \
	"libfabric's memhooks monitor under ThreadSanitizer: its madvise "    \
	"hook runs in exiting threads TSan has let go of, and crashes TSan"

/* The fake device's test API, found with dlsym (fake-verbs.h). */
static fake_verbs_mr_lookup_fn *ft_mr_lookup;
static fake_verbs_count_fn *ft_live_count;
static fake_verbs_count_fn *ft_reg_count;

/* Skip unless fake-verbs.so is preloaded. */
static inline void ft_need_fake_verbs(void)
{
	ft_mr_lookup = (fake_verbs_mr_lookup_fn *)dlsym(RTLD_DEFAULT,
						       "fake_verbs_mr_lookup");
	ft_live_count = (fake_verbs_count_fn *)dlsym(RTLD_DEFAULT,
						     "fake_verbs_live_count");
	ft_reg_count = (fake_verbs_count_fn *)dlsym(RTLD_DEFAULT,
						    "fake_verbs_reg_count");
	if (!ft_mr_lookup || !ft_live_count || !ft_reg_count)
		SKIP("fake-verbs.so is not preloaded (LD_PRELOAD)");
}

/*
 * Make mon libfabric's monitor for this process; before any other
 * libfabric call. Skips (exit 77) where it cannot be had.
 */
static inline void ft_monitor_start(int mon)
{
	int ret;

	if (mon != FT_UHMM) {
#ifdef __SANITIZE_THREAD__
		if (mon == FT_MEMHOOKS)
			SKIP(FT_TSAN_MEMHOOKS);
#endif
		setenv("FI_MR_CACHE_MONITOR", ft_monitor_name[mon], 1);
		return;
	}
	/* Set, the variable would win over the import, silently. */
	unsetenv("FI_MR_CACHE_MONITOR");
	ret = uhmm_fabric_import();
	if (ret == -ENOSYS)
		SKIP("uhmm_fabric_import: %s (no uhmm adapter in this "
		     "libuhmm_fabric, or libfabric < 1.13)", strerror(-ret));
	if (ret == -EPERM || ret == -EOPNOTSUPP)
		SKIP("uhmm_fabric_import: %s (no userfaultfd here)",
		     strerror(-ret));
	if (ret) {
		fprintf(stderr, "uhmm_fabric_import: %s\n", strerror(-ret));
		exit(T_FAIL);
	}
}

struct ft_domain {
	struct fi_info *hints, *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
};

/* A verbs FI_EP_DGRAM domain over the fake device (MR cache on). */
static inline void ft_domain_open(struct ft_domain *d)
{
	int ret;

	ret = fake_verbs_getinfo(&d->hints, &d->info);
	if (ret) {
		/* The shim is loaded: verbs must show up. */
		fprintf(stderr, "fi_getinfo(verbs, FI_EP_DGRAM): %s\n",
			fi_strerror(-ret));
		exit(T_FAIL);
	}
	REQUIRE(fi_fabric(d->info->fabric_attr, &d->fabric, NULL) == 0);
	REQUIRE(fi_domain(d->fabric, d->info, &d->domain, NULL) == 0);
}

/* Closing the domain flushes its cache: every fake registration goes. */
static inline void ft_domain_close(struct ft_domain *d)
{
	CHECK_EQ(fi_close(&d->domain->fid), 0);
	CHECK_EQ(ft_live_count(), 0);
	CHECK_EQ(fi_close(&d->fabric->fid), 0);
	fi_freeinfo(d->info);
	fi_freeinfo(d->hints);
}

/*
 * fi_mr_reg of [buf, buf + len), the fake registration under it into
 * *info, then fi_close. Returns 0, or fi_mr_reg's error (negative).
 */
static inline int ft_reg(struct ft_domain *d, void *buf, size_t len,
			 struct fake_verbs_mr_info *info)
{
	struct fid_mr *mr;
	int ret = fi_mr_reg(d->domain, buf, len, FI_SEND | FI_RECV, 0, 0, 0,
			    &mr, NULL);

	if (ret)
		return ret;
	ret = ft_mr_lookup((uint32_t)fi_mr_key(mr), info);
	if (ret) {
		/* We hold it: libfabric cannot have deregistered it. */
		fprintf(stderr, "key %#llx: no live fake registration\n",
			(unsigned long long)fi_mr_key(mr));
		exit(T_FAIL);
	}
	CHECK_EQ(fi_close(&mr->fid), 0);
	return 0;
}

/*
 * A PROT_NONE area of len bytes for buffers that will be unmapped and
 * mapped again at the same address, where nothing else takes their place
 * in between. The kernel gives a mapping without an address hint the
 * highest hole that fits: the hole a munmap just made, when it is
 * highest - and a mapping does come at that instant under ASan, whose
 * allocator maps memory for libfabric's userfaultfd thread as it reads
 * the unmap event. The area is put at the bottom of a free gap of
 * FT_QUIET_GAP, in which any such mapping fits higher up first.
 */
#define FT_QUIET_GAP	(16ULL << 30)

static inline void *ft_quiet_area(size_t len)
{
	void *gap = mmap(NULL, FT_QUIET_GAP, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	void *p;

	REQUIRE(gap != MAP_FAILED);
	REQUIRE(munmap(gap, FT_QUIET_GAP) == 0);
	p = mmap(gap, len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	REQUIRE(p == gap);
	return p;
}

/* ---- the watchdog ---- */

/* How a child ended. */
enum ft_end {
	FT_PASSED,
	FT_FAILED,
	FT_SKIPPED,
	FT_HUNG,	/* no progress for FT_STALL_SEC: killed */
	FT_CRASHED,	/* killed by a signal of its own */
};

static const char *const ft_end_name[] = {
	[FT_PASSED] = "done",
	[FT_FAILED] = "FAILED",
	[FT_SKIPPED] = "skipped",
	[FT_HUNG] = "HUNG",
	[FT_CRASHED] = "CRASHED",
};

/*
 * Memory shared with the children (MAP_SHARED): zeroed, len bytes. A
 * child bumps the uint64_t at its start (its progress counter) at every
 * step and leaves its results after it, for the parent to print even if
 * the child hangs.
 */
static inline void *ft_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	return p;
}

static inline void ft_progress(uint64_t *progress)
{
	__atomic_fetch_add(progress, 1, __ATOMIC_RELAXED);
}

/*
 * Run fn(arg) in a child, which exits with its return value (T_PASS,
 * T_FAIL or T_SKIP). Waits for it; kills it (SIGKILL, by its pid) if
 * *progress stays still for FT_STALL_SEC.
 */
static inline enum ft_end ft_run_child(int (*fn)(void *arg), void *arg,
				       uint64_t *progress)
{
	struct timespec tick = { .tv_nsec = 100 * 1000 * 1000 };
	uint64_t last = __atomic_load_n(progress, __ATOMIC_RELAXED);
	int still = 0, status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* Its own verdict, not the parent's about earlier children. */
		t_failed = 0;
		exit(fn(arg));
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		uint64_t now;

		REQUIRE(r >= 0);
		if (r == pid)
			break;
		nanosleep(&tick, NULL);
		now = __atomic_load_n(progress, __ATOMIC_RELAXED);
		if (now != last) {
			last = now;
			still = 0;
		} else if (++still >= FT_STALL_SEC * 10) {
			kill(pid, SIGKILL);
			REQUIRE(waitpid(pid, &status, 0) == pid);
			return FT_HUNG;
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "child killed by signal %d (%s)\n",
			WTERMSIG(status), strsignal(WTERMSIG(status)));
		return FT_CRASHED;
	}
	switch (WEXITSTATUS(status)) {
	case T_PASS:
		return FT_PASSED;
	case T_SKIP:
		return FT_SKIPPED;
	default:
		return FT_FAILED;
	}
}

#endif
