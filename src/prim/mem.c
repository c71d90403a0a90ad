/* SPDX-License-Identifier: MIT */
/*
 * The system calls that change the address space, made raw: with
 * libuhmm_hooks loaded, libc's munmap() and friends are uhmm's own
 * wrappers (source/change.c), which end here.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "prim/prim.h"

/* syscall() reads every argument as a long: an int passed through its
 * "..." leaves the upper half of the register undefined, so each is cast. */

long uhmm_prim_sys_munmap(void *addr, size_t len)
{
	return syscall(SYS_munmap, addr, len);
}

void *uhmm_prim_sys_mremap(void *old, size_t old_len, size_t new_len,
			   int flags, void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, old_len, new_len, (long)flags,
			       new_addr);
}

long uhmm_prim_sys_madvise(void *addr, size_t len, int advice)
{
	return syscall(SYS_madvise, addr, len, (long)advice);
}

void *uhmm_prim_sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
			 off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, (long)prot, (long)flags,
			       (long)fd, (long)off);
}

long uhmm_prim_sys_mprotect(void *addr, size_t len, int prot)
{
	return syscall(SYS_mprotect, addr, len, (long)prot);
}

long uhmm_prim_sys_shmdt(const void *addr)
{
	return syscall(SYS_shmdt, addr);
}
