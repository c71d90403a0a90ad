#!/bin/sh
# SPDX-License-Identifier: MIT
# `uhmm bench --quick --json --plot DIR` runs every benchmark program and
# exits 0; its JSON is valid and has every expected figure, each positive
# and finite, with ratio = value / baseline; the plots are PNG files; bad
# usage exits 2. No time is asserted: the figures are whatever this machine
# gives. Skips (77) without userfaultfd, which the benches need.
# Needs only POSIX sh, grep, sed, awk, od and timeout.
uhmm=$1
[ -x "$uhmm" ] || { echo "usage: $0 path/to/uhmm"; exit 1; }
. "$(dirname "$0")/cli.sh"

# --- usage (before anything runs) ----------------------------------------
for args in "bench --bogus" "bench --plot" "bench extra" "bench --json x"; do
	# shellcheck disable=SC2086 # split on purpose
	"$uhmm" $args >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 2 ] || fail "'uhmm $args' exited $rc, want 2"
	[ -s "$tmp/err" ] || fail "'uhmm $args' said nothing on stderr"
	[ -s "$tmp/out" ] && fail "'uhmm $args' wrote to stdout"
done
"$uhmm" bench --help >"$tmp/out" 2>&1 || fail "'uhmm bench --help' failed"
grep -q '^usage: uhmm bench' "$tmp/out" || fail "'uhmm bench --help' printed no usage"

"$uhmm" probe --json >"$tmp/probe" 2>/dev/null
if ! grep -q '"event_source": true' "$tmp/probe"; then
	echo "SKIP: no userfaultfd event source here (see uhmm probe)"
	exit 77
fi

# --- one quick run ---------------------------------------------------------
# timeout: a guard against a hang only.
timeout 240 "$uhmm" bench --quick --json --plot "$tmp/plots" \
	>"$tmp/json" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || { fail "uhmm bench exited $rc"; cat "$tmp/err"; }
json_valid "$tmp/json" || fail "uhmm bench --json is not valid JSON"

# Every program ran, or was skipped with a reason.
grep -q '"status": "failed"' "$tmp/json" && fail "a program failed: $(grep -A1 '"status": "failed"' "$tmp/json")"
n=$(grep -c '"status": "ok"' "$tmp/json")
[ "$n" -ge 5 ] || fail "$n programs ran, want at least 5"
grep -A1 '"status": "skipped"' "$tmp/json" | grep -q '"reason": null' &&
	fail "a program was skipped without a reason"

# The figures, one "name value baseline ratio" line each (the writer puts
# one key per line).
awk '
/^  "figures": \[/ { on = 1; next }
/^  \]/ { on = 0 }
on && /"name": / { sub(/.*"name": "/, ""); sub(/",$/, ""); name = $0 }
on && /"value": / { sub(/.*"value": /, ""); sub(/,$/, ""); value = $0 }
on && /"baseline": / { sub(/.*"baseline": /, ""); sub(/,$/, ""); base = $0 }
on && /"ratio": / { sub(/.*"ratio": /, ""); print name, value, base, $0 }
' "$tmp/json" >"$tmp/figures"
[ -s "$tmp/figures" ] || fail "no figures in the JSON"

# Each: a positive finite value; ratio null without a baseline, else
# value / baseline within the rounding of 6 significant digits.
awk '
function num(s) { return s ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
{
	if (!num($2) || $2 + 0 <= 0) { print "FAIL: " $1 " value " $2; bad = 1 }
	if ($3 == "null") {
		if ($4 != "null") { print "FAIL: " $1 " ratio without baseline"; bad = 1 }
		next
	}
	if (!num($3) || $3 + 0 <= 0) { print "FAIL: " $1 " baseline " $3; bad = 1; next }
	if (!num($4)) { print "FAIL: " $1 " ratio " $4; bad = 1; next }
	want = $2 / $3; d = $4 - want; if (d < 0) d = -d
	if (d > 1e-4 * want + 1e-9) {
		print "FAIL: " $1 " ratio " $4 ", value/baseline " want; bad = 1
	}
}
END { exit bad }' "$tmp/figures" || failed=1

# The headline figures of every program (strict mode and io_uring may be
# refused by a kernel: their figures are checked above when present).
want="notifier.read_pair notifier.invalidate_gap notifier.invalidate_100
notifier.insert notifier.remove notifier.churn
events.munmap_4k_uncovered events.munmap_4k_registered events.munmap_4k_b2b
events.munmap_4k_hooks events.munmap_2m_registered events.latency
range.snapshot_4k range.snapshot_thp range.fault_in range.snapshot_pfn
rcache.hot rcache.hot_2t rcache.rr_1000 rcache.random_1000
rcache.random_1000_2t rcache.same_1000_2t rcache.two_caches rcache.evict
rcache.mixed fork.subs_10 fork.subs_100 fork.subs_1000"
if grep -A1 '"name": "bench-fabric"' "$tmp/json" | grep -q '"status": "ok"'; then
	want="$want fabric.hit_uhmm fabric.munmap_uhmm fabric.munmap_memhooks"
fi
for k in $want; do
	c=$(grep -c "^$k " "$tmp/figures")
	[ "$c" -eq 1 ] || fail "figure $k appears $c times, want 1"
done
# Figures against a baseline have one.
for k in events.munmap_4k_registered range.fault_in fork.subs_1000; do
	grep -q "^$k [^ ]* null " "$tmp/figures" && fail "$k has no baseline"
done

# The series the plots need.
for s in notifier.invalidate.gap rcache.hit_ns.uhmm.t1 rcache.mops.uhmm.b100; do
	grep -q "\"name\": \"$s\"" "$tmp/json" || fail "no series $s"
done

# --- the plots -------------------------------------------------------------
[ -s "$tmp/plots/plots.gp" ] || fail "no gnuplot script"
for p in invalidation hit-latency throughput munmap; do
	f=$tmp/plots/$p.png
	if [ ! -s "$f" ]; then
		fail "no $p.png"
		continue
	fi
	magic=$(od -An -tx1 -N8 "$f" | tr -d ' \n')
	[ "$magic" = 89504e470d0a1a0a ] || fail "$p.png is not a PNG ($magic)"
	grep -q "\"$p.png\"" "$tmp/json" || fail "$p.png not listed in the JSON"
done

finish "uhmm bench: ok"
