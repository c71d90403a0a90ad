/* SPDX-License-Identifier: MIT */
/*
 * libuhmm_fabric_preload.so: uhmm as libfabric's memory monitor for an
 * application that cannot be changed,
 *
 *	LD_PRELOAD=libuhmm_fabric_preload.so mpirun ... ./app
 *
 * Its constructor imports the monitor before main(), so before the
 * application's first fi_getinfo() (or MPI_Init), as libfabric needs. An
 * import that fails is said on stderr, once; the application then runs
 * on libfabric's own monitor, as it would without this library.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "uhmm_fabric.h"

__attribute__((constructor)) static void uhmm_fabric_preload(void)
{
	int ret = uhmm_fabric_import();

	if (ret)
		fprintf(stderr, "libuhmm_fabric_preload: uhmm_fabric_import: "
			"%s%s\n", strerror(-ret),
			ret == -EBUSY ? " (FI_MR_CACHE_MONITOR is set, or "
					"another monitor was imported first)"
				      : "");
}
