/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the tests of kernel events (the userfaultfd source): a device
 * that logs every callback's (event, start, end), a check of the exact log,
 * and small mapping helpers. One event can be followed by another (mremap
 * move: REMAP then UNMAP), so t_dev's last_range is not enough.
 *
 * Waiting: after a syscall in this thread, uhmm_interval_read_begin() waits
 * for the events it caused (t_log_wait); to prove that NO event came,
 * compare the source's event count (t_events, which syncs) before and after.
 */
#ifndef UHMM_TEST_EVENTS_H
#define UHMM_TEST_EVENTS_H

#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "core/internal.h"
#include "source/source.h"
#include "device.h"

#define T_LOG_MAX 16

struct t_ev {
	enum uhmm_event event;
	unsigned long start, end;
};

struct t_log {
	struct t_dev dev;
	int n;				/* [dev.lock] callbacks seen */
	struct t_ev ev[T_LOG_MAX];	/* [dev.lock] the first T_LOG_MAX */
};

static unsigned long t_page;

static inline bool t_log_hook(struct t_dev *dev,
			      const struct uhmm_notifier_range *r)
{
	struct t_log *l = (struct t_log *)((char *)dev -
					   offsetof(struct t_log, dev));

	pthread_mutex_lock(&dev->lock);
	if (l->n < T_LOG_MAX)
		l->ev[l->n] = (struct t_ev){ r->event, r->start, r->end };
	l->n++;
	pthread_mutex_unlock(&dev->lock);
	return true;
}

static inline int t_log_insert(struct t_log *l, struct uhmm_mm *mm,
			       unsigned long start, unsigned long length)
{
	memset(l, 0, sizeof(*l));
	l->dev.hook = t_log_hook;
	return t_dev_insert(&l->dev, mm, start, length);
}

/* Wait for the events of syscalls this thread already made. */
static inline void t_log_wait(struct t_log *l)
{
	(void)uhmm_interval_read_begin(&l->dev.sub);
}

static inline const char *t_ev_name(enum uhmm_event e)
{
	switch (e) {
	case UHMM_EVENT_UNMAP: return "UNMAP";
	case UHMM_EVENT_CLEAR: return "CLEAR";
	case UHMM_EVENT_REMAP: return "REMAP";
	case UHMM_EVENT_PROTECTION: return "PROTECTION";
	case UHMM_EVENT_RELEASE: return "RELEASE";
	}
	return "?";
}

/* Compare l's log with exp[0..n), print both on a mismatch, then clear it. */
static inline void t_check_log(const char *file, int line, struct t_log *l,
			       const struct t_ev *exp, int n)
{
	bool ok;

	pthread_mutex_lock(&l->dev.lock);
	ok = l->n == n;
	for (int i = 0; ok && i < n; i++)
		ok = l->ev[i].event == exp[i].event &&
		     l->ev[i].start == exp[i].start && l->ev[i].end == exp[i].end;
	if (!ok) {
		fprintf(stderr, "%s:%d: event log mismatch\n  expected:", file,
			line);
		for (int i = 0; i < n; i++)
			fprintf(stderr, " %s[%#lx,%#lx)", t_ev_name(exp[i].event),
				exp[i].start, exp[i].end);
		fprintf(stderr, "%s\n  got:     ", n ? "" : " none");
		for (int i = 0; i < l->n && i < T_LOG_MAX; i++)
			fprintf(stderr, " %s[%#lx,%#lx)",
				t_ev_name(l->ev[i].event), l->ev[i].start,
				l->ev[i].end);
		fprintf(stderr, "%s\n", l->n ? "" : " none");
		t_failed = 1;
	}
	l->n = 0;
	pthread_mutex_unlock(&l->dev.lock);
}

#define T_EV(e, s, en) { UHMM_EVENT_##e, (unsigned long)(s), (unsigned long)(en) }
/* CHECK_LOG(l, T_EV(UNMAP, a, b), ...): exactly these callbacks, in order. */
#define CHECK_LOG(l, ...)                                                      \
	do {                                                                   \
		const struct t_ev exp_[] = { __VA_ARGS__ };                   \
		t_check_log(__FILE__, __LINE__, (l), exp_,                     \
			    (int)(sizeof(exp_) / sizeof(exp_[0])));            \
	} while (0)
#define CHECK_NO_LOG(l) t_check_log(__FILE__, __LINE__, (l), NULL, 0)

/*
 * uhmm_mm_open(flags) where userfaultfd cannot be used, -EOPNOTSUPP
 * means it, not that strict mode's self-test failed: that is a failure.
 */
