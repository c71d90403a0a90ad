/* SPDX-License-Identifier: MIT */
/*
 * uhmm_mm_open(): core's address space fed by the library's event
 * sources - the kernel's userfaultfd unless UHMM_MM_NO_MONITOR, and the
 * fork() protection windows, which every mm gets.
 */
#include "core/internal.h"
#include "core/source.h"
#include "source/fork.h"
#include "source/source.h"

int uhmm_mm_open(struct uhmm_mm **mmp, unsigned int flags)
{
	uhmm_fork_protect_register();
	return uhmm_mm_open_source(mmp, flags,
				   flags & UHMM_MM_NO_MONITOR
					   ? NULL
					   : &uhmm_uffd_source_ops);
}
