/* SPDX-License-Identifier: MIT */
/*
 * fork() as an event source: the protection windows that bracket the
 * kernel's copy of the address space (fork.c). Driven by the pthread_atfork
 * handlers of core/mm.c, all under its all_lock, which the prepare handler
 * takes and the parent's or the child's handler releases:
 *
 *	prepare:  begin(all_mms)
 *		  again: open()			no mm lock held
 *			 lock every mm
 *			 if (!check()) { unlock every mm; goto again; }
 *	fork()
 *	parent:   unlock every mm; end()
 *	child:    forget()
 */
#ifndef UHMM_SOURCE_FORK_H
#define UHMM_SOURCE_FORK_H

#include <stdbool.h>

struct uhmm_mm;

/* Start a fork: remember every mm of the list (linked by all_next). */
void uhmm_fork_protect_begin(struct uhmm_mm *mms);

/*
 * Open windows over what check() found; a no-op the first time. Callbacks
 * run here, in the thread calling fork().
 */
void uhmm_fork_protect_open(void);

/*
 * With every mm's lock held: true if every subscription is either covered
 * by the mappings already looked at or held off by an open window, so the
 * locks may stay held across fork(); else it noted what open() must look
 * at next.
 */
bool uhmm_fork_protect_check(void);

/* In the parent, after fork() and with no mm lock held: close the windows. */
void uhmm_fork_protect_end(void);

/* In the child: forget the windows (the copies are dead) and free. */
void uhmm_fork_protect_forget(void);

#endif
