/* SPDX-License-Identifier: MIT */
/* The uhmm command's JSON writer (tools/cli.h). */
#include <math.h>
#include <stdio.h>

#include "cli.h"

/* Where j's output goes: stdout unless the caller set j->out. */
static FILE *jf(const struct json *j)
{
	return j->out ? j->out : stdout;
}

void j_string_to(FILE *f, const char *s)
{
	unsigned char c;

	putc('"', f);
	for (; (c = *s); s++) {
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

void j_string(const char *s)
{
	j_string_to(stdout, s);
}

void j_key(struct json *j, const char *key)
{
	if (j->depth)
		fprintf(jf(j), "%s\n%*s", j->first ? "" : ",", 2 * j->depth,
			"");
	j->first = false;
	if (key) {
		j_string_to(jf(j), key);
		fputs(": ", jf(j));
	}
}

static void j_push(struct json *j, const char *key, char c)
{
	j_key(j, key);
	putc(c, jf(j));
	j->depth++;
	j->first = true;
}

static void j_pop(struct json *j, char c)
{
	j->depth--;
	if (j->first)	/* empty: {} or [] */
		putc(c, jf(j));
	else
		fprintf(jf(j), "\n%*s%c", 2 * j->depth, "", c);
	j->first = false;
}

void j_open(struct json *j, const char *key)
{
	j_push(j, key, '{');
}

void j_close(struct json *j)
{
	j_pop(j, '}');
}

void j_array_open(struct json *j, const char *key)
{
	j_push(j, key, '[');
}

void j_array_close(struct json *j)
{
	j_pop(j, ']');
}

void j_bool(struct json *j, const char *key, bool v)
{
	j_key(j, key);
	fputs(v ? "true" : "false", jf(j));
}

void j_long(struct json *j, const char *key, long long v)
{
	j_key(j, key);
	if (v < 0)
		fputs("null", jf(j));
	else
		fprintf(jf(j), "%lld", v);
}

void j_double(struct json *j, const char *key, double v)
{
	j_key(j, key);
	if (isfinite(v))
		fprintf(jf(j), "%.6g", v);
	else
		fputs("null", jf(j));
}

void j_str(struct json *j, const char *key, const char *v)
{
	j_key(j, key);
	if (v)
		j_string_to(jf(j), v);
	else
		fputs("null", jf(j));
}

void j_end(struct json *j)
{
	putc('\n', jf(j));
}