static inline int t_open_flags(struct uhmm_mm **mmp, unsigned int flags)
{
	int ret = uhmm_mm_open(mmp, flags);

	t_page = (unsigned long)sysconf(_SC_PAGESIZE);
	if (ret == -EOPNOTSUPP && !(flags & UHMM_MM_RELAXED)) {
		struct uhmm_mm *relaxed;

		if (uhmm_mm_open(&relaxed, (flags & ~UHMM_MM_STRICT) |
						    UHMM_MM_RELAXED) == 0) {
			fprintf(stderr, "strict mode's self-test failed on a "
				"kernel whose userfaultfd works\n");
			exit(T_FAIL);
		}
	}
	return ret;
}

/* Open a monitored mm, or skip where userfaultfd cannot be used. */
static inline struct uhmm_mm *t_open(void)
{
	struct uhmm_mm *mm;
	int ret = t_open_flags(&mm, 0);

	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		SKIP("no userfaultfd event source here: %s", strerror(-ret));
	REQUIRE(ret == 0);
	return mm;
}

/*
 * A monitored mm, or where userfaultfd is not usable here, an explicit one
 * (saying why): for behaviours that do not depend on kernel events.
 */
static inline struct uhmm_mm *t_open_any(void)
{
	struct uhmm_mm *mm;
	int ret = t_open_flags(&mm, 0);

	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		printf("no userfaultfd event source here (%s): using "
		       "UHMM_MM_NO_MONITOR\n", strerror(-ret));
		ret = uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR);
	}
	REQUIRE(ret == 0);
	return mm;
}

/*
 * Events the process's source has read from the kernel for every change
 * made so far. It syncs first: a syscall returns once its event is read,
 * which may be before the reader has counted it, and lookups wait only for
 * events of their own range, so nothing else settles the count.
 */
static inline unsigned long t_events(struct uhmm_mm *mm)
{
	REQUIRE(uhmm_mm_sync(mm) == 0);
	return __atomic_load_n(&uffd_of(mm->source)->events, __ATOMIC_SEQ_CST);
}

/*
 * fork(); the child exits at once, the parent reaps it. A process whose
 * mm is monitored calls uhmm_mm_sync() first: GCC 12's ASan allocator is
 * not fork-safe while uhmm's threads allocate.
 */
static inline void t_fork_exit_reap(void)
{
	int status;
	pid_t pid = fork();

	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(0);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* n pages of private anonymous memory, touched. */
static inline char *t_map(unsigned long n)
{
	char *p = mmap(NULL, n * t_page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED);
	memset(p, 1, n * t_page);
	return p;
}

/*
 * Is the mapping at addr registered with a userfaultfd in write-protect
 * mode ("uw" in its smaps VmFlags)? 1 yes, 0 no, -1 no mapping there.
 */
static inline int t_registered(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	unsigned long a = (unsigned long)addr, s, e;
	char line[512];
	int in = 0, ret = -1;

	REQUIRE(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = s <= a && a < e;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			ret = strstr(line, " uw") != NULL;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* A value of /proc/meminfo (kB or a count); 0 if absent. */
static inline unsigned long t_meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	unsigned long v = 0;
	size_t n = strlen(key);

	REQUIRE(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = strtoul(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

/* AnonHugePages of the mapping at addr, in kB; -1 if not found. */
static inline long t_anon_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	unsigned long a = (unsigned long)addr, s, e;
	char line[256];
	long kb = -1;
	int in = 0;

	REQUIRE(f);
	while (fgets(line, sizeof(line), f)) {
		/* A mapping's header line: "start-end perms ..." */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			in = s <= a && a < e;
		else if (in && sscanf(line, "AnonHugePages: %ld", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* Skip the test unless UHMM_INSERT_REQUIRE_MAPPED works here. */
static inline void t_need_require_mapped(struct uhmm_mm *mm)
{
	struct t_dev probe = { 0 };
	char *p = t_map(1);
	int ret = t_dev_insert_flags(&probe, mm, (unsigned long)p, t_page,
				     UHMM_INSERT_REQUIRE_MAPPED);

	if (ret == -EOPNOTSUPP)
		SKIP("REQUIRE_MAPPED needs PAGEMAP_SCAN (Linux 6.7)");
	REQUIRE(ret == 0);
	REQUIRE(uhmm_interval_notifier_remove(&probe.sub) == 0);
	REQUIRE(munmap(p, t_page) == 0);
}

#endif
