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
