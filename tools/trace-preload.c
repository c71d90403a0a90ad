/* SPDX-License-Identifier: MIT */
/*
 * libuhmm_trace.so: what `uhmm trace` preloads into the program it runs.
 *
 * It subscribes the whole user address space of the process and sends
 * every invalidation to the command (tools/trace.h says how). It is the
 * command's helper, not a library layer, so it lives in tools/ next to
 * the command and its protocol header; like libuhmm_hooks it is a client
 * of libuhmm.so's public API only, so the process has one copy of uhmm
 * (a program that links uhmm statically has two: see below).
 *
 * What is watched, and how.
 *   - At load, the user address space is covered by a few subscriptions
 *     ("segments"): one per stretch between the mappings userfaultfd
 *     refuses (vdso, vvar; others are found by trying, mapping by
 *     mapping, when a segment's insert is refused). Inserting a segment
 *     arms every mapping in it.
 *   - libc's munmap, mremap, madvise, mmap, mmap64, mprotect and shmdt are
 *     replaced here, as libuhmm_hooks replaces them (that library is not
 *     preloaded as well: these wrappers are its wrappers plus what trace
 *     needs). So a change made through them is reported in the calling
 *     thread, before it is made - that is where the thread is known and
 *     where munmap()'s cost is timed - and a new mapping from mmap() is
 *     armed before mmap() returns (a one-mapping subscription inserted
 *     and removed: the segment's node keeps it registered).
 *   - Mappings made without the wrappers (glibc's malloc and ld.so call
 *     the kernel directly, and so does a raw syscall()) are not armed by
 *     anything the kernel tells, so every UHMM_TRACE_ARM_MS (default 100)
 *     a thread arms each segment again. Such a mapping that is unmapped
 *     before the next pass is not seen at all; after it, its unmap is
 *     reported by the kernel (no thread).
 *   - The program's own userfaultfd: a mapping can be registered with one
 *     userfaultfd only. If the program registers memory uhmm already
 *     watches, its UFFDIO_REGISTER fails with EBUSY: the ioctl() wrapper
 *     below passes the failure through and warns. Memory the program
 *     registered first is left to it: the segment is split around it,
 *     with a warning, and it is not traced.
 *
 * The mm is never closed and no subscription is removed at exit: the
 * program's last munmap() may come after any destructor (libc's own
 * teardown), and it must find uhmm's reader still reading.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "trace.h"
#include "uhmm.h"

#define EXPORT __attribute__((visibility("default")))
#define container_of(p, type, member) \
	((type *)((char *)(p) - offsetof(type, member)))

/* Set once by the constructor, before any other thread of ours exists. */
static int trace_sock = -1;
static struct trace_shared *shared;
static struct uhmm_mm *trace_mm;
static unsigned long page_size;
/* Cleared in a fork child: the inherited mm answers -ECHILD there. */
static bool active;
static pid_t my_pid;

/* This thread is inside one of the wrappers (so a window's callbacks that
 * run now run in the thread making the change), or inside fork(). */
static __thread int in_call;
static __thread bool in_fork;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/*
 * Never waits: the callers are callbacks on uhmm's dispatcher (which
 * every unmapping thread of the process may be waiting for) and the
 * program's own threads inside munmap(). A full socket loses the record,
 * and the loss is counted where no message is needed.
 */
