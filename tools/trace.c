/* SPDX-License-Identifier: MIT */
/*
 * uhmm trace [-o FILE] [--json] -- CMD [ARGS...]: run CMD with
 * libuhmm_trace.so preloaded (tools/trace-preload.c), print every
 * invalidation of its memory as it happens, and a summary at the end.
 *
 * The program's stdin, stdout and stderr are its own: the trace goes to
 * stderr, or to FILE. Its exit status is passed through; a program killed
 * by a signal kills the command with the same signal (after the summary),
 * so a shell sees the same status as without trace. The records come
 * over an inherited socket and the counters in a shared memfd
 * (tools/trace.h). The trace ends when CMD itself ends: what descendants
 * that outlive it do is not reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "trace.h"
#include "uhmm.h"

#ifndef UHMM_TRACE_LIB_REL	/* the installed layout: CMakeLists.txt */
#define UHMM_TRACE_LIB_REL "../lib/uhmm/libuhmm_trace.so"
#endif

static const char usage[] =
    "usage: uhmm trace [-o FILE] [--json] -- CMD [ARGS...]\n"
    "  run CMD and report every invalidation of its memory (time, event,\n"
    "  range, size, pid, thread) as it happens, and a summary at its end;\n"
    "  to stderr, or to FILE with -o; --json writes one JSON document.\n"
    "  Exits with CMD's status (killed by a signal: the same signal).\n"
    "  UHMM_TRACE_LIB: the preload library to use; UHMM_TRACE_ARM_MS:\n"
    "  how often mappings made without mmap() are armed (default 100).\n";

static const char *const event_names[] = {
	[UHMM_EVENT_UNMAP] = "unmap",
	[UHMM_EVENT_CLEAR] = "clear",
	[UHMM_EVENT_REMAP] = "remap",
	[UHMM_EVENT_PROTECTION] = "protection",
	[UHMM_EVENT_RELEASE] = "release",
};
#define NEVENTS (UHMM_EVENT_RELEASE + 1)

static const char *event_name(uint32_t e)
{
	return e < NEVENTS && event_names[e] ? event_names[e] : "?";
}

static const char *const via_names[] = {
	[TRACE_VIA_KERNEL] = "kernel",
	[TRACE_VIA_CALL] = "call",
	[TRACE_VIA_FORK] = "fork",
};

static const char *via_name(uint32_t v)
{
	return v <= TRACE_VIA_FORK && via_names[v] ? via_names[v] : "?";
}

/* ------------------------------------------------------------------------
 * What was seen: per event, and per range (an open-addressed hash).
 */

struct range_count {
	uint64_t start, end;	/* end 0: empty slot */
	uint64_t count;
};

struct stats {
	uint64_t count[NEVENTS], bytes[NEVENTS];
	uint64_t kernel_changes;	/* events via the kernel, not fork */
	uint64_t processes, notes, warnings;
	struct range_count *ranges;
	size_t nranges, cap;
};

static size_t range_hash(uint64_t start, uint64_t end)
{
	return (size_t)((start * 31 + end) >> 12);
}

static void range_add(struct stats *st, uint64_t start, uint64_t end)
{
	size_t i;

	if (st->nranges * 10 >= st->cap * 7) {
		size_t cap = st->cap ? 2 * st->cap : 1024;
		struct range_count *r = calloc(cap, sizeof(*r));

		if (!r)
			return;		/* the top list is then a sample */
		for (i = 0; i < st->cap; i++) {
			size_t j;

			if (!st->ranges[i].end)
				continue;
			j = range_hash(st->ranges[i].start, st->ranges[i].end);
			while (r[j & (cap - 1)].end)
				j++;
			r[j & (cap - 1)] = st->ranges[i];
		}
		free(st->ranges);
		st->ranges = r;
		st->cap = cap;
	}
	for (i = range_hash(start, end);; i++) {
		struct range_count *r = &st->ranges[i & (st->cap - 1)];

		if (!r->end) {
			r->start = start;
			r->end = end;
			st->nranges++;
		}
		if (r->start == start && r->end == end) {
			r->count++;
			return;
		}
	}
}

