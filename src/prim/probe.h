/* SPDX-License-Identifier: MIT */
/*
 * What this kernel and process allow, found by trying each thing once.
 * Used by `uhmm probe`; the library fills the struct, the CLI prints it.
 */
#ifndef UHMM_PRIM_PROBE_H
#define UHMM_PRIM_PROBE_H

#include <stdbool.h>

#include "prim/uapi.h"

/* One attempt: did it work, and if not, the errno it failed with. */
struct uhmm_probe_item {
	bool ok;
	int err; /* positive errno when !ok, 0 when ok */
};

/* The userfaultfd features uhmm's event source asks for. */
#define UHMM_PROBE_UFFD_NEEDED                                                 \
	(UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |                \
	 UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_WP_ASYNC)

/* A limit with no limit (RLIM_INFINITY). */
#define UHMM_PROBE_UNLIMITED (~0ULL)

/* How uhmm_range_fault() can snapshot page tables here. */
enum uhmm_probe_snapshot {
	UHMM_PROBE_SNAPSHOT_NONE = 0,	  /* neither works */
	UHMM_PROBE_SNAPSHOT_PAGEMAP,	  /* pread of /proc/self/pagemap */
	UHMM_PROBE_SNAPSHOT_PAGEMAP_SCAN, /* the PAGEMAP_SCAN ioctl (fast) */
};

/* Numbers read from /proc or /sys are -1 when the file is missing. */
struct uhmm_probe {
	/* kernel */
	char release[65];    /* uname -r */
	char machine[65];    /* uname -m */
	bool cap_sys_ptrace; /* in the effective set */
	bool cap_sys_admin;

	/* userfaultfd */
	int unprivileged_userfaultfd;	  /* vm.unprivileged_userfaultfd */
	struct uhmm_probe_item uffd_open; /* plain userfaultfd(2) */
	struct uhmm_probe_item uffd_user_mode_only; /* UFFD_USER_MODE_ONLY */
	struct uhmm_probe_item uffd_api;	    /* UFFDIO_API, features 0 */
	unsigned long long uffd_features;	    /* what uffd_api reported */
	/* UFFDIO_API with UHMM_PROBE_UFFD_NEEDED, on an fd opened with
	 * UFFD_USER_MODE_ONLY when that works (as the event source does),
	 * else a plain one. */
	struct uhmm_probe_item uffd_needed;
	bool uffd_needed_user_mode_only;	/* which fd uffd_needed used */
	struct uhmm_probe_item uffd_event_fork; /* UFFDIO_API with EVENT_FORK */
	/* UFFDIO_REGISTER_MODE_WP of an anonymous page on the uffd_needed
	 * fd: the decisive check for the event source. */
	struct uhmm_probe_item uffd_register_wp;

	/* pagemap */
	struct uhmm_probe_item pagemap_scan; /* PAGEMAP_SCAN ioctl */
	struct uhmm_probe_item pagemap_read; /* pread of an entry */
	bool pfn_visible; /* a present page's PFN reads nonzero */

	/* maps */
	struct uhmm_probe_item procmap_query; /* PROCMAP_QUERY ioctl */
	long max_map_count;		      /* vm.max_map_count */
	long vma_count;			      /* lines of /proc/self/maps */

	/* io_uring */
	struct uhmm_probe_item io_uring; /* io_uring_setup(1) */
	int io_uring_disabled;		 /* kernel.io_uring_disabled */

	/* memory */
	char thp_enabled[16]; /* bracketed THP mode; "" without THP */
	long thp_pmd_size;    /* bytes */
	long hugepages_total;
	long hugepages_free;
	long hugepage_size;		 /* bytes */
	unsigned long long memlock_soft; /* bytes or UHMM_PROBE_UNLIMITED */
	unsigned long long memlock_hard;

	/* What uhmm can do here, derived from the above. */
	bool event_source; /* userfaultfd UNMAP/REMOVE/REMAP events */
	enum uhmm_probe_snapshot snapshot;
	bool io_uring_device;
	bool hugetlb_tests; /* free huge pages to test hugetlb with */
};

/*
 * uhmm_probe_run - fill *p by trying each feature once. Everything it
 * opens or maps is closed or unmapped again; it never prints.
 * A feature that does not work is not an error: it is recorded in *p.
 * Returns 0, or -EINVAL (p is NULL).
 */
int uhmm_probe_run(struct uhmm_probe *p);

/*
 * uhmm_probe_uffd_feature_name - name of userfaultfd feature bit @bit
 * ("EVENT_UNMAP"), or NULL for a bit this version of uhmm does not know.
 */
const char *uhmm_probe_uffd_feature_name(unsigned int bit);

#endif
