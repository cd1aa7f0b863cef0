/*
** l_ssh.c - djinn.ssh: SSH sessions over libssh 0.10 for the QEMU and SSH
** drivers (see docs/lua-api.md, "djinn.ssh"). This file opens the module
** and holds the session object, connection and authentication; the rest
** is split by concern, sharing l_ssh.h (private):
**   l_ssh_exec.c    session:exec, session:env_probe (exec channels)
**   l_ssh_xfer.c    put, put_data, get, glob, stat, sftp (SFTP and SCP)
**   l_ssh_net.c     ssh.wait_banner and connect's banner_timeout (sockets)
**   l_ssh_keygen.c  ssh.keygen
**
**   local ssh = require "djinn.ssh"
**   assert(ssh.wait_banner("127.0.0.1", port, 60))   -- boot wait
**   local s = assert(ssh.connect{ port = port, fingerprint = pinned })
**   local st, info = s:exec("make", { env = { CI = "1" },
**       on_output = function(data, stream) io.write(data) end,
**       timeout = 600, cancel = function() return interrupted() end })
**   s:put("job.sh", "job.sh", 493) ; s:get("out.tar", "/tmp/out.tar")
**   s:glob("out/img-*.qcow2") ; s:stat("out") ; s:close()
**
** ssh.connect{ host = "127.0.0.1", port = 22, user = "root", password = nil,
**     identity = nil, timeout = 2, io_timeout = 60, fingerprint = nil,
**     methods = {"none", "password", "publickey"}, no_sftp = false,
**     banner_timeout = nil }
**   -> session | nil, msg
**   `timeout` bounds one attempt (TCP + banner + key exchange + auth); the
**   caller retries. With `banner_timeout`, TCP + the server's "SSH-" banner
**   must come within it (peeked, then the socket goes to libssh), and
**   `timeout` bounds the key exchange + auth that follow on the same
**   connection: a boot wait fails fast and needs no separate banner poll.
**   `io_timeout` then bounds every blocking step of a later call (channel
**   open, an SFTP packet, ...). No known_hosts file and no
**   ~/.ssh/config are read: the caller pins the fingerprint seen at first
**   contact and passes it back; a different key is refused, never accepted.
**   Auth tries `methods` in order ("password" sends `password` or ""; the
**   key method needs `identity`). `no_sftp` makes put/get use SCP (tests).
** ssh.keygen(path) -> "ssh-ed25519 AAAA..." | nil, msg: a new key pair,
**   the private key written to path (mode 0600, O_EXCL)
** ssh.wait_banner(host, port, timeout_s [, attempt_s = 1 [, pause_s =
**     0.075]]) -> true | nil, msg
**   Waits until the port sends "SSH-" (a QEMU slirp port accepts TCP before
**   the guest listens, so a successful connect() proves nothing).
** session:fingerprint() -> "SHA256:..." ; session:auth_method() -> "none"|...
** session:host_key() -> "ssh-ed25519 AAAA..." (OpenSSH's public key line)
** session:server_banner() -> the server's "SSH-2.0-..." line | nil
** session:timing() -> { banner =, kex =, auth = }: proc.now() values of
**   connect's phases (banner only with banner_timeout)
** session:exec(cmd, opts) -> exit_status, info | nil, msg, code
**   opts: env, on_output, timeout, cancel, stdin = string (written as the
**   peer's window allows, interleaved with reading output, then EOF) or
**   a function returning the next chunk (a string; nil or "" at the end),
**   called when the previous chunk has been sent: a large file streams
**   through one chunk at a time.
**   info = { env_rejected = {...}, stdout = s, stderr = s } (stdout/stderr
**   only when no on_output is given). code is "timeout", "cancelled",
**   "signal", "unstarted" (no channel could be opened: nothing ran, a
**   retry on a new connection is safe) or nil.
** session:env_probe(env) -> sorted names the server refuses | nil, msg
**   (a channel that sends the env requests and runs nothing)
** session:put(local, remote [, mode [, opts]]),
** session:put_data(data, remote [, mode]),
** session:get(remote, local [, opts]), session:glob(pattern),
** session:stat(path), session:close()
**   opts.progress = function(done, total) for put and get over SFTP:
**   called at most every 0.1 s while bytes move (total nil when unknown);
**   an error it raises stops the transfer and is re-raised afterwards.
** session:sftp() -> true | nil, why: whether the SFTP subsystem works
**   (started on first use; the answer is kept for the session).
**   get writes a temporary file beside local, renamed when complete.
**   opts.max = bytes (>= 0): the file may have at most that many. The size
**   is checked first (the SFTP stat, the SCP header: refused before a
**   byte moves) and the bytes are counted while reading (the file may
**   grow); past it the transfer stops, the remote handle is closed, the
**   partial local file removed: nil, msg, "limit" [, size (when known)].
**
** Errors: misuse (wrong argument type, closed session) raises; operational
** failure returns nil, "ssh.<fn>: host:port: what happened".
**
** exec's callbacks must not use the session that runs them (that raises
** "busy"). A timeout or cancel sends the SSH signal TERM, KILL after 1 s,
** and lets the server close the channel first (up to 3 s): closing first
** makes dropbear 2022.83 drop the whole connection.
**
** Ownership: the libssh session, the SFTP session and exec's channel live
** in the session userdata, which is created (closed) before ssh_new, so
** __gc releases whatever a raise leaves behind. Short-lived handles (SFTP
** files and directories, SCP, helper channels, local fds) are opened and
** released with no Lua call in between. The only Lua calls made while the
** exec channel is open are on_output/cancel; they run under lua_pcall, and
** an error is re-raised after the channel has been released. Messages are
** built in stack buffers, then pushed after releasing.
*/
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "l_ssh.h"

