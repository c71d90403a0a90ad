#!/bin/sh
# SPDX-License-Identifier: MIT
# Every public function (UHMM_API in include/uhmm.h, uhmm_uring.h and
# uhmm_fabric.h) has a man page, man/NAME.3, that names it in its NAME
# section and gives its prototype in its SYNOPSIS - directly, or through a
# ".so man3/OTHER.3" link to a page that does. Every page in man/ has a .TH
# that matches its file name, every .so link resolves, and every page
# renders without a warning from man (or groff), when either is installed.
# Usage: man-pages.sh SOURCE_DIR
src=${1:-$(dirname "$0")/..}
src=$(cd "$src" && pwd) || exit 1
man=$src/man
[ -d "$man" ] && [ -f "$src/include/uhmm.h" ] ||
	{ echo "usage: $0 path/to/uhmm/source"; exit 1; }
. "$(dirname "$0")/cli.sh"

# The names of the UHMM_API functions of the headers given. Comments and
# preprocessor lines go first (the header's own examples and the
# definition of UHMM_API itself must not count); then the text is cut into
# declarations at each ';', so a prototype split over lines
# ("UHMM_API unsigned long\nuhmm_interval_read_begin(...)") is one, and
# the name is the identifier just before the first '(' after UHMM_API
# (after "const struct uhmm_rcache_ops *" too).
api_functions() {
	awk '
	{ text = text $0 "\n" }
	END {
		out = ""
		while ((i = index(text, "/*")) > 0) {
			out = out substr(text, 1, i - 1)
			text = substr(text, i + 2)
			j = index(text, "*/")
			if (j == 0) { text = ""; break }
			text = substr(text, j + 2)
		}
		printf "%s", out text
	}' "$@" |
	grep -v '^[[:space:]]*#' | sed 's://.*$::' | tr '\n' ' ' | tr ';' '\n' |
	grep 'UHMM_API' | sed -e 's/.*UHMM_API//' -e 's/(.*//' \
		-e 's/[[:space:]]*$//' -e 's/.*[^A-Za-z0-9_]//'
}

# The extraction must see what it is for, or an empty list passes: a
# declaration over two lines, one returning a const struct pointer, and a
# one-line one, in a header of the test's own and in the real ones.
cat >"$tmp/t.h" <<'EOF'
/* UHMM_API int not_me(void); */
#define UHMM_API __attribute__((visibility("default")))
UHMM_API unsigned long
uhmm_two_lines(struct uhmm_interval_notifier *sub);
UHMM_API const struct uhmm_rcache_ops *uhmm_const_ptr(void);
struct s { int a; };
static inline bool not_api(int x) { return x; }
UHMM_API int uhmm_one_line(void *a,
			   size_t b);
EOF
got=$(api_functions "$tmp/t.h" | tr '\n' ' ')
[ "$got" = "uhmm_two_lines uhmm_const_ptr uhmm_one_line " ] ||
	fail "extraction of UHMM_API names is broken: got '$got'"

inc=$src/include
headers="$inc/uhmm.h $inc/uhmm_uring.h $inc/uhmm_fabric.h"
api_functions $headers | sort -u >"$tmp/functions"
for f in uhmm_interval_read_begin uhmm_uring_rcache_ops uhmm_munmap \
	uhmm_rcache_get uhmm_fabric_import; do
	grep -qx "$f" "$tmp/functions" ||
		fail "extraction misses $f; found:" $(cat "$tmp/functions")
done
n=$(wc -l <"$tmp/functions")
[ "$n" -ge 40 ] || fail "only $n UHMM_API functions found in $headers"

# Lines of section SEC (NAME, SYNOPSIS) of a page.
section() {
	awk -v sec="$2" '
	/^\.SH/ { on = ($2 == sec); next }
	on { print }' "$1"
}

# A page, or the page its ".so man3/X.3" link names.
resolve() {
	if grep -q '^\.so ' "$1"; then
		target=$(sed -n 's/^\.so man[0-9]\///p' "$1")
		echo "$man/$target"
	else
		echo "$1"
	fi
}

while read -r f; do
	page=$man/$f.3
	if [ ! -f "$page" ]; then
		fail "$f has no man page (man/$f.3)"
		continue
	fi
	doc=$(resolve "$page")
	if [ ! -f "$doc" ]; then
		fail "man/$f.3 links to $doc, which does not exist"
		continue
	fi
	section "$doc" NAME | tr ',' ' ' | grep -qw "$f" ||
		fail "$(basename "$doc") does not name $f in its NAME section"
	# The prototype: the name right before '(' in the SYNOPSIS.
	section "$doc" SYNOPSIS | grep -q "[ *\"]$f(" ||
		fail "$(basename "$doc") has no prototype of $f in its SYNOPSIS"
done <"$tmp/functions"
echo "$n public functions checked"

# Every page: its .TH names it, and its link (if any) resolves.
for page in "$man"/*.[0-9]; do
	base=$(basename "$page")
	if grep -q '^\.so ' "$page"; then
		to=$(resolve "$page")
		[ -f "$to" ] || fail "$base: .so target $to is missing"
		continue
	fi
	th=$(sed -n 's/^\.TH \([^ ]*\) \([0-9]\) .*/\1.\2/p' "$page")
	[ "$th" = "$base" ] || fail "$base: .TH says '$th'"
done

# Rendering: a warning is a failure. The pages are seen through manN/
# links, as installed, so that ".so man3/X.3" resolves.
can_render=1
if command -v man >/dev/null 2>&1; then
	render() {
		LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
			man --warnings -E UTF-8 -l -Tutf8 "$1"
	}
elif command -v groff >/dev/null 2>&1; then
	render() { groff -man -ww -z -Tutf8 "$1"; }
else
	can_render=0
	echo "SKIP rendering: neither man nor groff is installed"
fi
if [ $can_render -eq 1 ]; then
	for s in 1 3 7; do ln -s "$man" "$tmp/man$s"; done
	for page in "$man"/*.[0-9]; do
		base=$(basename "$page")
		sec=${base##*.}
		out=$(cd "$tmp" && render "man$sec/$base" 2>&1 >/dev/null)
		[ -z "$out" ] || fail "$base renders with warnings: $out"
	done
	echo "$(ls "$man" | wc -l) pages rendered"
fi

finish PASS
