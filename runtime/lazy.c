/*
** lazy.c - the C modules that stand on large libraries, loaded the first
** time they are needed (issue 13: start-up).
**
** Linking libcurl, libssh and libarchive into djinn-lua made every start
** map about 40 more shared objects (gnutls, krb5, ldap, libxml2 ...):
** about 30 ms of a 50 ms start on this machine kind, paid by `image ls`,
** `check` and each build a queue worker runs, which mostly need none of
** them. They live in modules of their own instead:
**
**   mod/ssh.so    djinn.ssh   (l_ssh*.c; libssh)
**   mod/http.so   djinn.http  (l_http.c; libcurl) and dj_fetch
**                 (ext/fetch.c: the registry's URL import; libcurl)
**   mod/tar.so    djinn.tar   (l_tar.c; libarchive)
**
** Each is looked for (dj_find_lib, util.c), first file found wins, as
**   <exe dir>/mod/NAME.so            (the build tree: build/mod)
**   <exe dir>/../lib/djinn/NAME.so   (an installed tree, even moved)
**   DJINN_LIBDIR/NAME.so             ($(PREFIX)/lib/djinn at build time)
** and opened with RTLD_NOW (a missing symbol fails at once, not in the
** middle of a build) and never closed: userdata of the module may be
** collected as late as lua_close().
**
**   dj_lazy_preload(L)  package.preload entries for the three modules
**                       (the table at the top of the stack)
**   dj_fetch(...)       fetch.h's, forwarded to the module's
** A module that cannot be loaded is an error naming every path tried and
** the loader's reason: `require` raises it, dj_fetch returns it.
*/
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "fetch.h"
#include "util.h"

struct lazy_mod {
    const char *name; /* file: NAME.so */
    void *handle;     /* once loaded */
};

static struct lazy_mod mods[] = {{"ssh", NULL}, {"http", NULL}, {"tar", NULL}};

/* Open module m (once); NULL with why filled in. */
static void *lazy_open(struct lazy_mod *m, char *why, size_t whylen)
{
    char rel[64], file[64], path[DJ_LIBPATH];
    const char *reason = NULL;
    size_t n;

    if (m->handle != NULL)
        return m->handle;
    snprintf(rel, sizeof(rel), "mod/%s.so", m->name);
    snprintf(file, sizeof(file), "%s.so", m->name);
    if (!dj_find_lib(rel, file, F_OK, path, why, whylen)) {
        n = strlen(why);
        snprintf(why + n, whylen - n,
                 "; djinn-lua loads it from beside itself: build with make, "
                 "or install with make install)");
        return NULL;
    }
    m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (m->handle != NULL)
        return m->handle;
    reason = dlerror();
    snprintf(why, whylen, "cannot load %.4200s: %.2048s", path,
             reason ? reason : "unknown error");
    return NULL;
}

/* The symbol sym of module m, loading m first; NULL with why filled in. */
static void *lazy_sym(struct lazy_mod *m, const char *sym, char *why,
                      size_t whylen)
{
    void *h = lazy_open(m, why, whylen);
    void *p = h != NULL ? dlsym(h, sym) : NULL;

    if (h != NULL && p == NULL)
        snprintf(why, whylen, "its library is from another build (no %s)", sym);
    return p;
}

/* package.preload opener: upvalue 1 the module index, 2 its luaopen. */
static int lazy_require(lua_State *L)
{
    struct lazy_mod *m = &mods[lua_tointeger(L, lua_upvalueindex(1))];
    char why[3 * PATH_MAX];
    lua_CFunction open;

    /* (POSIX: a function pointer converts from dlsym's void *) */
    *(void **)(&open) =
        lazy_sym(m, lua_tostring(L, lua_upvalueindex(2)), why, sizeof(why));
    if (open == NULL)
        return luaL_error(L, "module djinn.%s: %s", m->name, why);
    return open(L);
}

void dj_lazy_preload(lua_State *L)
{
    static const char *const opens[] = {
        "luaopen_djinn_ssh", "luaopen_djinn_http", "luaopen_djinn_tar"};
    int i;

    for (i = 0; i < (int)(sizeof(mods) / sizeof(mods[0])); i++) {
        lua_pushfstring(L, "djinn.%s", mods[i].name);
        lua_pushinteger(L, i);
        lua_pushstring(L, opens[i]);
        lua_pushcclosure(L, lazy_require, 2);
        lua_settable(L, -3);
    }
}

typedef int (*fetch_fn)(const char *, const struct dj_fetch_opts *,
                        dj_fetch_sink, dj_fetch_progress, void *,
                        struct dj_fetch_result *, char **);

int dj_fetch(const char *url, const struct dj_fetch_opts *o, dj_fetch_sink sink,
             dj_fetch_progress progress, void *arg, struct dj_fetch_result *res,
             char **err)
{
    static fetch_fn fetch;
    char why[3 * PATH_MAX];

    if (fetch == NULL)
        *(void **)(&fetch) = lazy_sym(&mods[1], "dj_fetch", why, sizeof(why));
    if (fetch == NULL) {
        memset(res, 0, sizeof(*res));
        *err =
            sqlite3_mprintf("downloads need djinn-lua's http module: %s", why);
        return *err != NULL ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    return fetch(url, o, sink, progress, arg, res, err);
}
