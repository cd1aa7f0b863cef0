/*
** l_registry.c - djinn.registry: the image registry from Lua, a thin
** adapter over the SQL functions of the statically linked extension.
**
** Lua API (see docs/lua-api.md):
**   registry.open(path)        -> db | nil, msg   (creates the parent
**                                 directories 0755, the file and the schema:
**                                 sqlite3_djinn_init on the connection;
**                                 busy_timeout 10000 ms, the one bound on
**                                 waiting for other writers; refuses a
**                                 file that is not a usable registry:
**                                 somebody else's, newer, damaged)
**   db:exec(sql, ...)          -> changes | nil, msg   (every statement of
**                                 sql; the positional parameters are bound
**                                 to each statement that has any)
**   db:query(sql, ...)         -> {{col = value, ...}, ...} | nil, msg
**                                 (one statement; NULL columns are absent)
**   db:register(ns, name, source [, opts]) -> id [, info] | nil, msg
**                                 image_register: source is a file, or a
**                                 URL (http, https, file, sftp; ext/fetch.h)
**                                 streamed into the store. opts: sha256,
**                                 max_size, connect_timeout, stall_timeout,
**                                 timeout, max_redirects (0: none),
**                                 insecure, ca_file, identity, known_hosts
**                                 (as image_register's JSON options) and
**                                 progress = function(bytes, total|nil)
**                                 -> true to cancel (a URL's bytes as they
**                                 arrive, about once a second). info, for
**                                 a URL: { url (redacted), content_type,
**                                 bytes, status, redirects }
**   db:resolve(ns, name)       -> path, sha256 | nil [, msg]
**                                 image_path(?,?); sha256 is the image's
**                                 content (its file is <store>/<sha256>.qcow2)
**   db:ingest([what])          -> ing | nil, msg: a streaming ingest into
**                                 the store (ext/store.h); what names the
**                                 source in messages (e.g. a URL)
**     ing:write(chunk)         -> true | nil, msg   (written to a temp file
**                                 in the store while hashed with SHA-256)
**     ing:commit(ns, name)     -> id, sha256 | nil, msg   validated with the
**                                 QCOW2 validator, linked into the store by
**                                 its hash and registered in ONE
**                                 transaction; on failure nothing is left
**                                 (no row, no file). Finishes the ingest.
**     ing:abort()              ; the temp file goes (also __gc, __close)
**   registry.check_namespace(s), registry.check_image_name(s)
**                              -> true | nil, msg: the name rules and
**                                 messages of the registry's SQL functions
**   db:remove(ns, name)        -> true | false | nil, msg  image_remove(?,?)
**   db:list([ns [, brief]])    -> rows of image_list: every image (nil),
**                                 your personal images ("" or "-"), your
**                                 namespace "path", or "path@owner" - the
**                                 owner of a path without "@" is yours,
**                                 as in every registry function; brief:
**                                 only namespace, name, owner, file_size,
**                                 virtual_size, sha256's first 12 digits
**                                 and check_verdict (what `image ls`
**                                 prints)
**   registry.user()            -> the owner a namespace without "@" and a
**                                 personal image belong to
**   db:close()                 ; __gc / __close close.
** Parameters: nil, boolean (1/0), integer, float, string; other types
** raise (misuse), as does use after close.
**
** Ownership: the `djinn.registry.db` userdata holds the sqlite3 * and
** the statement being run; it is created closed before sqlite3_open_v2,
** and a statement left behind by a raise (out of memory while building
** rows) is finalized by the next call or by __gc.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <sqlite3.h>

#include "../ext/djinn.h"
#include "../ext/registry.h"
#include "djinn.h"
#include "util.h"

#define DB_MT "djinn.registry.db"
#define BUSY_MS 10000

struct regdb {
    sqlite3 *db;
    sqlite3_stmt *stmt;
    pid_t owner; /* the process that opened it */
};

