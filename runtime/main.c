/*
** main.c - the djinn-lua host (modelled on lua.c).
**
**     djinn-lua [ARGS...]
**
** main() only creates the state and runs pmain() under lua_pcall with a
** traceback message handler; any error is printed as
** "djinn-lua: <message>" on stderr and the exit status is 1.
**
** pmain():
**   - opens the standard libraries and registers the C modules
**     (djinn.yaml, djinn.proc, djinn.fs, djinn.registry, djinn.qcow2,
**     djinn.json, djinn.kvm, djinn.ipc, djinn.redis, djinn.sys,
**     djinn.term, djinn.mask.core, djinn.crypto) in package.preload,
**     and there too the openers of djinn.ssh, djinn.http and djinn.tar,
**     which load their shared objects when first required (lazy.c);
**     package.cpath is emptied (no foreign C modules);
**   - sets package.path: "<exe dir>/../lua/?.lua;<exe dir>/../lua/?/init.lua"
**     when <exe dir>/../lua/djinn/cli.lua exists (build tree), then
**     <exe dir>/../share/djinn/lua when it holds djinn/cli.lua (an
**     installed tree, even one moved after `make install`), else the
**     compile-time DJINN_LUADIR; $DJINN_LUA_PATH, if set, is prepended;
**   - if djinn.cli is found on package.path: sets the global `arg`
**     (arg[0] = argv[0], arg[1..] = ARGS) and returns cli.main({ARGS...});
**   - otherwise, if ARGS[1] ends in ".lua", runs it as a script like lua.c
**     (arg[-1] = argv[0], arg[0] = script, arg[1..] = the rest; the chunk
**     also receives them as `...`). This fallback stays permanently.
** The exit status, from the results of cli.main (or of the script):
**   an integer         that status (outside 0..255: 1)
**   true / false       0 / 1
**   nil, "message" [, code]   the message on stderr as "djinn-lua:
**                      message", then code (an integer 1..255) or 1
**   anything else      cli.main: "djinn-lua: internal error: ..." and 1
**                      (never a silent 0: issue 10, defect 7, where
**                      `nil, "interrupted", 130` exited 0); a script
**                      returning nothing or another value: 0, as lua.c.
** The state is closed first so every __gc runs (os.exit(code, true)
** semantics).
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "djinn.h"
#include "l_host.h"
#include "util.h"

#ifndef DJINN_LUADIR
#define DJINN_LUADIR "/usr/local/share/djinn/lua"
#endif

static const luaL_Reg preloads[] = {
    {"djinn.yaml", luaopen_djinn_yaml},
    {"djinn.proc", luaopen_djinn_proc},
    {"djinn.fs", luaopen_djinn_fs},
    {"djinn.registry", luaopen_djinn_registry},
    {"djinn.qcow2", luaopen_djinn_qcow2},
    {"djinn.json", luaopen_djinn_json},
    {"djinn.kvm", luaopen_djinn_kvm},
    {"djinn.ipc", luaopen_djinn_ipc},
    {"djinn.redis", luaopen_djinn_redis},
    {"djinn.sys", luaopen_djinn_sys},
    {"djinn.term", luaopen_djinn_term},
    {"djinn.mask.core", luaopen_djinn_mask_core},
    {"djinn.crypto", luaopen_djinn_crypto},
    {NULL, NULL},
};

/* Set package.path from the executable's location (see header). */
static void set_paths(lua_State *L)
{
    char exe[PATH_MAX];
    char probe[PATH_MAX + 64];
    const char *extra = getenv("DJINN_LUA_PATH");
    ssize_t n;
    char *slash = NULL;
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    if (extra != NULL && *extra != '\0') {
        luaL_addstring(&b, extra);
        luaL_addchar(&b, ';');
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
    }
    if (slash != NULL) {
        *slash = '\0';
        snprintf(probe, sizeof(probe), "%s/../lua/djinn/cli.lua", exe);
    }
    if (slash != NULL && access(probe, R_OK) == 0) {
        lua_pushfstring(L, "%s/../lua/?.lua;%s/../lua/?/init.lua", exe, exe);
        luaL_addvalue(&b);
        luaL_addchar(&b, ';');
    }
    /* An installed tree that was moved (DESTDIR, a relocated PREFIX). */
    if (slash != NULL)
        snprintf(probe, sizeof(probe), "%s/../share/djinn/lua/djinn/cli.lua",
                 exe);
    if (slash != NULL && access(probe, R_OK) == 0) {
        lua_pushfstring(L,
                        "%s/../share/djinn/lua/?.lua;"
                        "%s/../share/djinn/lua/?/init.lua",
                        exe, exe);
    } else {
        lua_pushstring(L, DJINN_LUADIR "/?.lua;" DJINN_LUADIR "/?/init.lua");
    }
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_getglobal(L, "package");
    lua_insert(L, -2);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    luaL_setfuncs(L, preloads, 0);
    dj_lazy_preload(L);
    lua_pop(L, 2);
}

