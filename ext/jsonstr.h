/*
** jsonstr.h - the one rule for strings in the JSON that djinn writes
** (the SQL functions' reports and djinn.json for Lua), over jansson.
**
** Invalid UTF-8: every byte that is not part of a valid UTF-8 sequence
** (an overlong form, a surrogate, a code point above U+10FFFF, a lone or
** truncated byte) is replaced by U+FFFD, one per byte, so the output is
** always valid JSON. Escaping is jansson's: '"', '\\' and the controls
** below 0x20 (\n, \t, ... or \u00XX with upper-case hex); other valid
** UTF-8 passes as is. Text is written by one escaper
** (dj_json_escape_into, behind dj_json_quote and json.quote), strings
** handed to jansson trees by dj_json_string; the tests hold the two to
** the same bytes.
*/
#ifndef DJINN_JSONSTR_H
#define DJINN_JSONSTR_H

#include <stddef.h>

#include <jansson.h>

/*
** The JSON text of s (len bytes) by the rule, quoted, written without a
** jansson tree: the same bytes json_dumps(dj_json_string(s, len)) gives
** (tests/c/jsonstr_test.c compares the two on every 1- and 2-byte string
** and on random ones), in one pass per function at memory speed. This is
** the path of job output in `run --json` (issue 13: jansson's encoder ran
** at ~110 MB/s there; this runs at over 1 GB/s).
**   dj_json_escaped_len(s, len)     bytes the text needs, quotes included;
**                                   0 when that does not fit in a size_t
**   dj_json_escape_into(out, s, len) writes exactly that many bytes to out
**                                   and returns the count
*/
size_t dj_json_escaped_len(const char *s, size_t len);
size_t dj_json_escape_into(char *out, const char *s, size_t len);

/* A new JSON string of s (len bytes) by the rule; NULL when out of memory. */
json_t *dj_json_string(const char *s, size_t len);

/*
** The JSON text of s (NUL-terminated), quoted: "..." by the rule, in a
** malloc'd string the caller frees; NULL when out of memory.
*/
char *dj_json_quote(const char *s);

#endif
