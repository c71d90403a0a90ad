/* SPDX-License-Identifier: MIT */
/*
 * uhmm demo [--json]: the problem uhmm solves, and the fix, with real
 * kernel objects.
 *
 * An io_uring fixed buffer is a translation the kernel caches: its pages
 * are pinned at registration, and READ_FIXED writes to them whatever the
 * application maps at that address later. A runtime that caches
 * registrations by address (as every RDMA or io_uring runtime does) must
 * hear when the memory behind an address changes, or its next I/O goes to
 * a page the application no longer has.
 *
 * Each scenario registers a buffer through a uhmm_rcache over the io_uring
 * device, lets the "device" read known bytes into it, frees the buffer and
 * gets the same address back in one of four ways, and reads again through
 * the cache. It runs twice: on an mm opened with UHMM_MM_NO_MONITOR (no
 * kernel events: a hand-rolled cache without a monitor) and on a monitored
 * one (userfaultfd). Only the public API is used (uhmm.h, uhmm_uring.h,
 * liburing), so this file is also an example of how a runtime uses uhmm.
 */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <uhmm.h>
#include <uhmm_uring.h>

#include "cli.h"

static const char usage[] =
    "usage: uhmm demo [--json]\n"
    "  show a stale io_uring fixed-buffer read after an address is reused,\n"
    "  without uhmm, and the same read landing right with uhmm; --json\n"
    "  prints one JSON object\n";

/* Bytes each read moves: four pages, well under RLIMIT_MEMLOCK. */
#define XFER (16 * 1024)
/*
 * The free() + malloc() block: large enough that glibc serves it with its
 * own mmap() (M_MMAP_THRESHOLD, pinned below), which free() unmaps.
 */
#define MALLOC_LEN (1024 * 1024)
/*
 * Runs of a scenario until the address is reused: between the free and
 * the new allocation another thread's mmap() (uhmm's, a sanitizer's
 * allocator) may take it.
 */
#define TRIES 3
/* Bytes shown of each buffer. */
#define SHOW 16

/* The file the device reads from: the first read, the second, scratch. */
#define OFF_FIRST   0
#define OFF_SECOND  XFER
#define OFF_SCRATCH (2 * XFER)

/* The application's buffer: what it uses, and what to free. */
struct buf {
	unsigned char *p;
	void *map; /* mmap()ed scenarios: the mapping */
};

struct scenario {
	const char *name;  /* JSON */
	const char *title; /* people */
	int (*alloc)(struct buf *b);
	/* Free b and get memory at the same address if the system gives it:
	 * b->p is then the application's new buffer, reused or not. */
	int (*reuse)(struct buf *b);
	void (*release)(struct buf *b);
};

/* One scenario, without or with uhmm. */
struct run {
	const char *error;	     /* what failed, NULL if nothing did */
	int err;		     /* its errno */
	unsigned long before, after; /* the buffer's address */
	bool reused;
	unsigned int tries; /* runs until the address was reused */
	bool stale;	    /* the app's buffer lacks what the device wrote */
	bool have_old;	    /* old[] was read back */
	bool hit;	    /* a read before the free hit the cache */
	unsigned char seen[SHOW]; /* what the application sees */
	unsigned char old[SHOW];  /* the stale registration's page */
	unsigned long events;	  /* kernel events that reached the buffer */
	struct uhmm_rcache_stats st;
	double read_us; /* the read after the reuse */
};

/* ------------------------------------------------------------------------
 * The four ways an application frees memory and gets its address back.
 */

static int map_alloc(struct buf *b)
{
	b->map = mmap(NULL, XFER, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->map == MAP_FAILED)
		return -errno;
	b->p = b->map;
	return 0;
}

static void map_release(struct buf *b)
{
	munmap(b->map, XFER);
}

/*
 * Map again at the address just freed. MAP_FIXED_NOREPLACE takes the
 * address only if it is still free (something else of the process may
 * have taken it meanwhile): never over another mapping. If it was taken,
 * the application gets memory elsewhere and the run says so.
 */
