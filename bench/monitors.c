/* SPDX-License-Identifier: MIT */
/*
 * bench-monitors: which changes of registered memory UCX's memory monitor
 * (ucm, under UCX's ucs_rcache) and uhmm (under uhmm_rcache) catch, in one
 * run. Built only when libucs is found.
 *
 * Each monitor runs in a child process of its own, started by exec: ucm
 * reads its hook mode (UCX_MEM_MMAP_HOOK_MODE) when libucs is loaded and
 * patches libc for the whole process, and merely loading libucs installs
 * its hooks (its constructor; strace shows ucm's test of them), so libucs
 * is opened with dlopen() in UCX's children only. Columns: UCX as the
 * environment leaves it (the mode it chose is printed); the mode forced to
 * reloc (ELF relocations: the PLT/GOT entries of every loaded object) and
 * to bistro (the first instructions of libc's functions overwritten), each
 * also without ucm's malloc hooks (UCX_MEM_MALLOC_HOOKS and _RELOC=no;
 * with them ucm may put its own allocator in malloc()'s place, and free()
 * is then not glibc's: which malloc() the child calls is printed); and
 * uhmm on a monitored mm in strict mode (its default; asked for
 * explicitly, so that UHMM_STRICT does not change what is measured).
 *
 * Each cache sits over a fake device of its own that stamps every
 * registration with a new generation and counts regs and deregs. For each
 * scenario, single-threaded, on a 64 KiB buffer, until TRIES tries count
 * (at most MAX_ATTEMPTS attempts):
 *  1. get + put twice: the second must return the same generation (the
 *     registration stays cached after put), else the attempt is counted
 *     "uncached" and proves nothing;
 *  2. a marker is written in the buffer's second page, then the change,
 *     which leaves new memory at the same address. If the new memory is
 *     elsewhere ("moved") or the marker is still there (the pages did not
 *     change: "unchanged"), the attempt does not count;
 *  3. get + put: stale if it returns the generation of step 1, the
 *     registration of the pages the buffer had.
 * The scenarios: munmap + mmap; syscall(SYS_munmap) + mmap (no libc
 * function at all); madvise(MADV_DONTNEED) (the address stays, the pages
 * go); mremap of the buffer away + mmap at the old address, two ways:
 * growing it with MREMAP_MAYMOVE past a fence (so it must move), and
 * MREMAP_FIXED onto a mapping of our own (an attempt whose mremap fails or
 * puts the pages anywhere else is "broken": UCX 1.13's hook does not pass
 * new_address on); free() + malloc() of a 1 MiB chunk (glibc's mmap
 * threshold pinned at 128 KiB, so free() unmaps it from inside libc and
 * malloc() maps it again); mmap(MAP_FIXED) over the buffer; sbrk() shrink + grow of a heap segment of
 * our own at the break (a malloc() of glibc's main arena that moved the
 * break meanwhile makes the attempt "moved": its memory is then above
 * ours and must not be cut).
 *
 * Prints a table of stale / tries per scenario and monitor ("no cache"
 * where ucs_rcache_create() refuses: ucm would not install its events),
 * the attempts that did not count, and each device's regs and deregs.
 * Exit status 0 unless a call fails (or a child dies); nothing is timed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ucm/api/ucm.h>
#include <ucs/memory/rcache.h>

#include <uhmm.h>

#define PAGE		4096UL
#define BUF_LEN		(64UL << 10)
#define CHUNK_LEN	(1UL << 20)	/* free + malloc: glibc mmaps it */
#define MMAP_THRESHOLD	(128 * 1024)
#define TRIES		50
#define MAX_ATTEMPTS	(4 * TRIES)
#define MARKER		0x5eed5eed5eed5eedull
#define RESULT_FD	3	/* a child's results go to the parent here */
#define CHILD_ALARM	120	/* s: a hung child is killed, not waited for */

/*
 * UCX's functions, from libucs opened in UCX's children only: loading
 * libucs runs its constructor, which installs ucm's hooks (its test of
 * them shows under strace), so a process that links it is hooked before
 * main(). uhmm's child must not be.
 */
