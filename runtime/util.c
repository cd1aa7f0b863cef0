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
#include <unistd.h>

#include <lauxlib.h>

/* The command line's strings (dj_title_area; set once by main). */
static char *title_start;
static size_t title_len;

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

int dj_msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

lua_Integer dj_exit_status(lua_State *L, int nres, const char *what)
{
    int first = lua_gettop(L) - nres + 1;
    const char *msg = NULL;
    lua_Integer st = 1;

    if (nres >= 1 && lua_isinteger(L, first)) {
        st = lua_tointeger(L, first);
        return (st < 0 || st > 255) ? 1 : st;
    }
    if (nres >= 1 && lua_isboolean(L, first))
        return lua_toboolean(L, first) ? 0 : 1;
    if (nres >= 2 && lua_isnil(L, first) &&
        lua_type(L, first + 1) == LUA_TSTRING)
        msg = lua_tostring(L, first + 1);
    if (msg != NULL) {
        if (nres >= 3 && lua_isinteger(L, first + 2))
            st = lua_tointeger(L, first + 2);
        fprintf(stderr, "djinn-lua: %s\n", msg);
        fflush(stderr);
        return (st < 1 || st > 255) ? 1 : st;
    }
    if (what == NULL)
        return 0;
    fprintf(stderr,
            "djinn-lua: internal error: %s returned %s instead of an exit "
            "status\n",
            what, nres >= 1 ? luaL_typename(L, first) : "nothing");
    fflush(stderr);
    return 1;
}

void dj_title_area(int argc, char **argv)
{
    char *end;
    int i;

    if (argc < 1 || argv[0] == NULL)
        return;
    end = argv[0] + strlen(argv[0]);
    for (i = 1; i < argc; i++) {
        if (argv[i] != end + 1)
            break; /* not contiguous: only the strings up to here */
        end = argv[i] + strlen(argv[i]);
    }
    title_start = argv[0];
    title_len = (size_t)(end - argv[0]);
}

void dj_set_title(const char *title)
{
    size_t n = strlen(title);

    if (title_start == NULL || title_len == 0)
        return;
    if (n > title_len)
        n = title_len;
    memcpy(title_start, title, n);
    memset(title_start + n, 0, title_len - n);
}

#ifndef DJINN_LIBDIR
#define DJINN_LIBDIR "/usr/local/lib/djinn"
#endif

int dj_find_lib(const char *build_rel, const char *name, int mode, char *path,
                char *why, size_t whylen)
{
    char exe[PATH_MAX], cand[3][DJ_LIBPATH];
    char *slash = NULL;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    int i, ncand = 0;
    size_t used;

    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
    }
    if (slash != NULL) {
        *slash = '\0';
        snprintf(cand[ncand++], sizeof(cand[0]), "%s/%s", exe, build_rel);
        snprintf(cand[ncand++], sizeof(cand[0]), "%s/../lib/djinn/%s", exe,
                 name);
    }
    snprintf(cand[ncand++], sizeof(cand[0]), "%s/%s", DJINN_LIBDIR, name);
    for (i = 0; i < ncand; i++) {
        if (access(cand[i], mode) == 0) {
            memcpy(path, cand[i], sizeof(cand[i]));
            return 1;
        }
    }
    snprintf(why, whylen, "%s is missing (looked for %s", name, cand[0]);
    for (i = 1; i < ncand; i++) {
        used = strlen(why);
        snprintf(why + used, whylen - used, ", %s", cand[i]);
    }
    return 0;
}