/* A connection inherited by a proc.spawn{fn =} child is its parent's:
** closing it here could checkpoint or delete the parent's WAL (SQLite's
** "do not carry a connection across fork"). It is forgotten. */
static void db_release(struct regdb *d)
{
    if (d->owner != getpid()) {
        d->db = NULL;
        d->stmt = NULL;
        return;
    }
    sqlite3_finalize(d->stmt); /* NULL is a no-op */
    d->stmt = NULL;
    if (d->db != NULL)
        sqlite3_close_v2(d->db);
    d->db = NULL;
}

static struct regdb *checkdb(lua_State *L)
{
    struct regdb *d = (struct regdb *)luaL_checkudata(L, 1, DB_MT);

    if (d->db == NULL)
        luaL_error(L, "attempt to use a closed registry database");
    sqlite3_finalize(d->stmt);
    d->stmt = NULL;
    return d;
}

/* Check parameter types before any statement exists (raises). */
static void check_params(lua_State *L, int first)
{
    int i, top = lua_gettop(L);

    for (i = first; i <= top; i++) {
        int t = lua_type(L, i);

        if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER &&
            t != LUA_TSTRING)
            luaL_argerror(L, i,
                          "parameter must be nil, boolean, number "
                          "or string");
    }
}

/* Bind args first..top to positions 1..; no Lua call that can raise. */
static int bind_params(lua_State *L, sqlite3_stmt *st, int first)
{
    int i, rc = SQLITE_OK, top = lua_gettop(L);
    int np = sqlite3_bind_parameter_count(st);

    for (i = first; i <= top && i - first < np && rc == SQLITE_OK; i++) {
        int pos = i - first + 1;
        size_t len;
        const char *s = NULL;

        switch (lua_type(L, i)) {
        case LUA_TBOOLEAN:
            rc = sqlite3_bind_int(st, pos, lua_toboolean(L, i));
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, i))
                rc = sqlite3_bind_int64(st, pos, lua_tointeger(L, i));
            else
                rc = sqlite3_bind_double(st, pos, lua_tonumber(L, i));
            break;
        case LUA_TSTRING:
            s = lua_tolstring(L, i, &len); /* a string: no conversion */
            rc = sqlite3_bind_text64(st, pos, s, len, SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
            break;
        default:
            rc = sqlite3_bind_null(st, pos);
            break;
        }
    }
    return rc;
}

static int dbfail(lua_State *L, struct regdb *d, const char *what)
{
    const char *msg = sqlite3_errmsg(d->db);

    lua_pushnil(L);
    lua_pushfstring(L, "registry.%s: %s", what, msg);
    sqlite3_finalize(d->stmt);
    d->stmt = NULL;
    return 2;
}

static int l_registry_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct regdb *d = lua_newuserdatauv(L, sizeof(*d), 0);
    char dir[PATH_MAX];
    char *err = NULL;
    char msg[512];
    const char *slash = strrchr(path, '/');
    int rc;

    d->db = NULL;
    d->stmt = NULL;
    d->owner = getpid();
    luaL_setmetatable(L, DB_MT);
    if (slash != NULL && slash != path &&
        (size_t)(slash - path) < sizeof(dir)) {
        char *p = NULL;

        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        for (p = dir + 1; *p != '\0'; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            (void)mkdir(dir, 0755);
            *p = '/';
        }
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return dj_pushfail(L, "registry.open: %s: %s", dir,
                               strerror(errno));
    }
    /* (NOMUTEX: a connection is only ever used by this Lua state's
     * thread; SQLite's locks around every call cost 5% of a listing) */
    rc = sqlite3_open_v2(
        path, &d->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, sizeof(msg), "registry.open: %s: %s", path,
                 d->db != NULL ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
        db_release(d);
        return dj_pushfail(L, "%s", msg);
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, BUSY_MS);
    rc = sqlite3_djinn_init(d->db, &err, NULL);
    /* A registry this extension can use, or why not (somebody else's
    ** database, a newer or damaged schema): refused here, so that a read
    ** of a damaged file never looks like an empty registry. */
    if (rc == SQLITE_OK)
        rc = reg_check_registry(d->db, &err);
    if (rc != SQLITE_OK) {
        snprintf(msg, sizeof(msg), "registry.open: %s: %s", path,
                 err != NULL ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        db_release(d);
        return dj_pushfail(L, "%s", msg);
    }
    sqlite3_free(err);
    return 1;
}

