/*
** l_ssh_exec.c - exec channels of djinn.ssh: session:exec (env, stdin,
** streamed or collected output, timeout and cancel) and session:env_probe.
** (djinn.ssh; the module's API and ownership rules are at the top of
** l_ssh.c, the shared session internals in l_ssh.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l_ssh.h"

#define COLLECT_MAX (64u << 20) /* output kept per stream without on_output */

/* -------------------------------------------------------------- exec -- */

struct exec_state {
    int on_output; /* stack index of the callback, 0 if none */
    int cancel;
    int info;
    int chunks[2]; /* tables of collected output, without on_output */
    size_t collected[2];
    int truncated;
};

/* Hand one chunk to Lua. Returns 0, or -1 with the callback's error on top
 * of the stack (the caller releases the channel, then re-raises). */
static int deliver(lua_State *L, struct exec_state *x, const char *data, int n,
                   int stream)
{
    static const char *const names[] = {"stdout", "stderr"};
    if (x->on_output != 0) {
        lua_pushvalue(L, x->on_output);
        lua_pushlstring(L, data, (size_t)n);
        lua_pushstring(L, names[stream]);
        return lua_pcall(L, 2, 0, 0) == LUA_OK ? 0 : -1;
    }
    if (x->collected[stream] + (size_t)n > COLLECT_MAX) {
        x->truncated = 1;
        return 0;
    }
    x->collected[stream] += (size_t)n;
    lua_pushlstring(L, data, (size_t)n);
    lua_rawseti(L, x->chunks[stream],
                (lua_Integer)lua_rawlen(L, x->chunks[stream]) + 1);
    return 0;
}

/* Call cancel(): 0 = go on; 1 = cancelled (reason pushed); -1 = it raised
 * (error pushed). */
static int poll_cancel(lua_State *L, struct exec_state *x)
{
    if (x->cancel == 0)
        return 0;
    lua_pushvalue(L, x->cancel);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK)
        return -1;
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushliteral(L, "cancelled");
    }
    return 1;
}

static void finish_output(lua_State *L, struct exec_state *x)
{
    static const char *const names[] = {"stdout", "stderr"};
    int stream = 0;
    if (x->on_output != 0)
        return;
    for (stream = 0; stream < 2; stream++) {
        luaL_Buffer b;
        lua_Integer i = 0;
        lua_Integer n = (lua_Integer)lua_rawlen(L, x->chunks[stream]);
        luaL_buffinit(L, &b);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, x->chunks[stream], i);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_setfield(L, x->info, names[stream]);
    }
    if (x->truncated) {
        lua_pushboolean(L, 1);
        lua_setfield(L, x->info, "truncated");
    }
}

/* The names of the env table at `env`, sorted, in an array owned by a
 * userdata pushed on the stack (the strings are the table's keys). */
static const char **env_keys(lua_State *L, int env, size_t *nkeys)
{
    const char **keys = NULL;
    size_t n = 0;
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, env) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_rawlen(L, -2) == 0 ||
            (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
            luaL_error(L, "option 'env': names must be non-empty "
                          "strings and values strings or numbers");
        n++;
        lua_pop(L, 1);
    }
    keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    lua_pushnil(L);
    while (lua_next(L, env) != 0) {
        keys[k++] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    qsort(keys, n, sizeof *keys, lssh_cmp_str);
    *nkeys = n;
    return keys;
}

/* Send the env requests on s->chan; refused names are appended to the
 * table at `rejected`. 0, or -1 when the connection or channel failed. */
static int send_env(lua_State *L, struct ssh_ud *s, int env, const char **keys,
                    size_t nkeys, int rejected)
{
    size_t k = 0;
    for (k = 0; k < nkeys; k++) {
        const char *value = NULL;
        int rc = 0;
        lua_pushstring(L, keys[k]);
        lua_rawget(L, env);
        value = lua_tostring(L, -1); /* a number becomes a copy */
        rc = ssh_channel_request_env(s->chan, keys[k], value);
        lua_pop(L, 1);
        if (rc == SSH_OK)
            continue;
        /* A refusal (dropbear refuses all) is not fatal; a dead link is. */
        if (rc == SSH_AGAIN || !ssh_is_connected(s->ssh) ||
            !ssh_channel_is_open(s->chan))
            return -1;
        lua_pushstring(L, keys[k]);
        lua_rawseti(L, rejected, (lua_Integer)lua_rawlen(L, rejected) + 1);
    }
    return 0;
}

