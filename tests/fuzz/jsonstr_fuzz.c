/*
** jsonstr_fuzz.c - libFuzzer harness for the JSON string escaper (issue
** 13): dj_json_escape_into (one pass, an 8-byte fast path) must give the
** bytes jansson gives for the same string by the same rule
** (json_dumps(dj_json_string(...))), for every input; a difference aborts.
** Built and run by `make fuzz` (tests/fuzz/run.sh).
*/
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = dj_json_string((const char *)data, size);
    char *want = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    size_t n = dj_json_escaped_len((const char *)data, size), w;
    char *got = malloc(n ? n : 1);

    if (want == NULL || got == NULL || n == 0)
        abort(); /* out of memory, or a length that cannot be */
    w = dj_json_escape_into(got, (const char *)data, size);
    if (w != n || strlen(want) != n || memcmp(got, want, n) != 0)
        abort();
    free(got);
    free(want);
    json_decref(v);
    return 0;
}