static struct {
	ucs_status_t (*rcache_create)(const ucs_rcache_params_t *params,
				      const char *name,
				      ucs_stats_node_t *stats_parent,
				      ucs_rcache_t **rcache_p);
	void (*rcache_destroy)(ucs_rcache_t *rcache);
	ucs_status_t (*rcache_get)(ucs_rcache_t *rcache, void *address,
				   size_t length, int prot, void *arg,
				   ucs_rcache_region_t **region_p);
	void (*region_put)(ucs_rcache_t *rcache, ucs_rcache_region_t *region);
	const char *(*status_string)(ucs_status_t status);
	ucm_global_config_t *ucm_opts;	/* libucm's, a dependency */
} ucx;

/* ---- the fake device: a generation per registration ---- */

struct fake_dev {
	uint64_t gen;		/* atomic: last generation handed out */
	unsigned long regs;	/* atomic */
	unsigned long deregs;	/* atomic: uhmm's come from its worker */
};

static uint64_t fake_reg(struct fake_dev *d)
{
	__atomic_fetch_add(&d->regs, 1, __ATOMIC_RELAXED);
	return __atomic_add_fetch(&d->gen, 1, __ATOMIC_RELAXED);
}

static void fake_dereg(struct fake_dev *d)
{
	__atomic_fetch_add(&d->deregs, 1, __ATOMIC_RELAXED);
}

/* ---- the caches: get + put, returning the registration's generation ---- */

struct cache {
	const char *name;
	int (*get_put)(struct cache *c, void *addr, uint64_t *gen);
	void *rc;
	struct fake_dev dev;
};

static int uhmm_reg(void *dev, void *addr, size_t len, unsigned int access,
		    uint64_t *handle)
{
	(void)addr;
	(void)len;
	(void)access;
	*handle = fake_reg(dev);
	return 0;
}

static void uhmm_dereg(void *dev, uint64_t handle)
{
	(void)handle;
	fake_dereg(dev);
}

static const struct uhmm_rcache_ops uhmm_ops = {
	.reg = uhmm_reg,
	.dereg = uhmm_dereg,
};

/* The handle is the generation: regions are told apart by handle. */
static int uhmm_get_put(struct cache *c, void *addr, uint64_t *gen)
{
	struct uhmm_region *r;
	int ret;

	ret = uhmm_rcache_get(c->rc, addr, BUF_LEN,
			      UHMM_ACCESS_READ | UHMM_ACCESS_WRITE, &r);
	if (ret) {
		fprintf(stderr, "uhmm_rcache_get: %s\n", strerror(-ret));
		return ret;
	}
	*gen = r->handle;
	ret = uhmm_rcache_put(c->rc, r);
	if (ret)
		fprintf(stderr, "uhmm_rcache_put: %s\n", strerror(-ret));
	return ret;
}

struct ucx_region {
	ucs_rcache_region_t super;
	uint64_t gen;
};

static ucs_status_t ucx_mem_reg(void *ctx, ucs_rcache_t *rcache, void *arg,
				ucs_rcache_region_t *region, uint16_t flags)
{
	(void)rcache;
	(void)arg;
	(void)flags;
	((struct ucx_region *)region)->gen = fake_reg(ctx);
	return UCS_OK;
}

static void ucx_mem_dereg(void *ctx, ucs_rcache_t *rcache,
			  ucs_rcache_region_t *region)
{
	(void)rcache;
	(void)region;
	fake_dereg(ctx);
}

static void ucx_dump_region(void *ctx, ucs_rcache_t *rcache,
			    ucs_rcache_region_t *region, char *buf, size_t max)
{
	(void)ctx;
	(void)rcache;
	snprintf(buf, max, "gen %llu",
		 (unsigned long long)((struct ucx_region *)region)->gen);
}

static const ucs_rcache_ops_t ucx_ops = {
	.mem_reg = ucx_mem_reg,
	.mem_dereg = ucx_mem_dereg,
	.dump_region = ucx_dump_region,
};