/*
** exec's stdin producer: call it for the next chunk, which is kept in the
** stack slot `slot` (so `*in` stays valid). 1 = a chunk (or "" at the
** end: *done set), -1 = it raised or returned a non-string (error pushed).
*/
static int next_chunk(lua_State *L, int fn, int slot, const char **in,
                      size_t *len, int *done)
{
    lua_pushvalue(L, fn);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK)
        return -1;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pushfstring(L,
                        "ssh.exec: option 'stdin': the function returned "
                        "a %s (allowed: a string, or nil at the end)",
                        luaL_typename(L, -1));
        return -1;
    }
    lua_replace(L, slot);
    *in = lua_tolstring(L, slot, len);
    if (*len == 0)
        *done = 1;
    return 1;
}

/*
** Feed exec's stdin option as far as the peer's window allows, without
** blocking on it (a command that writes before it reads must not
** deadlock), and send EOF after the last byte. Dropped when the command
** has already closed its side. 1 = wrote something, 0 = nothing to do now,
** -1 = the connection failed.
*/
static int feed_stdin(struct ssh_ud *s, const char *in, size_t len, size_t *off,
                      int more, int *eof_sent)
{
    uint32_t win = 0;
    size_t n = 0;
    int w = 0;
    if (*eof_sent)
        return 0;
    if (ssh_channel_is_eof(s->chan) || ssh_channel_is_closed(s->chan)) {
        *eof_sent = 1; /* nobody reads it any more */
        return 0;
    }
    if (*off == len && more)
        return 0; /* the producer is asked for the next chunk first */
    if (*off == len) {
        *eof_sent = 1;
        return ssh_channel_send_eof(s->chan) == SSH_OK ? 1 : -1;
    }
    win = ssh_channel_window_size(s->chan);
    n = len - *off;
    if (n > win)
        n = win;
    if (n > XFER_CHUNK)
        n = XFER_CHUNK;
    if (n == 0)
        return 0;
    w = ssh_channel_write(s->chan, in + *off, (uint32_t)n);
    if (w == SSH_ERROR) {
        if (ssh_is_connected(s->ssh) &&
            (ssh_channel_is_eof(s->chan) || ssh_channel_is_closed(s->chan))) {
            *eof_sent = 1;
            return 0;
        }
        return -1;
    }
    *off += (size_t)w;
    return 1;
}