int luaopen_djinn_ssh(lua_State *L);

enum { AUTH_NONE, AUTH_PASSWORD, AUTH_PUBKEY };
static const char *const auth_names[] = {"none", "password", "publickey", NULL};

/* ------------------------------------------------------------ helpers -- */

/* Format a message into an ERRLEN buffer (truncation is acceptable). */
void lssh_errf(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERRLEN, fmt, ap);
    va_end(ap);
}

/* libssh's last error; it can be empty when the peer just went away. */
const char *lssh_errtext(struct ssh_ud *s)
{
    const char *e = ssh_get_error(s->ssh);
    size_t n = 0;
    if (e == NULL || e[0] == '\0')
        return ssh_is_connected(s->ssh) ? "unknown libssh error"
                                        : "the connection was closed";
    /* Without the trailing newline an scp status message carries. */
    snprintf(s->errtext, sizeof s->errtext, "%s", e);
    n = strlen(s->errtext);
    while (n > 0 && (s->errtext[n - 1] == '\n' || s->errtext[n - 1] == '\r' ||
                     s->errtext[n - 1] == ' '))
        s->errtext[--n] = '\0';
    return s->errtext;
}

struct ssh_ud *lssh_check_session(lua_State *L, int idx)
{
    struct ssh_ud *s = luaL_checkudata(L, idx, SESSION_MT);
    if (s->ssh == NULL)
        luaL_error(L, "attempt to use a closed ssh session"); /* no return */
    if (s->busy)
        luaL_error(L,
                   "ssh session %s is busy: an exec callback cannot use "
                   "the session that runs it",
                   s->where); /* no return */
    return s;
}

/* Bound every blocking libssh step that follows (SSH_TIMEOUT_USER and
 * SSH_TIMEOUT_DEFAULT both use this). */