static int ucx_get_put(struct cache *c, void *addr, uint64_t *gen)
{
	ucs_rcache_region_t *r;
	ucs_status_t st;

	st = ucx.rcache_get(c->rc, addr, BUF_LEN, PROT_READ | PROT_WRITE,
			    NULL, &r);
	if (st != UCS_OK) {
		fprintf(stderr, "ucs_rcache_get: %s\n",
			ucx.status_string(st));
		return -EIO;
	}
	*gen = ((struct ucx_region *)r)->gen;
	ucx.region_put(c->rc, r);
	return 0;
}

/* ---- the scenarios ---- */

struct buf {
	char *addr;		/* what is registered: BUF_LEN bytes */
	char *fence;		/* mremap: a mapping right after addr */
	char *brk_end;		/* sbrk: the break our segment ends at */
};

struct scenario {
	const char *name;
	/* A new buffer in b; 0 or -errno. */
	int (*make)(struct buf *b);
	/*
	 * Change b's memory and leave new memory at b->addr: 1. Or 0: the
	 * new memory is elsewhere, b->addr moved there. Or CHANGE_BROKEN:
	 * the change's own call did not do what it must (new memory is at
	 * b->addr all the same). Or -errno.
	 */
	int (*change)(struct buf *b);
	void (*unmake)(struct buf *b);
};

#define CHANGE_BROKEN 2
#define EXIT_NO_CACHE 3	/* a child whose cache cannot be created here */

/* What the first broken change of a scenario did, for the parent. */
static char broken_what[64];

/* A fresh private mapping at addr (NULL: anywhere); NULL if not there. */
static char *map_at(void *addr)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	char *p;

	if (addr)
		flags |= MAP_FIXED_NOREPLACE;
	p = mmap(addr, BUF_LEN, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* A kernel without MAP_FIXED_NOREPLACE takes addr as a hint. */
	if (addr && p != addr) {
		munmap(p, BUF_LEN);
		return NULL;
	}
	return p;
}

static int map_make(struct buf *b)
{
	b->addr = map_at(NULL);
	return b->addr ? 0 : -errno;
}

static void map_unmake(struct buf *b)
{
	munmap(b->addr, BUF_LEN);
}

/* After the old memory left b->addr: map new memory there, or elsewhere. */
static int map_again(struct buf *b)
{
	char *p = map_at(b->addr);

	if (p)
		return 1;
	/* Something took the address meanwhile (not ours to replace). */
	return map_make(b) ?: 0;
}

static int change_munmap(struct buf *b)
{
	if (munmap(b->addr, BUF_LEN))
		return -errno;
	return map_again(b);
}

static int change_raw_munmap(struct buf *b)
{
	/* Past libc: neither its PLT entry nor its code is involved. */
	if (syscall(SYS_munmap, b->addr, BUF_LEN))
		return -errno;
	return map_again(b);
}

static int change_dontneed(struct buf *b)
{
	return madvise(b->addr, BUF_LEN, MADV_DONTNEED) ? -errno : 1;
}

/*
 * A buffer with a fence: growing it cannot be done in place, so an
 * mremap() that grows it moves it, with no MREMAP_FIXED.
 */
static int fenced_make(struct buf *b)
{
	int ret = map_make(b);

	if (ret)
		return ret;
	b->fence = map_at(b->addr + BUF_LEN);
	/* Taken already: something else fences it. */
	return 0;
}

static void fenced_unmake(struct buf *b)
{
	map_unmake(b);
	if (b->fence)
		munmap(b->fence, BUF_LEN);
}

static int change_mremap_grow(struct buf *b)
{
	char *p = mremap(b->addr, BUF_LEN, 2 * BUF_LEN, MREMAP_MAYMOVE);

	if (p == MAP_FAILED)
		return -errno;
	if (p == b->addr) {
		/* Grown in place after all: the marker says "unchanged". */
		if (mremap(p, 2 * BUF_LEN, BUF_LEN, 0) != p)
			return -errno;
		return 1;
	}
	if (munmap(p, 2 * BUF_LEN))
		return -errno;
	return map_again(b);
}

