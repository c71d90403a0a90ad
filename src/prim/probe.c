/* SPDX-License-Identifier: MIT */
/*
 * Probe what this kernel and process allow by trying each thing once,
 * cheaply, and undoing it: header versions and uname say little, since
 * sysctls, capabilities, seccomp and backports decide what really works.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include "prim/probe.h"

/* Capability numbers from linux/capability.h, as bits of CapEff. */
#define CAP_SYS_PTRACE_BIT 19
#define CAP_SYS_ADMIN_BIT  21

/* pagemap entry: bit 63 present, bits 0-54 the PFN (zero if hidden). */
#define PM_PRESENT  (1ULL << 63)
#define PM_PFN_MASK ((1ULL << 55) - 1)

static void item_set(struct uhmm_probe_item *it, int ret)
{
	it->ok = ret >= 0;
	it->err = ret < 0 ? -ret : 0;
}

/* Read a small /proc or /sys file into buf, NUL-terminated. */
static int read_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	size_t len = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	close(fd);
	return ret;
}

/* A file holding one decimal number; -1 when missing or unreadable. */
static long read_long(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* In "Key:   value\n" text, the value of key, or NULL. */
static const char *find_key(const char *buf, const char *key)
{
	size_t len = strlen(key);
	const char *s = buf;

	while (s) {
		if (!strncmp(s, key, len) && s[len] == ':')
			return s + len + 1;
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return NULL;
}

static void probe_kernel(struct uhmm_probe *p)
{
	struct utsname u;
	unsigned long long caps;
	const char *v;
	char buf[8192];

	if (!uname(&u)) {
		memcpy(p->release, u.release, sizeof(p->release) - 1);
		memcpy(p->machine, u.machine, sizeof(p->machine) - 1);
	}
	if (read_file("/proc/self/status", buf, sizeof(buf)) < 0)
		return;
	v = find_key(buf, "CapEff");
	if (!v)
		return;
	caps = strtoull(v, NULL, 16);
	p->cap_sys_ptrace = caps & (1ULL << CAP_SYS_PTRACE_BIT);
	p->cap_sys_admin = caps & (1ULL << CAP_SYS_ADMIN_BIT);
}

static int uffd_open(unsigned int flags)
{
	int fd = syscall(SYS_userfaultfd, flags | O_CLOEXEC | O_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

/*
 * Open a userfaultfd and do the UFFDIO_API handshake asking for features.
 * A handshake can be done once per fd, so each try needs a fresh one.
 * Returns the fd, or a negative errno (the fd is then closed).
 */
static int uffd_open_api(unsigned int flags, __u64 features,
			 unsigned long long *supported)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	int fd, ret;

	fd = uffd_open(flags);
	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (supported)
		*supported = api.features;
	return fd;
}

/* The event source's use: arm a range in WP mode, never write-protect. */
static int uffd_register_wp(int fd, long page)
{
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_WP};
	void *addr;
	int ret = 0;

	addr = mmap(NULL, page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr == MAP_FAILED)
		return -errno;
	reg.range.start = (unsigned long)addr;
	reg.range.len = page;
	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		ret = -errno;
	else
		ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
	/*
	 * Close before munmap: munmap of a registered range waits until its
	 * UNMAP event is read, and nobody reads this fd. Closing drops any
	 * registration the unregister above may have left.
	 */
	close(fd);
	munmap(addr, page);
	return ret;
}

static void probe_uffd(struct uhmm_probe *p, long page)
{
	unsigned int flags;
	int fd;

	p->unprivileged_userfaultfd =
	    read_long("/proc/sys/vm/unprivileged_userfaultfd");

	fd = uffd_open(0);
	item_set(&p->uffd_open, fd);
	if (fd >= 0)
		close(fd);
	fd = uffd_open(UFFD_USER_MODE_ONLY);
	item_set(&p->uffd_user_mode_only, fd);
	if (fd >= 0)
		close(fd);

	/* The event source opens user-mode-only: unprivileged, and faults
	 * are never delivered anyway in WP_ASYNC mode. */
	flags = p->uffd_user_mode_only.ok ? UFFD_USER_MODE_ONLY : 0;
	p->uffd_needed_user_mode_only = p->uffd_user_mode_only.ok;

	fd = uffd_open_api(flags, 0, &p->uffd_features);
	item_set(&p->uffd_api, fd);
	if (fd >= 0)
		close(fd);

	fd = uffd_open_api(flags, UFFD_FEATURE_EVENT_FORK, NULL);
	item_set(&p->uffd_event_fork, fd);
	if (fd >= 0)
		close(fd);

	fd = uffd_open_api(flags, UHMM_PROBE_UFFD_NEEDED, NULL);
	item_set(&p->uffd_needed, fd);
	if (fd < 0) {
		item_set(&p->uffd_register_wp, fd);
		return;
	}
	item_set(&p->uffd_register_wp, uffd_register_wp(fd, page));
}

/* PAGEMAP_SCAN of one present page must report it present. */
static int pagemap_scan(int fd, void *addr, long page)
{
	struct page_region r = {0};
	struct pm_scan_arg arg = {
	    .size = sizeof(arg),
	    .start = (unsigned long)addr,
	    .end = (unsigned long)addr + page,
	    .vec = (unsigned long)&r,
	    .vec_len = 1,
	    .return_mask = PAGE_IS_PRESENT,
	};
	int ret;

	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (ret < 0)
		return -errno;
	if (ret != 1 || !(r.categories & PAGE_IS_PRESENT))
		return -EIO;
	return 0;
}

static void probe_pagemap(struct uhmm_probe *p, long page)
{
	unsigned long long ent;
	volatile char *addr;
	ssize_t n;
	int fd, ret;

	addr = mmap(NULL, page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr == MAP_FAILED) {
		item_set(&p->pagemap_read, -errno);
		p->pagemap_scan = p->pagemap_read;
		return;
	}
	addr[0] = 1; /* a present page with a real PFN */

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		item_set(&p->pagemap_read, -errno);
		p->pagemap_scan = p->pagemap_read;
		goto out;
	}
	n = pread(fd, &ent, sizeof(ent),
		  (off_t)((unsigned long)addr / page * sizeof(ent)));
	ret = n == sizeof(ent) ? 0 : n < 0 ? -errno : -EIO;
	item_set(&p->pagemap_read, ret);
	/* Without CAP_SYS_ADMIN the kernel reports PFN 0. */
	if (!ret)
		p->pfn_visible = (ent & PM_PRESENT) && (ent & PM_PFN_MASK);
	item_set(&p->pagemap_scan, pagemap_scan(fd, (void *)addr, page));
	close(fd);
out:
	munmap((void *)addr, page);
}

static int procmap_query(void)
{
	int local = 0;
	unsigned long where = (unsigned long)&local;
	struct procmap_query q = {.size = sizeof(q), .query_addr = where};
	int fd, ret = 0;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, PROCMAP_QUERY, &q))
		ret = -errno;
	else if (where < q.vma_start || where >= q.vma_end)
		ret = -EIO; /* answered, but not with our stack */
	close(fd);
	return ret;
}