int lssh_set_timeout(struct ssh_ud *s, double secs)
{
    long sec = 0;
    long usec = 0;
    if (secs < 0.001)
        secs = 0.001;
    if (secs > 1e6)
        secs = 1e6;
    sec = (long)secs;
    usec = (long)((secs - (double)sec) * 1e6);
    if (ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT, &sec) < 0)
        return -1;
    if (ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT_USEC, &usec) < 0)
        return -1;
    return 0;
}

/*
** Process incoming packets for up to `ms` milliseconds, whatever channel or
** stream they are for (ssh_channel_poll_timeout waits for one stream only
** and returns at once after EOF). 0, or -1 when the connection failed.
*/
int lssh_wait_packets(struct ssh_ud *s, int ms)
{
    ssh_event ev = ssh_event_new();
    int rc = SSH_ERROR;
    if (ev == NULL)
        return -1;
    if (ssh_event_add_session(ev, s->ssh) != SSH_OK) {
        ssh_event_free(ev);
        return -1;
    }
    rc = ssh_event_dopoll(ev, ms);
    (void)ssh_event_remove_session(ev, s->ssh);
    ssh_event_free(ev);
    if (rc == SSH_ERROR || !ssh_is_connected(s->ssh))
        return -1;
    return 0;
}

/*
** Stop a command that is still running: TERM, then KILL after 1 s, and let
** the server close the channel first (up to 3 s), discarding output so its
** window never fills. Closing from our side while the command runs makes
** dropbear 2022.83 abort the whole connection (a failed assertion
** `!channel->sent_close`); waiting for its close avoids that.
*/
static void stop_command(struct ssh_ud *s)
{
    char sink[4096];
    double start = dj_now();
    int killed = 0;
    if (lssh_set_timeout(s, 0.2) < 0)
        return;
    if (ssh_channel_is_open(s->chan) && !ssh_channel_is_eof(s->chan))
        (void)ssh_channel_request_send_signal(s->chan, "TERM");
    while (ssh_channel_is_open(s->chan) && dj_now() - start < 3) {
        int stream = 0;
        int rc = 0;
        if (!killed && dj_now() - start >= 1) {
            (void)ssh_channel_request_send_signal(s->chan, "KILL");
            killed = 1;
        }
        for (stream = 0; stream < 2; stream++) {
            do {
                rc = ssh_channel_read_nonblocking(s->chan, sink, sizeof sink,
                                                  stream);
            } while (rc > 0);
            if (rc == SSH_ERROR)
                return;
        }
        if (lssh_wait_packets(s, POLL_MS) < 0)
            return;
    }
}

void lssh_release_channel(struct ssh_ud *s, int abort)
{
    if (s->chan == NULL)
        return;
    /* Teardown: failures here change nothing for the caller. */
    if (abort)
        stop_command(s);
    if (ssh_channel_is_open(s->chan))
        (void)ssh_channel_send_eof(s->chan);
    (void)ssh_channel_close(s->chan);
    ssh_channel_free(s->chan);
    s->chan = NULL;
}

/* channel_send_eof -> close -> free -> sftp_free -> disconnect -> free */
static void release_session(struct ssh_ud *s)
{
    int own = -1;
    if (s->ssh == NULL)
        return;
    if (s->owner != getpid()) {
        /* Inherited by a proc.spawn{fn =} child: the session is its
         * parent's (the socket was closed at the fork). A disconnect
         * here would write on whatever file has the number now. */
        s->ssh = NULL;
        s->sftp = NULL;
        s->chan = NULL;
        s->fd = -1;
        return;
    }
    (void)lssh_set_timeout(s, 2); /* a dead peer must not stall __gc */
    lssh_release_channel(s, 1);
    if (s->sftp != NULL) {
        sftp_free(s->sftp);
        s->sftp = NULL;
    }
    /* banner_timeout's socket: libssh 0.10.6 closes it after a socket
     * error (and then forgets it: ssh_get_fd no longer returns it; the
     * number may belong to another file by now), but not on disconnect.
     * Close it only while libssh still holds it, and only if disconnect
     * did not (no descriptor is opened in between). */
    if (s->fd >= 0 && ssh_get_fd(s->ssh) == s->fd)
        own = s->fd;
    s->fd = -1;
    ssh_disconnect(s->ssh);
    ssh_free(s->ssh);
    s->ssh = NULL;
    if (own >= 0 && fcntl(own, F_GETFD) >= 0)
        close(own);
}

