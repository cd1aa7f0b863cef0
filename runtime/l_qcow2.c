/*
** l_qcow2.c - djinn.qcow2: the QCOW2 validator (ext/qcow2.c) from Lua.
**
** Lua API (see docs/lua-api.md):
**   qcow2.check(path [, {header_only = bool}]) -> report
**   qcow2.check_string(bytes [, opts])         -> report
**     report = { valid = bool, is_qcow2 = bool,
**                errors = {{code = "dirty", message = "..."}, ...},
**                warnings = {...}, errors_dropped = n, warnings_dropped = n,
**                info = {version =, virtual_size =, cluster_size =, ...} }
**     (an unreadable file is a report with an "io" error, not nil, msg)
**   qcow2.validate(path)  -> bool
**   qcow2.info(path)      -> info | nil, "qcow2.info: PATH: <first error>"
**                            (nil when the image is not valid: fail closed)
** Only wrong argument types raise; out of memory in the validator raises
** "qcow2: out of memory".
**
** Ownership: the report's problem arrays are heap memory owned by a
** `djinn.qcow2.report` userdata created before the check; its __gc calls
** qcow2_report_free, so a raise while building tables cannot leak.
*/
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "qcow2.h"
#include "util.h"

#define REPORT_MT "djinn.qcow2.report"

static int report_gc(lua_State *L)
{
    struct qcow2_report *r = luaL_checkudata(L, 1, REPORT_MT);

    qcow2_report_free(r);
    memset(r, 0, sizeof(*r));
    return 0;
}

static struct qcow2_report *newreport(lua_State *L)
{
    struct qcow2_report *r = lua_newuserdatauv(L, sizeof(*r), 0);

    memset(r, 0, sizeof(*r));
    luaL_setmetatable(L, REPORT_MT);
    return r;
}

static unsigned checkflags(lua_State *L, int idx)
{
    unsigned flags = 0;

    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "header_only");
    if (lua_toboolean(L, -1))
        flags |= QCOW2_HEADER_ONLY;
    lua_pop(L, 1);
    return flags;
}

#define SETINT(field)                                                          \
    do {                                                                       \
        lua_pushinteger(L, (lua_Integer)i->field);                             \
        lua_setfield(L, -2, #field);                                           \
    } while (0)

static void push_info(lua_State *L, const struct qcow2_info *i)
{
    lua_createtable(L, 0, 26);
    SETINT(version);
    SETINT(virtual_size);
    SETINT(cluster_bits);
    SETINT(cluster_size);
    SETINT(refcount_order);
    SETINT(refcount_bits);
    SETINT(crypt_method);
    SETINT(incompatible_features);
    SETINT(compatible_features);
    SETINT(autoclear_features);
    SETINT(header_length);
    SETINT(l1_size);
    SETINT(l1_table_offset);
    SETINT(refcount_table_offset);
    SETINT(refcount_table_clusters);
    SETINT(nb_snapshots);
    SETINT(snapshots_offset);
    SETINT(file_size);
    SETINT(allocated_clusters);
    SETINT(compressed_clusters);
    SETINT(host_clusters);
    SETINT(leaked_clusters);
    lua_pushstring(L, i->compression_type == 1 ? "zstd" : "zlib");
    lua_setfield(L, -2, "compression_type");
    lua_pushboolean(L, i->deep_checked);
    lua_setfield(L, -2, "deep_checked");
}

static void push_problems(lua_State *L, const struct qcow2_problem *p, size_t n)
{
    size_t k;

    lua_createtable(L, (int)n, 0);
    for (k = 0; k < n; k++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, qcow2_code_name(p[k].code));
        lua_setfield(L, -2, "code");
        lua_pushstring(L, p[k].message);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
}

static int push_report(lua_State *L, struct qcow2_report *r)
{
    lua_createtable(L, 0, 7);
    lua_pushboolean(L, r->valid);
    lua_setfield(L, -2, "valid");
    lua_pushboolean(L, r->is_qcow2);
    lua_setfield(L, -2, "is_qcow2");
    push_problems(L, r->errors, r->nerrors);
    lua_setfield(L, -2, "errors");
    push_problems(L, r->warnings, r->nwarnings);
    lua_setfield(L, -2, "warnings");
    lua_pushinteger(L, (lua_Integer)r->errors_dropped);
    lua_setfield(L, -2, "errors_dropped");
    lua_pushinteger(L, (lua_Integer)r->warnings_dropped);
    lua_setfield(L, -2, "warnings_dropped");
    push_info(L, &r->info);
    lua_setfield(L, -2, "info");
    qcow2_report_free(r);
    memset(r, 0, sizeof(*r));
    return 1;
}

static int l_qcow2_check(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    unsigned flags = checkflags(L, 2);
    struct qcow2_report *r = newreport(L);

    if (qcow2_check_path(path, flags, r) != 0)
        return luaL_error(L, "qcow2: out of memory");
    return push_report(L, r);
}

static int l_qcow2_check_string(lua_State *L)
{
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    unsigned flags = checkflags(L, 2);
    struct qcow2_report *r = newreport(L);

    if (qcow2_check_buf(buf, len, flags, r) != 0)
        return luaL_error(L, "qcow2: out of memory");
    return push_report(L, r);
}

static int l_qcow2_validate(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct qcow2_report *r = newreport(L);

    if (qcow2_check_path(path, 0, r) != 0)
        return luaL_error(L, "qcow2: out of memory");
    lua_pushboolean(L, r->valid);
    qcow2_report_free(r);
    memset(r, 0, sizeof(*r));
    return 1;
}

static int l_qcow2_info(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct qcow2_report *r = newreport(L);
    const char *e = NULL;

    if (qcow2_check_path(path, 0, r) != 0)
        return luaL_error(L, "qcow2: out of memory");
    if (!r->valid) {
        e = qcow2_first_error(r);
        lua_pushnil(L);
        lua_pushfstring(L, "qcow2.info: %s: %s", path,
                        e != NULL ? e : "not a valid qcow2 image");
        return 2; /* the report userdata's __gc frees it */
    }
    push_info(L, &r->info);
    qcow2_report_free(r);
    memset(r, 0, sizeof(*r));
    return 1;
}

static const luaL_Reg qcow2_funcs[] = {
    {"check", l_qcow2_check},
    {"check_string", l_qcow2_check_string},
    {"validate", l_qcow2_validate},
    {"info", l_qcow2_info},
    {NULL, NULL},
};

int luaopen_djinn_qcow2(lua_State *L)
{
    if (luaL_newmetatable(L, REPORT_MT)) {
        lua_pushcfunction(L, report_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, report_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, qcow2_funcs);
    return 1;
}
