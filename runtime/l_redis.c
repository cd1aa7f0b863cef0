/*
** l_redis.c - djinn.redis: a Redis client over hiredis, for the build
** queue (issue 16). No Redis protocol is written here: hiredis formats
** every command from an argv array (so a value is never parsed as part of
** a command) and parses every reply.
**
** Lua API (operational failures return nil, msg, kind; misuse raises):
**   redis.connect{path = P | host = H, port = N, timeout = S}
**       -> conn | nil, msg
**       A Unix socket (path) or TCP (host, port; default 6379). timeout
**       (seconds, default 5) bounds the connect and then every command's
**       reads and writes (conn:timeout changes it).
**   conn:call(cmd, arg...)  -> value | nil, msg, kind
**       One command, its arguments strings or numbers (integers are sent
**       as integers). Replies: a bulk or status string -> string; an
**       integer -> integer; an array -> table (1-based, nested), in
**       which a nil reply is redis.null; a nil reply -> redis.null.
**       kind "reply": Redis answered with an error (msg is its text; the
**       connection stays usable). kind "io": the connection failed or
**       timed out (msg says which); the connection is closed and every
**       later call returns nil, "redis: connection closed", "io".
**   conn:timeout(s)         -> true: the per-command socket timeout
**   conn:close()            -> true (also __close and __gc)
**   redis.null              Redis's nil reply: a light userdata (NULL)
**
** Ownership: the hiredis context lives in the userdata from the moment it
** exists; a reply is converted under a protected call so that a memory
** error while building Lua tables cannot leak it.
*/
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"

#define CONN_MT "djinn.redis.conn"
#define MAX_ARGS 1024

struct conn {
    redisContext *c;
    pid_t owner; /* the process that connected (see conn_drop) */
};

static struct timeval seconds_tv(lua_Number s)
{
    struct timeval tv;
    if (!(s > 0))
        s = 0.001;
    if (s > 86400.0 * 365)
        s = 86400.0 * 365;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (lua_Number)tv.tv_sec) * 1e6);
    return tv;
}

/* redis.null: the NULL light userdata (not a table, so a reply can be
 * told from it with type() alone). */
static void push_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL);
}

/* Push reply r (depth-first); errors inside arrays become strings. */
static void push_reply(lua_State *L, const redisReply *r, int depth)
{
    size_t i;
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushinteger(L, (lua_Integer)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        if (depth > 32)
            luaL_error(L, "redis: a reply nested deeper than 32 levels");
        luaL_checkstack(L, 4, "redis reply");
        lua_createtable(L, r->elements > 1u << 20 ? 0 : (int)r->elements, 0);
        for (i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    default: /* REDIS_REPLY_NIL */
        push_null(L);
        break;
    }
}

static int push_reply_protected(lua_State *L)
{
    push_reply(L, (const redisReply *)lua_touserdata(L, 1), 0);
    return 1;
}

static struct conn *check_conn(lua_State *L)
{
    return (struct conn *)luaL_checkudata(L, 1, CONN_MT);
}

/* In a proc.spawn{fn =} child the connection is its parent's (the socket
** was closed at the fork; its number may be reused): forgotten, never
** freed. */
static void conn_drop(struct conn *k)
{
    if (k->c != NULL && k->owner != getpid()) {
        k->c = NULL;
        return;
    }
    if (k->c != NULL) {
        redisFree(k->c);
        k->c = NULL;
    }
}

static int io_failure(lua_State *L, struct conn *k)
{
    int timed_out =
        k->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    lua_pushnil(L);
    if (timed_out)
        lua_pushstring(L, "redis: no reply within the timeout");
    else
        lua_pushfstring(L, "redis: %s",
                        k->c->errstr[0] != '\0' ? k->c->errstr
                                                : "connection failed");
    lua_pushliteral(L, "io");
    conn_drop(k);
    return 3;
}

static int l_connect(lua_State *L)
{
    const char *path, *host;
    lua_Integer port;
    struct timeval tv;
    struct conn *k;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "path");
    path = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "host");
    host = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "port");
    port = luaL_optinteger(L, -1, 6379);
    lua_getfield(L, 1, "timeout");
    tv = seconds_tv(luaL_optnumber(L, -1, 5));
    if ((path == NULL) == (host == NULL))
        return luaL_error(L, "redis.connect: give path or host");
    if (port < 1 || port > 65535)
        return luaL_error(L, "redis.connect: port %d is out of range",
                          (int)port);
    k = (struct conn *)lua_newuserdatauv(L, sizeof *k, 0);
    k->c = NULL;
    k->owner = getpid();
    luaL_setmetatable(L, CONN_MT);
    k->c = path != NULL ? redisConnectUnixWithTimeout(path, tv)
                        : redisConnectWithTimeout(host, (int)port, tv);
    if (k->c == NULL)
        return luaL_error(L, "redis.connect: out of memory");
    if (k->c->err) {
        lua_pushnil(L);
        if (path != NULL)
            lua_pushfstring(L, "redis: cannot connect to %s: %s", path,
                            k->c->errstr);
        else
            lua_pushfstring(L, "redis: cannot connect to %s:%d: %s", host,
                            (int)port, k->c->errstr);
        conn_drop(k);
        return 2;
    }
    if (redisSetTimeout(k->c, tv) != REDIS_OK) {
        conn_drop(k);
        lua_pushnil(L);
        lua_pushliteral(L, "redis: cannot set the socket timeout");
        return 2;
    }
    return 1;
}

