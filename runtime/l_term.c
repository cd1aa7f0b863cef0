/*
** l_term.c - djinn.term: job output made safe for a terminal.
**
** Lua API (misuse raises; nothing here fails otherwise):
**   term.sanitize(s [, final = false]) -> out, rest
**       out is s with every control sequence a terminal would obey,
**       other than colour, made visible: a job must not set the window
**       title, clear the screen, write the clipboard (OSC 52), move the
**       cursor to paint over the runner's own lines, or switch character
**       sets (issue 10, defect 10). Kept as they are: printable text
**       (ASCII, valid UTF-8, and bytes >= 0xA0 of other encodings), TAB,
**       LF, CR, and colour sequences (SGR: ESC [ <digits ; :> m, at most
**       64 parameter bytes). Shown instead:
**         a C0 control or DEL   as ^@ .. ^_ and ^?  (ESC is ^[, so an OSC
**                               "ESC ] 0 ; t BEL" prints "^[]0;t^G")
**         a C1 control U+0080-U+009F in UTF-8   as \u0080 .. \u009f
**         a raw byte 0x80-0x9F that is not part of a UTF-8 character
**                               (8-bit C1 of non-UTF-8 output) as \x80..
**       rest is the tail of s that may begin a sequence or a character
**       the next chunk completes (an ESC, an unfinished colour sequence,
**       an incomplete UTF-8 character; at most 66 bytes): prepend it to
**       the next chunk. With final (the stream ends, or s is a whole
**       message) nothing is held back and rest is "".
**       When nothing changes and nothing is held, out is s itself (no
**       copy): plain output costs one scan.
**
** A stream filter is thus: out, held = term.sanitize(held .. chunk), and
** term.sanitize(held, true) at the end.
**
**   term.columns(header, rows) -> text
**       A table for people: header and every row (arrays of strings,
**       one per column) as lines of cells padded with spaces to
**       the widest cell of their column (in bytes), two spaces between
**       columns, no padding after the last cell, each line ending in
**       "\n". A row shorter than the header leaves its last columns out.
**       Built in one buffer (issue 13: 10,000 rows of `image ls` took
**       70 ms in Lua).
**
**   term.size(n) -> "512 B" | "1.5 KiB" | "10.0 GiB" ...
**       A byte count for people, in B, KiB, MiB, GiB or TiB (1024-based,
**       the largest unit that leaves 1 or more, TiB at most; one decimal
**       past B). Not a number: "-". (3 µs per call in Lua, where `image
**       ls` calls it twice per image.)
*/
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "l_host.h"

/* Parameter bytes of a colour sequence kept (longer ones are shown). */
#define SGR_MAX 64

enum { SEQ_NO, SEQ_YES, SEQ_MORE };

/* A byte that passes on its own: printable ASCII, TAB, LF, CR. */
static int term_plain(unsigned char c)
{
    return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
}

/*
** p[0] is ESC: is p[0..n) a colour sequence ESC [ [0-9;:]* m? SEQ_YES
** with its length in *len, SEQ_NO, or SEQ_MORE when n ends inside one.
*/
static int term_sgr(const unsigned char *p, size_t n, size_t *len)
{
    size_t i;

    if (n < 2)
        return SEQ_MORE;
    if (p[1] != '[')
        return SEQ_NO;
    for (i = 2; i < n && i < SGR_MAX + 3; i++) {
        if (p[i] == 'm') {
            *len = i + 1;
            return SEQ_YES;
        }
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == ';' || p[i] == ':'))
            return SEQ_NO;
    }
    return i < SGR_MAX + 3 ? SEQ_MORE : SEQ_NO;
}

/*
** The length of the run of plain bytes at the start of p[0..n): 16 bytes
** at a time with GCC/Clang vector extensions (SSE2 on x86-64, NEON on
** arm64, plain integer code elsewhere), so that ordinary output costs
** well under a tenth of a cycle per byte.
*/
typedef unsigned char term_v16 __attribute__((vector_size(16)));
typedef unsigned long long term_u64x2 __attribute__((vector_size(16)));

static size_t term_plain_run(const unsigned char *p, size_t n)
{
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        term_v16 v;
        term_u64x2 bad;

        memcpy(&v, p + i, sizeof(v));
        bad = (term_u64x2)(((v < 0x20) & (v != '\t') & (v != '\n') &
                            (v != '\r')) |
                           (v >= 0x7f));
        if ((bad[0] | bad[1]) != 0)
            break;
    }
    while (i < n && term_plain(p[i]))
        i++;
    return i;
}