int lssh_session_exec(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    size_t cmdlen = 0;
    const char *cmd = luaL_checklstring(L, 2, &cmdlen);
    struct exec_state x;
    const char **keys = NULL;
    size_t nkeys = 0;
    const char *in = NULL;
    size_t inlen = 0;
    size_t inoff = 0;
    int eof_sent = 1;
    int producer = 0; /* stdin as a function: its stack index */
    int chunk = 0;    /* ... and the slot of its current chunk */
    int in_done = 1;
    double timeout = -1;
    double deadline = 0;
    int env = 0;
    int rejected = 0;
    int status = -1;
    int rc = 0;
    const char *code = NULL;
    const char *unstarted = NULL;
    char buf[XFER_CHUNK];
    char err[ERRLEN];

    memset(&x, 0, sizeof x);
    luaL_argcheck(L, strlen(cmd) == cmdlen, 2, "command contains a NUL byte");
    lua_settop(L, 3);
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        timeout = dj_optnumfield(L, 3, "timeout", -1);
        if (lua_getfield(L, 3, "on_output") != LUA_TNIL) {
            luaL_argcheck(L, lua_isfunction(L, -1), 3,
                          "option 'on_output' must be a function");
            x.on_output = lua_gettop(L);
        }
        if (lua_getfield(L, 3, "cancel") != LUA_TNIL) {
            luaL_argcheck(L, lua_isfunction(L, -1), 3,
                          "option 'cancel' must be a function");
            x.cancel = lua_gettop(L);
        }
        if (lua_getfield(L, 3, "env") != LUA_TNIL) {
            luaL_argcheck(L, lua_istable(L, -1), 3,
                          "option 'env' must be a table {NAME = value}");
            env = lua_gettop(L);
        }
        if (lua_getfield(L, 3, "stdin") != LUA_TNIL) {
            luaL_argcheck(
                L, lua_type(L, -1) == LUA_TSTRING || lua_isfunction(L, -1), 3,
                "option 'stdin' must be a string or a function");
            if (lua_isfunction(L, -1)) {
                producer = lua_gettop(L);
                lua_pushliteral(L, "");
                chunk = lua_gettop(L);
                in = lua_tostring(L, chunk);
                in_done = 0;
            } else {
                in = lua_tolstring(L, -1, &inlen); /* stays on the stack */
            }
            eof_sent = 0;
        }
    }
    luaL_argcheck(L, timeout == -1 || timeout > 0, 3,
                  "option 'timeout' must be > 0 seconds");

    if (env != 0)
        keys = env_keys(L, env, &nkeys);
    lua_newtable(L);
    x.info = lua_gettop(L);
    lua_newtable(L);
    rejected = lua_gettop(L);
    lua_pushvalue(L, rejected);
    lua_setfield(L, x.info, "env_rejected");
    if (x.on_output == 0) {
        lua_newtable(L);
        x.chunks[0] = lua_gettop(L);
        lua_newtable(L);
        x.chunks[1] = lua_gettop(L);
    }

    lssh_release_channel(s, 1); /* left behind by a raise (out of memory) */
    s->exit_signal[0] = '\0';
    s->busy = 1;
    if (timeout > 0)
        deadline = dj_now() + timeout;

    /* Open the channel, send env and exec; each step bounded. */
    if (lssh_set_timeout(s, deadline > 0 && deadline - dj_now() < s->io_timeout
                                ? deadline - dj_now()
                                : s->io_timeout) < 0)
        goto ssh_fail;
    /* Until the channel is open nothing can have run: the caller may
     * reconnect and retry (code "unstarted"). */
    unstarted = "unstarted";
    s->chan = ssh_channel_new(s->ssh);
    if (s->chan == NULL)
        goto ssh_fail;
    rc = ssh_channel_open_session(s->chan);
    if (rc != SSH_OK)
        goto ssh_fail;
    unstarted = NULL;
    rc = ssh_set_channel_callbacks(s->chan, &s->cb);
    if (rc != SSH_OK)
        goto ssh_fail;
    if (send_env(L, s, env, keys, nkeys, rejected) < 0)
        goto ssh_fail;
    rc = ssh_channel_request_exec(s->chan, cmd);
    if (rc != SSH_OK)
        goto ssh_fail;

    /* Stream output until EOF, checking cancel() and the deadline. */
    for (;;) {
        int got = 0;
        int stream = 0;
        int wait_ms = POLL_MS;
        if (!in_done && inoff == inlen && !eof_sent) {
            if (next_chunk(L, producer, chunk, &in, &inlen, &in_done) < 0)
                goto raise;
            inoff = 0;
        }
        rc = feed_stdin(s, in, inlen, &inoff, !in_done, &eof_sent);
        if (rc < 0)
            goto ssh_fail;
        if (rc > 0)
            got = 1; /* more may fit now: do not sleep */
        rc = poll_cancel(L, &x);
        if (rc < 0)
            goto raise;
        if (rc > 0)
            goto cancelled;
        if (deadline > 0 && dj_now() >= deadline)
            goto timed_out;
        for (stream = 0; stream < 2; stream++) {
            int n =
                ssh_channel_read_nonblocking(s->chan, buf, sizeof buf, stream);
            if (n == SSH_ERROR)
                goto ssh_fail;
            if (n > 0) {
                got = 1;
                if (deliver(L, &x, buf, n, stream) < 0)
                    goto raise;
            }
        }
        if (got)
            continue;
        if (ssh_channel_is_eof(s->chan) || ssh_channel_is_closed(s->chan))
            break;
        if (deadline > 0) {
            double left_ms = (deadline - dj_now()) * 1000;
            if (left_ms < wait_ms)
                wait_ms = left_ms < 1 ? 1 : (int)left_ms;
        }
        if (lssh_wait_packets(s, wait_ms) < 0)
            goto ssh_fail;
    }

    /* The exit status follows EOF; wait for it in short, cancellable
     * steps (a command may close its output and keep running). */
    for (;;) {
        double step = POLL_MS / 1000.0;
        rc = poll_cancel(L, &x);
        if (rc < 0)
            goto raise;
        if (rc > 0)
            goto cancelled;
        if (deadline > 0) {
            double left = deadline - dj_now();
            if (left <= 0)
                goto timed_out;
            if (left < step)
                step = left;
        }
        if (lssh_set_timeout(s, step) < 0)
            goto ssh_fail;
        status = ssh_channel_get_exit_status(s->chan);
        if (status >= 0)
            break;
        if (s->exit_signal[0] != '\0') {
            lssh_errf(err, "ssh.exec: %s: the command was killed by signal %s",
                      s->where, s->exit_signal);
            code = "signal";
            goto fail;
        }
        if (!ssh_is_connected(s->ssh))
            goto ssh_fail;
        if (ssh_channel_is_closed(s->chan)) {
            lssh_errf(err,
                      "ssh.exec: %s: the server closed the channel without "
                      "an exit status",
                      s->where);
            goto fail;
        }
    }
    (void)lssh_set_timeout(s, s->io_timeout);
    lssh_release_channel(s, 0);
    s->busy = 0;
    finish_output(L, &x);
    lua_pushinteger(L, status);
    lua_pushvalue(L, x.info);
    return 2;