static int change_mremap_fixed(struct buf *b)
{
	/* Somewhere to move the pages to: a mapping of our own, replaced. */
	char *away = map_at(NULL), *p;
	int ret;

	if (!away)
		return -errno;
	p = mremap(b->addr, BUF_LEN, BUF_LEN, MREMAP_MAYMOVE | MREMAP_FIXED,
		   away);
	if (p == away) {
		if (munmap(away, BUF_LEN))
			return -errno;
		return map_again(b);
	}
	/*
	 * The call went wrong (a hook that does not pass new_address on):
	 * the pages are elsewhere or still at b->addr. Put new memory at
	 * b->addr with a plain munmap + mmap, and count the attempt apart.
	 */
	if (!broken_what[0])
		snprintf(broken_what, sizeof(broken_what),
			 "mremap_returned_%p_errno_%d", (void *)p,
			 p == MAP_FAILED ? errno : 0);
	if (p != MAP_FAILED)
		munmap(p, BUF_LEN);
	else
		munmap(b->addr, BUF_LEN);
	munmap(away, BUF_LEN);
	ret = map_again(b);
	return ret < 0 ? ret : CHANGE_BROKEN;
}

static int change_map_fixed(struct buf *b)
{
	void *p = mmap(b->addr, BUF_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	return p == b->addr ? 1 : -errno;
}

static int malloc_make(struct buf *b)
{
	/*
	 * glibc raises its mmap threshold after freeing an mmapped chunk;
	 * pinned, a 1 MiB chunk is always mmapped, and freed with munmap.
	 */
	if (!mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
		return -EINVAL;
	b->addr = malloc(CHUNK_LEN);
	return b->addr ? 0 : -ENOMEM;
}

static int change_free(struct buf *b)
{
	char *old = b->addr;

	free(old);
	b->addr = malloc(CHUNK_LEN);
	if (!b->addr)
		return -ENOMEM;
	return b->addr == old;
}

static void malloc_unmake(struct buf *b)
{
	free(b->addr);
}

/*
 * A page-aligned segment of BUF_LEN at the break. Nothing of ours between
 * its sbrk() calls may malloc: glibc's main arena lives at the break too.
 */
static int brk_make(struct buf *b)
{
	char *cur = sbrk(0), *p;
	unsigned long pad;

	if (cur == (void *)-1)
		return -errno;
	pad = (PAGE - (unsigned long)cur % PAGE) % PAGE;
	if (sbrk((intptr_t)pad) == (void *)-1)
		return -errno;
	p = sbrk((intptr_t)BUF_LEN);
	if (p == (void *)-1)
		return -errno;
	b->addr = p;
	b->brk_end = p + BUF_LEN;
	return 0;
}

static int change_brk(struct buf *b)
{
	char *p;

	/*
	 * A malloc() (of a cache's miss, say) moved the break past our
	 * segment: what is above it is glibc's now. Take a new segment.
	 */
	if (sbrk(0) != b->brk_end)
		return brk_make(b) ?: 0;
	if (sbrk(-(intptr_t)BUF_LEN) == (void *)-1)
		return -errno;
	p = sbrk((intptr_t)BUF_LEN);
	if (p == (void *)-1)
		return -errno;
	if (p == b->addr)
		return 1;
	b->addr = p;
	b->brk_end = p + BUF_LEN;
	return 0;
}

static void brk_unmake(struct buf *b)
{
	if (sbrk(0) == b->brk_end)
		sbrk(-(intptr_t)BUF_LEN);
}

static const struct scenario scenarios[] = {
	{ "munmap + mmap", map_make, change_munmap, map_unmake },
	{ "syscall(SYS_munmap) + mmap", map_make, change_raw_munmap,
	  map_unmake },
	{ "madvise(MADV_DONTNEED)", map_make, change_dontneed, map_unmake },
	{ "mremap(MAYMOVE) away + mmap", fenced_make, change_mremap_grow,
	  fenced_unmake },
	{ "mremap(FIXED) away + mmap", map_make, change_mremap_fixed,
	  map_unmake },
	{ "free + malloc (1 MiB)", malloc_make, change_free, malloc_unmake },
	{ "mmap(MAP_FIXED) over", map_make, change_map_fixed, map_unmake },
	{ "sbrk shrink + grow", brk_make, change_brk, brk_unmake },
};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

struct result {
	int stale, tries;
	int moved, unchanged, uncached, broken;
	bool done;		/* the child reported it */
};

static volatile uint64_t *marker(const struct buf *b)
{
	return (volatile uint64_t *)(b->addr + PAGE);
}

/* One scenario on one cache; 0 or -errno (a failed call). */
static int run_scenario(struct cache *c, const struct scenario *s,
			struct result *res)
{
	struct buf b = { 0 };
	int ret, attempt;

	memset(res, 0, sizeof(*res));
	ret = s->make(&b);
	if (ret)
		return ret;
	for (attempt = 0; attempt < MAX_ATTEMPTS && res->tries < TRIES &&
	     res->broken < TRIES; attempt++) {
		uint64_t gen, again, after;

		ret = c->get_put(c, b.addr, &gen);
		if (!ret)
			ret = c->get_put(c, b.addr, &again);
		if (ret)
			break;
		if (again != gen) {
			res->uncached++;
			continue;
		}
		*marker(&b) = MARKER;
		ret = s->change(&b);
		if (ret < 0)
			break;
		if (!ret) {
			res->moved++;
			continue;
		}
		if (ret == CHANGE_BROKEN) {
			res->broken++;
			continue;
		}
		if (*marker(&b) == MARKER) {
			res->unchanged++;
			continue;
		}
		res->tries++;
		ret = c->get_put(c, b.addr, &after);
		if (ret)
			break;
		res->stale += after == gen;
	}
	s->unmake(&b);
	return ret < 0 ? ret : 0;
}

/* Run every scenario and send the results to the parent. */
static int run_all(struct cache *c)
{
	for (size_t i = 0; i < NSCENARIOS; i++) {
		struct result r;
		int ret;

		broken_what[0] = 0;
		ret = run_scenario(c, &scenarios[i], &r);

		if (ret) {
			fprintf(stderr, "%s, %s: %s\n", c->name,
				scenarios[i].name, strerror(-ret));
			return ret;
		}
		dprintf(RESULT_FD, "R %zu %d %d %d %d %d %d\n", i, r.stale,
			r.tries, r.moved, r.unchanged, r.uncached, r.broken);
		if (broken_what[0])
			dprintf(RESULT_FD, "B %zu %s\n", i, broken_what);
	}
	dprintf(RESULT_FD, "D %lu %lu\n",
		__atomic_load_n(&c->dev.regs, __ATOMIC_RELAXED),
		__atomic_load_n(&c->dev.deregs, __ATOMIC_RELAXED));
	return 0;
}

/* ---- the children ---- */

static const char *ucm_mode_name(ucm_mmap_hook_mode_t mode)
{
	switch (mode) {
	case UCM_MMAP_HOOK_NONE:
		return "none";
	case UCM_MMAP_HOOK_RELOC:
		return "reloc";
	case UCM_MMAP_HOOK_BISTRO:
		return "bistro";
	default:
		return "unknown";
	}
}

static void *ucx_sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);

	if (!p)
		fprintf(stderr, "%s: %s\n", name, dlerror());
	return p;
}

