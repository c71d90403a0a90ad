/* SPDX-License-Identifier: MIT */
/*
 * Where userfaultfd is forbidden (a container's seccomp policy) or absent,
 * uhmm_mm_open() without UHMM_MM_NO_MONITOR fails with that errno - never
 * a silent downgrade - and UHMM_MM_NO_MONITOR still works. Each case runs
 * in a child that installs a seccomp filter failing userfaultfd(2).
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "device.h"

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#endif

static int forbid_userfaultfd(int err)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

static int child(int err)
{
	struct uhmm_mm *mm;
	struct t_dev dev = { 0 };

	if (forbid_userfaultfd(err))
		return T_SKIP;
	CHECK_EQ(uhmm_mm_open(&mm, 0), -err);
	/* Not cached: asking again gives the same clear answer. */
	CHECK_EQ(uhmm_mm_open(&mm, 0), -err);
	/* The documented way out. */
	REQUIRE(uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR) == 0);
	REQUIRE(t_dev_insert(&dev, mm, 0x10000, 0x1000) == 0);
	CHECK_EQ(uhmm_mm_invalidate(mm, 0x10000, 0x11000, UHMM_EVENT_UNMAP), 0);
	CHECK_EQ(dev.calls, 1);
	REQUIRE(uhmm_interval_notifier_remove(&dev.sub) == 0);
	REQUIRE(uhmm_mm_close(mm) == 0);
	return t_result();
}

int main(void)
{
#ifndef ARCH
	SKIP("no seccomp architecture constant for this machine");
#endif
	static const int errs[] = { EPERM, ENOSYS };

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		int status;
		pid_t pid = fork();

		REQUIRE(pid >= 0);
		if (pid == 0)
			_exit(child(errs[i]));
		REQUIRE(waitpid(pid, &status, 0) == pid);
		REQUIRE(WIFEXITED(status));
		if (WEXITSTATUS(status) == T_SKIP)
			SKIP("seccomp filters cannot be installed here");
		if (WEXITSTATUS(status) != T_PASS)
			fprintf(stderr, "case %s failed\n", strerror(errs[i]));
		CHECK_EQ(WEXITSTATUS(status), T_PASS);
	}
	return t_result();
}
