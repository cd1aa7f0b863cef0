/*
** l_mask.c - djinn.mask.core: the scan behind djinn.mask (lua/djinn/mask.lua
** keeps the API, the rules and the state; this is its inner loop in C,
** issue 13: ten secrets whose first bytes were common in the output cut
** the output path to a third of its speed with Lua's string.find).
**
**   core.compile(secrets) -> matcher
**     secrets: an array of strings, longest first (mask.new sorts them;
**     none empty; at most 4096).
**   matcher:scan(buf, final, replacement) -> text, held
**     Matching is leftmost, then longest: at the first position where any
**     secret starts, the first secret of the list that matches there (the
**     longest) is replaced by `replacement`, and the scan goes on after
**     it. When final is false, the shortest tail of buf that is still a
**     proper beginning of some secret (at most the longest secret's
**     length - 1 bytes) is not scanned but returned as `held`, for the
**     next call to see it with the bytes that follow; when final is true,
**     held is "". tests/lua/mask_test.lua compares it with the same rules
**     written in plain Lua on random overlapping secrets.
*/
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "l_host.h"

#define MATCHER_MT "djinn.mask.matcher"
#define MAX_SECRETS 4096

/*
** A compiled set of secrets (Wu-Manber, blocks of 2 bytes): the text is
** looked at through a window of m bytes (m = the shortest secret's
** length); shift[pair] says how far the window may move when its last
** two bytes are `pair`: 0 when those bytes end the first m bytes of some
** secret (then the secrets are compared there), else the distance to the
** nearest place the pair occurs in some secret's first m bytes, or m - 1
** when it occurs in none. Text without secrets is skipped several bytes
** at a time, in one pass whatever the number of secrets.
*/
struct matcher {
    int nsec;
    size_t m, maxlen;
    char **s; /* longest first (as given) */
    size_t *len;
    unsigned char shift[65536];
};

