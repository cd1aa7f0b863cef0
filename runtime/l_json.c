/*
** l_json.c - djinn.json: JSON encode/decode over jansson.
**
** Lua API (operational failures return nil, msg; misuse raises):
**   json.encode(value [, opts]) -> string
**       opts = { indent = 0..31 (0 = compact, the default),
**                sort_keys = true: object keys in byte order, so that
**                the same value always gives the same bytes)
**       Raises on values JSON cannot hold: functions, userdata other than
**       json.null, NaN/inf ("NaN and infinity have no JSON form"), keys
**       that are not strings or integers, nesting deeper than 256 (a
**       cycle).
**       Strings (and keys) that are not valid UTF-8 (ext/jsonstr.h, the
**       rule the SQL functions' JSON follows too): every byte that is
**       not part of a valid UTF-8 sequence (an overlong form, a surrogate,
**       a code point above U+10FFFF, a lone or truncated byte) is replaced
**       by U+FFFD, one per byte. This is THE rule for every JSON djinn
**       writes (the --json log events of job output, which may hold any
**       bytes, included), so the output is always valid JSON; the raw
**       bytes are not recoverable from it. Control characters < 0x20,
**       '"' and '\\' are escaped (\n, \t, ... or \u00XX); other valid
**       UTF-8 passes as is.
**       Numbers: integers as integers (64-bit, exact); a float with an
**       integral value below 2^53 as an integer ("2", not "2.0"); other
**       floats with the fewest digits (15, 16 or 17, the most any float
**       of the value needs) that read back exactly.
**   json.quote(s [, before [, after]]) -> before .. <JSON string of s> ..
**       after, in one allocation: the same bytes json.encode(s) gives
**       (ext/jsonstr.h's escaper, compared with jansson's in
**       tests/c/jsonstr_test.c), without building a jansson tree. The
**       hot path of `run --json` (every output event; issue 13).
**       before/after are copied as they are (the caller's JSON).
**   json.decode(text) -> value | nil, "json.decode: line L, column C: msg"
**       A JSON document of any type (also a bare scalar); nesting deeper
**       than 256 levels is refused the same way.
**   json.null                the value of a JSON null (a light userdata);
**                            json.decode gives it for null. A nil table
**                            field is absent; use json.null for null.
**   json.array([t])          sets the array metatable on t (or a new
**                            table) and returns it
**   json.object([t])         sets the object metatable on t
**   json.array_mt, json.object_mt   the two metatables
**
** Arrays vs objects: a table whose metatable is json.array_mt is an
** array, json.object_mt an object. Otherwise a non-empty table whose keys
** are exactly 1..n is an array, and everything else (also the EMPTY
** table) is an object. So `{}` encodes as {} and json.array{} as [].
** json.decode sets these metatables on every array and object, so that
** empty ones round-trip. Integers stay integers (JSON numbers without a
** fraction or exponent decode as Lua integers), other numbers are floats.
**
** Ownership: the jansson tree (and the dumped string) live in a
** `djinn.json.box` userdata created first; its __gc releases what a raise
** left behind (docs/style.md rules 16, 17).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "jsonstr.h"
#include "util.h"

#define BOX_MT "djinn.json.box"
#define ARRAY_MT "djinn.json.array"
#define OBJECT_MT "djinn.json.object"
#define MAX_DEPTH 256

struct box {
    json_t *root;
    char *text;
};

static int box_gc(lua_State *L)
{
    struct box *b = luaL_checkudata(L, 1, BOX_MT);

    if (b->root != NULL)
        json_decref(b->root);
    b->root = NULL;
    free(b->text);
    b->text = NULL;
    return 0;
}

static struct box *newbox(lua_State *L)
{
    struct box *b = lua_newuserdatauv(L, sizeof(*b), 0);

    b->root = NULL;
    b->text = NULL;
    luaL_setmetatable(L, BOX_MT);
    return b;
}

/* The fewest digits (15..17) with which d reads back exactly. */
static int real_digits(double d)
{
    char tmp[40];
    int p;

    for (p = 15; p < 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*g", p, d);
        if (strtod(tmp, NULL) == d)
            return p;
    }
    return 17;
}

/* The digits the floats of the tree at v need (0 when it has none). */
static int tree_digits(json_t *v)
{
    int d = 0, sub;
    size_t i;
    const char *key;
    json_t *val;

    if (json_is_real(v))
        return real_digits(json_real_value(v));
    if (json_is_array(v)) {
        json_array_foreach(v, i, val)
        {
            sub = tree_digits(val);
            d = sub > d ? sub : d;
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, val)
        {
            sub = tree_digits(val);
            d = sub > d ? sub : d;
        }
    }
    return d;
}