/* Load libucs (and with it libucm): 0, or -1 said on stderr. */
static int ucx_open(void)
{
	void *lib = dlopen(UHMM_UCS_LIB, RTLD_NOW | RTLD_LOCAL);

	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return -1;
	}
	/* dlsym on the handle also searches libucs's dependencies. */
	ucx.rcache_create = ucx_sym(lib, "ucs_rcache_create");
	ucx.rcache_destroy = ucx_sym(lib, "ucs_rcache_destroy");
	ucx.rcache_get = ucx_sym(lib, "ucs_rcache_get");
	ucx.region_put = ucx_sym(lib, "ucs_rcache_region_put");
	ucx.status_string = ucx_sym(lib, "ucs_status_string");
	ucx.ucm_opts = ucx_sym(lib, "ucm_global_opts");
	if (!ucx.rcache_create || !ucx.rcache_destroy || !ucx.rcache_get ||
	    !ucx.region_put || !ucx.status_string || !ucx.ucm_opts)
		return -1;
	return 0;
}

/* The file of the malloc() this program calls: its GOT entry's. */
static const char *malloc_owner(void)
{
	void *(*volatile fn)(size_t) = malloc;
	const char *slash;
	Dl_info info;

	if (!dladdr((void *)fn, &info) || !info.dli_fname)
		return "?";
	slash = strrchr(info.dli_fname, '/');
	return slash ? slash + 1 : info.dli_fname;
}