/* redisCommandArgv with SIGPIPE blocked: hiredis write()s to the socket,
 * and a server that went away would otherwise kill the process (a worker
 * must survive a Redis restart). A SIGPIPE raised here is consumed; one
 * that was already pending is left for its owner. */
static redisReply *command_nosigpipe(redisContext *c, int n, const char **argv,
                                     const size_t *lens)
{
    sigset_t pipe_set, old, pending;
    struct timespec zero = {0, 0};
    redisReply *r;
    int was_pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_set, &old);
    r = (redisReply *)redisCommandArgv(c, n, argv, lens);
    if (!was_pending) {
        int saved = errno;
        while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
            ;
        errno = saved;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return r;
}

static int l_call(lua_State *L)
{
    struct conn *k = check_conn(L);
    int n = lua_gettop(L) - 1, i, rc;
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    redisReply *r;
    luaL_argcheck(L, n >= 1, 2, "a command");
    luaL_argcheck(L, n <= MAX_ARGS, MAX_ARGS + 2, "too many arguments");
    for (i = 0; i < n; i++) {
        int t = lua_type(L, i + 2);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_argerror(L, i + 2, "a string or a number");
        /* lua_tolstring turns a number into its string in place: the
         * pointer stays valid while the value is on the stack. */
        argv[i] = lua_tolstring(L, i + 2, &lens[i]);
    }
    if (k->c == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "redis: connection closed");
        lua_pushliteral(L, "io");
        return 3;
    }
    r = command_nosigpipe(k->c, n, argv, lens);
    if (r == NULL)
        return io_failure(L, k);
    if (r->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        lua_pushlstring(L, r->str, r->len);
        lua_pushliteral(L, "reply");
        freeReplyObject(r);
        return 3;
    }
    lua_pushcfunction(L, push_reply_protected);
    lua_pushlightuserdata(L, r);
    rc = lua_pcall(L, 1, 1, 0);
    freeReplyObject(r);
    if (rc != LUA_OK)
        return lua_error(L);
    return 1;
}

static int l_timeout(lua_State *L)
{
    struct conn *k = check_conn(L);
    struct timeval tv = seconds_tv(luaL_checknumber(L, 2));
    if (k->c != NULL && redisSetTimeout(k->c, tv) != REDIS_OK)
        return luaL_error(L, "redis: cannot set the socket timeout");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_close(lua_State *L)
{
    conn_drop(check_conn(L));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_tostring(lua_State *L)
{
    struct conn *k = check_conn(L);
    lua_pushfstring(L, "redis connection (%s)",
                    k->c == NULL ? "closed" : "open");
    return 1;
}

static const luaL_Reg conn_methods[] = {
    {"call", l_call},
    {"timeout", l_timeout},
    {"close", l_close},
    {NULL, NULL},
};

static const luaL_Reg redis_funcs[] = {
    {"connect", l_connect},
    {NULL, NULL},
};

int luaopen_djinn_redis(lua_State *L)
{
    if (luaL_newmetatable(L, CONN_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, conn_methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, redis_funcs);
    push_null(L);
    lua_setfield(L, -2, "null");
    return 1;
}
