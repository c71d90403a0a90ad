/* SPDX-License-Identifier: MIT */
/*
 * libuhmm_hooks: libc's address-space calls, reported before they happen.
 *
 * Each function here takes the place of libc's of the same name for every
 * call resolved through the dynamic linker - with LD_PRELOAD, or linked
 * into the program (it then comes before libc in the lookup order) - and
 * is uhmm's wrapper of that name (uhmm.h, "Changes reported before they
 * happen"). No binary or GOT is patched. libuhmm itself makes these
 * system calls raw, so they do not come back here; a call made from a
 * signal handler, a callback or before uhmm is in use simply goes to the
 * kernel, which reports it as it would have.
 *
 * Only the public API: this library is a client of libuhmm.so, and the
 * process must have exactly one copy of it.
 */
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/shm.h>

#include "uhmm.h"

#define HOOK __attribute__((visibility("default")))

HOOK int munmap(void *addr, size_t len)
{
	return uhmm_munmap(addr, len);
}

/* mremap(old, old_len, new_len, flags, ...): new_addr only with
 * MREMAP_FIXED (or MREMAP_DONTUNMAP, which needs it on 6.18). */
HOOK void *mremap(void *old_addr, size_t old_len, size_t new_len, int flags,
		  ...)
{
	void *new_addr = NULL;

	if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	return uhmm_mremap(old_addr, old_len, new_len, flags, new_addr);
}

HOOK int madvise(void *addr, size_t len, int advice)
{
	return uhmm_madvise(addr, len, advice);
}

HOOK void *mmap(void *addr, size_t len, int prot, int flags, int fd,
		off_t offset)
{
	return uhmm_mmap(addr, len, prot, flags, fd, offset);
}

/* The same symbol under its large-file name (off_t is 64-bit here). */
HOOK void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
		  off_t offset)
{
	return uhmm_mmap(addr, len, prot, flags, fd, offset);
}

HOOK int mprotect(void *addr, size_t len, int prot)
{
	return uhmm_mprotect(addr, len, prot);
}

HOOK int shmdt(const void *addr)
{
	return uhmm_shmdt(addr);
}