static const char *optstrfield(lua_State *L, int idx, const char *name,
                               const char *def)
{
    /* The value stays on the stack so the pointer remains valid. */
    int t = lua_getfield(L, idx, name);
    if (t == LUA_TNIL)
        return def;
    if (t != LUA_TSTRING)
        luaL_error(L, "option '%s' must be a string, got %s", name,
                   luaL_typename(L, -1)); /* does not return */
    return lua_tostring(L, -1);
}

/* Append ", name" (or "name") to a fixed buffer. */
static void append_word(char *buf, size_t len, const char *word)
{
    size_t used = strlen(buf);
    if (used + 1 >= len)
        return;
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", word);
}

/* qsort comparator for an array of C strings. */
int lssh_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ----------------------------------------------------------- connect -- */

static int read_fingerprint(struct ssh_ud *s, char *err)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;
    int rc = ssh_get_server_publickey(s->ssh, &key);
    if (rc != SSH_OK) {
        lssh_errf(err, "ssh.connect: %s: no server host key: %s", s->where,
                  lssh_errtext(s));
        return -1;
    }
    rc = ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen);
    ssh_key_free(key);
    if (rc != 0) {
        lssh_errf(err, "ssh.connect: %s: cannot hash the host key: %s",
                  s->where, lssh_errtext(s));
        return -1;
    }
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    if (fp == NULL) {
        lssh_errf(err,
                  "ssh.connect: %s: cannot format the host key "
                  "fingerprint",
                  s->where);
        return -1;
    }
    snprintf(s->fingerprint, sizeof s->fingerprint, "%s", fp);
    ssh_string_free_char(fp);
    return 0;
}

static void offered_methods(struct ssh_ud *s, char *buf, size_t len)
{
    int m = ssh_userauth_list(s->ssh, NULL);
    buf[0] = '\0';
    if (m & SSH_AUTH_METHOD_NONE)
        append_word(buf, len, "none");
    if (m & SSH_AUTH_METHOD_PASSWORD)
        append_word(buf, len, "password");
    if (m & SSH_AUTH_METHOD_PUBLICKEY)
        append_word(buf, len, "publickey");
    if (m & SSH_AUTH_METHOD_INTERACTIVE)
        append_word(buf, len, "keyboard-interactive");
    if (m & SSH_AUTH_METHOD_HOSTBASED)
        append_word(buf, len, "hostbased");
    if (buf[0] == '\0')
        snprintf(buf, len, "nothing it named");
}

static int authenticate(struct ssh_ud *s, const int *methods, int nmethods,
                        const char *user, const char *password,
                        const char *identity, char *err)
{
    char tried[128] = "";
    char offered[128];
    int i = 0;

    for (i = 0; i < nmethods; i++) {
        ssh_key key = NULL;
        int rc = SSH_AUTH_DENIED;
        switch (methods[i]) {
        case AUTH_NONE:
            rc = ssh_userauth_none(s->ssh, NULL);
            break;
        case AUTH_PASSWORD:
            rc = ssh_userauth_password(s->ssh, NULL,
                                       password != NULL ? password : "");
            break;
        case AUTH_PUBKEY:
            if (identity == NULL)
                continue;
            rc = ssh_pki_import_privkey_file(identity, NULL, NULL, NULL, &key);
            if (rc != SSH_OK) {
                snprintf(err, ERRLEN,
                         "ssh.connect: %s: cannot load the private key %s: "
                         "%s",
                         s->where, identity,
                         rc == SSH_EOF ? "the file cannot be read"
                                       : "not a private key libssh can "
                                         "use without a passphrase");
                return -1;
            }
            rc = ssh_userauth_publickey(s->ssh, NULL, key);
            ssh_key_free(key);
            break;
        default:
            break;
        }
        if (rc == SSH_AUTH_SUCCESS) {
            s->auth_method = auth_names[methods[i]];
            return 0;
        }
        if (rc == SSH_AUTH_ERROR) {
            snprintf(err, ERRLEN,
                     "ssh.connect: %s: error during %s authentication: %s",
                     s->where, auth_names[methods[i]], lssh_errtext(s));
            return -1;
        }
        append_word(tried, sizeof tried,
                    methods[i] == AUTH_PASSWORD && password == NULL
                        ? "password (empty)"
                        : auth_names[methods[i]]);
    }
    offered_methods(s, offered, sizeof offered);
    snprintf(err, ERRLEN,
             "ssh.connect: %s: authentication failed for user %s: tried %s; "
             "the server offers %s",
             s->where, user, tried[0] ? tried : "no method", offered);
    return -1;
}

