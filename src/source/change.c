/* SPDX-License-Identifier: MIT */
/*
 * uhmm_munmap() and friends: the address-space system calls, with the
 * change reported before it happens (uffd.c, "changes reported before
 * they happen"). What each reports, and what it re-arms after the call:
 *
 *	call             window (event)                    re-armed after
 *	munmap           [addr, len) UNMAP                 - (all of it if it failed)
 *	mremap           old range REMAP, MREMAP_FIXED     what is left of the old
 *	                 destination UNMAP                 range, the new one
 *	madvise discard  [addr, len) CLEAR                 [addr, len)
 *	mmap MAP_FIXED   [addr, len) UNMAP                 [addr, len)
 *	mprotect         [addr, len) PROTECTION            - (nothing unregistered)
 *	shmdt            the segment's mappings UNMAP      - (all of it if it failed)
 *
 * Anything else, and any call the source does not take over, goes to the
 * kernel as it is: the kernel still reports what it reports. Arguments
 * are the kernel's to judge: a range that is not page aligned or wraps is
 * passed through untouched, and fails there.
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"
#include "prim/prim.h"
#include "source/source.h"

/* [addr, addr + len) page aligned, as the kernel would take it; false if
 * the kernel will refuse it anyway. */
static bool page_range(const void *addr, size_t len, unsigned long *start,
		       unsigned long *end)
{
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);

	*start = (unsigned long)addr;
	if (!len || (*start & (page - 1)) ||
	    __builtin_add_overflow(*start, len, end) ||
	    __builtin_add_overflow(*end, page - 1, end))
		return false;
	*end &= ~(page - 1);
	return true;
}

static void one_range(struct uhmm_change *c, unsigned long start,
		      unsigned long end, enum uhmm_event event)
{
	c->nranges = 1;
	c->range[0].start = start;
	c->range[0].end = end;
	c->range[0].event = event;
	c->nrearm = 0;
}

static void rearm(struct uhmm_change *c, unsigned long start,
		  unsigned long end)
{
	c->rearm[c->nrearm].start = start;
	c->rearm[c->nrearm].end = end;
	c->nrearm++;
}

int uhmm_munmap(void *addr, size_t len)
{
	struct uhmm_change c = { .unregister = true };
	unsigned long start, end;
	long ret;

	if (!page_range(addr, len, &start, &end))
		return (int)uhmm_prim_sys_munmap(addr, len);
	one_range(&c, start, end, UHMM_EVENT_UNMAP);
	if (!uhmm_uffd_change_begin(&c))
		return (int)uhmm_prim_sys_munmap(addr, len);
	ret = uhmm_prim_sys_munmap(addr, len);
	if (ret)
		rearm(&c, start, end);
	uhmm_uffd_change_end(&c);
	return (int)ret;
}

int uhmm_madvise(void *addr, size_t len, int advice)
{
	struct uhmm_change c = { .unregister = true };
	unsigned long start, end;
	long ret;

	/* The discards: the kernel sends REMOVE for them (before the zap). */
	if ((advice != MADV_DONTNEED && advice != MADV_FREE &&
	     advice != MADV_REMOVE && advice != MADV_DONTNEED_LOCKED) ||
	    !page_range(addr, len, &start, &end))
		return (int)uhmm_prim_sys_madvise(addr, len, advice);
	one_range(&c, start, end, UHMM_EVENT_CLEAR);
	if (!uhmm_uffd_change_begin(&c))
		return (int)uhmm_prim_sys_madvise(addr, len, advice);
	ret = uhmm_prim_sys_madvise(addr, len, advice);
	rearm(&c, start, end);
	uhmm_uffd_change_end(&c);
	return (int)ret;
}