/* --------------------------------------------------------------- encode */

/* 1 = array, 0 = object, for the table at idx. */
static int is_array(lua_State *L, int idx)
{
    lua_Integer n = 0, count = 0;
    int mt;

    idx = lua_absindex(L, idx);
    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, ARRAY_MT);
        mt = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
        if (mt) {
            lua_pop(L, 1);
            return 1;
        }
        luaL_getmetatable(L, OBJECT_MT);
        mt = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (mt)
            return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        if (lua_tointeger(L, -1) > n)
            n = lua_tointeger(L, -1);
        count++;
    }
    return count > 0 && n == count;
}

/* does not return */
static int enc_error(lua_State *L, const char *path, const char *what)
{
    return luaL_error(L, "json.encode: %s: %s", path[0] ? path : "value", what);
}

/*
** Convert the Lua value at idx to a new jansson value and return it with
** a reference the caller must hand over (attach) before any Lua call that
** can raise. Scalars are returned directly; for containers the empty
** container is attached by the caller first (see attach()).
*/
static json_t *scalar(lua_State *L, int idx, const char *path)
{
    size_t len;
    const char *s;
    double d;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        d = lua_tonumber(L, idx);
        if (!isfinite(d))
            enc_error(L, path, "NaN and infinity have no JSON form");
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            return json_integer((json_int_t)d);
        return json_real(d);
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return dj_json_string(s, len);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return json_null();
        break;
    default:
        break;
    }
    enc_error(L, path,
              lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx)));
    return NULL;
}

static void encode_into(lua_State *L, int idx, json_t *dst, int depth,
                        const char *path);

/*
** Encode the value at idx and attach it to `parent` (an array: append; an
** object: under `key`). The new value is owned by the tree before any
** further Lua call.
*/
static void attach(lua_State *L, int idx, json_t *parent, const char *key,
                   int depth, const char *path)
{
    json_t *v;
    int rc;

    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE) {
        v = is_array(L, idx) ? json_array() : json_object();
    } else {
        v = scalar(L, idx, path);
        if (v == NULL && lua_type(L, idx) == LUA_TSTRING)
            enc_error(L, path, "string is not valid UTF-8");
    }
    if (v == NULL)
        luaL_error(L, "json.encode: out of memory");
    if (key == NULL) {
        rc = json_array_append_new(parent, v);
    } else {
        /* the key by the same UTF-8 rule as every string */
        json_t *k = dj_json_string(key, strlen(key));

        if (k == NULL) {
            json_decref(v);
            luaL_error(L, "json.encode: out of memory");
        }
        rc = json_object_set_new_nocheck(parent, json_string_value(k), v);
        json_decref(k);
    }
    if (rc != 0)
        luaL_error(L, "json.encode: out of memory");
    if (json_is_array(v) || json_is_object(v))
        encode_into(L, idx, v, depth + 1, path);
}

/* Fill the (already attached) container dst from the table at idx. */
static void encode_into(lua_State *L, int idx, json_t *dst, int depth,
                        const char *path)
{
    lua_Integer i, n;
    const char *sub;

    if (depth > MAX_DEPTH)
        enc_error(L, path, "nested deeper than 256 levels (a cycle?)");
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 6, "json.encode");
    if (json_is_array(dst)) {
        n = (lua_Integer)lua_rawlen(L, idx);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            sub = depth > 16 ? lua_pushstring(L, path)
                             : lua_pushfstring(L, "%s[%I]", path, i);
            attach(L, -2, dst, NULL, depth, sub);
            lua_pop(L, 2);
        }
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* key -2, value -1 */
        const char *k;

        if (lua_type(L, -2) == LUA_TSTRING)
            lua_pushvalue(L, -2);
        else if (lua_isinteger(L, -2))
            lua_pushfstring(L, "%I", lua_tointeger(L, -2));
        else
            enc_error(L, path,
                      lua_pushfstring(L,
                                      "object key of type %s (allowed: "
                                      "string, integer)",
                                      luaL_typename(L, -2)));
        k = lua_tostring(L, -1);
        sub = depth > 16 ? lua_pushstring(L, path)
                         : lua_pushfstring(L, "%s.%s", path, k);
        attach(L, -3, dst, k, depth, sub);
        lua_pop(L, 3); /* sub, key string, value */
    }
}