static void on_exit_signal(ssh_session session, ssh_channel channel,
                           const char *signal, int core, const char *errmsg,
                           const char *lang, void *userdata)
{
    struct ssh_ud *s = userdata;
    (void)session;
    (void)channel;
    (void)core;
    (void)errmsg;
    (void)lang;
    snprintf(s->exit_signal, sizeof s->exit_signal, "%s",
             signal != NULL ? signal : "?");
}

static int l_ssh_connect(lua_State *L)
{
    const char *host = NULL;
    const char *user = NULL;
    const char *password = NULL;
    const char *identity = NULL;
    const char *expected = NULL;
    struct ssh_ud *s = NULL;
    lua_Integer port = 22;
    double timeout = 2;
    double io_timeout = 60;
    double banner_timeout = 0;
    int methods[3];
    int nmethods = 0;
    int no_sftp = 0;
    int zero = 0;
    int rc = 0;
    char err[ERRLEN];

    luaL_checktype(L, 1, LUA_TTABLE);
    host = optstrfield(L, 1, "host", "127.0.0.1");
    user = optstrfield(L, 1, "user", "root");
    password = optstrfield(L, 1, "password", NULL);
    identity = optstrfield(L, 1, "identity", NULL);
    expected = optstrfield(L, 1, "fingerprint", NULL);
    if (lua_getfield(L, 1, "port") != LUA_TNIL) {
        if (!lua_isinteger(L, -1))
            return luaL_error(L, "option 'port' must be an integer, got %s",
                              luaL_typename(L, -1));
        port = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    if (port < 1 || port > 65535)
        return luaL_error(L, "option 'port' must be 1..65535, got %I",
                          (LUAI_UACINT)port);
    timeout = dj_optnumfield(L, 1, "timeout", 2);
    io_timeout = dj_optnumfield(L, 1, "io_timeout", 60);
    if (!(timeout > 0) || !(io_timeout > 0))
        return luaL_error(L, "options 'timeout' and 'io_timeout' must be > 0 "
                             "seconds");
    if (lua_getfield(L, 1, "banner_timeout") != LUA_TNIL) {
        banner_timeout = dj_optnumfield(L, 1, "banner_timeout", 0);
        if (!(banner_timeout > 0) || banner_timeout > 1e6)
            return luaL_error(L, "option 'banner_timeout' must be > 0 "
                                 "seconds (or nil)");
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "no_sftp");
    no_sftp = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "methods") == LUA_TNIL) {
        methods[nmethods++] = AUTH_NONE;
        methods[nmethods++] = AUTH_PASSWORD;
        methods[nmethods++] = AUTH_PUBKEY;
    } else {
        lua_Integer i = 0;
        lua_Integer n = 0;
        luaL_argcheck(L, lua_istable(L, -1), 1,
                      "option 'methods' must be a list of \"none\", "
                      "\"password\", \"publickey\"");
        n = (lua_Integer)lua_rawlen(L, -1);
        luaL_argcheck(L, n >= 1 && n <= 3, 1,
                      "option 'methods' must list 1 to 3 methods");
        for (i = 1; i <= n; i++) {
            const char *name = NULL;
            int m = 0;
            lua_rawgeti(L, -1, i);
            name = lua_tostring(L, -1);
            for (m = 0; name != NULL && auth_names[m] != NULL; m++)
                if (strcmp(name, auth_names[m]) == 0)
                    break;
            if (name == NULL || auth_names[m] == NULL)
                return luaL_error(L,
                                  "option 'methods': unknown method '%s'; "
                                  "allowed: none, password, publickey",
                                  name != NULL ? name : luaL_typename(L, -1));
            methods[nmethods++] = m;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    /* Userdata first: a raise after ssh_new cannot leak the session. */
    s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->owner = getpid();
    luaL_setmetatable(L, SESSION_MT);
    s->no_sftp = no_sftp;
    s->io_timeout = io_timeout;
    s->auth_method = "";
    snprintf(s->where, sizeof s->where, "%s:%d", host, (int)port);

    s->ssh = ssh_new();
    if (s->ssh == NULL) {
        lssh_errf(err,
                  "ssh.connect: %s: cannot create a session "
                  "(out of memory)",
                  s->where);
        goto fail;
    }
    {
        int iport = (int)port;
        int verbosity = SSH_LOG_NOLOG;
        /* TCP_NODELAY: exec sends CLOSE then the next CHANNEL_OPEN without
         * waiting for a reply, and Nagle held the second write until the
         * guest's delayed ACK: ~60 ms per exec instead of ~12 ms (measured
         * 2026-11-27 against the TCG test VM, bench/vm-bench.sh). */
        int nodelay = 1;
        if (ssh_options_set(s->ssh, SSH_OPTIONS_HOST, host) < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_NODELAY, &nodelay) < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_PORT, &iport) < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_USER, user) < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_PROCESS_CONFIG, &zero) < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS,
                            "/dev/null") < 0 ||
            ssh_options_set(s->ssh, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) <
                0 ||
            lssh_set_timeout(s, timeout) < 0) {
            lssh_errf(err, "ssh.connect: %s: bad option: %s", s->where,
                      lssh_errtext(s));
            goto fail;
        }
    }
    if (banner_timeout > 0 &&
        lssh_connect_banner(s, host, port, banner_timeout, err) < 0)
        goto fail;
    rc = ssh_connect(s->ssh);
    if (rc != SSH_OK) {
        lssh_errf(err, "ssh.connect: %s: %s", s->where, lssh_errtext(s));
        goto fail;
    }
    s->t_kex = dj_now();
    if (read_fingerprint(s, err) < 0)
        goto fail;
    if (expected != NULL && strcmp(expected, s->fingerprint) != 0) {
        lssh_errf(err,
                  "ssh.connect: %s: host key mismatch: expected %s, got %s",
                  s->where, expected, s->fingerprint);
        goto fail;
    }
    if (authenticate(s, methods, nmethods, user, password, identity, err) < 0)
        goto fail;
    s->t_auth = dj_now();
    if (lssh_set_timeout(s, io_timeout) < 0) {
        lssh_errf(err, "ssh.connect: %s: %s", s->where, lssh_errtext(s));
        goto fail;
    }
    ssh_callbacks_init(&s->cb);
    s->cb.userdata = s;
    s->cb.channel_exit_signal_function = on_exit_signal;
    return 1;
