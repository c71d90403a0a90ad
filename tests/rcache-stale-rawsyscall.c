/* SPDX-License-Identifier: MIT */
/*
 * Staleness through the io_uring device, with libc bypassed: munmap and
 * then mmap of new memory at the same address, both as raw system calls
 * (syscall(SYS_munmap), syscall(SYS_mmap) with MAP_FIXED_NOREPLACE), as a
 * runtime or a language without libc would. uhmm hears the kernel, not
 * libc, so the cache must not care.
 *
 * With the device alone, READ_FIXED through the old slot misses the new
 * memory and WRITE_FIXED sends the old pages: the scenario makes the
 * device stale. Through a cache on a monitored mm, READ_FIXED lands in the
 * memory the application sees now and WRITE_FIXED sends its bytes.
 */
#include <sys/syscall.h>

#define T_RC_URING
#include "rcache.h"

static bool change(struct t_stale *s, char *buf)
{
	long p;

	REQUIRE(syscall(SYS_munmap, buf, s->len) == 0);
	p = syscall(SYS_mmap, buf, s->len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == -1)
		return false;
	if ((char *)p != buf) {
		REQUIRE(syscall(SYS_munmap, p, s->len) == 0);
		return false;
	}
	return true;
}

int main(void)
{
	struct t_stale s = {
		.what = "raw munmap + mmap at the same address",
		.len = 16 * 4096,
		.make = t_stale_map,
		.change = change,
		.unmake = t_stale_unmap,
	};

	return t_stale_run(&s);
}
