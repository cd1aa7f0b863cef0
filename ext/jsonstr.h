/*
** jsonstr.h - the one rule for strings in the JSON that djinn writes
** (the SQL functions' reports and djinn.json for Lua), over jansson.
**
** Invalid UTF-8: every byte that is not part of a valid UTF-8 sequence
** (an overlong form, a surrogate, a code point above U+10FFFF, a lone or
** truncated byte) is replaced by U+FFFD, one per byte, so the output is
** always valid JSON. Escaping is jansson's: '"', '\\' and the controls
** below 0x20 (\n, \t, ... or \u00XX with upper-case hex); other valid
** UTF-8 passes as is.
*/
#ifndef DJINN_JSONSTR_H
#define DJINN_JSONSTR_H

#include <stddef.h>

#include <jansson.h>

/* A new JSON string of s (len bytes) by the rule; NULL when out of memory. */
json_t *dj_json_string(const char *s, size_t len);

/*
** The JSON text of s (NUL-terminated), quoted: "..." by the rule, in a
** malloc'd string the caller frees; NULL when out of memory.
*/
char *dj_json_quote(const char *s);

#endif