static int map_again(struct buf *b, void *old)
{
	b->map = mmap(old, XFER, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (b->map == MAP_FAILED && errno == EEXIST)
		b->map = mmap(NULL, XFER, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->map == MAP_FAILED) {
		b->p = NULL; /* the old one is gone */
		return -errno;
	}
	b->p = b->map;
	return 0;
}

static int munmap_reuse(struct buf *b)
{
	void *old = b->map;

	if (munmap(old, XFER))
		return -errno;
	return map_again(b, old);
}

/* What a malloc()/munmap() hook never sees: libc is not called. */
static int raw_munmap_reuse(struct buf *b)
{
	void *old = b->map;

	if (syscall(SYS_munmap, old, XFER))
		return -errno;
	return map_again(b, old);
}

static int dontneed_reuse(struct buf *b)
{
	/* The mapping stays; its pages are dropped, and the application's
	 * next touch (the memset() that follows) gets a new zero page. */
	if (madvise(b->map, XFER, MADV_DONTNEED))
		return -errno;
	return 0;
}

static int malloc_alloc(struct buf *b)
{
	b->p = malloc(MALLOC_LEN);
	return b->p ? 0 : -ENOMEM;
}

/* free() unmaps the block inside libc, where no PLT hook sees it. */
static int malloc_reuse(struct buf *b)
{
	free(b->p);
	return malloc_alloc(b);
}

static void malloc_release(struct buf *b)
{
	free(b->p);
}

static const struct scenario scenarios[] = {
    {"munmap-mmap", "munmap + mmap at the same address", map_alloc,
     munmap_reuse, map_release},
    {"free-malloc", "free + malloc of a 1 MiB block", malloc_alloc,
     malloc_reuse, malloc_release},
    {"madv-dontneed", "MADV_DONTNEED, then the app touches the page", map_alloc,
     dontneed_reuse, map_release},
    {"raw-munmap", "raw syscall(SYS_munmap) + mmap", map_alloc,
     raw_munmap_reuse, map_release},
};

#define NSCEN (sizeof(scenarios) / sizeof(*scenarios))

/* ------------------------------------------------------------------------
 * Counting kernel events: a notifier of the demo's own over the buffer.
 * The cache has one too; this one only counts, so that the table can say
 * how many changes the kernel reported for the buffer (none without a
 * monitor). It records the collision as the protocol asks, although no
 * one reads through it.
 */

struct event_counter {
	struct uhmm_interval_notifier sub;
	atomic_ulong n;
};

static bool count_event(struct uhmm_interval_notifier *sub,
			const struct uhmm_notifier_range *range,
			unsigned long cur_seq)
{
	struct event_counter *c =
	    (struct event_counter *)((char *)sub -
				     offsetof(struct event_counter, sub));

	uhmm_interval_set_seq(sub, cur_seq);
	if (range->event != UHMM_EVENT_RELEASE)
		atomic_fetch_add(&c->n, 1);
	return true;
}

static const struct uhmm_interval_notifier_ops counter_ops = {count_event};

/* ------------------------------------------------------------------------
 * One run.
 */

/* The first n bytes of the second read: distinct per scenario, never
 * zero. */
static void second_bytes(unsigned int scen, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(0xa0 + 0x10 * scen + i % 16);
}

static int fill_file(int fd, unsigned int scen)
{
	static unsigned char data[2 * XFER];

	memset(data, 0x11, XFER);
	second_bytes(scen, data + XFER, XFER);
	if (pwrite(fd, data, sizeof(data), OFF_FIRST) != sizeof(data))
		return errno ? -errno : -EIO;
	return 0;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#define FAIL(r, what, e)                                                       \
	do {                                                                   \
		(r)->error = (what);                                           \
		(r)->err = (e);                                                \
		goto out;                                                      \
	} while (0)

/*
 * A read of XFER bytes from fd at off into buf through the cache, as a
 * runtime posts one: get the region, READ_FIXED, wait, put.
 */
static int read_through(struct uhmm_rcache *rc, struct io_uring *ring, int fd,
			void *buf, uint64_t off)
{
	int ret = uhmm_uring_read_fixed_sync(rc, ring, fd, buf, XFER, off);

	if (ret >= 0 && ret != XFER)
		return -EIO;
	return ret < 0 ? ret : 0;
}

/*
 * One run. The ring and its device are the demo's, shared by every run: a
 * ring set up and torn down per run returns its locked memory to
 * RLIMIT_MEMLOCK only later, in the background, and eight in a row went
 * past the common 64 KiB limit.
 */
static void run_one(unsigned int scen, bool monitor, int fd,
		    struct io_uring *ring, struct uhmm_uring_dev *dev,
		    struct run *r)
{
	const struct scenario *s = &scenarios[scen];
	struct event_counter counter = {0};
	struct uhmm_rcache *rc = NULL;
	struct uhmm_mm *mm = NULL;
	struct buf b = {0};
	bool have_buf = false, counting = false;
	unsigned char expect[XFER];
	double t0;
	int ret;
	size_t i;

	memset(r, 0, sizeof(*r));
	second_bytes(scen, expect, XFER);

	ret = fill_file(fd, scen);
	if (ret)
		FAIL(r, "writing the file", -ret);
	ret = uhmm_mm_open(&mm, monitor ? 0 : UHMM_MM_NO_MONITOR);
	if (ret)
		FAIL(r, "uhmm_mm_open", -ret);
	ret = uhmm_rcache_create(&rc, mm, uhmm_uring_rcache_ops(), dev, NULL);
	if (ret)
		FAIL(r, "uhmm_rcache_create", -ret);

	ret = s->alloc(&b);
	if (ret)
		FAIL(r, "allocating the buffer", -ret);
	have_buf = true;
	r->before = (unsigned long)b.p;
	ret = uhmm_interval_notifier_insert(&counter.sub, mm, r->before, XFER,
					    &counter_ops);
	if (ret)
		FAIL(r, "uhmm_interval_notifier_insert", -ret);
	counting = true;

	/* The application writes its buffer; the device fills it. */
	memset(b.p, 0, XFER);
	ret = read_through(rc, ring, fd, b.p, OFF_FIRST);
	if (ret)
		FAIL(r, "the first READ_FIXED", -ret);
	for (i = 0; i < XFER; i++)
		if (b.p[i] != 0x11)
			FAIL(r, "the first read did not land", EIO);
	/* Nothing changed yet: the cache must serve it again (a cache that
	 * never hits would never go stale either). */
	ret = read_through(rc, ring, fd, b.p, OFF_FIRST);
	if (ret)
		FAIL(r, "the read before the free", -ret);
	uhmm_rcache_stats(rc, &r->st);
	r->hit = r->st.hits >= 1;

	/* Free, get the address back, initialise the new buffer. */
	ret = s->reuse(&b);
	have_buf = b.p != NULL;
	if (ret)
		FAIL(r, "freeing and reallocating the buffer", -ret);
	r->after = (unsigned long)b.p;
	r->reused = r->after == r->before;
	memset(b.p, 0, XFER);

	t0 = now_us();
	ret = read_through(rc, ring, fd, b.p, OFF_SECOND);
	r->read_us = now_us() - t0;
	if (ret)
		FAIL(r, "the second READ_FIXED", -ret);
	memcpy(r->seen, b.p, SHOW);
	r->stale = memcmp(b.p, expect, XFER) != 0;
	/* Every event read by now dispatched, so the count is complete. */
	uhmm_mm_sync(mm);
	r->events = atomic_load(&counter.n);
	uhmm_rcache_stats(rc, &r->st);

	/*
	 * Where did the data go? The registration the read used is still
	 * cached: a WRITE_FIXED through it copies its page to the file, which
	 * shows what the device wrote into the page the application lost.
	 */
	if (r->stale) {
		ret = uhmm_uring_write_fixed_sync(rc, ring, fd, b.p, SHOW,
						  OFF_SCRATCH);
		if (ret == SHOW && pread(fd, r->old, SHOW, OFF_SCRATCH) == SHOW)
			r->have_old = true;
	}
out:
	/* Unsubscribe and unregister before freeing: no event, no pin. */
	if (counting)
		uhmm_interval_notifier_remove(&counter.sub);
	if (rc)
		uhmm_rcache_destroy(rc);
	if (have_buf)
		s->release(&b);
	if (mm)
		uhmm_mm_close(mm);
}

/*
 * A sanitizer's allocator keeps freed blocks in quarantine: its free() +
 * malloc() never gives the address back, so that scenario cannot show
 * anything there (the test builds run the demo under ASan and TSan).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED true
#else
#define SANITIZED false
#endif

/*
 * A run's checks. Both: the cache hit before the free, and the address
 * was given back (only free + malloc under a sanitizer is excused: it
 * then shows nothing, and says so). With uhmm the kernel's event reached
 * the buffer, the cache invalidated the region, and the read landed in
 * the application's memory. Without, the read went stale, and the data
 * is in the old page, read back through the stale registration: the
 * problem itself, not some other error.
 */
static bool run_ok(unsigned int scen, const struct run *r, bool monitor)
{
	unsigned char expect[SHOW];

	if (r->error || !r->hit)
		return false;
	if (!r->reused)
		return SANITIZED && scenarios[scen].alloc == malloc_alloc;
	if (monitor)
		return !r->stale && r->events >= 1 && r->st.invalidations >= 1;
	second_bytes(scen, expect, SHOW);
	return r->stale && r->have_old && !memcmp(r->old, expect, SHOW);
}

/* ------------------------------------------------------------------------
 * Output.
 */

/* "a0 a1 ...": SHOW * 3 - 1 characters and a NUL. */
static void hex(char *out, const unsigned char *b)
{
	size_t i, n = 0;

	for (i = 0; i < SHOW; i++)
		n += sprintf(out + n, i ? " %02x" : "%02x", b[i]);
}

static const char *reason(int err)
{
	switch (err) {
	case ENOMEM:
		return "out of memory, or past RLIMIT_MEMLOCK (ulimit -l)";
	default:
		return strerror(err);
	}
}

static void print_run(const char *label, unsigned int scen,
		      const struct run *r, bool monitor)
{
	char bytes[3 * SHOW];

	if (r->error) {
		printf("   %-13s error: %s: %s (%s)\n", label, r->error,
		       errname(r->err), reason(r->err));
		return;
	}
	hex(bytes, r->seen);
	printf("   %-13s %s  %s\n", label, bytes, r->stale ? "STALE" : "ok");
	if (r->have_old) {
		hex(bytes, r->old);
		printf("   %-13s %s\n", " old page", bytes);
	}
	if (!r->hit)
		printf("   %-13s FAILED: the read before the free missed the "
		       "cache\n", "");
	if (!r->reused)
		printf("   %-13s not reused (%u tries; last %#lx -> %#lx):\n"
		       "   %-13s the read cannot go stale, nothing to show%s\n",
		       "", r->tries, r->before, r->after, "",
		       run_ok(scen, r, monitor) ? " (sanitizer)" : "");
	else if (!monitor && !r->stale)
		printf("   %-13s reused, yet the read landed: the pages never "
		       "left,\n   %-13s so there was no change to show\n",
		       "", "");
	else if (!run_ok(scen, r, monitor))
		printf("   %-13s FAILED: %s\n", "",
		       monitor ? "no event or no invalidation reached the "
				 "buffer"
			       : "the device's data is not in the old page");
	else if (r->tries > 1)
		printf("   %-13s (address reused at try %u: another mapping "
		       "took it before)\n",
		       "", r->tries);
}

static const char intro[] =
    "io_uring fixed buffers are registrations the kernel keeps: the pages\n"
    "are pinned, and READ_FIXED writes to them whatever the application\n"
    "maps at that address later. Each scenario registers a buffer through\n"
    "a uhmm_rcache, lets the device read into it, frees it and gets the\n"
    "address back, then reads again through the cache: without uhmm (no\n"
    "kernel events, like a hand-rolled cache) and with uhmm (userfaultfd).\n";

static void print_human(const struct run (*runs)[2], bool ok)
{
	static const char *const mode[2] = {"no", "yes"};
	unsigned int s, m, stale = 0, shown = 0;
	char bytes[3 * SHOW];
	unsigned char dev[SHOW];

	fputs(intro, stdout);
	for (s = 0; s < NSCEN; s++) {
		printf("\n%u. %s\n", s + 1, scenarios[s].title);
		second_bytes(s, dev, SHOW);
		hex(bytes, dev);
		printf("   %-13s %s\n", "device wrote", bytes);
		print_run("without uhmm", s, &runs[s][0], false);
		print_run("with uhmm", s, &runs[s][1], true);
	}

	/* Written out: "µs" is two bytes, one column. */
	printf("\nscenario        uhmm  reused  read    events  inval  regs  "
	       "hits  read µs\n");
	for (s = 0; s < NSCEN; s++) {
		for (m = 0; m < 2; m++) {
			const struct run *r = &runs[s][m];

			printf("%-15s %-4s  ", m ? "" : scenarios[s].name,
			       mode[m]);
			if (r->error) {
				printf("error\n");
				continue;
			}
			printf("%-6s  %-6s %6lu %6lu %5lu %5lu %8.1f\n",
			       mode[r->reused], r->stale ? "STALE" : "ok",
			       r->events, r->st.invalidations, r->st.misses,
			       r->st.hits, r->read_us);
		}
		if (!runs[s][0].error && runs[s][0].reused) {
			shown++;
			stale += runs[s][0].stale;
		}
	}
	printf("\nevents: kernel events that reached a notifier over the "
	       "buffer. inval, regs,\nhits: the cache's invalidations, "
	       "registrations, hits (one is a read before\nthe free, which "
	       "must hit). read: the read after the reuse (get, READ_FIXED,\n"
	       "wait, put). old page: the page the stale registration holds, "
	       "read back\nthrough it with WRITE_FIXED.\n\n");
	if (ok)
		printf("ok: with uhmm every read landed in the application's "
		       "memory; without,\n%u of %u reads after a reuse were "
		       "stale.\n",
		       stale, shown);
	else
		printf("FAILED: see the scenarios above.\n");
}

static void j_bytes(struct json *j, const char *key, const unsigned char *b)
{
	char bytes[3 * SHOW];

	hex(bytes, b);
	j_str(j, key, bytes);
}

/* Every key in every run, null where an error left it unknown. */
static void j_run(struct json *j, const char *key, unsigned int scen,
		  const struct run *r, bool monitor)
{
	bool e = r->error != NULL;

	j_open(j, key);
	j_bool(j, "ok", run_ok(scen, r, monitor));
	j_bool(j, "hit_before_free", r->hit);
	j_str(j, "error", r->error);
	j_str(j, "errno", e ? errname(r->err) : NULL);
	j_key(j, "reused");
	fputs(e ? "null" : r->reused ? "true" : "false", stdout);
	j_long(j, "tries", r->tries);
	j_long(j, "stale", e ? -1 : r->stale);
	if (e)
		j_str(j, "app_saw", NULL);
	else
		j_bytes(j, "app_saw", r->seen);
	if (r->have_old)
		j_bytes(j, "old_page", r->old);
	else
		j_str(j, "old_page", NULL);
	j_long(j, "events", e ? -1 : (long long)r->events);
	j_long(j, "invalidations", e ? -1 : (long long)r->st.invalidations);
	j_long(j, "registrations", e ? -1 : (long long)r->st.misses);
	j_long(j, "hits", e ? -1 : (long long)r->st.hits);
	j_double(j, "read_us", e ? NAN : r->read_us);
	j_close(j);
}

static void print_json(const struct run (*runs)[2], bool ok)
{
	unsigned char dev[SHOW];
	struct json j = {0};
	unsigned int s;

	j_open(&j, NULL);
	j_bool(&j, "ok", ok);
	j_long(&j, "transfer_bytes", XFER);
	j_array_open(&j, "scenarios");
	for (s = 0; s < NSCEN; s++) {
		j_open(&j, NULL);
		j_str(&j, "name", scenarios[s].name);
		j_str(&j, "title", scenarios[s].title);
		j_bool(&j, "ok",
		       run_ok(s, &runs[s][0], false) &&
			       run_ok(s, &runs[s][1], true));
		second_bytes(s, dev, SHOW);
		j_bytes(&j, "device_wrote", dev);
		j_run(&j, "without_uhmm", s, &runs[s][0], false);
		j_run(&j, "with_uhmm", s, &runs[s][1], true);
		j_close(&j);
	}
	j_array_close(&j);
	j_close(&j);
	j_end(&j);
}

/* ------------------------------------------------------------------------
 * What the machine must allow, said before anything runs.
 */

/* What to do about it: lines of at most 76 columns, indented by two. */
static const char *uffd_hint(int err)
{
	switch (err) {
	case EPERM:
		return "forbidden by a seccomp policy, or vm.unprivileged_"
		       "userfaultfd=0 on a kernel\n  before 5.11: lift the "
		       "policy, or set sysctl vm.unprivileged_userfaultfd=1";
	case ENOSYS:
		return "the kernel has no userfaultfd: build it with "
		       "CONFIG_USERFAULTFD=y";
	case EOPNOTSUPP:
		return "the kernel lacks userfaultfd's asynchronous write "
		       "protection (Linux 6.7\n  or later), or failed uhmm's "
		       "strict-mode self-test";
	default:
		return strerror(err);
	}
}

static const char *uring_hint(int err)
{
	switch (err) {
	case EPERM:
		return "disabled by sysctl kernel.io_uring_disabled, or "
		       "forbidden by a seccomp\n  policy: set kernel."
		       "io_uring_disabled=0 (1 allows only the group that\n"
		       "  kernel.io_uring_group names), or lift the policy";
	case ENOSYS:
		return "the kernel has no io_uring: build it with "
		       "CONFIG_IO_URING=y";
	case ENOMEM:
		return "out of memory, or RLIMIT_MEMLOCK too small for the "
		       "ring (ulimit -l)";
	default:
		return strerror(err);
	}
}

/* An unavailable feature: said on stderr, and as JSON when asked. */
static int unavailable(bool json, const char *what, int err, const char *hint)
{
	struct json j = {0};
	char msg[128];

	fprintf(stderr,
		"uhmm demo: %s is unavailable (%s):\n  %s\n"
		"  (`uhmm probe` tells what this machine allows)\n",
		what, errname(err), hint);
	if (json) {
		snprintf(msg, sizeof(msg), "%s is unavailable (%s)", what,
			 errname(err));
		j_open(&j, NULL);
		j_bool(&j, "ok", false);
		j_str(&j, "error", msg);
		j_close(&j);
		j_end(&j);
	}
	return 1;
}

/*
 * What every run needs: a ring with a device on it (kept for all runs),
 * and a monitored mm. Said, with the remedy, if this machine forbids one.
 */
static int preflight(bool json, struct io_uring *ring,
		     struct uhmm_uring_dev **dev)
{
	struct uhmm_mm *mm;
	int ret;

	ret = io_uring_queue_init(8, ring, 0);
	if (ret)
		return unavailable(json, "io_uring", -ret, uring_hint(-ret));
	ret = uhmm_uring_dev_open(dev, ring, 4);
	if (ret) {
		io_uring_queue_exit(ring);
		return unavailable(json, "io_uring fixed buffers", -ret,
				   uring_hint(-ret));
	}
	ret = uhmm_mm_open(&mm, 0);
	if (ret) {
		uhmm_uring_dev_close(*dev);
		io_uring_queue_exit(ring);
		return unavailable(json, "userfaultfd (uhmm's event source)",
				   -ret, uffd_hint(-ret));
	}
	uhmm_mm_close(mm);
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	struct run runs[NSCEN][2];
	struct uhmm_uring_dev *dev;
	struct io_uring ring;
	bool json, ok = true;
	unsigned int s, m;
	int fd, ret;

	ret = json_only_options("demo", usage, argc, argv, &json);
	if (ret >= 0)
		return ret;

	if (preflight(json, &ring, &dev))
		return 1;
	fd = memfd_create("uhmm-demo", MFD_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "uhmm demo: memfd_create: %s\n",
			strerror(errno));
		return 1;
	}
	/*
	 * glibc raises its mmap threshold to the size of each mmap()ed block
	 * freed (uhmm's own allocations free some), after which a 1 MiB block
	 * comes from the heap, where free() keeps its pages: nothing would
	 * change behind the registration. Fixing the threshold at its default
	 * keeps such blocks mmap()ed, and free() unmaps them.
	 */
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif

	/* Each scenario without uhmm first, then with it. */
	for (s = 0; s < NSCEN; s++)
		for (m = 0; m < 2; m++) {
			struct run *r = &runs[s][m];
			unsigned int t;

			for (t = 1; t <= TRIES; t++) {
				run_one(s, m, fd, &ring, dev, r);
				r->tries = t;
				if (r->error || r->reused)
					break;
			}
			ok &= run_ok(s, r, m);
		}
	close(fd);
	uhmm_uring_dev_close(dev);
	io_uring_queue_exit(&ring);

	if (json)
		print_json(runs, ok);
	else
		print_human(runs, ok);
	return ok ? 0 : 1;
}
