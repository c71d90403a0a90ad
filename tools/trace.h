/* SPDX-License-Identifier: MIT */
/*
 * What `uhmm trace` (tools/trace.c) and its preload library
 * (tools/trace-preload.c, libuhmm_trace.so) say to each other. Private to
 * the two: both are built from this tree at once, so there is no version.
 *
 * The command creates, before it forks the program:
 *   - a SOCK_SEQPACKET socketpair: the program's end is inherited (not
 *     close-on-exec, so an exec'd image finds it again) and named in
 *     UHMM_TRACE_FD. Each record is one message, sent with MSG_DONTWAIT |
 *     MSG_NOSIGNAL: a full socket costs a lost record (counted below),
 *     never a stalled munmap(), and a command that went away costs no
 *     SIGPIPE;
 *   - a memfd holding struct trace_shared, named in UHMM_TRACE_FD too:
 *     counters that every traced process adds to, exec'd images
 *     included, and that the command reads after the program exited -
 *     they need no message, so they cannot be lost.
 */
#ifndef UHMM_TRACE_H
#define UHMM_TRACE_H

#include <stdint.h>

/* "SOCKFD,MEMFD" */
#define TRACE_ENV_FD "UHMM_TRACE_FD"
/* Milliseconds between the preload's arming passes (0: none). */
#define TRACE_ENV_ARM_MS "UHMM_TRACE_ARM_MS"

enum trace_type {
	TRACE_EVENT = 1,	/* an invalidation: event, start, end */
	TRACE_START,		/* a process image is traced: text = its name */
	TRACE_NOTE,		/* something the reader should know: text */
	TRACE_WARN,		/* something that changed the program: text */
};

#define TRACE_TID_UNKNOWN 0

/* How the change reached the preload (trace_rec.via). */
enum trace_via {
	TRACE_VIA_KERNEL = 1,	/* a userfaultfd event, on uhmm's dispatcher */
	TRACE_VIA_CALL,		/* the preload's libc wrapper, in the caller */
	TRACE_VIA_FORK,		/* fork()'s write protection, in the forker */
};

struct trace_rec {
	uint32_t type;		/* enum trace_type */
	uint32_t event;		/* enum uhmm_event */
	uint64_t ns;		/* CLOCK_MONOTONIC */
	uint64_t start, end;
	int32_t pid;
	int32_t tid;		/* TRACE_TID_UNKNOWN: not known */
	uint32_t via;		/* enum trace_via */
	uint32_t pad;
	char text[256];		/* TRACE_START/NOTE/WARN, NUL-terminated */
};

/*
 * Shared by every traced process (MAP_SHARED of the memfd). Counters are
 * added to with atomics. The calibration is done once, by the first
 * process that wins cal_state 0 -> 1 (2: done, 3: failed).
 */
struct trace_shared {
	uint64_t lost;			/* records a full socket refused */
	uint64_t munmap_calls;		/* libc munmap() through the wrapper */
	uint64_t munmap_ns;		/* time spent in them */
	uint64_t arm_passes;		/* periodic arming passes */
	uint64_t warnings;		/* TRACE_WARN records, sent or lost */
	uint32_t cal_state;
	uint32_t cal_iters;
	/* Medians, ns, of a munmap() of one populated page: */
	uint64_t cal_unwatched_ns;	/* nothing registered */
	uint64_t cal_call_ns;		/* watched, through uhmm_munmap() */
	uint64_t cal_kernel_ns;		/* watched, raw: waits for the reader */
};

#endif