static void emit(struct trace_rec *r, size_t len)
{
	r->pid = my_pid;
	r->ns = now_ns();
	if (send(trace_sock, r, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		count(&shared->lost, 1);
}

static void emit_text(uint32_t type, const char *fmt, ...)
{
	struct trace_rec r = { .type = type };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	if (type == TRACE_WARN)
		count(&shared->warnings, 1);
	emit(&r, offsetof(struct trace_rec, text) + strlen(r.text) + 1);
}

/* ------------------------------------------------------------------------
 * Segments: the subscriptions that cover the address space.
 */

struct seg {
	struct uhmm_interval_notifier sub;
	unsigned long start, end;
	bool retiring;		/* being replaced: reports nothing */
	struct seg *next;
};

/* The list is changed by the constructor and then by the arming thread
 * only; callbacks never walk it. */
static pthread_mutex_t seg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seg *segs;
static int nsegs;
#define MAX_SEGS 256

static bool seg_invalidate(struct uhmm_interval_notifier *sub,
			   const struct uhmm_notifier_range *range,
			   unsigned long cur_seq)
{
	/* One window calls every segment it overlaps, one after the other
	 * in this thread, with the same range: report it once. (Segments
	 * overlap only while one is replaced; a window crosses two only if
	 * it spans a refused mapping.) */
	static __thread struct uhmm_notifier_range last;
	static __thread const struct uhmm_notifier_range *last_ptr;
	static __thread unsigned long last_seq;
	struct seg *g = container_of(sub, struct seg, sub);
	struct trace_rec r = { .type = TRACE_EVENT };

	if (__atomic_load_n(&g->retiring, __ATOMIC_ACQUIRE) ||
	    range->event == UHMM_EVENT_RELEASE)
		return true;
	if (range == last_ptr && cur_seq == last_seq &&
	    range->start == last.start && range->end == last.end &&
	    range->event == last.event)
		return true;
	last = *range;
	last_ptr = range;
	last_seq = cur_seq;

	r.event = range->event;
	r.start = range->start;
	r.end = range->end;
	if (in_fork) {
		r.via = TRACE_VIA_FORK;
		r.tid = gettid();
	} else if (in_call) {
		r.via = TRACE_VIA_CALL;
		r.tid = gettid();
	} else {
		/* uhmm's dispatcher: the kernel's event names no thread. */
		r.via = TRACE_VIA_KERNEL;
		r.tid = TRACE_TID_UNKNOWN;
	}
	emit(&r, offsetof(struct trace_rec, text));
	return true;
}

static const struct uhmm_interval_notifier_ops seg_ops = { seg_invalidate };

/* Subscriptions that only arm: the segments report. */
static bool quiet_invalidate(struct uhmm_interval_notifier *sub,
			     const struct uhmm_notifier_range *range,
			     unsigned long cur_seq)
{
	(void)sub;
	(void)range;
	(void)cur_seq;
	return true;
}

static const struct uhmm_interval_notifier_ops quiet_ops = { quiet_invalidate };

/* The top of the user address space (without 5-level paging hints). */
static unsigned long user_top(void)
{
#if defined(__aarch64__)
	return 1UL << 48;
#else
	return (1UL << 47) - page_size;
#endif
}

struct span {
	unsigned long start, end;
	int err;
	char name[64];
};

static bool refused(int ret)
{
	return ret == -EOPNOTSUPP || ret == -EPERM || ret == -EBUSY;
}

/*
 * The mappings of [start, end) that cannot be armed, in address order:
 * with known_only, those userfaultfd always refuses by their name (no
 * system call); otherwise each mapping is tried on its own.
 */
static int find_refused(unsigned long start, unsigned long end,
			bool known_only, struct span *out, int max)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		struct uhmm_interval_notifier tmp;
		unsigned long s, e;
		char name[64] = "";
		int ret;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %63s", &s, &e,
			   name) < 2 || e <= start || s >= end)
			continue;
		if (known_only) {
			if (strcmp(name, "[vdso]") && strcmp(name, "[vvar]") &&
			    strcmp(name, "[vvar_vclock]") &&
			    strcmp(name, "[vsyscall]"))
				continue;
			ret = -EOPNOTSUPP;
		} else {
			memset(&tmp, 0, sizeof(tmp));
			ret = uhmm_interval_notifier_insert(
				&tmp, trace_mm, s, e - s, &quiet_ops);
			if (!ret)
				uhmm_interval_notifier_remove(&tmp);
			if (!refused(ret))
				continue;
		}
		out[n].start = s < start ? start : s;
		out[n].end = e > end ? end : e;
		out[n].err = -ret;
		snprintf(out[n].name, sizeof(out[n].name), "%s", name);
		n++;
	}
	fclose(f);
	return n;
}

static void say_refused(const struct span *b)
{
	if (b->err == EBUSY)
		emit_text(TRACE_WARN,
			  "0x%lx-0x%lx %s is registered with another "
			  "userfaultfd (the program's own?): not traced",
			  b->start, b->end, b->name[0] ? b->name : "(anon)");
	else if (strcmp(b->name, "[vdso]") && strcmp(b->name, "[vvar]") &&
		 strcmp(b->name, "[vvar_vclock]"))
		emit_text(TRACE_NOTE,
			  "0x%lx-0x%lx %s cannot be watched (%s): not traced",
			  b->start, b->end, b->name,
			  b->err == EPERM ? "read-only shared file"
					  : "userfaultfd refuses it");
}

