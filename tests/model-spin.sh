#!/bin/sh
# Model-check the notifier protocol (models/notifier.pml) with spin.
#
#   sh tests/model-spin.sh [MODELS_DIR]
#
# The model as uhmm implements it must verify with no error and no invalid
# end state; every "bad" variant (a macro that puts back a bug, or a known
# limit of the kernel interface) must be caught, by the assertion named for
# it and nothing else. Prints spin's figures for each run.
# Exit 0 pass, 1 fail, 77 skip (spin or a C compiler missing).
#
# Environment: SPIN (default spin), CC (default cc), MODEL_SPIN_KEEP=1
# keeps the work directory (pan sources, outputs, trails).

set -u

models=${1:-$(dirname "$0")/../models}
model=$models/notifier.pml
SPIN=${SPIN:-spin}
CC=${CC:-cc}

if ! command -v "$SPIN" >/dev/null 2>&1; then
	echo "SKIP: spin not found (Debian package spin)"
	exit 77
fi
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "SKIP: no C compiler ($CC) to build spin's verifier"
	exit 77
fi
if [ ! -r "$model" ]; then
	echo "FAIL: no model at $model"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/uhmm-model.XXXXXX") || exit 1
if [ "${MODEL_SPIN_KEEP:-0}" = 1 ]; then
	trap 'echo "work directory kept: $work"' EXIT
else
	trap 'rm -rf "$work"' EXIT
fi
trap 'exit 1' HUP INT PIPE TERM
cp "$model" "$work/notifier.pml" || exit 1
cd "$work" || exit 1

failed=0
runs=0

