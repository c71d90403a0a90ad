# SPDX-License-Identifier: MIT
# Sourced by the shell tests, after their own usage check: a scratch
# directory $tmp (removed at exit, also on ^C), fail MSG (prints it and
# marks the run failed), finish MSG (prints MSG if nothing failed, exits
# 0 or 1), and json_valid FILE (json.sh).
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
failed=0
fail() { echo "FAIL: $*"; failed=1; }
finish() {
	[ $failed -eq 0 ] && echo "$*"
	exit $failed
}

. "$(dirname "$0")/json.sh"
