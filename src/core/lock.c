/* SPDX-License-Identifier: MIT */
/* See core/lock.h. */
#include "core/lock.h"

__thread unsigned int uhmm_locks_held;
