/*
** util.c - allocation helpers (tmux xmalloc style) and small Lua helpers
** for the djinn-lua runtime. See util.h.
*/
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

static void dj_oom(size_t n)
{
    fprintf(stderr, "djinn-lua: out of memory allocating %zu bytes\n", n);
    abort();
}

void *dj_xmalloc(size_t size)
{
    void *p = NULL;

    if (size == 0)
        size = 1;
    p = malloc(size);
    if (p == NULL)
        dj_oom(size);
    return p;
}

void *dj_xcalloc(size_t nmemb, size_t size)
{
    void *p = NULL;

    if (nmemb == 0 || size == 0) {
        nmemb = 1;
        size = 1;
    }
    if (SIZE_MAX / nmemb < size)
        dj_oom(SIZE_MAX);
    p = calloc(nmemb, size);
    if (p == NULL)
        dj_oom(nmemb * size);
    return p;
}

void *dj_xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    void *p = NULL;
    size_t n;

    if (nmemb != 0 && SIZE_MAX / nmemb < size)
        dj_oom(SIZE_MAX);
    n = nmemb * size;
    if (n == 0)
        n = 1;
    p = realloc(ptr, n);
    if (p == NULL)
        dj_oom(n);
    return p;
}

char *dj_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = dj_xmalloc(n);

    memcpy(p, s, n);
    return p;
}

int dj_pushfail(lua_State *L, const char *fmt, ...)
{
    va_list ap;

    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

double dj_optnumfield(lua_State *L, int idx, const char *name, double def)
{
    double v = def;
    int t = lua_getfield(L, idx, name);

    if (t == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "option '%s' must be a number, got %s", name,
                   luaL_typename(L, -1)); /* does not return */
    lua_pop(L, 1);
    return v;
}

double dj_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
