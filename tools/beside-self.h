/* SPDX-License-Identifier: MIT */
/*
 * Finding a file beside the running program: the uhmm command (its trace
 * library, the bench programs) and bench-fabric (its fake verbs device)
 * find what they run this way, in the build tree and under any install
 * prefix, DESTDIR-staged or moved.
 */
#ifndef UHMM_BESIDE_SELF_H
#define UHMM_BESIDE_SELF_H

#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/*
 * The file rel names relative to the directory of this program's binary,
 * in out (PATH_MAX bytes), if it exists there with access mode
 * (access(2)).
 */
static inline bool beside_self(const char *rel, int mode, char *out)
{
	ssize_t n = readlink("/proc/self/exe", out, PATH_MAX - 1);
	char *slash;

	if (n <= 0)
		return false;
	out[n] = '\0';
	slash = strrchr(out, '/');
	if (!slash || (size_t)(slash + 1 - out) + strlen(rel) >= PATH_MAX)
		return false;
	strcpy(slash + 1, rel);
	return !access(out, mode);
}

#endif