/* Global `arg`: argv[first] at index 0, earlier ones at negative indices. */
static void set_arg(lua_State *L, int argc, char **argv, int first)
{
    int i;

    lua_createtable(L, argc - first, first + 1);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - first);
    }
    lua_setglobal(L, "arg");
}

/* Is there a djinn.cli on package.path? */
static int have_cli(lua_State *L)
{
    int found;

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushliteral(L, "djinn.cli");
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 1);
    found = lua_isstring(L, -1);
    lua_pop(L, 2);
    return found;
}

static int ends_with_lua(const char *s)
{
    size_t n = strlen(s);

    return n > 4 && strcmp(s + n - 4, ".lua") == 0;
}

/* Leave the exit status (integer) on the stack. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int i, base, strict = 0;
    lua_Integer status;

    luaL_checkversion(L);
    luaL_openlibs(L);
    set_paths(L);
    lua_settop(L, 0);

    if (have_cli(L)) {
        set_arg(L, argc, argv, 0);
        lua_getglobal(L, "require");
        lua_pushliteral(L, "djinn.cli");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "main");
        if (!lua_isfunction(L, -1))
            return luaL_error(L, "djinn.cli has no main function");
        base = lua_gettop(L) - 1;
        lua_createtable(L, argc > 1 ? argc - 1 : 0, 0);
        for (i = 1; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i);
        }
        lua_call(L, 1, LUA_MULTRET);
        strict = 1;
    } else if (argc > 1 && ends_with_lua(argv[1])) {
        set_arg(L, argc, argv, 1);
        base = lua_gettop(L);
        if (luaL_loadfile(L, argv[1]) != LUA_OK)
            return lua_error(L);
        for (i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        lua_call(L, argc - 2, LUA_MULTRET);
    } else {
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "path");
        return luaL_error(L,
                          "cannot find module djinn.cli (package.path is "
                          "'%s'); usage: djinn-lua SCRIPT.lua [ARGS...]",
                          lua_tostring(L, -1));
    }
    status = dj_exit_status(L, lua_gettop(L) - base,
                            strict ? "djinn.cli.main" : NULL);
    lua_pushinteger(L, status);
    return 1;
}

/* Make sure fds 0, 1 and 2 are open, so no pipe we create lands there. */
static void sanitize_stdio(void)
{
    int fd;

    for (fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            int nfd = open("/dev/null", O_RDWR);

            if (nfd < 0)
                break;
            if (nfd != fd) { /* cannot happen: lowest fd first */
                close(nfd);
                break;
            }
        }
    }
}

int main(int argc, char **argv)
{
    lua_State *L = NULL;
    int status = 1;
    int rc;

    sanitize_stdio();
    dj_title_area(argc, argv);
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "djinn-lua: cannot create Lua state: not enough "
                        "memory\n");
        return 1;
    }
    lua_pushcfunction(L, dj_msghandler);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    rc = lua_pcall(L, 2, 1, 1);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);

        fprintf(stderr, "djinn-lua: %s\n",
                msg != NULL ? msg : "(error object is not a string)");
        fflush(stderr);
        status = 1;
    } else {
        lua_Integer st = lua_tointeger(L, -1);

        status = (st < 0 || st > 255) ? 1 : (int)st;
    }
    lua_close(L);
    return status;
}
