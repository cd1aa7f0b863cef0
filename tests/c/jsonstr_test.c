/*
** jsonstr_test.c - ext/jsonstr.h, the one rule for JSON strings (issue
** 12): the SQL functions' reports and djinn.json give the same bytes;
** invalid UTF-8 becomes U+FFFD per byte; controls are escaped.
*/
#include <stdlib.h>
#include <string.h>

#include "jsonstr.h"
#include "qcow2.h"
#include "tap.h"

#define FFFD "\xEF\xBF\xBD"

static void quote(const char *in, const char *want, const char *name)
{
    char *got = dj_json_quote(in);

    is_str(got, want, "%s", name);
    free(got);
}

/*
** The fast escaper (dj_json_escape_into, issue 13) against jansson's own
** encoder of the same string: 1 when the bytes are the same.
*/
static int same_as_jansson(const unsigned char *s, size_t len)
{
    json_t *v = dj_json_string((const char *)s, len);
    char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    size_t n = dj_json_escaped_len((const char *)s, len), w;
    char *got = malloc(n + 1);
    int same;

    w = dj_json_escape_into(got, (const char *)s, len);
    same = w == n && strlen(want) == n && memcmp(got, want, n) == 0;
    free(got);
    free(want);
    json_decref(v);
    return same;
}

static void escaper_vs_jansson(void)
{
    unsigned char s[64];
    unsigned long seed = 12345;
    int a, b, bad = 0, i, n, k;

    for (a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        bad += !same_as_jansson(s, 1);
    }
    ok(bad == 0, "escaper = jansson on all 256 one-byte strings (%d differ)",
       bad);
    bad = 0;
    for (a = 0; a < 256; a++)
        for (b = 0; b < 256; b++) {
            s[0] = (unsigned char)a;
            s[1] = (unsigned char)b;
            bad += !same_as_jansson(s, 2);
        }
    ok(bad == 0, "escaper = jansson on all 65536 two-byte strings (%d differ)",
       bad);
    /* Random strings drawn from bytes that matter: ASCII, controls, quote,
     * backslash, lead and continuation bytes, invalid bytes. */
    bad = 0;
    for (i = 0; i < 200000; i++) {
        static const unsigned char pick[] = {
            'a', ' ', '"', '\\', '\n', 0,    0x1B, 0x7F, 0x80, 0xBF, 0xC2,
            0xC0, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x90};
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        n = (int)((seed >> 33) % sizeof(s));
        for (k = 0; k < n; k++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            s[k] = pick[(seed >> 33) % sizeof(pick)];
        }
        bad += !same_as_jansson(s, (size_t)n);
    }
    ok(bad == 0, "escaper = jansson on 200000 random strings (%d differ)", bad);
    /* Mostly plain text with a special byte now and then: the escaper's
     * 8-byte fast path, stopped at every offset of a word. */
    bad = 0;
    for (i = 0; i < 100000; i++) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        n = (int)((seed >> 33) % sizeof(s));
        for (k = 0; k < n; k++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            s[k] = (seed >> 33) % 10 == 0
                       ? (unsigned char)((seed >> 40) % 256)
                       : (unsigned char)(0x20 + (seed >> 40) % 95);
        }
        bad += !same_as_jansson(s, (size_t)n);
    }
    ok(bad == 0, "escaper = jansson on 100000 mostly-plain strings (%d differ)",
       bad);
    ok(dj_json_escaped_len("", 0) == 2, "the empty string is 2 bytes: \"\"");
}

int main(void)
{
    struct qcow2_report r;
    struct qcow2_problem e[1];
    json_t *v;
    char *j;

    quote("plain", "\"plain\"", "ASCII as is");
    quote("", "\"\"", "empty string");
    quote("caf\xC3\xA9 \xF0\x9F\x98\x80", "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"",
          "valid UTF-8 as is");
    quote("a\"b\\c/d", "\"a\\\"b\\\\c/d\"", "quote and backslash escaped");
    quote("\x01\x1B[2J\n\t\x7F", "\"\\u0001\\u001B[2J\\n\\t\x7F\"",
          "controls escaped, DEL as is");
    quote("bad \xFF\xFE", "\"bad " FFFD FFFD "\"",
          "each invalid byte becomes U+FFFD");
    quote("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"", "a surrogate is invalid");
    quote("\xC0\xAF", "\"" FFFD FFFD "\"", "an overlong form is invalid");
    quote("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"",
          "above U+10FFFF is invalid");
    quote("half \xE2\x82", "\"half " FFFD FFFD "\"",
          "a truncated sequence at the end is invalid");

    v = dj_json_string("a\0b", 3);
    j = json_dumps(v, JSON_ENCODE_ANY);
    is_str(j, "\"a\\u0000b\"", "an embedded NUL (with a length) is escaped");
    free(j);
    json_decref(v);

    escaper_vs_jansson();

    /* The qcow2 report: a message with invalid UTF-8 is valid JSON. */
    memset(&r, 0, sizeof(r));
    memset(e, 0, sizeof(e));
    e[0].code = QCOW2_E_SNAPSHOT;
    strcpy(e[0].message, "name \xFF\xC3\xA9");
    r.errors = e;
    r.nerrors = 1;
    j = qcow2_report_json(&r);
    is_str(j,
           "{\"valid\":false,\"errors\":[{\"code\":\"snapshot\",\"message\":"
           "\"name " FFFD "\xC3\xA9\"}],\"warnings\":[]}",
           "qcow2 report: invalid UTF-8 -> U+FFFD, valid kept (was '?')");
    v = json_loads(j, 0, NULL);
    ok(v != NULL, "qcow2 report parses back with jansson");
    json_decref(v);
    free(j);
    return tap_done();
}
