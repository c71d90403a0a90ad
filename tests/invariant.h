/* SPDX-License-Identifier: MIT */
/*
 * The invariant tests (docs/design.md, invariants 1-7) hold on any mm,
 * whatever feeds it: they drive the windows themselves. ctest runs each
 * three times (CMakeLists.txt, UHMM_INVARIANT_TESTS), the mm chosen by
 * UHMM_TEST_SOURCE:
 *   (unset)  an explicit mm (UHMM_MM_NO_MONITOR): core alone
 *   fake     an mm fed by the scripted source (tests/fake-source.h): core
 *            through its source interface, with no userfaultfd - arms
 *            and disarms must balance at exit
 *   uffd     an mm fed by the kernel's userfaultfd source
 */
#ifndef UHMM_TEST_INVARIANT_H
#define UHMM_TEST_INVARIANT_H

#include <unistd.h>

#include "fake-source.h"

static void t_variant_check_fake(void)
{
	fake_check();
	if (t_failed)
		_exit(T_FAIL);
}

static inline struct uhmm_mm *t_open_variant(void)
{
	const char *v = getenv("UHMM_TEST_SOURCE");
	struct uhmm_mm *mm;
	int ret;

	if (!v || !*v) {
		ret = uhmm_mm_open(&mm, UHMM_MM_NO_MONITOR);
	} else if (!strcmp(v, "fake")) {
		ret = fake_open(&mm);
		atexit(t_variant_check_fake);
	} else if (!strcmp(v, "uffd")) {
		ret = uhmm_mm_open(&mm, 0);
		if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
			SKIP("no userfaultfd event source here: %s",
			     strerror(-ret));
	} else {
		fprintf(stderr, "UHMM_TEST_SOURCE=%s: not none, fake or uffd\n",
			v);
		exit(T_FAIL);
	}
	REQUIRE(ret == 0);
	printf("mm: %s\n", v && *v ? v : "explicit");
	return mm;
}

#endif