static unsigned pair_at(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void matcher_free(struct matcher *mt)
{
    int k;

    if (mt->s != NULL)
        for (k = 0; k < mt->nsec; k++)
            free(mt->s[k]);
    free(mt->s);
    free(mt->len);
    mt->s = NULL;
    mt->len = NULL;
    mt->nsec = 0;
}

static int matcher_gc(lua_State *L)
{
    matcher_free(luaL_checkudata(L, 1, MATCHER_MT));
    return 0;
}

/* core.compile(secrets) -> matcher */
static int l_compile(lua_State *L)
{
    struct matcher *mt;
    lua_Integer count;
    size_t j, d;
    int k;

    luaL_checktype(L, 1, LUA_TTABLE);
    count = luaL_len(L, 1);
    luaL_argcheck(L, count >= 0 && count <= MAX_SECRETS, 1,
                  "at most 4096 secrets");
    mt = lua_newuserdatauv(L, sizeof(*mt), 0);
    memset(mt, 0, offsetof(struct matcher, shift));
    luaL_setmetatable(L, MATCHER_MT);
    mt->s = calloc((size_t)count + 1, sizeof(*mt->s));
    mt->len = calloc((size_t)count + 1, sizeof(*mt->len));
    if (mt->s == NULL || mt->len == NULL)
        return luaL_error(L, "mask: out of memory");
    for (k = 0; k < (int)count; k++) {
        const char *str;
        size_t len;

        lua_rawgeti(L, 1, k + 1);
        str = luaL_checklstring(L, -1, &len);
        luaL_argcheck(L, len > 0, 1, "a secret is empty");
        mt->s[k] = malloc(len);
        if (mt->s[k] == NULL)
            return luaL_error(L, "mask: out of memory");
        memcpy(mt->s[k], str, len);
        mt->len[k] = len;
        mt->nsec = k + 1;
        lua_pop(L, 1);
        if (k == 0 || len < mt->m)
            mt->m = len;
        if (len > mt->maxlen)
            mt->maxlen = len;
    }
    if (mt->m >= 2) {
        d = mt->m - 1 > 255 ? 255 : mt->m - 1;
        memset(mt->shift, (int)d, sizeof(mt->shift));
        for (k = 0; k < mt->nsec; k++)
            for (j = 0; j + 2 <= mt->m; j++) {
                unsigned h = pair_at((const unsigned char *)mt->s[k] + j);

                d = mt->m - 2 - j;
                if (d < mt->shift[h])
                    mt->shift[h] = (unsigned char)d;
            }
    }
    return 1;
}

/* The first secret (the longest) that starts at pos, or -1. */
static int match_at(const struct matcher *mt, const unsigned char *t, size_t n,
                    size_t pos)
{
    int k;

    for (k = 0; k < mt->nsec; k++)
        if (mt->len[k] <= n - pos && memcmp(t + pos, mt->s[k], mt->len[k]) == 0)
            return k;
    return -1;
}

/*
** One step of the window at *pos (which must satisfy *pos + m <= n):
** moves it on and returns -1, or returns the secret that starts there.
*/
static inline int step(const struct matcher *mt, const unsigned char *t,
                       size_t n, size_t *pos)
{
    size_t sh = mt->m >= 2 ? mt->shift[pair_at(t + *pos + mt->m - 2)] : 0;
    int k;

    if (sh > 0) {
        *pos += sh;
        return -1;
    }
    k = match_at(mt, t, n, *pos);
    if (k < 0)
        ++*pos;
    return k;
}

/*
** The leftmost start >= i of any secret, the longest one there: its
** index in *which; n when there is none. A long stretch is searched as two
** halves in step (two independent chains of loads, so the CPU overlaps
** them; a stretch with no secret is the common case): a hit in the first
** half is the answer, else the second half's first.
*/
static size_t find_next(const struct matcher *mt, const unsigned char *t,
                        size_t n, size_t i, int *which)
{
    size_t a = i, b, mid, m = mt->m;
    int k, kb = -1;

    if (mt->nsec == 0)
        return n;
    if (n - i >= 512) {
        mid = i + (n - i) / 2;
        b = mid;
        while (a < mid && a + m <= n) {
            if ((k = step(mt, t, n, &a)) >= 0) {
                *which = k;
                return a;
            }
            if (kb < 0 && b + m <= n && (kb = step(mt, t, n, &b)) >= 0)
                continue; /* b holds the second half's first hit */
        }
        if (kb >= 0) {
            *which = kb;
            return b;
        }
        a = b; /* the first half has none: go on with the second */
    }
    while (a + m <= n) {
        if ((k = step(mt, t, n, &a)) >= 0) {
            *which = k;
            return a;
        }
    }
    return n;
}

/*
** The smallest q >= start (and >= n - maxlen + 1) such that t[q..n) is a
** proper prefix of some secret; n when there is none (0-based).
*/
static size_t tail_start(const struct matcher *mt, const unsigned char *t,
                         size_t n, size_t start)
{
    size_t q = n + 1 >= mt->maxlen ? n + 1 - mt->maxlen : 0;
    int k;

    if (q < start)
        q = start;
    for (; q < n; q++)
        for (k = 0; k < mt->nsec; k++)
            if (mt->len[k] > n - q && memcmp(mt->s[k], t + q, n - q) == 0)
                return q;
    return n;
}

/* matcher:scan(buf, final, replacement) -> text, held */
static int l_scan(lua_State *L)
{
    const struct matcher *mt = luaL_checkudata(L, 1, MATCHER_MT);
    size_t n, rlen, i = 0, q, best;
    const char *buf = luaL_checklstring(L, 2, &n);
    const unsigned char *t = (const unsigned char *)buf;
    int final = lua_toboolean(L, 3), which = 0;
    const char *repl = luaL_checklstring(L, 4, &rlen);
    luaL_Buffer out;

    q = final ? n : tail_start(mt, t, n, 0);
    best = find_next(mt, t, n, 0, &which);
    if (best >= q) { /* nothing to replace (the common case): no copy */
        if (q == n)
            lua_pushvalue(L, 2);
        else
            lua_pushlstring(L, buf, q);
        lua_pushlstring(L, buf + q, n - q);
        return 2;
    }
    luaL_buffinit(L, &out);
    for (;;) {
        if (i > 0)
            best = find_next(mt, t, n, i, &which);
        if (!final && q < i)
            q = tail_start(mt, t, n, i);
        if (best < n && best < q) {
            luaL_addlstring(&out, buf + i, best - i);
            luaL_addlstring(&out, repl, rlen);
            i = best + mt->len[which];
        } else {
            luaL_addlstring(&out, buf + i, q - i);
            luaL_pushresult(&out);
            lua_pushlstring(L, buf + q, n - q);
            return 2;
        }
    }
}

static const luaL_Reg methods[] = {{"scan", l_scan}, {NULL, NULL}};
static const luaL_Reg funcs[] = {{"compile", l_compile}, {NULL, NULL}};

int luaopen_djinn_mask_core(lua_State *L)
{
    luaL_newmetatable(L, MATCHER_MT);
    lua_pushcfunction(L, matcher_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
