/* SPDX-License-Identifier: MIT */
/*
 * Each way a buffer can change under libfabric's MR cache, one at a time,
 * and whether the cache then hands out a fresh registration or the stale
 * one of the old pages. Real libfabric (verbs domain) over fake-verbs.so.
 *
 *   test-mr-cache-steps uhmm|userfaultfd|memhooks
 *
 * The argument is the monitor (fabric-test.h). For each step, N times
 * (N = 50 * UHMM_TEST_SCALE, at least 5), on a 64 KiB buffer whose first
 * 8 bytes hold a marker of its own:
 *  1. fi_mr_reg twice: the second must be a cache hit, the same fake
 *     registration (generation) - else the cache is off and nothing below
 *     would mean anything: fail;
 *  2. the change, which leaves new memory at the same address, and a new
 *     marker written there;
 *  3. fi_mr_reg again: fresh if it is a new generation that saw the new
 *     marker, stale if it is the old generation (the pages the buffer
 *     had); anything else (a new one that saw something else) fails.
 * The steps: munmap + mmap; syscall(SYS_munmap) + mmap (past any libc
 * hook); madvise(MADV_DONTNEED) (same mapping, a new zero page); mremap
 * of the buffer to another address + mmap at the old one; free() +
 * malloc() of a 1 MiB chunk (glibc serves and returns it with mmap and
 * munmap; the mmap threshold is pinned so it keeps doing so) that comes
 * back at the same address - when it comes back elsewhere, that try is
 * counted as "not reused", neither fresh nor stale; mmap(MAP_FIXED) over
 * the buffer.
 *
 * Each step runs in a child process of its own (a monitor of its own, and
 * a watchdog: fabric-test.h), so that one that hangs - libfabric 1.17's
 * userfaultfd monitor can - does not hide the others.
 *
 * Prints one line per step: fresh, stale, (tries); with uhmm, also the
 * adapter's counters (uhmm_fabric_stats()). With uhmm, any stale
 * registration, hang or error fails. With userfaultfd or memhooks the
 * figures are for comparison: only an error fails (a hang is printed).
 */
#include <malloc.h>
#include <sys/syscall.h>
#include <time.h>

#include "fabric-test.h"

#define BUF_LEN		(64 * 1024)
#define CHUNK_LEN	(1024 * 1024)	/* the malloc step's chunk */
#define REUSE_TRIES	3		/* the malloc step, per iteration */

/* What one step's child found; shared with the parent. */
struct step_result {
	uint64_t progress;	/* the watchdog's: bumped per registration */
	int fresh, stale, not_reused, tries;
	int uncached;		/* uhmm: registrations not cached, retried */
	bool have_stats;
	struct uhmm_fabric_stats stats;
};

struct step;

struct step_ctx {
	const struct step *step;
	int mon;
	char *buf;		/* the registered buffer */
	void *chunk;		/* the malloc step's chunk (buf == chunk) */
	struct step_result *res;
};

struct step {
	const char *name;
	/*
	 * Change ctx->buf and leave new, writable memory at the same
	 * address: 1. Or 0: the new memory is elsewhere (ctx->buf moved; the
	 * malloc step only). The marker is written by the caller.
	 */
	int (*change)(struct step_ctx *ctx);
	bool malloced;		/* buf comes from malloc(), not mmap() */
};

static void *map_at(void *addr)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *p;

	if (addr)
		flags |= MAP_FIXED_NOREPLACE;
	p = mmap(addr, BUF_LEN, PROT_READ | PROT_WRITE, flags, -1, 0);
	REQUIRE(p != MAP_FAILED);
	/* NOREPLACE: a kernel without it takes the address as a hint. */
	REQUIRE(!addr || p == addr);
	return p;
}

static int change_munmap(struct step_ctx *ctx)
{
	REQUIRE(munmap(ctx->buf, BUF_LEN) == 0);
	map_at(ctx->buf);
	return 1;
}

static int change_raw_munmap(struct step_ctx *ctx)
{
	/* What memory hooks (libc's munmap symbol) cannot see. */
	REQUIRE(syscall(SYS_munmap, ctx->buf, BUF_LEN) == 0);
	map_at(ctx->buf);
	return 1;
}

static int change_dontneed(struct step_ctx *ctx)
{
	REQUIRE(madvise(ctx->buf, BUF_LEN, MADV_DONTNEED) == 0);
	return 1;
}