static int l_registry_exec(lua_State *L)
{
    struct regdb *d = checkdb(L);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    const char *end = sql + len, *tail = NULL;
    sqlite3_int64 changes = 0;
    int rc;

    check_params(L, 3);
    while (sql < end) {
        rc = sqlite3_prepare_v2(d->db, sql, (int)(end - sql), &d->stmt, &tail);
        if (rc != SQLITE_OK)
            return dbfail(L, d, "exec");
        sql = tail;
        if (d->stmt == NULL) /* whitespace or a comment */
            continue;
        if (bind_params(L, d->stmt, 3) != SQLITE_OK)
            return dbfail(L, d, "exec");
        do {
            rc = sqlite3_step(d->stmt);
        } while (rc == SQLITE_ROW);
        if (rc != SQLITE_DONE)
            return dbfail(L, d, "exec");
        changes = sqlite3_changes64(d->db);
        sqlite3_finalize(d->stmt);
        d->stmt = NULL;
    }
    lua_pushinteger(L, (lua_Integer)changes);
    return 1;
}

static void push_column(lua_State *L, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT:
        lua_pushnumber(L, sqlite3_column_double(st, i));
        break;
    case SQLITE_NULL:
        lua_pushnil(L);
        break;
    default: {
        const void *p = sqlite3_column_blob(st, i);

        lua_pushlstring(L, p != NULL ? (const char *)p : "",
                        (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    }
}

/*
** The columns `image ls` prints (db:list's brief rows), and how many bytes
** of each it shows (0: all).
*/
static const struct {
    const char *name;
    int bytes;
} brief_cols[] = {{"namespace", 0},    {"name", 0},         {"owner", 0},
                  {"file_size", 0},    {"virtual_size", 0}, {"sha256", 12},
                  {"check_verdict", 0}};

/* A column's place in a brief row: -1 to leave it out, else its bytes. */
static int brief_bytes(const char *name)
{
    size_t k;

    for (k = 0; k < sizeof(brief_cols) / sizeof(brief_cols[0]); k++)
        if (strcmp(name, brief_cols[k].name) == 0)
            return brief_cols[k].bytes;
    return -1;
}

/* Run d->stmt (prepared and bound), push an array of row tables. */
static int collect_rows(lua_State *L, struct regdb *d, const char *what,
                        int brief)
{
    lua_Integer n = 0;
    int rc, i, ncol = sqlite3_column_count(d->stmt), nkeep = 0;
    int keep[64] = {0};

    /* The column names are made into Lua strings once, not once per row
     * (issue 13: `image ls` of 10,000 images). */
    luaL_checkstack(L, ncol + 4, "registry rows");
    for (i = 0; i < ncol; i++) {
        lua_pushstring(L, sqlite3_column_name(d->stmt, i));
        if (i < 64)
            keep[i] = brief ? brief_bytes(sqlite3_column_name(d->stmt, i)) : 0;
        nkeep += (i >= 64 || keep[i] >= 0);
    }
    lua_newtable(L);
    while ((rc = sqlite3_step(d->stmt)) == SQLITE_ROW) {
        lua_createtable(L, 0, nkeep);
        for (i = 0; i < ncol; i++) {
            int k = i < 64 ? keep[i] : 0;

            if (k < 0)
                continue;
            lua_pushvalue(L, -2 - ncol + i);
            if (k > 0 && sqlite3_column_type(d->stmt, i) == SQLITE_TEXT &&
                sqlite3_column_bytes(d->stmt, i) > k)
                lua_pushlstring(L,
                                (const char *)sqlite3_column_text(d->stmt, i),
                                (size_t)k);
            else
                push_column(L, d->stmt, i);
            lua_rawset(L, -3);
        }
        lua_rawseti(L, -2, ++n);
    }
    if (ncol > 0) {
        lua_replace(L, -1 - ncol); /* the rows over the first name */
        lua_pop(L, ncol - 1);
    }
    if (rc != SQLITE_DONE)
        return dbfail(L, d, what);
    sqlite3_finalize(d->stmt);
    d->stmt = NULL;
    return 1;
}

/* Prepare one statement with args from `first`; 0 or pushes nil,msg. */
static int prepare(lua_State *L, struct regdb *d, const char *sql, int first,
                   const char *what)
{
    if (sqlite3_prepare_v2(d->db, sql, -1, &d->stmt, NULL) != SQLITE_OK ||
        d->stmt == NULL) {
        if (d->stmt == NULL && sqlite3_errcode(d->db) == SQLITE_OK) {
            dj_pushfail(L, "registry.%s: empty statement", what);
            return -1;
        }
        dbfail(L, d, what);
        return -1;
    }
    if (bind_params(L, d->stmt, first) != SQLITE_OK) {
        dbfail(L, d, what);
        return -1;
    }
    return 0;
}

static int l_registry_query(lua_State *L)
{
    struct regdb *d = checkdb(L);
    const char *sql = luaL_checkstring(L, 2);

    check_params(L, 3);
    if (prepare(L, d, sql, 3, "query") < 0)
        return 2;
    return collect_rows(L, d, "query", 0);
}

/* Run "SELECT f(...)" with args 2..top; leaves column 0 of the row for
 * the caller (returns 0), or pushes nil,msg (returns -1). */
static int scalar_call(lua_State *L, struct regdb *d, const char *sql,
                       const char *what)
{
    int rc;

    if (prepare(L, d, sql, 2, what) < 0)
        return -1;
    rc = sqlite3_step(d->stmt);
    if (rc != SQLITE_ROW) {
        dbfail(L, d, what);
        return -1;
    }
    return 0;
}

/* db:register's progress: a Lua function called from dj_fetch. */
struct lprogress {
    lua_State *L;
    int fn;     /* stack index of the function, 0 if none */
    int raised; /* it raised: the message is in the registry slot */
};

static int lua_progress(void *arg, sqlite3_int64 got, sqlite3_int64 total)
{
    struct lprogress *p = (struct lprogress *)arg;
    lua_State *L = p->L;
    int stop;

    if (p->fn == 0)
        return 0;
    lua_pushvalue(L, p->fn);
    lua_pushinteger(L, (lua_Integer)got);
    if (total >= 0)
        lua_pushinteger(L, (lua_Integer)total);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_setfield(L, LUA_REGISTRYINDEX, "djinn.registry.progress_error");
        p->raised = 1;
        return 1;
    }
    stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* opts.key as a string (kept alive by opts, at stack index 5), or NULL. */
static const char *opt_string(lua_State *L, const char *key)
{
    const char *s;

    lua_getfield(L, 5, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    s = lua_tostring(L, -1);
    if (s == NULL || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "registry.register: opts.%s must be a string", key);
    lua_pop(L, 1); /* the string stays referenced by opts */
    return s;
}

static double opt_number(lua_State *L, const char *key, double lo, double hi)
{
    double v = 0;

    lua_getfield(L, 5, key);
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "registry.register: opts.%s must be a number", key);
        v = lua_tonumber(L, -1);
        if (!(v >= lo && v <= hi))
            luaL_error(L, "registry.register: opts.%s must be from %I to %I",
                       key, (lua_Integer)lo, (lua_Integer)hi);
    }
    lua_pop(L, 1);
    return v;
}

static int l_registry_register(lua_State *L)
{
    struct regdb *d = checkdb(L);
    struct reg_import imp;
    struct lprogress prog;
    const char *ns = luaL_optstring(L, 2, NULL);
    const char *name = luaL_checkstring(L, 3);
    const char *src = luaL_checkstring(L, 4);
    sqlite3_int64 id = 0;
    char *err = NULL, *red;
    int rc;

    if (lua_isnoneornil(L, 5) && !dj_url_is(src)) {
        lua_settop(L, 4);
        if (scalar_call(L, d, "SELECT image_register(?, ?, ?)", "register") < 0)
            return 2;
        push_column(L, d->stmt, 0);
        sqlite3_finalize(d->stmt);
        d->stmt = NULL;
        return 1;
    }
    if (lua_isnoneornil(L, 5)) {
        lua_settop(L, 4);
        lua_newtable(L);
    }
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_settop(L, 5);
    memset(&imp, 0, sizeof(imp));
    memset(&prog, 0, sizeof(prog));
    imp.sha256 = opt_string(L, "sha256");
    imp.fetch.ca_file = opt_string(L, "ca_file");
    imp.fetch.identity = opt_string(L, "identity");
    imp.fetch.known_hosts = opt_string(L, "known_hosts");
    imp.fetch.max_size = (sqlite3_int64)opt_number(L, "max_size", 0, 9.0e18);
    imp.fetch.connect_timeout = opt_number(L, "connect_timeout", 0, 2678400);
    imp.fetch.stall_timeout = opt_number(L, "stall_timeout", 0, 2678400);
    imp.fetch.timeout = opt_number(L, "timeout", 0, 2678400);
    lua_getfield(L, 5, "max_redirects");
    if (!lua_isnil(L, -1)) {
        lua_Integer r = (lua_Integer)opt_number(L, "max_redirects", 0, 100);

        imp.fetch.max_redirects = r == 0 ? -1 : (long)r;
    }
    lua_pop(L, 1);
    lua_getfield(L, 5, "insecure");
    imp.fetch.insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 5, "progress"); /* stays at index 6 */
    if (!lua_isnil(L, 6)) {
        luaL_checktype(L, 6, LUA_TFUNCTION);
        prog.fn = 6;
    }
    prog.L = L;
    imp.progress = lua_progress;
    imp.arg = &prog;
    rc = reg_image_import(d->db, ns, name, src, &imp, &id, &err);
    if (prog.raised) {
        sqlite3_free(err);
        lua_getfield(L, LUA_REGISTRYINDEX, "djinn.registry.progress_error");
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, "djinn.registry.progress_error");
        return lua_error(L);
    }
    if (rc != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "registry.register: image_register: %s",
                        err != NULL ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)id);
    if (!dj_url_is(src))
        return 1;
    lua_createtable(L, 0, 5);
    red = dj_url_redact(src);
    lua_pushstring(L, red != NULL ? red : "");
    sqlite3_free(red);
    lua_setfield(L, -2, "url");
    if (imp.got.content_type[0] != '\0') {
        lua_pushstring(L, imp.got.content_type);
        lua_setfield(L, -2, "content_type");
    }
    lua_pushinteger(L, (lua_Integer)imp.got.bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, (lua_Integer)imp.got.status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)imp.got.redirects);
    lua_setfield(L, -2, "redirects");
    return 2;
}

