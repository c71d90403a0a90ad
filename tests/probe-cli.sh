#!/bin/sh
# SPDX-License-Identifier: MIT
# `uhmm probe` runs and exits 0, its JSON is valid, complete and agrees with
# /proc and with the human output, and bad usage exits 2.
# Needs only POSIX sh, grep, sed and awk; uses python3 as well when present.
uhmm=$1
[ -x "$uhmm" ] || { echo "usage: $0 path/to/uhmm"; exit 1; }
. "$(dirname "$0")/cli.sh"

# The checker must be able to say no, or the JSON check proves nothing.
printf '%s\n' '{"a": [1, -2.5e3, true, false, null, "x\"y\u00e9"], "b": {}}' >"$tmp/good"
json_valid "$tmp/good" || fail "checker rejects valid JSON"
for doc in '{"a": 1,}' '{a: 1}' '{"a": 1' '{"a": True}' '{"a": 1} x' \
	'{"a": "b
c"}' '{"a": 01}' '{"a" 1}' '[1]'; do
	printf '%s\n' "$doc" >"$tmp/bad"
	json_valid "$tmp/bad" 2>/dev/null && fail "checker accepts invalid JSON: $doc"
done

# --- human output --------------------------------------------------------
"$uhmm" probe >"$tmp/human" 2>"$tmp/human.err"
rc=$?
[ $rc -eq 0 ] || fail "uhmm probe exited $rc"
[ -s "$tmp/human.err" ] && fail "uhmm probe wrote to stderr: $(cat "$tmp/human.err")"
for h in kernel userfaultfd pagemap maps io_uring memory 'uhmm features here'; do
	grep -qx "$h" "$tmp/human" || fail "human output lacks heading '$h'"
done
for k in release open 'register WP' PAGEMAP_SCAN PROCMAP_QUERY VMAs \
	io_uring_setup THP RLIMIT_MEMLOCK 'event source' 'range fault snapshot' \
	'PFNs in range fault' 'io_uring device' 'hugetlb tests'; do
	grep -q "^  $k: " "$tmp/human" || fail "human output lacks '$k:'"
done

# --- JSON output ---------------------------------------------------------
"$uhmm" probe --json >"$tmp/json" 2>"$tmp/json.err"
rc=$?
[ $rc -eq 0 ] || fail "uhmm probe --json exited $rc"
[ -s "$tmp/json.err" ] && fail "uhmm probe --json wrote to stderr"
json_valid "$tmp/json" || fail "uhmm probe --json is not valid JSON"
if command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$tmp/json" >/dev/null || fail "python3 rejects the JSON"
fi

# Every key once (values are one per line in the output).
for k in kernel release machine cap_sys_ptrace cap_sys_admin \
	userfaultfd unprivileged_userfaultfd open open_user_mode_only api \
	features_mask features api_needed_features needed_user_mode_only \
	event_fork register_wp pagemap pagemap_scan read pfn_visible \
	maps procmap_query max_map_count vma_count io_uring setup \
	io_uring_disabled memory thp_enabled thp_pmd_size hugepages_total \
	hugepages_free hugepage_size memlock_soft memlock_hard uhmm_features \
	event_source range_fault_snapshot range_fault_pfns io_uring_device \
	hugetlb_tests; do
	c=$(grep -c "^ *\"$k\": " "$tmp/json")
	[ "$c" -eq 1 ] || fail "key \"$k\" appears $c times, want 1"
done

# Each tried item: supported and no errno, or unsupported with its name.
items=$(grep -c '"supported": ' "$tmp/json")
well=$(grep -cE '"supported": (true, "errno": null|false, "errno": "E[A-Z0-9]+")}' "$tmp/json")
[ "$items" -eq 10 ] || fail "$items tried items in the JSON, want 10"
[ "$items" -eq "$well" ] || fail "an item has a bad supported/errno pair"

# The raw JSON value of key (strings keep their quotes).
val() { sed -n "s/^ *\"$1\": \(.*\)/\1/p" "$tmp/json" | sed 's/,$//'; }
supported() { val "$1" | sed -n 's/^{"supported": \([a-z]*\),.*/\1/p'; }

# Agreement with what the system says.
[ "$(val release)" = "\"$(uname -r)\"" ] ||
	fail "release $(val release), uname -r says $(uname -r)"
f=/proc/sys/vm/max_map_count
[ -r $f ] && [ "$(val max_map_count)" != "$(cat $f)" ] &&
	fail "max_map_count $(val max_map_count), $f says $(cat $f)"
f=/proc/sys/vm/unprivileged_userfaultfd
[ -r $f ] && [ "$(val unprivileged_userfaultfd)" != "$(cat $f)" ] &&
	fail "unprivileged_userfaultfd $(val unprivileged_userfaultfd), $f says $(cat $f)"
t=$(awk '/^HugePages_Total:/ { print $2 }' /proc/meminfo)
[ -n "$t" ] && [ "$(val hugepages_total)" != "$t" ] &&
	fail "hugepages_total $(val hugepages_total), /proc/meminfo says $t"
v=$(val vma_count)
[ "$v" -gt 0 ] 2>/dev/null || fail "vma_count $v is not positive"

# The derived features follow from the items.
es=false
[ "$(supported api_needed_features)" = true ] &&
	[ "$(supported register_wp)" = true ] && es=true
[ "$(val event_source)" = $es ] ||
	fail "event_source $(val event_source), items say $es"
[ "$(val io_uring_device)" = "$(supported setup)" ] ||
	fail "io_uring_device disagrees with setup"
[ "$(val range_fault_pfns)" = "$(val pfn_visible)" ] ||
	fail "range_fault_pfns disagrees with pfn_visible"
case $(supported pagemap_scan)/$(supported read) in
true/*) want='"pagemap_scan"' ;;
false/true) want='"pagemap"' ;;
*) want=null ;;
esac
[ "$(val range_fault_snapshot)" = "$want" ] ||
	fail "range_fault_snapshot $(val range_fault_snapshot), items say $want"

# The human output says the same.
if [ "$es" = true ]; then
	grep -q '^  event source: *yes' "$tmp/human" || fail "human says no event source"
else
	grep -q '^  event source: *no' "$tmp/human" || fail "human says event source"
	grep -q 'UHMM_MM_NO_MONITOR' "$tmp/human" || fail "no advice without event source"
fi

# --- usage ---------------------------------------------------------------
for args in "" "bogus" "probe --bogus" "probe extra" "--bogus"; do
	# shellcheck disable=SC2086 # split on purpose
	"$uhmm" $args >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 2 ] || fail "'uhmm $args' exited $rc, want 2"
	[ -s "$tmp/err" ] || fail "'uhmm $args' said nothing on stderr"
	[ -s "$tmp/out" ] && fail "'uhmm $args' wrote to stdout"
done
for args in help --help "probe --help"; do
	# shellcheck disable=SC2086
	"$uhmm" $args >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ $rc -eq 0 ] || fail "'uhmm $args' exited $rc, want 0"
	grep -q '^usage: uhmm' "$tmp/out" || fail "'uhmm $args' printed no usage"
done

finish "uhmm probe: ok"
