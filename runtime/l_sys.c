/*
** l_sys.c - djinn.sys: what the C library knows about the user.
**
** Lua API (operational failures return nil, msg; misuse raises):
**   sys.passwd([uid = geteuid()]) -> { name =, uid =, gid =, home =,
**                                      shell = }
**                                  | nil, "sys.passwd: uid N: <why>"
**       The password database entry of uid through getpwuid_r, so NSS
**       (LDAP, sssd, systemd-homed) answers as for any other program;
**       never a parse of /etc/passwd. The CLI falls back to `home` when
**       $HOME is unset, empty or relative (issue 10, defect 6).
**
** Ownership: getpwuid_r's string buffer is a userdata (grown by
** allocating a larger one on ERANGE), so a raise while the fields are
** copied into the table leaks nothing (docs/style.md rules 16, 17).
*/
#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "l_host.h"

#define PW_BUF_MIN 1024
#define PW_BUF_MAX (1024 * 1024)

static int l_sys_passwd(lua_State *L)
{
    lua_Integer want = luaL_optinteger(L, 1, (lua_Integer)geteuid());
    struct passwd pw;
    struct passwd *res = NULL;
    size_t size = PW_BUF_MIN;
    char *buf = NULL;
    int rc;

    luaL_argcheck(L, want >= 0 && want <= (lua_Integer)(uid_t)-1, 1,
                  "uid out of range");
    for (;;) {
        lua_settop(L, 1);
        buf = lua_newuserdatauv(L, size, 0);
        rc = getpwuid_r((uid_t)want, &pw, buf, size, &res);
        if (rc != ERANGE || size >= PW_BUF_MAX)
            break;
        size *= 2;
    }
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "sys.passwd: uid %I: %s", want, strerror(rc));
        return 2;
    }
    if (res == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L,
                        "sys.passwd: uid %I: no entry in the password "
                        "database",
                        want);
        return 2;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, pw.pw_name != NULL ? pw.pw_name : "");
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)pw.pw_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, (lua_Integer)pw.pw_gid);
    lua_setfield(L, -2, "gid");
    lua_pushstring(L, pw.pw_dir != NULL ? pw.pw_dir : "");
    lua_setfield(L, -2, "home");
    lua_pushstring(L, pw.pw_shell != NULL ? pw.pw_shell : "");
    lua_setfield(L, -2, "shell");
    return 1;
}

static const luaL_Reg sys_funcs[] = {
    {"passwd", l_sys_passwd},
    {NULL, NULL},
};

int luaopen_djinn_sys(lua_State *L)
{
    luaL_newlib(L, sys_funcs);
    return 1;
}
