#!/bin/sh
# SPDX-License-Identifier: MIT
# `uhmm demo` exits 0, shows every scenario's read stale without uhmm and
# right with it, its JSON is valid and says the same, and bad usage exits 2.
# Needs only POSIX sh, grep, sed and awk; uses python3 as well when present.
# The demo uses userfaultfd and io_uring: each run is bounded by timeout.
uhmm=$1
[ -x "$uhmm" ] || { echo "usage: $0 path/to/uhmm"; exit 1; }
. "$(dirname "$0")/cli.sh"

scenarios="munmap-mmap free-malloc madv-dontneed raw-munmap"
nscen=4
# A sanitizer's allocator keeps freed blocks in quarantine: its free() +
# malloc() never gives the address back, so scenario 2 (free-malloc) may
# only say "not reused" there. Everywhere else every scenario must show
# the stale read.
may_miss=0
if grep -q -e __asan_init -e __tsan_init "$uhmm"; then
	may_miss=2
	echo "note: sanitized build, free + malloc may not reuse the address"
fi

# --- human output --------------------------------------------------------
timeout 120 "$uhmm" demo >"$tmp/human" 2>"$tmp/human.err"
rc=$?
[ $rc -eq 0 ] || fail "uhmm demo exited $rc: $(cat "$tmp/human.err")"
[ -s "$tmp/human.err" ] && fail "uhmm demo wrote to stderr: $(cat "$tmp/human.err")"
# In bytes: "µs" counts 2, which only makes the check stricter.
LC_ALL=C awk 'length($0) > 80 { bad = 1 } END { exit bad }' "$tmp/human" ||
	fail "a line of uhmm demo is longer than 80 columns"

# Each numbered scenario block: "without uhmm ... STALE", "with uhmm ... ok".
awk -v n=$nscen -v may_miss=$may_miss '
	/^[0-9]+\. / { s = $1 + 0; next }
	s && /^   without uhmm / { w[s] = $NF; m = "w" }
	s && /^   with uhmm / { u[s] = $NF; m = "u" }
	s && m == "w" && /not reused \(/ { nr[s] = 1 }
	/^$/ { s = 0 }
	END {
		for (i = 1; i <= n; i++) {
			if (i == may_miss && nr[i] && w[i] == "ok")
				continue
			if (w[i] != "STALE")
				{ printf "scenario %d without uhmm: \"%s\", want STALE\n", i, w[i]; bad = 1 }
			if (u[i] != "ok")
				{ printf "scenario %d with uhmm: \"%s\", want ok\n", i, u[i]; bad = 1 }
		}
		exit bad
	}' "$tmp/human" >"$tmp/blocks" || fail "human output: $(cat "$tmp/blocks")"
# The table: per scenario a "no ... STALE" row, then a "yes ... ok" row.
for s in $scenarios; do
	if [ "$s" = free-malloc ] && [ $may_miss -eq 2 ] &&
		grep -Eq "^$s +no +no +ok " "$tmp/human"; then
		:
	else
		grep -Eq "^$s +no +yes +STALE " "$tmp/human" ||
			fail "table: $s without uhmm is not a reused, STALE read"
	fi
	awk -v s="$s" '$1 == s { getline; ok = $1 == "yes" && $3 == "ok"; exit }
		END { exit !ok }' "$tmp/human" || fail "table: $s with uhmm is not ok"
done
grep -q '^ok: with uhmm every read landed' "$tmp/human" ||
	fail "human output lacks the final ok line"

# --- JSON output ---------------------------------------------------------
timeout 120 "$uhmm" demo --json >"$tmp/json" 2>"$tmp/json.err"
rc=$?
[ $rc -eq 0 ] || fail "uhmm demo --json exited $rc: $(cat "$tmp/json.err")"
[ -s "$tmp/json.err" ] && fail "uhmm demo --json wrote to stderr"
json_valid "$tmp/json" || fail "uhmm demo --json is not valid JSON"
if command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$tmp/json" >/dev/null || fail "python3 rejects the JSON"
fi

# The writer prints one key a line: walk the runs by indentation.
# Top-level "ok" is at 2 spaces, a scenario's at 6, a run's at 8.
grep -q '^  "ok": true,$' "$tmp/json" || fail "JSON: overall ok is not true"
for s in $scenarios; do
	c=$(grep -c "^      \"name\": \"$s\",\$" "$tmp/json")
	[ "$c" -eq 1 ] || fail "JSON: scenario $s appears $c times, want 1"
done
awk -v n=$nscen -v may_miss=$may_miss '
	/^      "name": / { name = $2; gsub(/[",]/, "", name); scen++ }
	/^      "ok": / { if ($2 != "true,") { print name " ok " $2; bad = 1 } }
	/^      "without_uhmm": / { mode = "without" }
	/^      "with_uhmm": / { mode = "with" }
	/^        "reused": / { reused = $2 == "true," }
	/^        "stale": / {
		excused = scen == may_miss && !reused
		if (mode == "with" && $2 != "0,") { print name " with uhmm stale " $2; bad = 1 }
		if (mode == "without" && $2 != "1," && !excused) { print name " without uhmm stale " $2; bad = 1 }
		if (!reused && !excused) { print name " " mode " uhmm: address not reused"; bad = 1 }
		runs++
	}
	END {
		if (scen != n || runs != 2 * n) { print scen " scenarios, " runs " runs"; bad = 1 }
		exit bad
	}' "$tmp/json" >"$tmp/jruns" || fail "JSON runs: $(cat "$tmp/jruns")"

# --- usage ---------------------------------------------------------------
for args in "demo --bogus" "demo extra" "demo --json --bogus"; do
	# shellcheck disable=SC2086 # split on purpose
	timeout 120 "$uhmm" $args >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 2 ] || fail "'uhmm $args' exited $rc, want 2"
	[ -s "$tmp/err" ] || fail "'uhmm $args' said nothing on stderr"
	[ -s "$tmp/out" ] && fail "'uhmm $args' wrote to stdout"
done
"$uhmm" demo --help >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "'uhmm demo --help' exited $rc, want 0"
grep -q '^usage: uhmm demo' "$tmp/out" || fail "'uhmm demo --help' printed no usage"
"$uhmm" help | grep -q '^  demo ' || fail "'uhmm help' does not list demo"

finish "uhmm demo: ok"