static int change_mremap(struct step_ctx *ctx)
{
	/* Somewhere to move the pages to: a mapping of our own, replaced. */
	void *away = map_at(NULL);
	void *p = mremap(ctx->buf, BUF_LEN, BUF_LEN,
			 MREMAP_MAYMOVE | MREMAP_FIXED, away);

	REQUIRE(p == away);
	map_at(ctx->buf);
	REQUIRE(munmap(away, BUF_LEN) == 0);
	return 1;
}

static int change_free(struct step_ctx *ctx)
{
	void *p;

	free(ctx->chunk);
	p = malloc(CHUNK_LEN);
	REQUIRE(p);
	if (p == ctx->chunk)
		return 1;
	ctx->chunk = ctx->buf = p;
	return 0;
}

static int change_map_fixed(struct step_ctx *ctx)
{
	void *p = mmap(ctx->buf, BUF_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	REQUIRE(p == ctx->buf);
	return 1;
}

static const struct step steps[] = {
	{ "munmap+mmap", change_munmap, false },
	{ "SYS_munmap+mmap", change_raw_munmap, false },
	{ "madvise(DONTNEED)", change_dontneed, false },
	{ "mremap away+mmap", change_mremap, false },
	{ "free+malloc (1 MiB)", change_free, true },
	{ "mmap(MAP_FIXED) over", change_map_fixed, false },
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

static int iterations(void)
{
	int n = (int)(50 * t_scale());

	return n < 5 ? 5 : n;
}

static uint64_t next_marker = 0x5eed0001;

static void mark(char *buf)
{
	*(volatile uint64_t *)buf = next_marker++;
}

static uint64_t marker_of(const char *buf)
{
	return *(const volatile uint64_t *)buf;
}

/*
 * Register ctx->buf twice: the second must hit the cache. Returns the
 * generation. first: the first iteration of the child, where a miss may
 * mean that this monitor gives libfabric no cache at all here.
 *
 * With uhmm a registration made while the last change of the buffer is
 * still being dispatched is used once and not cached (its subscribe is
 * refused: it may be of the old pages), so the pair is tried again until
 * the cache keeps one, for up to a minute (the dispatcher may be slow to
 * run on a loaded machine; usually one retry is enough).
 */
#define CACHE_SECONDS 60

static uint64_t reg_cached(struct ft_domain *d, struct step_ctx *ctx,
			   bool first)
{
	struct fake_verbs_mr_info a, b;
	time_t give_up = time(NULL) + CACHE_SECONDS;

	for (int i = 0; i == 0 || time(NULL) < give_up; i++) {
		REQUIRE(ft_reg(d, ctx->buf, BUF_LEN, &a) == 0);
		REQUIRE(ft_reg(d, ctx->buf, BUF_LEN, &b) == 0);
		ft_progress(&ctx->res->progress);
		if (a.gen == b.gen) {
			/* Later, a may be the stale registration the last
			 * step left. */
			if (first && !i)
				CHECK_EQ(a.first8, marker_of(ctx->buf));
			return a.gen;
		}
		if (ctx->mon != FT_UHMM)
			break;
		ctx->res->uncached++;
		sched_yield();
	}
	if (first && ctx->mon != FT_UHMM)
		SKIP("FI_MR_CACHE_MONITOR=%s: libfabric caches nothing here "
		     "(could its monitor not start?)",
		     ft_monitor_name[ctx->mon]);
	fprintf(stderr, "%s: registering twice gave generations %llu and "
		"%llu: the MR cache is off\n", ctx->step->name,
		(unsigned long long)a.gen, (unsigned long long)b.gen);
	exit(T_FAIL);
}

static int run_step(void *arg)
{
	struct step_ctx *ctx = arg;
	struct step_result *res = ctx->res;
	int n = iterations();
	struct ft_domain d;

	ft_monitor_start(ctx->mon);
	ft_domain_open(&d);
	if (ctx->step->malloced) {
		/*
		 * glibc's threshold for serving a chunk with mmap moves up
		 * after a free of such a chunk; pinned, a 1 MiB chunk is always
		 * mmapped and freed with munmap.
		 */
		mallopt(M_MMAP_THRESHOLD, 128 * 1024);
		ctx->chunk = ctx->buf = malloc(CHUNK_LEN);
		REQUIRE(ctx->buf);
	} else {
		ctx->buf = ft_quiet_area(BUF_LEN);
		REQUIRE(munmap(ctx->buf, BUF_LEN) == 0);
		map_at(ctx->buf);
	}
	mark(ctx->buf);

	for (int i = 0; i < n; i++) {
		struct fake_verbs_mr_info after;
		uint64_t gen = reg_cached(&d, ctx, i == 0), marker;
		int tries = 0;

		while (!ctx->step->change(ctx)) {
			/* Elsewhere: nothing to classify. Start over there. */
			res->not_reused++;
			mark(ctx->buf);
			if (++tries == REUSE_TRIES)
				break;
			gen = reg_cached(&d, ctx, false);
		}
		if (tries == REUSE_TRIES)
			continue;
		res->tries++;
		mark(ctx->buf);
		marker = marker_of(ctx->buf);
		REQUIRE(ft_reg(&d, ctx->buf, BUF_LEN, &after) == 0);
		ft_progress(&res->progress);
		if (after.gen == gen) {
			res->stale++;	/* the old pages' registration */
		} else if (after.first8 == marker) {
			res->fresh++;
		} else {
			fprintf(stderr, "%s: a new registration (generation "
				"%llu) that saw %#llx, not the marker %#llx\n",
				ctx->step->name, (unsigned long long)after.gen,
				(unsigned long long)after.first8,
				(unsigned long long)marker);
			t_failed = 1;
		}
	}

	if (ctx->mon == FT_UHMM) {
		CHECK_EQ(uhmm_fabric_stats(&res->stats), 0);
		res->have_stats = true;
	}
	if (ctx->step->malloced)
		free(ctx->chunk);
	else
		munmap(ctx->buf, BUF_LEN);
	ft_domain_close(&d);
	if (ctx->mon == FT_UHMM)
		CHECK_EQ(uhmm_fabric_close(), 0);
	return t_result();
}

int main(int argc, char **argv)
{
	int mon = ft_monitor_parse(argc > 1 ? argv[1] : NULL);
	struct step_result *results;
	int skipped = 0, hung = 0, errors = 0, stale = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mon < 0) {
		fprintf(stderr, "usage: %s uhmm|userfaultfd|memhooks\n",
			argv[0]);
		return T_FAIL;
	}
	ft_need_fake_verbs();
	results = ft_shared(NSTEPS * sizeof(*results));

	printf("libfabric MR cache, monitor %s: %d changes per step, 64 KiB "
	       "buffer\n", ft_monitor_name[mon], iterations());
	printf("%-22s %6s %6s  %s\n", "step", "fresh", "stale", "(n)");
	for (size_t s = 0; s < NSTEPS; s++) {
		struct step_result *res = &results[s];
		struct step_ctx ctx = { .step = &steps[s], .mon = mon,
					.res = res };
		enum ft_end end = ft_run_child(run_step, &ctx, &res->progress);

		if (end == FT_SKIPPED) {
			/* The child said why; the same holds for every step. */
			skipped++;
			break;
		}
		printf("%-22s %6d %6d  (%d)", steps[s].name, res->fresh,
		       res->stale, res->tries);
		if (res->not_reused)
			printf("  not reused: %d", res->not_reused);
		if (res->uncached)
			printf("  uncached (a change still dispatched): %d",
			       res->uncached);
		if (end != FT_PASSED)
			printf("  %s", ft_end_name[end]);
		printf("\n");
		if (res->have_stats)
			printf("    uhmm: subscribed %llu, refused %llu, live "
			       "%llu, notified %llu, evicted %llu, valid false "
			       "%llu, unsubscribed %llu\n",
			       (unsigned long long)res->stats.subscribed,
			       (unsigned long long)res->stats.refused,
			       (unsigned long long)res->stats.live,
			       (unsigned long long)res->stats.notified,
			       (unsigned long long)res->stats.evicted,
			       (unsigned long long)res->stats.valid_false,
			       (unsigned long long)res->stats.unsubscribed);
		if (steps[s].malloced && res->tries == 0)
			printf("    (the chunk never came back at the same "
			       "address: an allocator that keeps freed chunks, "
			       "such as a sanitizer's quarantine)\n");
		stale += res->stale;
		hung += end == FT_HUNG;
		errors += end == FT_FAILED || end == FT_CRASHED;
	}
	if (skipped)
		return T_SKIP;
	if (mon == FT_UHMM) {
		CHECK_EQ(stale, 0);
		CHECK_EQ(hung, 0);
	} else if (hung) {
		printf("(libfabric's %s monitor hung %d step(s): printed, "
		       "not a failure of this test)\n", ft_monitor_name[mon],
		       hung);
	}
	CHECK_EQ(errors, 0);
	printf("%s\n", t_failed ? "FAIL" : "PASS");
	return t_result();
}