fail:
    release_session(s);
    return dj_pushfail(L, "%s", err);
}

/* ---------------------------------------------------- small methods -- */

static int l_session_fingerprint(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    lua_pushstring(L, s->fingerprint);
    return 1;
}

static int l_session_auth_method(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    lua_pushstring(L, s->auth_method);
    return 1;
}

/* session:server_banner() -> "SSH-2.0-OpenSSH_9.2p1 ..." | nil: the
 * server's identification string (the image check names the server). */
static int l_session_server_banner(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    const char *b = ssh_get_serverbanner(s->ssh);
    if (b == NULL)
        lua_pushnil(L);
    else
        lua_pushstring(L, b);
    return 1;
}

/* session:host_key() -> "ssh-ed25519 AAAA..." | nil, msg: the server's
 * public key in OpenSSH's one-line form (a known_hosts entry for it:
 * run --hold prints an ssh command that checks the pinned key). */
static int l_session_host_key(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    ssh_key key = NULL;
    char *b64 = NULL;
    const char *type;

    if (ssh_get_server_publickey(s->ssh, &key) != SSH_OK || key == NULL)
        return dj_pushfail(L, "ssh: no server key: %s", ssh_get_error(s->ssh));
    type = ssh_key_type_to_char(ssh_key_type(key));
    if (type == NULL || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
        ssh_key_free(key);
        return dj_pushfail(L, "ssh: cannot export the server key");
    }
    lua_pushfstring(L, "%s %s", type, b64);
    ssh_string_free_char(b64);
    ssh_key_free(key);
    return 1;
}

