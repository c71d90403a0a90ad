/* SPDX-License-Identifier: MIT */
/*
 * uhmm probe [--json]: what this kernel and process allow, and which uhmm
 * features therefore work here.
 *
 * The library finds things out (prim/probe.c); this file only prints them,
 * so the reasons for a missing feature are worded here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "prim/probe.h"

static const char usage[] =
    "usage: uhmm probe [--json]\n"
    "  report what this kernel and process allow, and which uhmm features\n"
    "  work here; --json prints one JSON object (null: unknown, or\n"
    "  unlimited memlock)\n";

/* ------------------------------------------------------------------------
 * Human-readable output: "key: value" lines, values aligned, by heading.
 */

#define KEY_WIDTH 29

static void kv(const char *key, const char *fmt, ...)
{
	int pad = KEY_WIDTH - (int)strlen(key);
	va_list ap;

	printf("  %s:%*s", key, pad > 1 ? pad : 1, "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A continuation line under the value column. */
static void more(const char *fmt, ...)
{
	va_list ap;

	printf("  %*s", KEY_WIDTH + 1, "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* "yes", or "no (EPERM: hint)". */
static void kv_item(const char *key, const struct uhmm_probe_item *it,
		    const char *hint)
{
	if (it->ok)
		kv(key, "yes");
	else if (hint)
		kv(key, "no (%s: %s)", errname(it->err), hint);
	else
		kv(key, "no (%s)", errname(it->err));
}

/* "8 MiB"; exact, so falls back to smaller units. */
static const char *size_str(char *buf, size_t len, unsigned long long n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB"};
	unsigned int i = 0;

	while (i < 3 && n && !(n % 1024)) {
		n /= 1024;
		i++;
	}
	snprintf(buf, len, "%llu %s", n, units[i]);
	return buf;
}

static const char *limit_str(char *buf, size_t len, unsigned long long n)
{
	if (n == UHMM_PROBE_UNLIMITED)
		return "unlimited";
	return size_str(buf, len, n);
}

/* Feature names from mask, space-separated, wrapped under the value. */
static void kv_features(const char *key, unsigned long long mask)
{
	char line[128] = "";
	const char *name;
	char unknown[16];
	bool first = true;
	unsigned int bit;

	for (bit = 0; bit < 64; bit++) {
		if (!(mask & (1ULL << bit)))
			continue;
		name = uhmm_probe_uffd_feature_name(bit);
		if (!name) {
			snprintf(unknown, sizeof(unknown), "bit%u", bit);
			name = unknown;
		}
		if (strlen(line) + strlen(name) + 1 > 80 - KEY_WIDTH - 3) {
			if (first)
				kv(key, "%s", line);
			else
				more("%s", line);
			first = false;
			line[0] = '\0';
		}
		if (line[0])
			strcat(line, " ");
		strcat(line, name);
	}
	if (first)
		kv(key, "%s", line[0] ? line : "none");
	else if (line[0])
		more("%s", line);
}

/* Why the needed-features handshake failed, when the features say so. */
static const char *needed_hint(const struct uhmm_probe *p, char *buf,
			       size_t len)
{
	unsigned long long missing = UHMM_PROBE_UFFD_NEEDED & ~p->uffd_features;
	unsigned int bit;
	size_t n;

	if (!p->uffd_api.ok || !missing)
		return NULL;
	n = snprintf(buf, len, "kernel lacks");
	for (bit = 0; bit < 64 && n < len; bit++) {
		if (missing & (1ULL << bit))
			n += snprintf(buf + n, len - n, " %s",
				      uhmm_probe_uffd_feature_name(bit));
	}
	return buf;
}

static void print_human(const struct uhmm_probe *p)
{
	const char *uffd_open_hint = NULL;
	char b1[32], b2[32], hint[128];

	printf("kernel\n");
	kv("release", "%s (%s)", p->release, p->machine);
	kv("CAP_SYS_PTRACE", "%s", p->cap_sys_ptrace ? "yes" : "no");
	kv("CAP_SYS_ADMIN", "%s", p->cap_sys_admin ? "yes" : "no");

	printf("\nuserfaultfd\n");
	if (p->unprivileged_userfaultfd < 0)
		kv("vm.unprivileged_userfaultfd", "unknown");
	else
		kv("vm.unprivileged_userfaultfd", "%d",
		   p->unprivileged_userfaultfd);
	if (p->uffd_open.err == EPERM && p->unprivileged_userfaultfd == 0 &&
	    !p->cap_sys_ptrace)
		uffd_open_hint =
		    "vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE";
	else if (p->uffd_open.err == ENOSYS)
		uffd_open_hint = "kernel built without CONFIG_USERFAULTFD";
	kv_item("open", &p->uffd_open, uffd_open_hint);
	kv_item("open UFFD_USER_MODE_ONLY", &p->uffd_user_mode_only,
		p->uffd_user_mode_only.err == EINVAL ? "kernel < 5.11" : NULL);
	kv_item("UFFDIO_API", &p->uffd_api, NULL);
	if (p->uffd_api.ok)
		kv_features("features", p->uffd_features);
	if (p->uffd_needed.ok)
		kv("API with uhmm's features", "yes (%s fd)",
		   p->uffd_needed_user_mode_only ? "user-mode-only" : "plain");
	else
		kv_item("API with uhmm's features", &p->uffd_needed,
			needed_hint(p, hint, sizeof(hint)));
	kv_item("EVENT_FORK", &p->uffd_event_fork,
		p->uffd_event_fork.err == EPERM && p->uffd_api.ok
		    ? "needs CAP_SYS_PTRACE"
		    : NULL);
	kv_item("register WP", &p->uffd_register_wp, NULL);

	printf("\npagemap\n");
	kv_item("PAGEMAP_SCAN", &p->pagemap_scan,
		p->pagemap_scan.err == ENOTTY || p->pagemap_scan.err == EINVAL
		    ? "kernel < 6.7"
		    : NULL);
	kv_item("read /proc/self/pagemap", &p->pagemap_read, NULL);
	if (p->pagemap_read.ok)
		kv("PFNs visible", "%s",
		   p->pfn_visible ? "yes"
				  : "no (read as 0; needs CAP_SYS_ADMIN)");

	printf("\nmaps\n");
	kv_item("PROCMAP_QUERY", &p->procmap_query,
		p->procmap_query.err == ENOTTY ? "kernel < 6.11" : NULL);
	kv("VMAs", "%ld of vm.max_map_count %ld", p->vma_count,
	   p->max_map_count);

	printf("\nio_uring\n");
	kv_item("io_uring_setup", &p->io_uring,
		p->io_uring.err == ENOSYS ? "not built into this kernel"
		: p->io_uring.err == EPERM && p->io_uring_disabled > 0
		    ? "disabled by kernel.io_uring_disabled"
		    : NULL);
	if (p->io_uring_disabled < 0)
		kv("kernel.io_uring_disabled", "absent");
	else
		kv("kernel.io_uring_disabled", "%d", p->io_uring_disabled);

	printf("\nmemory\n");
	if (p->thp_enabled[0])
		kv("THP", "%s, PMD %s", p->thp_enabled,
		   size_str(b1, sizeof(b1), p->thp_pmd_size));
	else
		kv("THP", "not available");
	if (p->hugepages_total < 0)
		kv("hugetlb pages", "not available");
	else
		kv("hugetlb pages", "%ld free of %ld, %s each",
		   p->hugepages_free, p->hugepages_total,
		   size_str(b1, sizeof(b1), p->hugepage_size));
	kv("RLIMIT_MEMLOCK", "%s soft, %s hard",
	   limit_str(b1, sizeof(b1), p->memlock_soft),
	   limit_str(b2, sizeof(b2), p->memlock_hard));

	printf("\nuhmm features here\n");
	if (p->event_source) {
		kv("event source", "yes (userfaultfd UNMAP/REMOVE/REMAP)");
	} else {
		kv("event source", "no (%s)",
		   errname(p->uffd_needed.ok ? p->uffd_register_wp.err
					     : p->uffd_needed.err));
		if (!p->uffd_user_mode_only.ok && p->uffd_open.err == EPERM)
			more("-> set vm.unprivileged_userfaultfd=1 or grant "
			     "CAP_SYS_PTRACE, or");
		more("-> open with UHMM_MM_NO_MONITOR (explicit "
		     "invalidations only)");
	}
	switch (p->snapshot) {
	case UHMM_PROBE_SNAPSHOT_PAGEMAP_SCAN:
		kv("range fault snapshot", "PAGEMAP_SCAN (fast)");
		break;
	case UHMM_PROBE_SNAPSHOT_PAGEMAP:
		kv("range fault snapshot", "/proc/self/pagemap (slower)");
		break;
	default:
		kv("range fault snapshot", "no (%s)",
		   errname(p->pagemap_read.err));
	}
	kv("PFNs in range fault", "%s",
	   p->pfn_visible ? "yes" : "0 (needs CAP_SYS_ADMIN)");
	if (p->io_uring_device)
		kv("io_uring device", "yes");
	else
		kv("io_uring device", "no (%s)", errname(p->io_uring.err));
	if (p->hugetlb_tests)
		kv("hugetlb tests", "yes (%ld free huge pages)",
		   p->hugepages_free);
	else
		kv("hugetlb tests", "skipped (no free huge pages; "
				    "set vm.nr_hugepages)");
}

/* ------------------------------------------------------------------------
 * JSON output: one object, keys in a fixed order.
 */

static void j_limit(struct json *j, const char *key, unsigned long long v)
{
	j_key(j, key);
	if (v == UHMM_PROBE_UNLIMITED)
		fputs("null", stdout);
	else
		printf("%llu", v);
}

/* {"supported": true, "errno": null} */
static void j_item(struct json *j, const char *key,
		   const struct uhmm_probe_item *it)
{
	j_key(j, key);
	printf("{\"supported\": %s, \"errno\": ", it->ok ? "true" : "false");
	if (it->ok)
		fputs("null", stdout);
	else
		j_string(errname(it->err));
	putchar('}');
}

static void j_features(struct json *j, const char *key, unsigned long long m)
{
	const char *name;
	char unknown[16];
	unsigned int bit;
	bool first = true;

	j_key(j, key);
	putchar('[');
	for (bit = 0; bit < 64; bit++) {
		if (!(m & (1ULL << bit)))
			continue;
		name = uhmm_probe_uffd_feature_name(bit);
		if (!name) {
			snprintf(unknown, sizeof(unknown), "bit%u", bit);
			name = unknown;
		}
		fputs(first ? "" : ", ", stdout);
		j_string(name);
		first = false;
	}
	putchar(']');
}

static void print_json(const struct uhmm_probe *p)
{
	static const char *const snapshot[] = {
	    [UHMM_PROBE_SNAPSHOT_NONE] = NULL,
	    [UHMM_PROBE_SNAPSHOT_PAGEMAP] = "pagemap",
	    [UHMM_PROBE_SNAPSHOT_PAGEMAP_SCAN] = "pagemap_scan",
	};
	struct json j = {0};

	j_open(&j, NULL);

	j_open(&j, "kernel");
	j_str(&j, "release", p->release);
	j_str(&j, "machine", p->machine);
	j_bool(&j, "cap_sys_ptrace", p->cap_sys_ptrace);
	j_bool(&j, "cap_sys_admin", p->cap_sys_admin);
	j_close(&j);

	j_open(&j, "userfaultfd");
	j_long(&j, "unprivileged_userfaultfd", p->unprivileged_userfaultfd);
	j_item(&j, "open", &p->uffd_open);
	j_item(&j, "open_user_mode_only", &p->uffd_user_mode_only);
	j_item(&j, "api", &p->uffd_api);
	if (p->uffd_api.ok) {
		j_long(&j, "features_mask", p->uffd_features);
		j_features(&j, "features", p->uffd_features);
	} else {
		j_long(&j, "features_mask", -1);
		j_str(&j, "features", NULL);
	}
	j_item(&j, "api_needed_features", &p->uffd_needed);
	j_bool(&j, "needed_user_mode_only", p->uffd_needed_user_mode_only);
	j_item(&j, "event_fork", &p->uffd_event_fork);
	j_item(&j, "register_wp", &p->uffd_register_wp);
	j_close(&j);

	j_open(&j, "pagemap");
	j_item(&j, "pagemap_scan", &p->pagemap_scan);
	j_item(&j, "read", &p->pagemap_read);
	j_bool(&j, "pfn_visible", p->pfn_visible);
	j_close(&j);

	j_open(&j, "maps");
	j_item(&j, "procmap_query", &p->procmap_query);
	j_long(&j, "max_map_count", p->max_map_count);
	j_long(&j, "vma_count", p->vma_count);
	j_close(&j);

	j_open(&j, "io_uring");
	j_item(&j, "setup", &p->io_uring);
	j_long(&j, "io_uring_disabled", p->io_uring_disabled);
	j_close(&j);

	j_open(&j, "memory");
	j_str(&j, "thp_enabled", p->thp_enabled[0] ? p->thp_enabled : NULL);
	j_long(&j, "thp_pmd_size", p->thp_pmd_size);
	j_long(&j, "hugepages_total", p->hugepages_total);
	j_long(&j, "hugepages_free", p->hugepages_free);
	j_long(&j, "hugepage_size", p->hugepage_size);
	j_limit(&j, "memlock_soft", p->memlock_soft);
	j_limit(&j, "memlock_hard", p->memlock_hard);
	j_close(&j);

	j_open(&j, "uhmm_features");
	j_bool(&j, "event_source", p->event_source);
	j_str(&j, "range_fault_snapshot", snapshot[p->snapshot]);
	j_bool(&j, "range_fault_pfns", p->pfn_visible);
	j_bool(&j, "io_uring_device", p->io_uring_device);
	j_bool(&j, "hugetlb_tests", p->hugetlb_tests);
	j_close(&j);

	j_close(&j);
	putchar('\n');
}

int cmd_probe(int argc, char **argv)
{
	struct uhmm_probe p;
	bool json;
	int ret;

	ret = json_only_options("probe", usage, argc, argv, &json);
	if (ret >= 0)
		return ret;

	ret = uhmm_probe_run(&p);
	if (ret < 0) {
		fprintf(stderr, "uhmm probe: %s\n", strerror(-ret));
		return 1;
	}
	if (json)
		print_json(&p);
	else
		print_human(&p);
	return 0;
}