static int l_registry_resolve(lua_State *L)
{
    struct regdb *d = checkdb(L);

    luaL_optstring(L, 2, NULL);
    luaL_checkstring(L, 3);
    lua_settop(L, 3);
    if (scalar_call(L, d, "SELECT image_path(?, ?)", "resolve") < 0)
        return 2;
    push_column(L, d->stmt, 0);
    sqlite3_finalize(d->stmt);
    d->stmt = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        /* The store names each file by its content: <store>/<sha256>.qcow2
        ** (image_path builds it from the row's sha256). */
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);

        if (n > 71 && p[n - 71] == '/' && store_sha_ok(p + n - 70, 64) &&
            strcmp(p + n - 6, ".qcow2") == 0) {
            lua_pushlstring(L, p + n - 70, 64);
            return 2;
        }
        return dj_pushfail(L,
                           "registry.resolve: the stored path %s does not "
                           "end in <sha256>.qcow2",
                           p);
    }
    return 1;
}

static int l_registry_remove(lua_State *L)
{
    struct regdb *d = checkdb(L);

    luaL_optstring(L, 2, NULL);
    luaL_checkstring(L, 3);
    lua_settop(L, 3);
    if (scalar_call(L, d, "SELECT image_remove(?, ?)", "remove") < 0)
        return 2;
    lua_pushboolean(L, sqlite3_column_int(d->stmt, 0) != 0);
    sqlite3_finalize(d->stmt);
    d->stmt = NULL;
    return 1;
}

