/* SPDX-License-Identifier: MIT */
/*
 * The test-facing API of fake-verbs.so (see fake-verbs.c).
 *
 * Tests should not link against the shim: they look these functions up with
 * dlsym(RTLD_DEFAULT, ...) so that a run without LD_PRELOAD can skip cleanly.
 */
#ifndef UHMM_FAKE_VERBS_H
#define UHMM_FAKE_VERBS_H

#include <stddef.h>
#include <stdint.h>

/* One live registration, as ibv_reg_mr saw it. */
struct fake_verbs_mr_info {
	uint64_t gen;		/* 1, 2, ...: one per ibv_reg_mr, not reused */
	void *addr;		/* the registered range, as passed in */
	size_t length;
	uint64_t first8;	/* first (up to) 8 bytes at addr, at register */
};

/* 0 and *out filled if a live registration has this lkey/rkey; else -ENOENT. */
typedef int fake_verbs_mr_lookup_fn(uint32_t key,
				    struct fake_verbs_mr_info *out);
/* The registration's generation, 0 if no live registration has this key. */
typedef uint64_t fake_verbs_mr_gen_fn(uint32_t key);
/* Counters: registrations made so far, and still live (not deregistered). */
typedef uint64_t fake_verbs_count_fn(void);

fake_verbs_mr_lookup_fn fake_verbs_mr_lookup;
fake_verbs_mr_gen_fn fake_verbs_mr_gen;
fake_verbs_count_fn fake_verbs_reg_count;
fake_verbs_count_fn fake_verbs_live_count;

#endif
