/* SPDX-License-Identifier: MIT */
/*
 * fork() as an event source: the protection windows that bracket the
 * kernel's copy of the address space (fork.c), as struct uhmm_fork_ops
 * (core/source.h), driven by core's pthread_atfork handlers (core/mm.c)
 * under its all_lock:
 *
 *	prepare:  prepare(all_mms)
 *		  again: open()			no mm lock held
 *			 lock every mm
 *			 if (!check()) { unlock every mm; goto again; }
 *	fork()
 *	parent:   unlock every mm; parent()
 *	child:    child()
 */
#ifndef UHMM_SOURCE_FORK_H
#define UHMM_SOURCE_FORK_H

/*
 * Register the fork ops below with core (once per process; idempotent).
 * Every mm gets the windows, explicit ones too: a device writing through
 * a translation taken before fork() would write into a page the child
 * shares.
 */
void uhmm_fork_protect_register(void);

#endif
