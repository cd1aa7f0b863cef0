/*
** jsonstr.c - see jsonstr.h: the one rule for JSON strings (invalid UTF-8
** becomes U+FFFD per byte), encoded by jansson.
*/
#include "jsonstr.h"

#include <stdint.h>
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

/*
** The bytes an ASCII character adds when escaped: 0 passes as is, 1 for
** \" \\ \b \f \n \r \t, 5 for \u00XX (jansson's choices).
*/
static const unsigned char ascii_extra[128] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5, /* 0x00: \b \t \n \f \r */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50: '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 (DEL as is) */
};

/*
** How many of the 8 bytes at p, from the first, pass as is (ASCII
** 0x20..0x7F other than '"' and '\\'): 0..8. The escaper copies them at
** once. Bit tricks on a 64-bit word: a byte's high bit is set in `bad`
** when it is >= 0x80, < 0x20, '"' or '\\'; the borrows of the subtractions
** can only mark bytes after a marked one, so the lowest mark is exact.
** Little-endian only (the lowest address in the lowest bits); elsewhere
** one byte at a time.
*/
static size_t plain_prefix(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&    \
    defined(__GNUC__)
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t w, q, b, bad;

    memcpy(&w, p, 8);
    q = w ^ (ones * '"');
    b = w ^ (ones * '\\');
    bad =
        (w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) &
        high;
    return bad == 0 ? 8 : (size_t)__builtin_ctzll(bad) / 8;
#else
    return p[0] >= 0x20 && p[0] < 0x80 && p[0] != '"' && p[0] != '\\';
#endif
}

/* The escape of control, quote or backslash c: its text and length. */
static size_t escape_of(unsigned char c, char *out)
{
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    static const char hex[] = "0123456789ABCDEF";

    out[0] = '\\';
    if (ascii_extra[c] == 1) { /* one of `from` (never NUL: that is 5) */
        out[1] = to[strchr(from, c) - from];
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

size_t dj_json_escaped_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, extra = 0, k;

    /* extra <= 5 * i, so it cannot wrap before len does; checked below. */
    while (i < len) {
        unsigned char c = p[i];

        if (c < 0x80) {
            extra += ascii_extra[c];
            i++;
        } else if ((k = utf8_seq(p + i, len - i)) == 0) {
            extra += 2; /* an invalid byte becomes U+FFFD (3 bytes) */
            i++;
        } else {
            i += k;
        }
    }
    if (len > (size_t)-1 - 2 || extra > (size_t)-1 - 2 - len)
        return 0;
    return len + extra + 2;
}

size_t dj_json_escape_into(char *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0, k;

    out[o++] = '"';
    while (i < len) {
        unsigned char c = p[i];

        if (len - i >= 8 && (k = plain_prefix(p + i)) > 0) {
            /* 8 bytes written, k kept: out has room, as each of the 8
             * input bytes gives at least one output byte. */
            memcpy(out + o, p + i, 8);
            o += k;
            i += k;
        } else if (c < 0x80 && ascii_extra[c] == 0) {
            out[o++] = (char)c;
            i++;
        } else if (c == '\n') { /* the common one, inline */
            out[o++] = '\\';
            out[o++] = 'n';
            i++;
        } else if (c < 0x80) {
            o += escape_of(c, out + o);
            i++;
        } else if ((k = utf8_seq(p + i, len - i)) == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
    }
    out[o++] = '"';
    return o;
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
    size_t len = strlen(s), n = dj_json_escaped_len(s, len);
    char *text;

    if (n == 0 || n == (size_t)-1 || (text = malloc(n + 1)) == NULL)
        return NULL;
    dj_json_escape_into(text, s, len);
    text[n] = '\0';
    return text;
}