raise:
    /* The callback's error is on top: release, then re-raise it. */
    (void)lssh_set_timeout(s, s->io_timeout);
    lssh_release_channel(s, 1);
    s->busy = 0;
    return lua_error(L);
cancelled:
    (void)lssh_set_timeout(s, s->io_timeout);
    lssh_release_channel(s, 1);
    s->busy = 0;
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushliteral(L, "cancelled");
    return 3;
timed_out:
    lssh_errf(err,
              "ssh.exec: %s: timeout: the command ran "
              "longer than %g s",
              s->where, timeout);
    code = "timeout";
    goto fail;
ssh_fail:
    lssh_errf(err, "ssh.exec: %s: %s", s->where, lssh_errtext(s));
    code = unstarted;
fail:
    (void)lssh_set_timeout(s, s->io_timeout);
    lssh_release_channel(s, 1);
    s->busy = 0;
    lua_pushnil(L);
    lua_pushstring(L, err);
    if (code == NULL)
        return 2;
    lua_pushstring(L, code);
    return 3;
}

/*
** session:env_probe(env) -> names the server refuses (sorted) | nil, msg
** Opens a session channel, sends the env requests and closes it without
** running anything: what exec's env option would be refused, learnt with
** a few packets instead of a command (no process starts in the guest).
*/
int lssh_session_env_probe(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    const char **keys = NULL;
    size_t nkeys = 0;
    int rejected = 0;
    char err[ERRLEN];

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    keys = env_keys(L, 2, &nkeys);
    lua_newtable(L);
    rejected = lua_gettop(L);
    lssh_release_channel(s, 1); /* left behind by a raise (out of memory) */
    if (lssh_set_timeout(s, s->io_timeout) < 0)
        goto ssh_fail;
    s->chan = ssh_channel_new(s->ssh);
    if (s->chan == NULL)
        goto ssh_fail;
    if (ssh_channel_open_session(s->chan) != SSH_OK)
        goto ssh_fail;
    if (send_env(L, s, 2, keys, nkeys, rejected) < 0)
        goto ssh_fail;
    lssh_release_channel(s, 0);
    lua_pushvalue(L, rejected);
    return 1;
ssh_fail:
    lssh_errf(err, "ssh.env_probe: %s: %s", s->where, lssh_errtext(s));
    lssh_release_channel(s, 0);
    return dj_pushfail(L, "%s", err);
}
