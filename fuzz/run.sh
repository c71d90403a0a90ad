#!/bin/sh
# Run a fuzzer for ctest, keeping its progress lines out of the output:
# on success the final statistics, on failure the report and a trace of
# the failing input (UHMM_FUZZ_TRACE=1), short enough for a CI log.
#   run.sh FUZZER ARTIFACT_DIR ARGS...
fuzzer=$1 artifacts=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$fuzzer" "$@" >"$log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
	grep '^stat::' "$log"
	exit 0
fi
echo "== $(basename "$fuzzer") failed ($rc); its report:"
# From the first line of the report on: the oracle's message (NAME: ...),
# a sanitizer's, libFuzzer's (deadly signal, timeout, leak).
awk '/^fuzz-[a-z]+: |ERROR: |runtime error|ALARM|==[0-9]+==/ { on = 1 } on' \
	"$log" | head -n 60
crash=$(ls -t "$artifacts" 2>/dev/null | head -n 1)
if [ -n "$crash" ]; then
	echo "== the input ($artifacts/$crash), base64:"
	base64 -w 0 "$artifacts/$crash" | head -c 2000
	echo
	echo "== what it does (last 40 lines of UHMM_FUZZ_TRACE=1):"
	UHMM_FUZZ_TRACE=1 timeout 120 "$fuzzer" -runs=1 \
		"$artifacts/$crash" 2>&1 | grep '^  ' | tail -n 40
fi
exit $rc
