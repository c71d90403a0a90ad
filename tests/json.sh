# SPDX-License-Identifier: MIT
# Sourced by the command-line tests: json_valid FILE, exit 1 if FILE is not
# one valid JSON object. POSIX sh and awk only (a fresh Debian machine may
# have no python3).
# A strict JSON checker (RFC 8259 grammar) in POSIX awk; exit 1 if invalid.
json_valid() {
	awk '
	function die(msg) { printf "invalid JSON at char %d: %s\n", pos, msg > "/dev/stderr"; exit 1 }
	function ws() { while (pos <= n && index(" \t\n\r", substr(s, pos, 1))) pos++ }
	function str(   c) {
		pos++
		while (pos <= n) {
			c = substr(s, pos, 1)
			if (c == "\"") { pos++; return }
			if (c == "\n" || c == "\t" || c == "\r") die("raw control character in string")
			if (c == "\\") {
				c = substr(s, pos + 1, 1)
				if (c == "u") {
					if (substr(s, pos + 2, 4) !~ /^[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]$/)
						die("bad \\u escape")
					pos += 6; continue
				}
				if (!index("\"\\/bfnrt", c)) die("bad escape")
				pos += 2; continue
			}
			pos++
		}
		die("unterminated string")
	}
	function value(   c) {
		ws(); c = substr(s, pos, 1)
		if (c == "{") { obj(); return }
		if (c == "[") { arr(); return }
		if (c == "\"") { str(); return }
		if (match(substr(s, pos), /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) { pos += RLENGTH; return }
		if (substr(s, pos, 4) == "true" || substr(s, pos, 4) == "null") { pos += 4; return }
		if (substr(s, pos, 5) == "false") { pos += 5; return }
		die("expected a value")
	}
	function obj(   c) {
		pos++; ws()
		if (substr(s, pos, 1) == "}") { pos++; return }
		for (;;) {
			ws(); if (substr(s, pos, 1) != "\"") die("expected a key"); str()
			ws(); if (substr(s, pos, 1) != ":") die("expected :"); pos++
			value(); ws(); c = substr(s, pos, 1); pos++
			if (c == "}") return
			if (c != ",") die("expected , or }")
		}
	}
	function arr(   c) {
		pos++; ws()
		if (substr(s, pos, 1) == "]") { pos++; return }
		for (;;) {
			value(); ws(); c = substr(s, pos, 1); pos++
			if (c == "]") return
			if (c != ",") die("expected , or ]")
		}
	}
	{ s = s $0 "\n" }
	END {
		n = length(s); pos = 1; ws()
		if (substr(s, pos, 1) != "{") die("not an object")
		value(); ws()
		if (pos <= n) die("trailing data")
	}' "$1"
}