void *uhmm_mmap(void *addr, size_t len, int prot, int flags, int fd,
		off_t offset)
{
	struct uhmm_change c = { .unregister = true };
	unsigned long start, end;
	void *ret;

	/* Only MAP_FIXED replaces what is there (NOREPLACE fails instead). */
	if (!(flags & MAP_FIXED) || (flags & MAP_FIXED_NOREPLACE) ||
	    !page_range(addr, len, &start, &end))
		return uhmm_prim_sys_mmap(addr, len, prot, flags, fd, offset);
	one_range(&c, start, end, UHMM_EVENT_UNMAP);
	if (!uhmm_uffd_change_begin(&c))
		return uhmm_prim_sys_mmap(addr, len, prot, flags, fd, offset);
	ret = uhmm_prim_sys_mmap(addr, len, prot, flags, fd, offset);
	rearm(&c, start, end);
	uhmm_uffd_change_end(&c);
	return ret;
}

void *uhmm_mremap(void *old, size_t old_len, size_t new_len, int flags,
		  void *new_addr)
{
	struct uhmm_change c = { .unregister = true };
	unsigned long start, end, dst, dst_end, page;
	void *ret;

	if (!page_range(old, old_len, &start, &end))
		return uhmm_prim_sys_mremap(old, old_len, new_len, flags,
					    new_addr);
	one_range(&c, start, end, UHMM_EVENT_REMAP);
	if (flags & MREMAP_FIXED) {
		if (!page_range(new_addr, new_len, &dst, &dst_end))
			return uhmm_prim_sys_mremap(old, old_len, new_len,
						    flags, new_addr);
		c.nranges = 2;
		c.range[1].start = dst;
		c.range[1].end = dst_end;
		c.range[1].event = UHMM_EVENT_UNMAP;
	}
	if (!uhmm_uffd_change_begin(&c))
		return uhmm_prim_sys_mremap(old, old_len, new_len, flags,
					    new_addr);
	ret = uhmm_prim_sys_mremap(old, old_len, new_len, flags, new_addr);
	/* What stayed (a shrink's head, all of it on failure), and where
	 * it went (moved, or grown in place). */
	rearm(&c, start, end);
	page = (unsigned long)sysconf(_SC_PAGESIZE);
	if (ret != MAP_FAILED && new_len)
		rearm(&c, (unsigned long)ret,
		      ((unsigned long)ret + new_len + page - 1) & ~(page - 1));
	uhmm_uffd_change_end(&c);
	return ret;
}

int uhmm_mprotect(void *addr, size_t len, int prot)
{
	struct uhmm_change c = { .unregister = false };
	unsigned long start, end;
	long ret;

	if (!page_range(addr, len, &start, &end))
		return (int)uhmm_prim_sys_mprotect(addr, len, prot);
	one_range(&c, start, end, UHMM_EVENT_PROTECTION);
	if (!uhmm_uffd_change_begin(&c))
		return (int)uhmm_prim_sys_mprotect(addr, len, prot);
	ret = uhmm_prim_sys_mprotect(addr, len, prot);
	uhmm_uffd_change_end(&c);
	return (int)ret;
}

/*
 * shmdt() names no length: the segment's mappings are the shared file
 * mappings from addr on, contiguous (an mprotect() may have split one).
 */
int uhmm_shmdt(const void *addr)
{
	struct uhmm_change c = { .unregister = true };
	unsigned long start = (unsigned long)addr, end = start;
	struct uhmm_vma vma;
	long ret;

	while (uhmm_prim_vma_find(end, &vma) == 0 && vma.start == end &&
	       vma.shared && vma.file)
		end = vma.end;
	if (end == start)
		return (int)uhmm_prim_sys_shmdt(addr);
	one_range(&c, start, end, UHMM_EVENT_UNMAP);
	if (!uhmm_uffd_change_begin(&c))
		return (int)uhmm_prim_sys_shmdt(addr);
	ret = uhmm_prim_sys_shmdt(addr);
	if (ret)
		rearm(&c, start, end);
	uhmm_uffd_change_end(&c);
	return (int)ret;
}
