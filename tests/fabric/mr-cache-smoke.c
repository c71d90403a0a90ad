/* SPDX-License-Identifier: MIT */
/*
 * Smoke test of libfabric's real MR cache over fake-verbs.so (LD_PRELOAD).
 *
 * Opens a verbs FI_EP_DGRAM domain (MR cache on: the verbs default) and:
 *  1. registers a buffer twice with fi_mr_reg: the second must be a cache
 *     hit, i.e. the same ibv_reg_mr generation (else FAIL: no cache);
 *     and a range with an unmapped page must fail to register;
 *  2. repeatedly munmaps the buffer, maps fresh memory at the same address,
 *     writes a new marker and registers again, and reports whether the
 *     monitor selected by FI_MR_CACHE_MONITOR (userfaultfd, memhooks, ...)
 *     made libfabric register afresh (new generation, which saw the new
 *     marker) or hand back the stale registration of the old pages;
 *  3. the same with a raw syscall(SYS_munmap), which malloc/munmap hooks
 *     cannot see.
 *
 * Steps 2 and 3 only print by default: they measure libfabric's monitors,
 * not uhmm. With --strict, a stale registration in step 2 fails the test.
 * Run with libuhmm_fabric_preload.so preloaded too (fabric-smoke@preload,
 * no FI_MR_CACHE_MONITOR), the program itself never calls uhmm: it finds
 * uhmm_fabric_stats() with dlsym, checks that the preloaded monitor
 * subscribed and notified, and fails on a stale registration in step 3.
 * Exit status: 0 pass, 1 fail, 77 skip (shim not preloaded, no verbs).
 */
#ifndef _GNU_SOURCE	/* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "../test.h"
#include "fake-verbs.h"
#include "uhmm_fabric.h"

#define BUF_LEN (64 * 1024)
#define QUIET_GAP (16ULL << 30)

static fake_verbs_mr_lookup_fn *mr_lookup;
static fake_verbs_count_fn *live_count;
static struct fid_domain *domain;

/* fi_mr_reg + lookup of the underlying fake registration; fi_close after. */
static int reg_info(void *buf, struct fake_verbs_mr_info *info)
{
	struct fid_mr *mr;
	int ret = fi_mr_reg(domain, buf, BUF_LEN, FI_SEND | FI_RECV, 0, 0, 0,
			    &mr, NULL);

	if (ret) {
		fprintf(stderr, "fi_mr_reg: %s\n", fi_strerror(-ret));
		return ret;
	}
	ret = mr_lookup((uint32_t)fi_mr_key(mr), info);
	if (ret)
		fprintf(stderr, "key %#llx: no live fake registration\n",
			(unsigned long long)fi_mr_key(mr));
	CHECK_EQ(fi_close(&mr->fid), 0);
	return ret;
}

/* Remap buf, write a new marker, register: 1 fresh, 0 stale, -1 error. */
static int remap_step(void *buf, uint64_t marker, uint64_t old_gen,
		      int raw_munmap, uint64_t *gen)
{
	struct fake_verbs_mr_info info;
	void *p;

	if (raw_munmap)
		REQUIRE(syscall(SYS_munmap, buf, BUF_LEN) == 0);
	else
		REQUIRE(munmap(buf, BUF_LEN) == 0);
	p = mmap(buf, BUF_LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != buf) {
		fprintf(stderr, "could not map %p again\n", buf);
		return -1;
	}
	*(volatile uint64_t *)buf = marker;
	if (reg_info(buf, &info))
		return -1;
	*gen = info.gen;
	if (info.gen == old_gen) {
		/* Stale: the cached registration pins the old pages. */
		return 0;
	}
	CHECK_EQ(info.first8, marker);
	return 1;
}