static int ucx_child(void)
{
	struct cache c = { .name = "UCX", .get_put = ucx_get_put };
	ucs_rcache_params_t params = {
		.region_struct_size = sizeof(struct ucx_region),
		.alignment = UCS_RCACHE_MIN_ALIGNMENT,
		.max_alignment = PAGE,
		/* What UCX's transports ask for (uct's md rcaches). */
		.ucm_events = UCM_EVENT_VM_UNMAPPED,
		.ucm_event_priority = 1000,
		.ops = &ucx_ops,
		.context = &c.dev,
		.flags = 0,
		.max_regions = ULONG_MAX,
		.max_size = SIZE_MAX,
		.max_unreleased = SIZE_MAX,
	};
	ucs_rcache_t *rc;
	ucs_status_t st;
	int ret;

	if (ucx_open())
		return 1;
	st = ucx.rcache_create(&params, "monitors", NULL, &rc);
	if (st != UCS_OK) {
		/*
		 * ucm refuses to install events it could not see fire
		 * (with reloc and no malloc hooks, say): UCX then runs
		 * without this cache. A result, not a failure.
		 */
		dprintf(RESULT_FD, "X %s\n", ucx.status_string(st));
		return EXIT_NO_CACHE;
	}
	/*
	 * libucs read UCX_MEM_* into ucm's options when it was loaded. With
	 * its malloc hooks ucm puts its own allocator in malloc's place (in
	 * the relocations): then free() is not glibc's. Say whose it is.
	 */
	dprintf(RESULT_FD, "M %s %d %d %s\n",
		ucm_mode_name(ucx.ucm_opts->mmap_hook_mode),
		ucx.ucm_opts->enable_malloc_hooks,
		ucx.ucm_opts->enable_malloc_reloc, malloc_owner());
	c.rc = rc;
	ret = run_all(&c);
	ucx.rcache_destroy(rc);
	return ret ? 1 : 0;
}

static int uhmm_child(void)
{
	struct cache c = { .name = "uhmm", .get_put = uhmm_get_put };
	struct uhmm_rcache *rc;
	struct uhmm_mm *mm;
	int ret;

	ret = uhmm_mm_open(&mm, UHMM_MM_STRICT);
	if (ret) {
		fprintf(stderr, "uhmm_mm_open: %s\n", strerror(-ret));
		return 1;
	}
	ret = uhmm_rcache_create(&rc, mm, &uhmm_ops, &c.dev, NULL);
	if (ret) {
		fprintf(stderr, "uhmm_rcache_create: %s\n", strerror(-ret));
		uhmm_mm_close(mm);
		return 1;
	}
	dprintf(RESULT_FD, "M strict 0 0 %s\n", malloc_owner());
	c.rc = rc;
	/*
	 * The mm stays open while registered memory is unmapped: such an
	 * munmap waits for uhmm's reader thread to read its event.
	 */
	ret = run_all(&c);
	if (uhmm_rcache_destroy(rc))
		ret = -EBUSY;
	if (uhmm_mm_close(mm))
		ret = -EINVAL;
	return ret ? 1 : 0;
}

/* ---- the parent ---- */

struct column {
	const char *title;
	const char *child;	/* "ucx" or "uhmm" */
	const char *hook_mode;	/* UCX_MEM_MMAP_HOOK_MODE; NULL: as it is */
	bool no_malloc_hooks;	/* UCX_MEM_MALLOC_HOOKS/_RELOC=no */
	/* Filled from the child's report. */
	char mode[16], malloc_lib[64];
	char no_cache[64];	/* why the child had no cache, if it had none */
	char broken[NSCENARIOS][64];
	int malloc_hooks, malloc_reloc;
	unsigned long regs, deregs;
	struct result res[NSCENARIOS];
	int status;		/* 0: the child exited 0 and reported all */
};

