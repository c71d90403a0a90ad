/* SPDX-License-Identifier: MIT */
/*
 * Tunables: one table (options.c), each settable by an environment
 * variable read once, with a documented default. README lists them.
 */
#ifndef UHMM_CORE_OPTIONS_H
#define UHMM_CORE_OPTIONS_H

enum uhmm_option {
	/* Microseconds the event reader keeps polling after a batch before
	 * it sleeps: a burst of unmaps then skips the wake-up. */
	UHMM_OPT_READER_SPIN_US,
	/* 0: snapshot with /proc/self/pagemap even where PAGEMAP_SCAN works
	 * (to test the fallback of kernels before 6.7). */
	UHMM_OPT_PAGEMAP_SCAN,
	/* Microseconds after a REMOVE (madvise discard) event was read after
	 * which its window closes even if the zap cannot be known to be over
	 * (source/uffd.c, "Discards"); 0 closes it at dispatch. */
	UHMM_OPT_REMOVE_GRACE_US,
	/* Strict mode for mms opened with neither UHMM_MM_STRICT nor
	 * UHMM_MM_RELAXED (uhmm.h). */
	UHMM_OPT_STRICT,
	UHMM_OPT_COUNT
};

long uhmm_option(enum uhmm_option opt);

#endif
