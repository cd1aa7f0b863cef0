/*
** jsonstr.c - see jsonstr.h: the one rule for JSON strings (invalid UTF-8
** becomes U+FFFD per byte), encoded by jansson.
*/
#include "jsonstr.h"

#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t k, len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0; /* overlong */
    else if (c == 0xED)
        hi = 0x9F; /* surrogates */
    else if (c == 0xF0)
        lo = 0x90; /* overlong */
    else if (c == 0xF4)
        hi = 0x8F; /* above U+10FFFF */
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return len;
}

json_t *dj_json_string(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o, k;
    unsigned char *buf;
    json_t *v;

    while (i < len && (k = utf8_seq(p + i, len - i)) != 0)
        i += k;
    if (i == len)
        return json_stringn_nocheck(s, len);
    if (len > ((size_t)-1 - 1) / 3)
        return NULL;
    buf = malloc(len * 3 + 1);
    if (buf == NULL)
        return NULL;
    memcpy(buf, p, i);
    o = i;
    while (i < len) {
        k = utf8_seq(p + i, len - i);
        if (k == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, p + i, k);
            o += k;
            i += k;
        }
    }
    v = json_stringn_nocheck((const char *)buf, o);
    free(buf);
    return v;
}

char *dj_json_quote(const char *s)
{
    json_t *v = dj_json_string(s, strlen(s));
    char *text;

    if (v == NULL)
        return NULL;
    text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(v);
    return text;
}