# check NAME DEFINES EXPECT
#   DEFINES  macros for spin -D (space separated, without -D), or -
#   EXPECT   "pass": errors 0, no invalid end state, search completed;
#            "invalid-end": the first error is an invalid end state;
#            else the name of the assertion that must be the first error.
check() {
	name=$1
	defs=
	[ "$2" = - ] || for d in $2; do defs="$defs -D$d"; done
	expect=$3
	out=$work/$name
	mkdir "$out" && cp notifier.pml "$out/" || { failed=1; return; }
	runs=$((runs + 1))

	if [ "$name" = good ]; then
		# 1.7 million states: worth an optimised verifier
		ccopt=-O1
		hash=-w22
	else
		# at most some 10^5 states (the variants stop at the first
		# error, within a few thousand): compiling is the cost
		ccopt=-O0
		hash=-w20
	fi
	if ! (cd "$out" && "$SPIN" $defs -a notifier.pml) >"$out/spin.log" 2>&1; then
		echo "FAIL $name: spin$defs -a"
		cat "$out/spin.log"
		failed=1
		return
	fi
	# -DP_REVERSE: the search order that finds the bad variants' errors
	# within a few thousand states; the good model is searched fully.
	if ! (cd "$out" && "$CC" $ccopt -DSAFETY -DP_REVERSE -o pan pan.c) \
	    >"$out/cc.log" 2>&1; then
		echo "FAIL $name: $CC pan.c"
		cat "$out/cc.log"
		failed=1
		return
	fi
	(cd "$out" && ./pan -m10000 $hash) >"$out/pan.log" 2>&1

	errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out/pan.log")
	first=$(grep -m1 '^pan:1: ' "$out/pan.log")
	stored=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out/pan.log")
	trans=$(sed -n 's/^ *\([0-9.e+]*\) transitions.*/\1/p' "$out/pan.log")
	mem=$(sed -n 's/^ *\([0-9.]*\).total actual memory usage.*/\1/p' \
		"$out/pan.log")
	secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' "$out/pan.log")
	printf '%-36s %10s states stored %11s transitions %8s MB %6s s  ' \
		"$name" "${stored:-?}" "${trans:-?}" "${mem:-?}" "${secs:-?}"

	result=
	case $expect in
	pass)
		if [ "$errors" != 0 ] || [ -n "$first" ]; then
			result="expected no error, got: ${first:-no result}"
		elif ! grep -q 'invalid end states[[:space:]]*+' \
		    "$out/pan.log"; then
			result="invalid end states were not checked"
		elif grep -q 'Search not completed\|max search depth too small' \
		    "$out/pan.log"; then
			result="search incomplete"
		fi
		;;
	invalid-end)
		case $first in
		*"invalid end state"*) ;;
		*) result="expected an invalid end state, got: ${first:-no error}" ;;
		esac
		;;
	*)
		case $first in
		*"assertion violated"*"!($expect)"*) ;;
		*) result="expected assertion !($expect), got: ${first:-no error}" ;;
		esac
		;;
	esac

	if [ -z "$result" ]; then
		if [ "$expect" = pass ]; then
			echo "ok: errors 0"
		else
			echo "ok: caught, ${first#pan:1: }"
		fi
		return
	fi
	echo "FAIL"
	echo "  $name (spin$defs): $result"
	if ls "$out"/*.trail >/dev/null 2>&1; then
		echo "  trail (spin$defs -t -p notifier.pml), last steps:"
		(cd "$out" && "$SPIN" $defs -t -p notifier.pml 2>&1) |
			grep -E '^ *[0-9]+:[[:space:]]+proc' | tail -40
	fi
	sed 's/^/  | /' "$out/pan.log" | head -40
	failed=1
}

echo "spin: $("$SPIN" -V 2>&1)"

# The protocol as uhmm implements it.
check good                          -                        pass
check good-no-dev-A                 NO_DEV_A                 pass

# Bugs put back. Each must be caught by its assertion.
#   the REMOVE window closed at dispatch (UHMM_REMOVE_GRACE_US=0): what
#   tests/rcache-dontneed-race.c and tests/range-dontneed-race.c catch
check close-at-dispatch             BAD_CLOSE_AT_DISPATCH    stale_commit
#   zaps_over() without the mmap_lock barrier (probe of mmap_changing only)
check no-barrier                    BAD_NO_BARRIER           stale_commit
#   read_begin / rcache get not waiting for events read but not dispatched
check no-ticket-wait                BAD_NO_TICKET_WAIT       hb_missed
#   the reader's ticket taken after read() instead of before
check ticket-after-read             BAD_TICKET_AFTER_READ    hb_missed
#   read_begin not waiting while the sub's seq is the open window's
check read-begin-no-wait            BAD_READ_BEGIN_NO_WAIT   rb_open_seq
#   ... and, with that check off, what follows from it
check read-begin-no-wait-then       "BAD_READ_BEGIN_NO_WAIT NO_RB_CHECK" \
                                                             stale_commit
#   insert into an open window not starting out colliding
check insert-idle-seq               BAD_INSERT_IDLE_SEQ      stale_commit
check insert-idle-seq-no-dev-A      "BAD_INSERT_IDLE_SEQ NO_DEV_A" \
                                                             stale_commit
#   remove not waiting for the window that may be calling the sub
check remove-no-wait                BAD_REMOVE_NO_WAIT       remove_while_cb
#   the dispatcher waiting for events in flight (uhmm_clock_wait_slow()
#   without its "dispatching" test): a deadlock
check dispatcher-waits              BAD_DISPATCHER_WAITS     invalid-end

# README "Known limits", discards (1) and (2): the model shows them too.
check known-limit-kernel-gap        KERNEL_GAP               stale_commit
check known-limit-grace-expires     GRACE_EXPIRES            stale_commit
# MADV_REMOVE punches its hole with mmap_lock dropped (mm/madvise.c
# madvise_remove()): the barrier does not wait for it.
check kernel-madv-remove            KERNEL_MADV_REMOVE       stale_commit

if [ "$failed" != 0 ]; then
	echo "model-spin: FAIL"
	exit 1
fi
echo "model-spin: $runs runs, all as expected"
exit 0