/* Number of lines of /proc/self/maps, one per VMA. */
static long count_vmas(void)
{
	char buf[4096];
	long lines = 0;
	ssize_t n, i;
	int fd;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	close(fd);
	return n < 0 ? -1 : lines;
}

static void probe_maps(struct uhmm_probe *p)
{
	item_set(&p->procmap_query, procmap_query());
	p->max_map_count = read_long("/proc/sys/vm/max_map_count");
	p->vma_count = count_vmas();
}

static void probe_io_uring(struct uhmm_probe *p)
{
	struct io_uring_params params;
	int fd;

	memset(&params, 0, sizeof(params));
	fd = syscall(SYS_io_uring_setup, 1, &params);
	item_set(&p->io_uring, fd < 0 ? -errno : fd);
	if (fd >= 0)
		close(fd);
	p->io_uring_disabled = read_long("/proc/sys/kernel/io_uring_disabled");
}

/* A meminfo value; -1 when missing. */
static long meminfo(const char *buf, const char *key)
{
	const char *v = find_key(buf, key);

	return v ? strtol(v, NULL, 10) : -1;
}

static void probe_memory(struct uhmm_probe *p)
{
	char buf[8192], *lb, *rb;
	struct rlimit rl;

	/* "always [madvise] never": the bracketed word is the mode. */
	if (!read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf,
		       sizeof(buf)) &&
	    (lb = strchr(buf, '[')) && (rb = strchr(lb, ']')) &&
	    rb - lb - 1 < (long)sizeof(p->thp_enabled))
		memcpy(p->thp_enabled, lb + 1, rb - lb - 1);
	p->thp_pmd_size =
	    read_long("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");

	p->hugepages_total = p->hugepages_free = p->hugepage_size = -1;
	if (!read_file("/proc/meminfo", buf, sizeof(buf))) {
		p->hugepages_total = meminfo(buf, "HugePages_Total");
		p->hugepages_free = meminfo(buf, "HugePages_Free");
		p->hugepage_size = meminfo(buf, "Hugepagesize");
		if (p->hugepage_size > 0)
			p->hugepage_size *= 1024; /* kB */
	}

	if (!getrlimit(RLIMIT_MEMLOCK, &rl)) {
		p->memlock_soft = rl.rlim_cur == RLIM_INFINITY
				      ? UHMM_PROBE_UNLIMITED
				      : rl.rlim_cur;
		p->memlock_hard = rl.rlim_max == RLIM_INFINITY
				      ? UHMM_PROBE_UNLIMITED
				      : rl.rlim_max;
	}
}