static int cmp_hits(const void *a, const void *b)
{
	const struct range_count *x = a, *y = b;
	uint64_t bx = x->count * (x->end - x->start);
	uint64_t by = y->count * (y->end - y->start);

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	if (bx != by)
		return bx < by ? 1 : -1;
	return x->start < y->start ? -1 : x->start > y->start;
}

#define TOP_RANGES 10

/* The most hit ranges first, at most TOP_RANGES; returns how many. */
static size_t top_ranges(struct stats *st)
{
	size_t n = 0;

	if (!st->cap)
		return 0;
	for (size_t i = 0; i < st->cap; i++)
		if (st->ranges[i].end)
			st->ranges[n++] = st->ranges[i];
	qsort(st->ranges, n, sizeof(*st->ranges), cmp_hits);
	return n < TOP_RANGES ? n : TOP_RANGES;
}

/* ------------------------------------------------------------------------
 * Output
 */

struct out {
	FILE *f;
	bool json;
	struct json j;
	uint64_t t0;		/* ns, CLOCK_MONOTONIC, before the fork */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs(const struct out *o, uint64_t ns)
{
	return ns >= o->t0 ? (double)(ns - o->t0) / 1e9 : 0;
}

/* "64 KiB"; exact, so falls back to smaller units. */
static const char *size_str(char *buf, size_t len, unsigned long long n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned int i = 0;

	while (i < 4 && n && !(n % 1024)) {
		n /= 1024;
		i++;
	}
	snprintf(buf, len, "%llu %s", n, units[i]);
	return buf;
}

static void record(struct out *o, struct stats *st, const struct trace_rec *r)
{
	static const char *const kinds[] = {
		[TRACE_EVENT] = "event", [TRACE_START] = "start",
		[TRACE_NOTE] = "note", [TRACE_WARN] = "warning",
	};
	uint64_t size = r->end - r->start;
	char b[32];

	if (r->type < TRACE_EVENT || r->type > TRACE_WARN)
		return;
	if (r->type == TRACE_EVENT) {
		if (r->event >= NEVENTS || r->end <= r->start)
			return;
		st->count[r->event]++;
		st->bytes[r->event] += size;
		if (r->via == TRACE_VIA_KERNEL)
			st->kernel_changes++;
		range_add(st, r->start, r->end);
	} else if (r->type == TRACE_START) {
		st->processes++;
	} else if (r->type == TRACE_NOTE) {
		st->notes++;
	} else {
		st->warnings++;
	}

	if (o->json) {
		j_open(&o->j, NULL);
		j_str(&o->j, "type", kinds[r->type]);
		/* ns since the program started: exact, unlike a double */
		j_long(&o->j, "time_ns",
		       r->ns >= o->t0 ? (long long)(r->ns - o->t0) : 0);
		j_long(&o->j, "pid", r->pid);
		if (r->type == TRACE_EVENT) {
			j_long(&o->j, "tid", r->tid ? r->tid : -1);
			j_str(&o->j, "via", via_name(r->via));
			j_str(&o->j, "event", event_name(r->event));
			j_long(&o->j, "start", (long long)r->start);
			j_long(&o->j, "end", (long long)r->end);
			j_long(&o->j, "size", (long long)size);
		} else {
			j_str(&o->j, "text", r->text);
		}
		j_close(&o->j);
		return;
	}
	if (r->type == TRACE_EVENT) {
		char tid[16] = "-";

		if (r->tid)
			snprintf(tid, sizeof(tid), "%d", r->tid);
		fprintf(o->f, "%11.6f %-10s 0x%" PRIx64 "-0x%" PRIx64
			" %10s pid %d tid %s\n",
			secs(o, r->ns), event_name(r->event), r->start, r->end,
			size_str(b, sizeof(b), size), r->pid, tid);
	} else {
		fprintf(o->f, "%11.6f %s: pid %d: %s\n", secs(o, r->ns),
			kinds[r->type], r->pid, r->text);
	}
}

/* Every record queued now. */
static void drain(int sock, struct out *o, struct stats *st)
{
	struct trace_rec r;

	for (;;) {
		ssize_t n;

		memset(&r, 0, sizeof(r));
		n = recv(sock, &r, sizeof(r), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n < offsetof(struct trace_rec, text))
			continue;
		r.text[sizeof(r.text) - 1] = '\0';
		record(o, st, &r);
	}
	fflush(o->f);
}

/* munmap()'s cost: what was measured, and what the calibration adds. */
static void print_cost_human(const struct out *o, const struct stats *st,
			     const struct trace_shared *sh)
{
	uint64_t calls = sh->munmap_calls;

	fprintf(o->f, "munmap() through libc: %" PRIu64 " calls", calls);
	if (calls)
		fprintf(o->f, ", %.1f us in all, %.2f us each",
			(double)sh->munmap_ns / 1e3,
			(double)sh->munmap_ns / 1e3 / (double)calls);
	fputc('\n', o->f);
	if (sh->cal_state != 2) {
		fprintf(o->f, "  no calibration (%s): added cost unknown\n",
			sh->cal_state ? "it failed" : "no process traced");
		return;
	}
	fprintf(o->f, "  calibration, median of %u munmap()s of one page in "
		"the first traced process:\n", sh->cal_iters);
	fprintf(o->f, "    not watched %.2f us, watched through the wrapper "
		"%.2f us, watched raw %.2f us\n",
		(double)sh->cal_unwatched_ns / 1e3,
		(double)sh->cal_call_ns / 1e3,
		(double)sh->cal_kernel_ns / 1e3);
	fprintf(o->f, "  added, estimated: %" PRIu64 " calls x %.2f us = "
		"%.1f us; %" PRIu64 " changes reported by the kernel x "
		"%.2f us = %.1f us\n",
		calls, ((double)sh->cal_call_ns - sh->cal_unwatched_ns) / 1e3,
		(double)calls * ((double)sh->cal_call_ns -
				 sh->cal_unwatched_ns) / 1e3,
		st->kernel_changes,
		((double)sh->cal_kernel_ns - sh->cal_unwatched_ns) / 1e3,
		(double)st->kernel_changes * ((double)sh->cal_kernel_ns -
					      sh->cal_unwatched_ns) / 1e3);
}

static void print_summary_human(const struct out *o, struct stats *st,
				const struct trace_shared *sh, int status)
{
	uint64_t total = 0, bytes = 0;
	size_t n;
	char b[32];

	for (int e = UHMM_EVENT_UNMAP; e < UHMM_EVENT_RELEASE; e++) {
		total += st->count[e];
		bytes += st->bytes[e];
	}
	fprintf(o->f, "\nsummary: ");
	if (WIFSIGNALED(status))
		fprintf(o->f, "killed by signal %d (%s)", WTERMSIG(status),
			strsignal(WTERMSIG(status)));
	else
		fprintf(o->f, "exit status %d", WEXITSTATUS(status));
	fprintf(o->f, ", %" PRIu64 " processes traced, %" PRIu64
		" invalidations, %s, %" PRIu64 " records lost, %" PRIu64
		" warnings\n", st->processes, total,
		size_str(b, sizeof(b), bytes), sh->lost, sh->warnings);
	fprintf(o->f, "  %-10s %10s %16s\n", "event", "count", "bytes");
	for (int e = UHMM_EVENT_UNMAP; e < UHMM_EVENT_RELEASE; e++)
		fprintf(o->f, "  %-10s %10" PRIu64 " %16" PRIu64 "\n",
			event_names[e], st->count[e], st->bytes[e]);
	n = top_ranges(st);
	if (n)
		fprintf(o->f, "ranges hit most:\n");
	for (size_t i = 0; i < n; i++)
		fprintf(o->f, "  0x%" PRIx64 "-0x%" PRIx64 " %10s %6" PRIu64
			" times\n", st->ranges[i].start, st->ranges[i].end,
			size_str(b, sizeof(b),
				 st->ranges[i].end - st->ranges[i].start),
			st->ranges[i].count);
	print_cost_human(o, st, sh);
}

static void print_summary_json(struct out *o, struct stats *st,
			       const struct trace_shared *sh, int status)
{
	struct json *j = &o->j;
	uint64_t total = 0, bytes = 0;
	bool cal = sh->cal_state == 2;
	size_t n;

	j_open(j, "summary");
	j_long(j, "exit_status",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	j_long(j, "signal", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	j_long(j, "processes", (long long)st->processes);
	j_open(j, "events");
	for (int e = UHMM_EVENT_UNMAP; e < UHMM_EVENT_RELEASE; e++) {
		j_open(j, event_names[e]);
		j_long(j, "count", (long long)st->count[e]);
		j_long(j, "bytes", (long long)st->bytes[e]);
		j_close(j);
		total += st->count[e];
		bytes += st->bytes[e];
	}
	j_close(j);
	j_long(j, "invalidations", (long long)total);
	j_long(j, "bytes", (long long)bytes);
	j_long(j, "lost", (long long)sh->lost);
	j_long(j, "warnings", (long long)sh->warnings);
	j_array_open(j, "ranges_hit_most");
	n = top_ranges(st);
	for (size_t i = 0; i < n; i++) {
		j_open(j, NULL);
		j_long(j, "start", (long long)st->ranges[i].start);
		j_long(j, "end", (long long)st->ranges[i].end);
		j_long(j, "size", (long long)(st->ranges[i].end -
					      st->ranges[i].start));
		j_long(j, "count", (long long)st->ranges[i].count);
		j_close(j);
	}
	j_array_close(j);
	j_open(j, "munmap");
	j_long(j, "calls", (long long)sh->munmap_calls);
	j_long(j, "ns", (long long)sh->munmap_ns);
	j_long(j, "kernel_changes", (long long)st->kernel_changes);
	j_long(j, "calibration_iterations",
	       cal ? (long long)sh->cal_iters : -1);
	j_long(j, "unwatched_ns", cal ? (long long)sh->cal_unwatched_ns : -1);
	j_long(j, "watched_call_ns", cal ? (long long)sh->cal_call_ns : -1);
	j_long(j, "watched_kernel_ns",
	       cal ? (long long)sh->cal_kernel_ns : -1);
	/* Estimates may be negative (noise): NaN would print null too. */
	j_double(j, "added_calls_ns",
		 cal ? (double)sh->munmap_calls *
			       ((double)sh->cal_call_ns -
				(double)sh->cal_unwatched_ns)
		     : NAN);
	j_double(j, "added_kernel_ns",
		 cal ? (double)st->kernel_changes *
			       ((double)sh->cal_kernel_ns -
				(double)sh->cal_unwatched_ns)
		     : NAN);
	j_close(j);
	j_close(j);
}

/* ------------------------------------------------------------------------
 * Running the program
 */

/*
 * UHMM_TRACE_LIB, else next to this uhmm (the build tree), else where the
 * installed layout puts it relative to the installed uhmm; NULL if none.
 */
static const char *find_lib(char *buf)
{
	const char *env = getenv("UHMM_TRACE_LIB");

	if (env && *env)
		return env;
	if (beside_self("libuhmm_trace.so", R_OK, buf) ||
	    beside_self(UHMM_TRACE_LIB_REL, R_OK, buf))
		return buf;
	return NULL;
}

static volatile sig_atomic_t child_pid;

/* A SIGTERM or SIGHUP meant for the command goes to the program: the
 * command ends when it does, with the summary. */
static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* fd moved to a number above 9 (close-on-exec), or left as it is. */
static int above_low_fds(int fd)
{
	int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);

	if (high < 0)
		return fd;
	close(fd);
	return high;
}

/* The command's signal setup as it was started, for the program. */
static struct {
	struct sigaction chld, pipe, intr, quit, term, hup;
	sigset_t mask;
} saved;

/*
 * Before fork(), so that no signal finds the command half set up (a
 * SIGTERM in between would end the command and orphan the program):
 * - SIGCHLD default: if it came ignored, the kernel would reap the
 *   program itself and its exit status would be lost;
 * - SIGPIPE ignored: a report to a closed pipe (`2>&1 | head`) must not
 *   kill the command and leave the program unwaited for;
 * - ^C and ^\ ignored: the terminal sends them to the program too, and
 *   the command waits to report how it ended;
 * - SIGTERM and SIGHUP passed on to the program.
 * Blocked across fork(): handled once child_pid is set.
 */
static void signals_setup(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct sigaction ign = { .sa_handler = SIG_IGN };
	struct sigaction fwd = { .sa_handler = forward };
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &saved.mask);
	sigaction(SIGCHLD, &dfl, &saved.chld);
	sigaction(SIGPIPE, &ign, &saved.pipe);
	sigaction(SIGINT, &ign, &saved.intr);
	sigaction(SIGQUIT, &ign, &saved.quit);
	sigaction(SIGTERM, &fwd, &saved.term);
	sigaction(SIGHUP, &fwd, &saved.hup);
}

static void child_exec(char **cmd, const char *lib, int sock, int memfd)
{
	const char *old = getenv("LD_PRELOAD");
	char fds[32], *preload;

	/* Inherited across exec, so each image the program becomes is
	 * traced anew. */
	if (fcntl(sock, F_SETFD, 0) || fcntl(memfd, F_SETFD, 0))
		_exit(127);
	snprintf(fds, sizeof(fds), "%d,%d", sock, memfd);
	if (old && *old) {
		preload = malloc(strlen(lib) + strlen(old) + 2);
		if (!preload)
			_exit(127);
		sprintf(preload, "%s:%s", lib, old);
	} else {
		preload = (char *)lib;
	}
	if (setenv("LD_PRELOAD", preload, 1) ||
	    setenv(TRACE_ENV_FD, fds, 1))
		_exit(127);
	/* The program starts with the dispositions and mask the command
	 * was started with (cmd_trace() changed them before fork()). */
	sigaction(SIGCHLD, &saved.chld, NULL);
	sigaction(SIGPIPE, &saved.pipe, NULL);
	sigaction(SIGINT, &saved.intr, NULL);
	sigaction(SIGQUIT, &saved.quit, NULL);
	sigaction(SIGTERM, &saved.term, NULL);
	sigaction(SIGHUP, &saved.hup, NULL);
	sigprocmask(SIG_SETMASK, &saved.mask, NULL);
	execvp(cmd[0], cmd);
	fprintf(stderr, "uhmm trace: %s: %s\n", cmd[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static int wait_child(pid_t pid, int sock, struct out *o, struct stats *st)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool open_end = true;	/* the program may still send */
	int status = 1 << 8;	/* if waiting fails: a failure */

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = open_end ? sock : -1, .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
		};
		pid_t w;

		/* Without pidfds (Linux < 5.3), look every 100 ms. */
		if (poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 100) < 0 &&
		    errno != EINTR)
			break;
		/* Once every copy of the program's end is closed (it closed
		 * it, or exec'd something that did) the socket only says so,
		 * at once, forever: stop asking, or this loop spins. */
		if (p[0].revents & (POLLIN | POLLERR))
			drain(sock, o, st);
		if ((p[0].revents & POLLHUP) && !(p[0].revents & POLLIN))
			open_end = false;
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			status = 1 << 8;
			break;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	/* What the program sent before it ended is queued: take it all. */
	drain(sock, o, st);
	return status;
}

int cmd_trace(int argc, char **argv)
{
	const char *file = NULL, *lib;
	struct out o = { .f = stderr };
	struct stats st = {0};
	struct trace_shared *sh;
	char libbuf[PATH_MAX];
	sigset_t one;
	int sv[2], memfd, i, status, sig, bufsz = 4 << 20;
	pid_t pid;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (!strcmp(argv[i], "--json")) {
			o.json = true;
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			file = argv[++i];
		} else if (!strcmp(argv[i], "--help") ||
			   !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "uhmm trace: unknown option '%s'\n%s",
				argv[i], usage);
			return 2;
		} else {
			break;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "uhmm trace: no command\n%s", usage);
		return 2;
	}
	if (file) {
		o.f = fopen(file, "we");
		if (!o.f) {
			fprintf(stderr, "uhmm trace: %s: %s\n", file,
				strerror(errno));
			return 1;
		}
	}
	o.j.out = o.f;
	lib = find_lib(libbuf);
	if (!lib) {
		fprintf(stderr, "uhmm trace: libuhmm_trace.so is neither beside "
				"this uhmm nor at %s from it (set "
				"UHMM_TRACE_LIB)\n", UHMM_TRACE_LIB_REL);
		return 1;
	}
	if (access(lib, R_OK)) {
		fprintf(stderr, "uhmm trace: %s: %s\n", lib, strerror(errno));
		return 1;
	}

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		fprintf(stderr, "uhmm trace: socketpair: %s\n",
			strerror(errno));
		return 1;
	}
	/* Room for bursts (capped by net.core.[rw]mem_max): the program's
	 * end queues into ours. */
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	memfd = memfd_create("uhmm-trace", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, sizeof(*sh))) {
		fprintf(stderr, "uhmm trace: memfd: %s\n", strerror(errno));
		return 1;
	}
	/* The program's descriptors 0-9 stay free: shell scripts and
	 * programs pick those by hand (`exec 3>file`). */
	sv[1] = above_low_fds(sv[1]);
	memfd = above_low_fds(memfd);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED,
		  memfd, 0);
	if (sh == MAP_FAILED) {
		fprintf(stderr, "uhmm trace: mmap: %s\n", strerror(errno));
		return 1;
	}

	if (o.json) {
		j_open(&o.j, NULL);
		j_array_open(&o.j, "command");
		for (int k = i; k < argc; k++)
			j_str(&o.j, NULL, argv[k]);
		j_array_close(&o.j);
		j_str(&o.j, "library", lib);
		j_array_open(&o.j, "records");
	} else {
		fprintf(o.f, "uhmm trace: %s, with %s\n", argv[i], lib);
		fprintf(o.f, "%11s %-10s %-29s %10s pid, tid (- unknown)\n",
			"time (s)", "event", "range", "size");
	}
	fflush(o.f);

	o.t0 = now_ns();
	signals_setup();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "uhmm trace: fork: %s\n", strerror(errno));
		return 1;
	}
	if (!pid) {
		close(sv[0]);
		child_exec(argv + i, lib, sv[1], memfd);
	}
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &saved.mask, NULL);
	close(sv[1]);

	status = wait_child(pid, sv[0], &o, &st);

	if (o.json) {
		j_array_close(&o.j);
		print_summary_json(&o, &st, sh, status);
		j_close(&o.j);
		j_end(&o.j);
	} else {
		print_summary_human(&o, &st, sh, status);
	}
	if (fflush(o.f) || ferror(o.f))
		fprintf(stderr, "uhmm trace: writing %s: %s\n",
			file ? file : "stderr", strerror(errno));
	if (file)
		fclose(o.f);
	free(st.ranges);
	munmap(sh, sizeof(*sh));
	close(memfd);
	close(sv[0]);

	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	/* The same death, so the caller's shell reports the same; no core
	 * of the command (the program dumped its own, if allowed). */
	sig = WTERMSIG(status);
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	signal(sig, SIG_DFL);
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	raise(sig);
	return 128 + sig;	/* a signal that does not kill (SIGCHLD...) */
}