static int l_encode(lua_State *L)
{
    struct box *b;
    size_t flags = JSON_ENCODE_ANY | JSON_COMPACT;
    int indent = 0, sort = 1, digits;

    luaL_checkany(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "indent");
        indent = (int)luaL_optinteger(L, -1, 0);
        luaL_argcheck(L, indent >= 0 && indent <= 31, 2,
                      "indent must be 0..31");
        lua_getfield(L, 2, "sort_keys");
        sort = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    flags |= sort ? JSON_SORT_KEYS : JSON_PRESERVE_ORDER;
    if (indent > 0)
        flags = (flags & ~(size_t)JSON_COMPACT) | JSON_INDENT(indent);
    b = newbox(L); /* index 3 */
    b->root = json_array();
    if (b->root == NULL)
        return luaL_error(L, "json.encode: out of memory");
    attach(L, 1, b->root, NULL, 0, "");
    digits = tree_digits(b->root);
    if (digits > 0)
        flags |= JSON_REAL_PRECISION(digits);
    b->text = json_dumps(json_array_get(b->root, 0), flags);
    if (b->text == NULL)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, b->text);
    free(b->text);
    b->text = NULL;
    json_decref(b->root);
    b->root = NULL;
    return 1;
}

/* ---------------------------------------------------------------- quote */

static int l_quote(lua_State *L)
{
    size_t len, blen = 0, alen = 0, n, total;
    const char *str = luaL_checklstring(L, 1, &len);
    const char *before = luaL_optlstring(L, 2, "", &blen);
    const char *after = luaL_optlstring(L, 3, "", &alen);
    luaL_Buffer b;
    char *p;

    n = dj_json_escaped_len(str, len);
    if (n == 0 || n > (size_t)-1 - blen || n + blen > (size_t)-1 - alen)
        return luaL_error(L, "json.quote: string too long");
    total = blen + n + alen;
    p = luaL_buffinitsize(L, &b, total);
    memcpy(p, before, blen);
    dj_json_escape_into(p + blen, str, len);
    memcpy(p + blen + n, after, alen);
    luaL_pushresultsize(&b, total);
    return 1;
}

/* --------------------------------------------------------------- decode */

static void push_value(lua_State *L, json_t *v, int depth)
{
    luaL_checkstack(L, 4, "json.decode");
    if (depth > MAX_DEPTH)
        luaL_error(L, "json.decode: nested deeper than 256 levels");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;

        lua_createtable(L, 0, (int)json_object_size(v));
        luaL_setmetatable(L, OBJECT_MT);
        json_object_foreach(v, key, val)
        {
            push_value(L, val, depth + 1);
            lua_setfield(L, -2, key);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;

        lua_createtable(L, (int)json_array_size(v), 0);
        luaL_setmetatable(L, ARRAY_MT);
        json_array_foreach(v, i, val)
        {
            push_value(L, val, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

/* Nesting depth of a parsed tree (jansson itself stops at 2048). */
static int depth_of(json_t *v)
{
    int d = 0, sub;
    size_t i;
    const char *key;
    json_t *val;

    if (json_is_array(v)) {
        json_array_foreach(v, i, val)
        {
            sub = depth_of(val);
            d = sub > d ? sub : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, key, val)
        {
            sub = depth_of(val);
            d = sub > d ? sub : d;
        }
        return d + 1;
    }
    return 0;
}

static int l_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    json_error_t err;
    struct box *b = newbox(L);

    b->root = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (b->root == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "json.decode: line %d, column %d: %s", err.line,
                        err.column, err.text);
        return 2;
    }
    if (depth_of(b->root) > MAX_DEPTH) {
        json_decref(b->root);
        b->root = NULL;
        return dj_pushfail(L, "json.decode: nested deeper than %d levels",
                           MAX_DEPTH);
    }
    push_value(L, b->root, 0);
    json_decref(b->root);
    b->root = NULL;
    return 1;
}

static int setmt(lua_State *L, const char *mt)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, mt);
    return 1;
}

static int l_array(lua_State *L)
{
    return setmt(L, ARRAY_MT);
}

static int l_object(lua_State *L)
{
    return setmt(L, OBJECT_MT);
}

static const luaL_Reg funcs[] = {
    {"encode", l_encode}, {"quote", l_quote},   {"decode", l_decode},
    {"array", l_array},   {"object", l_object}, {NULL, NULL},
};

int luaopen_djinn_json(lua_State *L)
{
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    luaL_newmetatable(L, ARRAY_MT);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, -2, "array_mt");
    luaL_newmetatable(L, OBJECT_MT);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__name");
    lua_setfield(L, -2, "object_mt");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