/* session:timing() -> { banner =, kex =, auth = } in proc.now() seconds:
 * when connect saw the banner (banner_timeout only), finished the key
 * exchange, and was logged in. */
static int l_session_timing(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    lua_createtable(L, 0, 3);
    if (s->t_banner > 0) {
        lua_pushnumber(L, s->t_banner);
        lua_setfield(L, -2, "banner");
    }
    lua_pushnumber(L, s->t_kex);
    lua_setfield(L, -2, "kex");
    lua_pushnumber(L, s->t_auth);
    lua_setfield(L, -2, "auth");
    return 1;
}

static int l_session_close(lua_State *L)
{
    struct ssh_ud *s = luaL_checkudata(L, 1, SESSION_MT);
    if (s->busy)
        return luaL_error(L,
                          "ssh session %s is busy: an exec callback cannot "
                          "close the session that runs it",
                          s->where);
    release_session(s);
    return 0;
}

static int l_session_tostring(lua_State *L)
{
    struct ssh_ud *s = luaL_checkudata(L, 1, SESSION_MT);
    if (s->ssh == NULL)
        lua_pushliteral(L, "ssh session (closed)");
    else
        lua_pushfstring(L, "ssh session (%s)", s->where);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"sftp", lssh_session_sftp},
    {"exec", lssh_session_exec},
    {"env_probe", lssh_session_env_probe},
    {"put", lssh_session_put},
    {"put_data", lssh_session_put_data},
    {"get", lssh_session_get},
    {"glob", lssh_session_glob},
    {"stat", lssh_session_stat},
    {"fingerprint", l_session_fingerprint},
    {"host_key", l_session_host_key},
    {"auth_method", l_session_auth_method},
    {"timing", l_session_timing},
    {"server_banner", l_session_server_banner},
    {"close", l_session_close},
    {NULL, NULL},
};

static const luaL_Reg session_meta[] = {
    {"__gc", l_session_close},
    {"__close", l_session_close},
    {"__tostring", l_session_tostring},
    {"__index", NULL},
    {NULL, NULL},
};

static const luaL_Reg ssh_funcs[] = {
    {"connect", l_ssh_connect},
    {"wait_banner", lssh_wait_banner},
    {"keygen", lssh_keygen},
    {NULL, NULL},
};

int luaopen_djinn_ssh(lua_State *L)
{
    if (ssh_init() < 0)
        return luaL_error(L, "djinn.ssh: libssh failed to initialise");
    luaL_newmetatable(L, SESSION_MT);
    luaL_setfuncs(L, session_meta, 0);
    luaL_newlib(L, session_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, ssh_funcs);
    return 1;
}