static int remap_series(void **bufp, int steps, int raw, uint64_t *gen,
			uint64_t *marker, int *fresh)
{
	*fresh = 0;
	for (int i = 0; i < steps; i++) {
		int r = remap_step(*bufp, ++*marker, *gen, raw, gen);

		if (r < 0)
			return -1;
		*fresh += r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mon = getenv("FI_MR_CACHE_MONITOR");
	int strict = argc > 1 && !strcmp(argv[1], "--strict");
	int (*stats_fn)(struct uhmm_fabric_stats *) =
		(int (*)(struct uhmm_fabric_stats *))dlsym(RTLD_DEFAULT,
							   "uhmm_fabric_stats");
	int imported = stats_fn && !mon;
	int steps = (int)(20 * t_scale());
	struct fi_info *hints, *info;
	struct fid_fabric *fabric;
	struct fake_verbs_mr_info a, b;
	uint64_t marker = 0x5eed0000, gen;
	int fresh, fresh_raw, ret;
	void *buf;

	mr_lookup = (fake_verbs_mr_lookup_fn *)dlsym(RTLD_DEFAULT,
						     "fake_verbs_mr_lookup");
	live_count = (fake_verbs_count_fn *)dlsym(RTLD_DEFAULT,
						  "fake_verbs_live_count");
	if (!mr_lookup || !live_count)
		SKIP("fake-verbs.so is not preloaded (LD_PRELOAD)");
	if (steps < 1)
		steps = 1;
#ifdef __SANITIZE_THREAD__
	/* Its madvise hook runs in exiting threads TSan has let go of. */
	if (mon && !strcmp(mon, "memhooks"))
		SKIP("libfabric's memhooks monitor under ThreadSanitizer "
		     "crashes TSan");
#endif

	ret = fake_verbs_getinfo(&hints, &info);
	if (ret) {
		fprintf(stderr, "fi_getinfo(verbs, FI_EP_DGRAM): %s\n",
			fi_strerror(-ret));
		return T_FAIL;	/* the shim is loaded: verbs must show up */
	}
	REQUIRE(fi_fabric(info->fabric_attr, &fabric, NULL) == 0);
	REQUIRE(fi_domain(fabric, info, &domain, NULL) == 0);
	printf("provider %s, domain %s, FI_MR_CACHE_MONITOR=%s\n",
	       info->fabric_attr->prov_name, info->domain_attr->name,
	       mon ? mon : "(unset)");

	/*
	 * At the bottom of a large free gap: a mapping without a hint gets
	 * the highest hole that fits, and one comes right after each munmap
	 * under ASan (its allocator, for libfabric's userfaultfd thread) -
	 * it must not take the hole remap_step() maps again.
	 */
	buf = mmap(NULL, QUIET_GAP, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	REQUIRE(buf != MAP_FAILED);
	REQUIRE(munmap(buf, QUIET_GAP) == 0);
	REQUIRE(mmap(buf, BUF_LEN, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
		     0) == buf);
	*(volatile uint64_t *)buf = marker;

	/* 1. Cache hit. */
	REQUIRE(reg_info(buf, &a) == 0);
	REQUIRE(reg_info(buf, &b) == 0);
	printf("register twice: generation %llu then %llu: %s\n",
	       (unsigned long long)a.gen, (unsigned long long)b.gen,
	       a.gen == b.gen ? "cache hit" : "MISS (is the MR cache off?)");
	CHECK_EQ(a.gen, b.gen);
	CHECK_EQ(a.first8, marker);
	gen = b.gen;

	/* A range with a hole cannot be registered (the shim's EFAULT). */
	{
		struct fid_mr *mr;
		char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		REQUIRE(p != MAP_FAILED);
		REQUIRE(munmap(p + 4096, 4096) == 0);
		ret = fi_mr_reg(domain, p, 2 * 4096, FI_SEND | FI_RECV, 0, 0,
				0, &mr, NULL);
		printf("register over a hole: %s\n", fi_strerror(-ret));
		CHECK(ret != 0);
		if (!ret)
			fi_close(&mr->fid);
		munmap(p, 4096);
	}

	/* 2. munmap() + mmap() at the same address. */
	REQUIRE(remap_series(&buf, steps, 0, &gen, &marker, &fresh) == 0);
	printf("munmap+mmap, libc munmap:   %d/%d fresh, %d stale\n",
	       fresh, steps, steps - fresh);
	if (strict)
		CHECK_EQ(fresh, steps);

	/* 3. The same through a raw system call. */
	REQUIRE(remap_series(&buf, steps, 1, &gen, &marker, &fresh_raw) == 0);
	printf("munmap+mmap, raw SYS_munmap: %d/%d fresh, %d stale\n",
	       fresh_raw, steps, steps - fresh_raw);
	if (imported) {
		/* The preloaded monitor saw the cache's misses, and no
		 * munmap got past it. */
		struct uhmm_fabric_stats s;

		REQUIRE(stats_fn);
		/* notify() runs on uhmm's dispatcher, which may still be
		 * behind (a subscribe made while the same buffer's change
		 * was pending is refused, so few may be subscribed): poll. */
		for (int i = 0; i < 1000; i++) {
			CHECK_EQ(stats_fn(&s), 0);
			if (s.notified)
				break;
			usleep(10000);
		}
		printf("libuhmm_fabric_preload: subscribed %llu, notified "
		       "%llu\n", (unsigned long long)s.subscribed,
		       (unsigned long long)s.notified);
		CHECK(s.subscribed > 0);
		CHECK(s.notified > 0);
		CHECK_EQ(fresh_raw, steps);
	}

	munmap(buf, BUF_LEN);
	CHECK_EQ(fi_close(&domain->fid), 0);
	/* Closing the domain flushes the cache: every ibv_dereg_mr done. */
	CHECK_EQ(live_count(), 0);
	CHECK_EQ(fi_close(&fabric->fid), 0);
	fi_freeinfo(info);
	fi_freeinfo(hints);
	printf("%s\n", t_failed ? "FAIL" : "PASS");
	return t_result();
}