static int l_registry_list(lua_State *L)
{
    struct regdb *d = checkdb(L);
    const char *ns = luaL_optstring(L, 2, NULL);
    const char *at = ns != NULL ? strchr(ns, '@') : NULL;
    int brief = lua_toboolean(L, 3);
    const char *sql = "SELECT * FROM image_list";
    char me[REG_MAX_OWNER + 1];

    lua_settop(L, 2);
    if (at != NULL) {
        lua_pushlstring(L, ns, (size_t)(at - ns));
        lua_pushstring(L, at + 1);
        lua_remove(L, 2);
        sql = "SELECT * FROM image_list WHERE namespace = ? AND owner = ?";
    } else if (ns != NULL && (ns[0] == '\0' || strcmp(ns, "-") == 0)) {
        lua_settop(L, 1);
        reg_current_user(me, sizeof(me));
        lua_pushstring(L, me);
        sql = "SELECT * FROM image_list WHERE namespace IS NULL AND "
              "owner = ?";
    } else if (ns != NULL) {
        reg_current_user(me, sizeof(me));
        lua_pushstring(L, me);
        sql = "SELECT * FROM image_list WHERE namespace = ? AND owner = ?";
    } else {
        lua_settop(L, 1);
    }
    if (prepare(L, d, sql, 2, "list") < 0)
        return 2;
    return collect_rows(L, d, "list", brief);
}

