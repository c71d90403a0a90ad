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
#include <stdlib.h>
#include <string.h>

#include <rdma/fabric.h>

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

/*
 * fi_getinfo() of a verbs domain over the fake device, with the MR cache
 * on (the verbs default): the device has no connected endpoints, so
 * FI_EP_DGRAM, which verbs accepts only with FI_MSG_PREFIX. Sets *hintsp
 * (free both with fi_freeinfo()); returns fi_getinfo()'s result, or
 * -FI_ENOMEM.
 */
static inline int fake_verbs_getinfo(struct fi_info **hintsp,
				     struct fi_info **infop)
{
	struct fi_info *hints = fi_allocinfo();

	*hintsp = hints;
	if (!hints)
		return -FI_ENOMEM;
	hints->ep_attr->type = FI_EP_DGRAM;
	hints->caps = FI_MSG;
	hints->mode = FI_MSG_PREFIX | FI_CONTEXT;
	hints->fabric_attr->prov_name = strdup("verbs");
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				      FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	return fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, hints, infop);
}

#endif