/* Bytes of the UTF-8 character led by c (2..4); 0 if c leads none. */
static size_t term_utf8_len(unsigned char c)
{
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

static int l_term_sanitize(lua_State *L)
{
    size_t n, i = 0, done = 0, hold, len, need, k;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
    int final = lua_toboolean(L, 2);
    int changed = 0;
    char rep[8];
    luaL_Buffer b;

    hold = n;
    luaL_buffinit(L, &b);
    while (i < n) {
        unsigned char c;

        i += term_plain_run(p + i, n - i);
        if (i == n)
            break;
        c = p[i];
        len = 1;
        if (c == 0x1b) {
            int r = term_sgr(p + i, n - i, &len);

            if (r == SEQ_YES) {
                i += len;
                continue;
            }
            if (r == SEQ_MORE && !final) {
                hold = i;
                break;
            }
            len = 1;
            memcpy(rep, "^[", 3);
        } else if (c < 0x20 || c == 0x7f) {
            rep[0] = '^';
            rep[1] = (char)(c ^ 0x40);
            rep[2] = '\0';
        } else if (c < 0xc0) {
            /* A byte no lead byte claimed: 0x80-0x9F is an 8-bit C1. */
            if (c > 0x9f) {
                i++;
                continue;
            }
            snprintf(rep, sizeof(rep), "\\x%02x", (unsigned)c);
        } else {
            need = term_utf8_len(c);
            if (need == 0) {
                i++;
                continue;
            }
            for (k = 1; k < need && i + k < n && (p[i + k] & 0xc0) == 0x80; k++)
                ;
            if (k < need && i + k == n && !final) {
                hold = i;
                break;
            }
            /* A broken character: its lead byte passes, what follows
            ** is looked at on its own. */
            if (k < need || c != 0xc2 || p[i + 1] > 0x9f) {
                i += k < need ? 1 : need;
                continue;
            }
            len = 2;
            snprintf(rep, sizeof(rep), "\\u%04x", (unsigned)p[i + 1]);
        }
        luaL_addlstring(&b, (const char *)p + done, i - done);
        luaL_addstring(&b, rep);
        i += len;
        done = i;
        changed = 1;
    }
    if (!changed) {
        if (hold == n)
            lua_pushvalue(L, 1);
        else
            lua_pushlstring(L, (const char *)p, hold);
    } else {
        luaL_addlstring(&b, (const char *)p + done, hold - done);
        luaL_pushresult(&b);
    }
    lua_pushlstring(L, (const char *)p + hold, n - hold);
    return 2;
}

/* The cell j (1-based) of the array at idx, or NULL past its end; raises
 * for a cell that is not a string. */
static const char *term_cell(lua_State *L, int idx, lua_Integer j, size_t *len)
{
    const char *s;

    int t = lua_rawgeti(L, idx, j);

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TSTRING)
        luaL_error(L, "term.columns: cell %I is a %s (cells are strings)", j,
                   luaL_typename(L, -1));
    s = lua_tolstring(L, -1, len);
    lua_pop(L, 1); /* (the string stays reachable from its table) */
    return s;
}

/*
** The line of the array at idx: its length padded to widths w[1..n]
** (out NULL), or written to out.
*/
static size_t term_line(lua_State *L, int idx, const size_t *w, lua_Integer n,
                        char *out)
{
    lua_Integer j;
    size_t len, at = 0, pad;
    const char *s = n >= 1 ? term_cell(L, idx, 1, &len) : NULL;

    for (j = 1; s != NULL; j++) {
        size_t nlen = 0;
        const char *next = j < n ? term_cell(L, idx, j + 1, &nlen) : NULL;

        if (out != NULL)
            memcpy(out + at, s, len);
        at += len;
        if (next == NULL)
            break;
        pad = w[j] - len + 2;
        if (out != NULL)
            memset(out + at, ' ', pad);
        at += pad;
        s = next;
        len = nlen;
    }
    if (out != NULL)
        out[at] = '\n';
    return at + 1;
}

static int l_term_columns(lua_State *L)
{
    lua_Integer n, nrows, i, j;
    size_t *w, len, total;
    char *out;

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = (lua_Integer)lua_rawlen(L, 1);
    nrows = (lua_Integer)lua_rawlen(L, 2);
    luaL_argcheck(L, n <= 1024, 1, "at most 1024 columns");
    w = (size_t *)lua_newuserdatauv(L, sizeof(size_t) * (size_t)(n + 1), 0);
    for (j = 1; j <= n; j++)
        if (term_cell(L, 1, j, &w[j]) == NULL)
            w[j] = 0;
    for (i = 1; i <= nrows; i++) {
        if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
            return luaL_error(L, "term.columns: row %I is a %s (arrays)", i,
                              luaL_typename(L, -1));
        for (j = 1; j <= n; j++) {
            if (term_cell(L, -1, j, &len) == NULL)
                break;
            if (len > w[j])
                w[j] = len;
        }
        lua_pop(L, 1);
    }
    /* The exact length, then the text in one block (no Lua value is
     * called between the passes: the cells cannot change). */
    total = term_line(L, 1, w, n, NULL);
    for (i = 1; i <= nrows; i++) {
        lua_rawgeti(L, 2, i);
        total += term_line(L, -1, w, n, NULL);
        lua_pop(L, 1);
    }
    out = (char *)lua_newuserdatauv(L, total, 0);
    len = term_line(L, 1, w, n, out);
    for (i = 1; i <= nrows; i++) {
        lua_rawgeti(L, 2, i);
        len += term_line(L, -1, w, n, out + len);
        lua_pop(L, 1);
    }
    lua_pushlstring(L, out, len);
    return 1;
}

static int l_term_size(lua_State *L)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    char buf[64];
    double n;
    int i = 0;

    if (lua_type(L, 1) != LUA_TNUMBER) {
        lua_pushliteral(L, "-");
        return 1;
    }
    n = lua_tonumber(L, 1);
    if (lua_isinteger(L, 1) && n < 1024) {
        lua_pushfstring(L, "%I B", lua_tointeger(L, 1));
        return 1;
    }
    while (n >= 1024 && i < 4) {
        n /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, sizeof(buf), "%.0f B", n);
    else
        snprintf(buf, sizeof(buf), "%.1f %s", n, units[i]);
    lua_pushstring(L, buf);
    return 1;
}

static const luaL_Reg term_funcs[] = {
    {"size", l_term_size},
    {"sanitize", l_term_sanitize},
    {"columns", l_term_columns},
    {NULL, NULL},
};

int luaopen_djinn_term(lua_State *L)
{
    luaL_newlib(L, term_funcs);
    return 1;
}