int uhmm_probe_run(struct uhmm_probe *p)
{
	long page = sysconf(_SC_PAGESIZE);

	if (!p)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	probe_kernel(p);
	probe_uffd(p, page);
	probe_pagemap(p, page);
	probe_maps(p);
	probe_io_uring(p);
	probe_memory(p);

	p->event_source = p->uffd_needed.ok && p->uffd_register_wp.ok;
	if (p->pagemap_scan.ok)
		p->snapshot = UHMM_PROBE_SNAPSHOT_PAGEMAP_SCAN;
	else if (p->pagemap_read.ok)
		p->snapshot = UHMM_PROBE_SNAPSHOT_PAGEMAP;
	p->io_uring_device = p->io_uring.ok;
	p->hugetlb_tests = p->hugepages_free > 0;
	return 0;
}

/* UFFD_FEATURE_* by bit; the ABI fixes the numbers, newer headers the names. */
static const char *const uffd_feature_names[] = {
    [0] = "PAGEFAULT_FLAG_WP",
    [1] = "EVENT_FORK",
    [2] = "EVENT_REMAP",
    [3] = "EVENT_REMOVE",
    [4] = "MISSING_HUGETLBFS",
    [5] = "MISSING_SHMEM",
    [6] = "EVENT_UNMAP",
    [7] = "SIGBUS",
    [8] = "THREAD_ID",
    [9] = "MINOR_HUGETLBFS",
    [10] = "MINOR_SHMEM",
    [11] = "EXACT_ADDRESS",
    [12] = "WP_HUGETLBFS_SHMEM",
    [13] = "WP_UNPOPULATED",
    [14] = "POISON",
    [15] = "WP_ASYNC",
    [16] = "MOVE",
};

const char *uhmm_probe_uffd_feature_name(unsigned int bit)
{
	if (bit >= sizeof(uffd_feature_names) / sizeof(uffd_feature_names[0]))
		return NULL;
	return uffd_feature_names[bit];
}