/*
 * Cover [start, end) with segments, leaving out the mappings that refuse.
 * Returns how many segments were added. Under seg_lock.
 */
static int cover(unsigned long start, unsigned long end, bool first)
{
	struct span bad[16];
	struct seg *g;
	unsigned long s;
	int n, ret, added = 0;

	if (start >= end)
		return 0;
	if (first) {
		/* Known refusers first: no trial and error for them. */
		n = find_refused(start, end, true, bad, 16);
		if (n)
			goto split;
	}
	if (nsegs >= MAX_SEGS) {
		emit_text(TRACE_NOTE, "0x%lx-0x%lx not traced: more than %d "
			  "refused mappings", start, end, MAX_SEGS);
		return 0;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return 0;
	g->start = start;
	g->end = end;
	ret = uhmm_interval_notifier_insert(&g->sub, trace_mm, start,
					    end - start, &seg_ops);
	if (!ret) {
		g->next = segs;
		segs = g;
		nsegs++;
		return 1;
	}
	free(g);
	n = refused(ret) ? find_refused(start, end, false, bad, 16) : 0;
	if (!n) {
		/* Nothing refuses on its own (it went away meanwhile), or
		 * out of memory: say so rather than loop. */
		emit_text(TRACE_NOTE, "0x%lx-0x%lx not traced: %s", start,
			  end, strerror(-ret));
		return 0;
	}
split:
	s = start;
	for (int i = 0; i < n; i++) {
		if (!first || bad[i].err == EBUSY)
			say_refused(&bad[i]);
		added += cover(s, bad[i].start, false);
		s = bad[i].end;
	}
	return added + cover(s, end, false);
}

/*
 * A segment whose arming is refused now (a mapping that cannot be
 * watched appeared in it): cover its range again without the mapping,
 * then retire it. The new segments are inserted first, so nothing goes
 * unwatched in between; a window that calls both is reported once.
 */
static void resegment(struct seg **pp)
{
	struct seg *g = *pp;

	*pp = g->next;
	nsegs--;
	cover(g->start, g->end, false);
	__atomic_store_n(&g->retiring, true, __ATOMIC_RELEASE);
	if (uhmm_interval_notifier_remove(&g->sub) == 0)
		free(g);
}

static unsigned int arm_ms = 100;

static void *arm_main(void *arg)
{
	struct timespec ts = {
		.tv_sec = arm_ms / 1000,
		.tv_nsec = (long)(arm_ms % 1000) * 1000000,
	};

	(void)arg;
	for (;;) {
		struct seg **pp;

		nanosleep(&ts, NULL);
		pthread_mutex_lock(&seg_lock);
		pp = &segs;
		while (*pp) {
			struct seg *g = *pp;
			int ret = uhmm_interval_notifier_arm(&g->sub);

			if (refused(ret))
				resegment(pp);	/* *pp is the next one */
			else
				pp = &g->next;
		}
		pthread_mutex_unlock(&seg_lock);
		count(&shared->arm_passes, 1);
	}
	return NULL;
}

/* ------------------------------------------------------------------------
 * Calibration: what one munmap() costs here, with and without uhmm.
 */

#define CAL_PAGES 64

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median ns of munmap() of one populated page: mode 0 nothing watched,
 * 1 watched and through uhmm_munmap(), 2 watched and raw (the thread
 * waits until uhmm's reader read the event). 0 on failure. */
static uint64_t cal_one(int mode)
{
	struct uhmm_interval_notifier sub = {0};
	uint64_t t[CAL_PAGES];
	char *p;

	p = uhmm_mmap(NULL, CAL_PAGES * page_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	for (int i = 0; i < CAL_PAGES; i++)
		p[i * page_size] = 1;
	if (mode && uhmm_interval_notifier_insert(&sub, trace_mm,
						  (unsigned long)p,
						  CAL_PAGES * page_size,
						  &quiet_ops)) {
		syscall(SYS_munmap, p, CAL_PAGES * page_size);
		return 0;
	}
	for (int i = 0; i < CAL_PAGES; i++) {
		uint64_t t0 = now_ns();

		if (mode == 1)
			uhmm_munmap(p + i * page_size, page_size);
		else
			syscall(SYS_munmap, p + i * page_size, page_size);
		t[i] = now_ns() - t0;
	}
	if (mode)
		uhmm_interval_notifier_remove(&sub);
	qsort(t, CAL_PAGES, sizeof(*t), cmp_u64);
	return t[CAL_PAGES / 2];
}

static void calibrate(void)
{
	uint32_t idle = 0;

	if (!__atomic_compare_exchange_n(&shared->cal_state, &idle, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	shared->cal_iters = CAL_PAGES;
	shared->cal_unwatched_ns = cal_one(0);
	shared->cal_call_ns = cal_one(1);
	shared->cal_kernel_ns = cal_one(2);
	__atomic_store_n(&shared->cal_state,
			 shared->cal_unwatched_ns && shared->cal_call_ns &&
				 shared->cal_kernel_ns ? 2 : 3,
			 __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------
 * The wrappers: libc's functions of these names, for calls through the
 * dynamic linker.
 */

/* A new mapping from mmap() into a hole: nothing arms it but this. */
static void watch_new(void *p, size_t len)
{
	struct uhmm_interval_notifier tmp = {0};
	int err = errno, ret;

	/* A signal handler that interrupted a wrapper or fork(): uhmm may
	 * hold a lock this would wait for. The arming pass will get it. */
	if (in_call || in_fork)	/* or fork(), which holds the mm's locks */
		return;
	in_call++;
	ret = uhmm_interval_notifier_insert(&tmp, trace_mm, (unsigned long)p,
					    len, &quiet_ops);
	if (!ret)
		uhmm_interval_notifier_remove(&tmp);
	in_call--;
	if (ret == -EBUSY)
		emit_text(TRACE_WARN, "mmap 0x%lx-0x%lx is registered with "
			  "another userfaultfd: not traced",
			  (unsigned long)p, (unsigned long)p + len);
	else if (ret)
		emit_text(TRACE_NOTE, "mmap 0x%lx-0x%lx cannot be watched "
			  "(%s): not traced", (unsigned long)p,
			  (unsigned long)p + len, strerror(-ret));
	errno = err;
}

EXPORT int munmap(void *addr, size_t len)
{
	uint64_t t0, t1;
	int ret;

	if (!active)
		return uhmm_munmap(addr, len);
	in_call++;
	t0 = now_ns();
	ret = uhmm_munmap(addr, len);
	t1 = now_ns();
	in_call--;
	count(&shared->munmap_calls, 1);
	count(&shared->munmap_ns, t1 - t0);
	return ret;
}

EXPORT void *mremap(void *old_addr, size_t old_len, size_t new_len,
		    int flags, ...)
{
	void *new_addr = NULL, *ret;

	if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	in_call++;
	ret = uhmm_mremap(old_addr, old_len, new_len, flags, new_addr);
	in_call--;
	return ret;
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	int ret;

	in_call++;
	ret = uhmm_madvise(addr, len, advice);
	in_call--;
	return ret;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t offset)
{
	void *p;

	in_call++;
	p = uhmm_mmap(addr, len, prot, flags, fd, offset);
	in_call--;
	/* MAP_FIXED re-arms in uhmm_mmap() itself; anything else is new. */
	if (p != MAP_FAILED && !(flags & MAP_FIXED) && active && len)
		watch_new(p, len);
	return p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t offset)
{
	return mmap(addr, len, prot, flags, fd, offset);
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	int ret;

	in_call++;
	ret = uhmm_mprotect(addr, len, prot);
	in_call--;
	return ret;
}

EXPORT int shmdt(const void *addr)
{
	int ret;

	in_call++;
	ret = uhmm_shmdt(addr);
	in_call--;
	return ret;
}

/*
 * The trace's descriptors: the socket, the shared counters, and what
 * uhmm_mm_open() opened (its userfaultfd and eventfds, found as the
 * descriptors that appeared across it, before the program ran). A
 * program that closes descriptors it did not open (closefrom(3), a
 * daemon's loop, Python's os.closerange) would otherwise close them:
 * uhmm's reader would then sleep on a dead userfaultfd, every munmap of
 * watched memory would wait for it forever, and uhmm's eventfd writes
 * would land in whatever file got the number. So close(), close_range(),
 * closefrom(), dup2() and dup3() keep them: a close of one succeeds
 * without closing it; a dup onto one fails with EBUSY. Said once, in a
 * note or a warning. A raw system call is not seen.
 */
#define MAX_OWN_FDS 16
#define LOW_FDS 10	/* the numbers the trace leaves to the program */
static int own_fds[MAX_OWN_FDS];	/* set by the constructor */
static int nown_fds;
static int uhmm_uffd_fd = -1;		/* among them */

static bool own_fd(int fd)
{
	for (int i = 0; i < nown_fds; i++)
		if (own_fds[i] == fd)
			return true;
	return false;
}

/* Kept in ascending order, for close_range(). */
static void own_fd_add(int fd)
{
	int i;

	if (fd < 0 || own_fd(fd) || nown_fds == MAX_OWN_FDS)
		return;
	for (i = nown_fds; i > 0 && own_fds[i - 1] > fd; i--)
		own_fds[i] = own_fds[i - 1];
	own_fds[i] = fd;
	nown_fds++;
}

/* The descriptors open now, up to max; how many. */
static int open_fds(int *fds, int max)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *d;
	int n = 0;

	if (!dir)
		return 0;
	while (n < max && (d = readdir(dir)))
		if (d->d_name[0] != '.' && atoi(d->d_name) != dirfd(dir))
			fds[n++] = atoi(d->d_name);
	closedir(dir);
	return n;
}

/* After uhmm_mm_open(): what appeared since before[0..nbefore). */
static void own_fds_find(const int *before, int nbefore)
{
	char path[64], link[64];
	int now[1024], n = open_fds(now, 1024);

	for (int i = 0; i < n; i++) {
		bool old = false;
		ssize_t len;

		for (int k = 0; k < nbefore && !old; k++)
			old = before[k] == now[i];
		if (old)
			continue;
		own_fd_add(now[i]);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", now[i]);
		len = readlink(path, link, sizeof(link) - 1);
		if (len > 0) {
			link[len] = '\0';
			if (!strcmp(link, "anon_inode:[userfaultfd]"))
				uhmm_uffd_fd = now[i];
		}
	}
}

static bool uhmm_uffd(int fd)
{
	return fd >= 0 && fd == uhmm_uffd_fd;
}

static void own_fd_kept(int fd, const char *call)
{
	static bool said;

	if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
		emit_text(TRACE_NOTE, "%s() of descriptor %d, which uhmm trace "
			  "uses: kept open (the program's call succeeds)",
			  call, fd);
}

EXPORT int close(int fd)
{
	if (own_fd(fd)) {
		own_fd_kept(fd, "close");
		return 0;
	}
	return (int)syscall(SYS_close, fd);
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	unsigned int from = first;

	/* The gaps between our descriptors (own_fds is in ascending order). */
	for (int i = 0; i < nown_fds; i++) {
		unsigned int fd = (unsigned int)own_fds[i];

		if (fd < from || fd > last)
			continue;
		own_fd_kept((int)fd, "close_range");
		if (fd > from &&
		    syscall(SYS_close_range, from, fd - 1, flags) < 0)
			return -1;
		from = fd + 1;
	}
	if (from > last || !from)	/* past last, or wrapped */
		return 0;
	return (int)syscall(SYS_close_range, from, last, flags);
}

EXPORT void closefrom(int lowfd)
{
	close_range(lowfd < 0 ? 0 : (unsigned int)lowfd, ~0U, 0);
}

static int dup_onto_own(int newfd, const char *call)
{
	static bool said;

	if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
		emit_text(TRACE_WARN, "%s() onto descriptor %d, which uhmm "
			  "trace uses: refused with EBUSY (the program would "
			  "not get this error without the trace)", call, newfd);
	errno = EBUSY;
	return -1;
}

EXPORT int dup2(int oldfd, int newfd)
{
	if (oldfd != newfd && own_fd(newfd))
		return dup_onto_own(newfd, "dup2");
	return (int)syscall(SYS_dup2, oldfd, newfd);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (own_fd(newfd))
		return dup_onto_own(newfd, "dup3");
	return (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

/*
 * The program's own userfaultfd: say why its registration failed. On
 * 64-bit Linux glibc's ioctl() is this system call and nothing more.
 */
EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	long ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	ret = syscall(SYS_ioctl, fd, request, arg);
	if (ret < 0 && errno == EBUSY && request == UFFDIO_REGISTER &&
	    active && !uhmm_uffd(fd)) {
		const struct uffdio_register *reg = arg;
		int err = errno;

		emit_text(TRACE_WARN,
			  "UFFDIO_REGISTER of 0x%llx-0x%llx failed with "
			  "EBUSY: uhmm trace watches that memory, and a "
			  "mapping has one userfaultfd: the program's own "
			  "does not work there under trace",
			  (unsigned long long)reg->range.start,
			  (unsigned long long)(reg->range.start +
					       reg->range.len));
		errno = err;
	}
	return (int)ret;
}

/* ------------------------------------------------------------------------
 * fork() and start-up
 */

static void fork_prepare(void)
{
	/* uhmm's own prepare handler, registered before this one, runs
	 * after it and opens the PROTECTION windows in this thread. */
	in_fork = true;
}

static void fork_parent(void)
{
	in_fork = false;
}

static void fork_child(void)
{
	pid_t parent = my_pid;

	in_fork = false;
	if (!active)
		return;
	active = false;
	my_pid = getpid();
	emit_text(TRACE_NOTE, "fork: child %d of %d is not traced (uhmm's "
		  "mm belongs to the process that opened it); a program it "
		  "execs is traced anew", (int)my_pid, (int)parent);
}

__attribute__((constructor)) static void trace_init(void)
{
	const char *env = getenv(TRACE_ENV_FD), *ms = getenv(TRACE_ENV_ARM_MS);
	char exe[PATH_MAX] = "?";
	int sock, memfd, type, segments, ret, before[1024], nbefore;
	int fill[LOW_FDS], nfill;
	socklen_t tlen = sizeof(type);
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t thread;
	void *p;
	ssize_t n;

	/* Preloaded by hand, or the command's fds are gone: do nothing. */
	if (!env || sscanf(env, "%d,%d", &sock, &memfd) != 2 ||
	    getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tlen) ||
	    type != SOCK_SEQPACKET)
		return;
	page_size = (unsigned long)sysconf(_SC_PAGESIZE);
	p = uhmm_mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED, memfd, 0);
	if (p == MAP_FAILED)
		return;
	shared = p;
	trace_sock = sock;
	my_pid = getpid();
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = '\0';
	if (ms)
		arm_ms = (unsigned int)strtoul(ms, NULL, 10);

	/* Relaxed: trace reads no translations, so it needs no wait for
	 * changes in flight (nor strict mode's self-test at start-up). */
	nbefore = open_fds(before, 1024);
	/* uhmm's descriptors above 0-9, which shell scripts and programs
	 * pick by hand (`exec 3>file`: a dup2() onto one of ours fails). */
	for (nfill = 0; nfill < LOW_FDS; nfill++) {
		fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fill[nfill] < 0 || fill[nfill] >= LOW_FDS)
			break;
	}
	ret = uhmm_mm_open(&trace_mm, UHMM_MM_RELAXED);
	for (int i = 0; i <= nfill && i < LOW_FDS; i++)
		if (fill[i] >= 0)
			syscall(SYS_close, fill[i]);
	if (ret) {
		emit_text(TRACE_WARN, "%s: not traced: uhmm_mm_open: %s",
			  exe, strerror(-ret));
		return;
	}
	own_fds_find(before, nbefore);
	own_fd_add(sock);
	own_fd_add(memfd);
	calibrate();
	/* The calibration's raw unmaps are dispatched asynchronously: not
	 * to the segments inserted next. */
	uhmm_mm_sync(trace_mm);
	pthread_mutex_lock(&seg_lock);
	segments = cover(page_size, user_top(), true);
	pthread_mutex_unlock(&seg_lock);
	active = true;
	pthread_atfork(fork_prepare, fork_parent, fork_child);

	if (arm_ms) {
		/* The thread takes no signal meant for the program. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&thread, &attr, arm_main, NULL))
			emit_text(TRACE_NOTE, "no arming thread: mappings "
				  "made without mmap() are not watched");
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	emit_text(TRACE_START, "%s (%d segments)", exe, segments);
}

/*
 * At exit, what the kernel reported is dispatched before the process
 * goes: an event read and not yet dispatched would be lost without a
 * count. (Only the mm is synchronised: it stays open, and a later
 * munmap() in another destructor is still read and reported. A death by
 * signal, or _exit(), skips this: events still in flight then are lost.)
 */
__attribute__((destructor)) static void trace_fini(void)
{
	/* exit() from a handler that interrupted a wrapper or fork() would
	 * wait here for a dispatcher that waits for this thread's locks. */
	if (active && !in_call && !in_fork)
		uhmm_mm_sync(trace_mm);
}
