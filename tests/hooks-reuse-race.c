/* SPDX-License-Identifier: MIT */
/* rcache-reuse-race with libuhmm_hooks linked in: see there. */
#define HOOKED 1
#include "rcache-reuse-race.c"