static void parse_line(struct column *col, const char *line)
{
	struct result r = { 0 };
	size_t i;

	if (sscanf(line, "R %zu %d %d %d %d %d %d", &i, &r.stale, &r.tries,
		   &r.moved, &r.unchanged, &r.uncached, &r.broken) == 7 &&
	    i < NSCENARIOS) {
		r.done = true;
		col->res[i] = r;
	} else if (sscanf(line, "M %15s %d %d %63s", col->mode,
			  &col->malloc_hooks, &col->malloc_reloc,
			  col->malloc_lib) == 4) {
	} else if (sscanf(line, "D %lu %lu", &col->regs, &col->deregs) == 2) {
	} else if (sscanf(line, "B %zu %63s", &i, col->broken[0]) == 2 &&
		   i < NSCENARIOS) {
		if (i)
			strcpy(col->broken[i], col->broken[0]);
	} else if (sscanf(line, "X %63[^\n]", col->no_cache) == 1) {
	}
}

static void run_column(const char *self, struct column *col)
{
	char line[256], *argv[] = { (char *)self, "--child",
				    (char *)col->child, NULL };
	int fds[2], wstatus;
	FILE *in;
	pid_t pid;

	col->status = -1;
	if (pipe2(fds, O_CLOEXEC)) {
		perror("pipe2");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		/* dup2 leaves RESULT_FD open across exec. */
		if (dup2(fds[1], RESULT_FD) < 0)
			_exit(127);
		if (col->hook_mode)
			setenv("UCX_MEM_MMAP_HOOK_MODE", col->hook_mode, 1);
		if (col->no_malloc_hooks) {
			setenv("UCX_MEM_MALLOC_HOOKS", "no", 1);
			setenv("UCX_MEM_MALLOC_RELOC", "no", 1);
		}
		execv(self, argv);
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	if (!in) {
		close(fds[0]);
	} else {
		while (fgets(line, sizeof(line), in))
			parse_line(col, line);
		fclose(in);
	}
	if (waitpid(pid, &wstatus, 0) != pid) {
		perror("waitpid");
		return;
	}
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
		col->status = 0;
	else if (WIFEXITED(wstatus) &&
		 WEXITSTATUS(wstatus) == EXIT_NO_CACHE && col->no_cache[0]) {
		col->status = 0;	/* said in the table */
		return;
	}
	else if (WIFSIGNALED(wstatus))
		fprintf(stderr, "%s: killed by signal %d%s\n", col->title,
			WTERMSIG(wstatus),
			WTERMSIG(wstatus) == SIGALRM ? " (hung)" : "");
	else
		fprintf(stderr, "%s: exit status %d\n", col->title,
			WEXITSTATUS(wstatus));
	for (size_t i = 0; i < NSCENARIOS; i++)
		if (!col->res[i].done)
			col->status = -1;
}

static void print_table(struct column *cols, size_t ncols)
{
	char cell[32];

	printf("\nstale / tries (a try: new memory at the same address; "
	       "-mh: no ucm malloc hooks)\n");
	printf("%-28s", "change");
	for (size_t j = 0; j < ncols; j++)
		printf(" %-10s", cols[j].title);
	printf("\n");
	for (size_t i = 0; i < NSCENARIOS; i++) {
		printf("%-28s", scenarios[i].name);
		for (size_t j = 0; j < ncols; j++) {
			const struct result *r = &cols[j].res[i];

			if (cols[j].no_cache[0])
				snprintf(cell, sizeof(cell), "no cache");
			else if (r->done && !r->tries && r->broken)
				snprintf(cell, sizeof(cell), "broken");
			else if (r->done)
				snprintf(cell, sizeof(cell), "%d / %d",
					 r->stale, r->tries);
			else
				snprintf(cell, sizeof(cell), "-");
			printf(" %-10s", cell);
		}
		printf("\n");
	}

	printf("\nattempts that did not count (moved: new memory elsewhere; "
	       "unchanged: the\npages survived; uncached: a second get "
	       "registered again; broken: the\nchange's call failed or put "
	       "the pages elsewhere)\n");
	for (size_t j = 0; j < ncols; j++)
		for (size_t i = 0; i < NSCENARIOS; i++) {
			const struct result *r = &cols[j].res[i];

			if (r->moved || r->unchanged || r->uncached ||
			    r->broken)
				printf("  %s, %s: moved %d, unchanged %d, "
				       "uncached %d, broken %d\n",
				       cols[j].title, scenarios[i].name,
				       r->moved, r->unchanged, r->uncached,
				       r->broken);
			if (r->broken && cols[j].broken[i][0])
				printf("    first broken: %s\n",
				       cols[j].broken[i]);
		}

	for (size_t j = 0; j < ncols; j++)
		if (cols[j].no_cache[0])
			printf("  %s: no cache: ucs_rcache_create: %s\n",
			       cols[j].title, cols[j].no_cache);

	printf("\nfake devices (regs / deregs)\n");
	for (size_t j = 0; j < ncols; j++)
		printf("  %-14s %lu / %lu\n", cols[j].title, cols[j].regs,
		       cols[j].deregs);
}

int main(int argc, char **argv)
{
	/*
	 * UCX as the environment leaves it, then each hook mode, with and
	 * without ucm's malloc hooks (without them free() is glibc's).
	 */
	struct column cols[] = {
		{ .title = "UCX env", .child = "ucx" },
		{ .title = "reloc", .child = "ucx", .hook_mode = "reloc" },
		{ .title = "bistro", .child = "ucx", .hook_mode = "bistro" },
		{ .title = "reloc -mh", .child = "ucx", .hook_mode = "reloc",
		  .no_malloc_hooks = true },
		{ .title = "bistro -mh", .child = "ucx",
		  .hook_mode = "bistro", .no_malloc_hooks = true },
		{ .title = "uhmm", .child = "uhmm" },
	};
	size_t ncols = sizeof(cols) / sizeof(cols[0]);
	const char *env = getenv("UCX_MEM_MMAP_HOOK_MODE");
	int failed = 0;

	if (argc == 3 && !strcmp(argv[1], "--child")) {
		alarm(CHILD_ALARM);
		if (!strcmp(argv[2], "ucx"))
			return ucx_child();
		if (!strcmp(argv[2], "uhmm"))
			return uhmm_child();
		return 2;
	}

	printf("bench-monitors: %d tries per change, single-threaded, %lu "
	       "KiB buffers;\neach column a process of its own\n", TRIES,
	       BUF_LEN >> 10);
	for (size_t j = 0; j < ncols; j++) {
		run_column("/proc/self/exe", &cols[j]);
		failed |= cols[j].status;
	}
	for (size_t j = 0; j < ncols; j++) {
		if (strcmp(cols[j].child, "ucx"))
			continue;
		printf("%-10s ucm mode %s (UCX_MEM_MMAP_HOOK_MODE %s), "
		       "malloc hooks %s, reloc %s: malloc() from %s\n",
		       cols[j].title, cols[j].mode[0] ? cols[j].mode : "?",
		       cols[j].hook_mode ? cols[j].hook_mode :
		       env ? env : "unset",
		       cols[j].malloc_hooks ? "on" : "off",
		       cols[j].malloc_reloc ? "on" : "off",
		       cols[j].malloc_lib[0] ? cols[j].malloc_lib : "?");
		if (cols[j].hook_mode && cols[j].mode[0] &&
		    strcmp(cols[j].hook_mode, cols[j].mode))
			printf("  (asked for %s, got %s)\n",
			       cols[j].hook_mode, cols[j].mode);
	}
	printf("%-10s monitored mm, strict mode: malloc() from %s\n", "uhmm",
	       cols[ncols - 1].malloc_lib[0] ? cols[ncols - 1].malloc_lib :
	       "?");
	print_table(cols, ncols);
	return failed ? 1 : 0;
}