/* ---------------------------------------------------------------------- */
/* db:ingest(): the store's streaming ingest (ext/store.h)                 */

#define ING_MT "djinn.registry.ingest"

struct ling {
    struct store_ingest *ing;
    pid_t owner; /* the process that began it: only it aborts it */
};

static struct ling *checking(lua_State *L)
{
    struct ling *g = (struct ling *)luaL_checkudata(L, 1, ING_MT);

    if (g->ing == NULL)
        luaL_error(L, "attempt to use a finished ingest (committed or "
                      "aborted)");
    return g;
}

/* The db userdata the ingest was begun on (its user value). */
static struct regdb *ingest_db(lua_State *L)
{
    struct regdb *d;

    lua_getiuservalue(L, 1, 1);
    d = (struct regdb *)luaL_checkudata(L, -1, DB_MT);
    lua_pop(L, 1);
    return d;
}

static int ingest_fail(lua_State *L, const char *what, int rc, char *err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "registry.ingest: %s%s%s", what, what[0] ? ": " : "",
                    err != NULL ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return 2;
}

/* db:ingest([what]) -> ingest | nil, msg. what names the source in
** messages (a URL); default "the ingested data". */
static int l_registry_ingest(lua_State *L)
{
    struct regdb *d = checkdb(L);
    const char *what = luaL_optstring(L, 2, "the ingested data");
    struct ling *g;
    char *err = NULL;
    int rc;

    g = lua_newuserdatauv(L, sizeof(*g), 1);
    g->ing = NULL;
    g->owner = getpid();
    luaL_setmetatable(L, ING_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    rc = reg_check_registry(d->db, &err);
    if (rc == SQLITE_OK)
        rc = store_ingest_begin(d->db, what, &g->ing, &err);
    if (rc != SQLITE_OK)
        return ingest_fail(L, "", rc, err);
    return 1;
}

/* ing:write(chunk) -> true | nil, msg (the ingest is then broken:
** abort it). */
static int l_ingest_write(lua_State *L)
{
    struct ling *g = checking(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    char *err = NULL;
    int rc = store_ingest_write(g->ing, p, n, &err);

    if (rc != SQLITE_OK)
        return ingest_fail(L, "write", rc, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* ing:commit(ns, name) -> id, sha256 | nil, msg. Validated, linked into
** the store and registered in one transaction; either way the ingest is
** finished (its temp file gone). */
static int l_ingest_commit(lua_State *L)
{
    struct ling *g = checking(L);
    const char *ns = luaL_optstring(L, 2, NULL);
    const char *name = luaL_checkstring(L, 3);
    struct regdb *d = ingest_db(L);
    sqlite3_int64 id = 0;
    char sha[65];
    char *err = NULL;
    int rc;

    if (d->db == NULL)
        return luaL_error(L, "attempt to commit an ingest on a closed "
                             "registry database");
    sqlite3_finalize(d->stmt);
    d->stmt = NULL;
    rc = reg_ingest_commit(d->db, g->ing, ns, name, &id, &err);
    sha[0] = '\0';
    if (rc == SQLITE_OK)
        memcpy(sha, store_ingest_sha256(g->ing), 65);
    store_ingest_abort(g->ing);
    g->ing = NULL;
    if (rc != SQLITE_OK)
        return ingest_fail(L, "commit", rc, err);
    lua_pushinteger(L, (lua_Integer)id);
    lua_pushstring(L, sha);
    return 2;
}

/* ing:abort(): the temp file goes, nothing is registered. Again: no-op. */
static int l_ingest_abort(lua_State *L)
{
    struct ling *g = (struct ling *)luaL_checkudata(L, 1, ING_MT);

    if (g->owner != getpid()) { /* a parent's, inherited over a fork */
        g->ing = NULL;
        return 0;
    }
    store_ingest_abort(g->ing);
    g->ing = NULL;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The name rules                                                          */

/* registry.check_namespace(s) / check_image_name(s) -> true | nil, msg:
** the rule and message every registry SQL function applies. */
static int check_with(lua_State *L, int (*fn)(const char *, char **))
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char *err = NULL;

    if (strlen(s) != n)
        return dj_pushfail(L, "'%s...' has a NUL byte at offset %d", s,
                           (int)strlen(s));
    if (fn(s, &err) != SQLITE_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err != NULL ? err : "out of memory");
        sqlite3_free(err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_registry_check_namespace(lua_State *L)
{
    return check_with(L, reg_check_namespace);
}

static int l_registry_check_image_name(lua_State *L)
{
    return check_with(L, reg_check_image_name);
}

static int l_registry_user(lua_State *L)
{
    char me[REG_MAX_OWNER + 1];

    reg_current_user(me, sizeof(me));
    lua_pushstring(L, me);
    return 1;
}

static int l_registry_close(lua_State *L)
{
    struct regdb *d = (struct regdb *)luaL_checkudata(L, 1, DB_MT);

    db_release(d);
    return 0;
}

static int l_registry_tostring(lua_State *L)
{
    struct regdb *d = (struct regdb *)luaL_checkudata(L, 1, DB_MT);
    const char *f = d->db != NULL ? sqlite3_db_filename(d->db, "main") : NULL;

    if (d->db == NULL)
        lua_pushliteral(L, "djinn.registry.db (closed)");
    else
        lua_pushfstring(L, "djinn.registry.db (%s)", f != NULL ? f : "?");
    return 1;
}

static const luaL_Reg db_methods[] = {
    {"exec", l_registry_exec},
    {"query", l_registry_query},
    {"register", l_registry_register},
    {"resolve", l_registry_resolve},
    {"remove", l_registry_remove},
    {"list", l_registry_list},
    {"ingest", l_registry_ingest},
    {"close", l_registry_close},
    {NULL, NULL},
};

static const luaL_Reg ingest_methods[] = {
    {"write", l_ingest_write},
    {"commit", l_ingest_commit},
    {"abort", l_ingest_abort},
    {NULL, NULL},
};

static const luaL_Reg ingest_meta[] = {
    {"__gc", l_ingest_abort},
    {"__close", l_ingest_abort},
    {"__index", NULL},
    {NULL, NULL},
};

static const luaL_Reg db_meta[] = {
    {"__gc", l_registry_close},
    {"__close", l_registry_close},
    {"__tostring", l_registry_tostring},
    {"__index", NULL},
    {NULL, NULL},
};

static const luaL_Reg registry_funcs[] = {
    {"open", l_registry_open},
    {"user", l_registry_user},
    {"check_namespace", l_registry_check_namespace},
    {"check_image_name", l_registry_check_image_name},
    {NULL, NULL},
};

int luaopen_djinn_registry(lua_State *L)
{
    luaL_newmetatable(L, DB_MT);
    luaL_setfuncs(L, db_meta, 0);
    luaL_newlibtable(L, db_methods);
    luaL_setfuncs(L, db_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, ING_MT);
    luaL_setfuncs(L, ingest_meta, 0);
    luaL_newlibtable(L, ingest_methods);
    luaL_setfuncs(L, ingest_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, registry_funcs);
    return 1;
}
