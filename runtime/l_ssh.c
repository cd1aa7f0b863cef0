/*
** l_ssh.c - djinn.ssh: SSH sessions over libssh 0.10 for the QEMU and SSH
** drivers (see docs/lua-api.md, "djinn.ssh").
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
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "util.h"

int luaopen_djinn_ssh(lua_State *L);

#define SESSION_MT "djinn.ssh.session"
#define ERRLEN 768
#define XFER_CHUNK 32768        /* SFTP packet payload and read size */
#define COLLECT_MAX (64u << 20) /* output kept per stream without on_output */
#define GLOB_MAX 100000         /* glob results */
#define POLL_MS 100             /* exec: cancel/timeout check interval */

enum { SFTP_UNTRIED, SFTP_OK, SFTP_NONE };
enum { AUTH_NONE, AUTH_PASSWORD, AUTH_PUBKEY };
static const char *const auth_names[] = {"none", "password", "publickey", NULL};

struct ssh_ud {
    ssh_session ssh;
    sftp_session sftp;
    ssh_channel chan; /* exec's channel while a command runs */
    struct ssh_channel_callbacks_struct cb;
    int sftp_state;
    int no_sftp;
    int busy; /* inside exec: its callbacks must not reuse the session */
    int fd;   /* banner_timeout's socket: libssh does not close it; -1 */
    double io_timeout;
    double t_banner, t_kex, t_auth; /* connect's phases (dj_now), 0 = n/a */
    char exit_signal[32];
    char sftp_why[300];
    char where[300]; /* "host:port", for messages */
    char fingerprint[128];
    char errtext[300]; /* ssh_errtext's copy */
    const char *auth_method;
};

/* ------------------------------------------------------------ helpers -- */

/* Format a message into an ERRLEN buffer (truncation is acceptable). */
static void errf(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void errf(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERRLEN, fmt, ap);
    va_end(ap);
}

/* libssh's last error; it can be empty when the peer just went away. */
static const char *ssh_errtext(struct ssh_ud *s)
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

static struct ssh_ud *check_session(lua_State *L, int idx)
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
static int set_timeout(struct ssh_ud *s, double secs)
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
static int wait_packets(struct ssh_ud *s, int ms)
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
    if (set_timeout(s, 0.2) < 0)
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
        if (wait_packets(s, POLL_MS) < 0)
            return;
    }
}

static void release_channel(struct ssh_ud *s, int abort)
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
    (void)set_timeout(s, 2); /* a dead peer must not stall __gc */
    release_channel(s, 1);
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

static const char *sftp_code_text(int code)
{
    switch (code) {
    case SSH_FX_EOF:
        return "unexpected end of file";
    case SSH_FX_NO_SUCH_FILE:
        return "No such file or directory";
    case SSH_FX_PERMISSION_DENIED:
        return "Permission denied";
    case SSH_FX_BAD_MESSAGE:
        return "bad SFTP message";
    case SSH_FX_NO_CONNECTION:
    case SSH_FX_CONNECTION_LOST:
        return "connection lost";
    case SSH_FX_OP_UNSUPPORTED:
        return "operation not supported by the SFTP server";
    case SSH_FX_INVALID_HANDLE:
        return "invalid handle";
    case SSH_FX_NO_SUCH_PATH:
        return "No such file or directory";
    case SSH_FX_FILE_ALREADY_EXISTS:
        return "File exists";
    case SSH_FX_WRITE_PROTECT:
        return "Read-only file system";
    case SSH_FX_NO_MEDIA:
        return "no medium";
    default:
        return NULL;
    }
}

/* "ssh.FN: host:port: WHAT PATH: reason" from the SFTP status or libssh. */
static void sftp_errmsg(struct ssh_ud *s, char *err, const char *fn,
                        const char *what, const char *path)
{
    int code = sftp_get_error(s->sftp);
    const char *text = sftp_code_text(code);
    if (text == NULL)
        text = ssh_errtext(s);
    errf(err, "ssh.%s: %s: %s %s: %s", fn, s->where, what, path, text);
}

/* 1: SFTP usable; 0: not available (s->sftp_why says why; use SCP). */
static int sftp_ready(struct ssh_ud *s)
{
    int rc = SSH_ERROR;
    if (s->no_sftp) {
        snprintf(s->sftp_why, sizeof s->sftp_why,
                 "SFTP disabled by the no_sftp option");
        return 0;
    }
    if (s->sftp_state != SFTP_UNTRIED)
        return s->sftp_state == SFTP_OK;
    s->sftp_state = SFTP_NONE;
    if (set_timeout(s, s->io_timeout) < 0) {
        snprintf(s->sftp_why, sizeof s->sftp_why, "%s", ssh_errtext(s));
        return 0;
    }
    s->sftp = sftp_new(s->ssh);
    if (s->sftp == NULL) {
        snprintf(s->sftp_why, sizeof s->sftp_why, "no SFTP subsystem: %s",
                 ssh_errtext(s));
        return 0;
    }
    rc = sftp_init(s->sftp);
    if (rc != SSH_OK) {
        snprintf(s->sftp_why, sizeof s->sftp_why,
                 "SFTP subsystem did not start: %s", ssh_errtext(s));
        sftp_free(s->sftp);
        s->sftp = NULL;
        return 0;
    }
    s->sftp_state = SFTP_OK;
    return 1;
}

/* Single-quote a string for the remote POSIX shell. */
static int sh_quote(char *out, size_t outlen, const char *in)
{
    size_t o = 0;
    if (outlen < 3)
        return -1;
    out[o++] = '\'';
    for (; *in != '\0'; in++) {
        if (*in == '\'') {
            if (o + 4 >= outlen)
                return -1;
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = *in;
        }
    }
    if (o + 2 > outlen)
        return -1;
    out[o++] = '\'';
    out[o] = '\0';
    return 0;
}

/*
** Run a command without Lua callbacks, discarding its output (SCP mode
** fix-ups). Returns its exit status, or -1 with err set.
*/
static int run_quiet(struct ssh_ud *s, const char *fn, const char *cmd,
                     char *err)
{
    ssh_channel chan = NULL;
    char buf[4096];
    int status = -1;
    int rc = 0;
    int stream = 0;

    if (set_timeout(s, s->io_timeout) < 0)
        goto fail;
    chan = ssh_channel_new(s->ssh);
    if (chan == NULL)
        goto fail;
    rc = ssh_channel_open_session(chan);
    if (rc != SSH_OK)
        goto fail;
    rc = ssh_channel_request_exec(chan, cmd);
    if (rc != SSH_OK)
        goto fail;
    for (stream = 0; stream < 2; stream++) {
        do {
            rc = ssh_channel_read(chan, buf, sizeof buf, stream);
        } while (rc > 0);
        if (rc == SSH_ERROR)
            goto fail;
    }
    status = ssh_channel_get_exit_status(chan);
    if (status < 0)
        goto fail;
    (void)ssh_channel_send_eof(chan);
    (void)ssh_channel_close(chan);
    ssh_channel_free(chan);
    return status;
fail:
    errf(err, "ssh.%s: %s: running '%s': %s", fn, s->where, cmd,
         ssh_errtext(s));
    if (chan != NULL) {
        (void)ssh_channel_close(chan);
        ssh_channel_free(chan);
    }
    return -1;
}

/* ------------------------------------------------------- wait_banner -- */

/* getaddrinfo for a TCP host:port (numeric port); 0 or a gai error. */
static int resolve_tcp(const char *host, lua_Integer port,
                       struct addrinfo **res)
{
    struct addrinfo hints;
    char portstr[16];

    snprintf(portstr, sizeof portstr, "%d", (int)port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    return getaddrinfo(host, portstr, &hints, res);
}

/* Does buf (NUL-terminated) hold an SSH version line's start? RFC 4253
 * 4.2: other lines may precede it. */
static int has_banner(const char *buf, size_t got)
{
    return (got >= 4 && strncmp(buf, "SSH-", 4) == 0) ||
           strstr(buf, "\nSSH-") != NULL;
}

/*
** One attempt: connect to `ai` and wait up to `limit` s for "SSH-". Returns
** the connected, non-blocking socket once the banner is there, or -1 (why
** in err). peek: the bytes stay in the socket (recv MSG_PEEK), so libssh
** can take the fd over and read the banner itself; else they are consumed.
*/
static int banner_attempt(const struct addrinfo *ai, double limit, int peek,
                          char *err, size_t errlen)
{
    char buf[1024];
    size_t got = 0;
    double deadline = dj_now() + limit;
    struct pollfd pfd;
    int fd = -1;
    int rc = 0;
    int soerr = 0;
    socklen_t slen = sizeof soerr;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "%s", strerror(errno));
        goto fail;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    rc = poll(&pfd, 1, (int)(limit * 1000));
    if (rc <= 0) {
        snprintf(err, errlen, "%s",
                 rc == 0 ? "connect timed out" : strerror(errno));
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0 || soerr != 0) {
        snprintf(err, errlen, "%s", strerror(soerr ? soerr : errno));
        goto fail;
    }
    for (;;) {
        double left = deadline - dj_now();
        ssize_t n = 0;
        if (left <= 0) {
            snprintf(err, errlen, "connected, but no banner within %.1f s",
                     limit);
            goto fail;
        }
        pfd.events = POLLIN;
        rc = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (rc < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            goto fail;
        }
        if (rc <= 0)
            continue;
        if (peek)
            n = recv(fd, buf, sizeof buf - 1, MSG_PEEK);
        else
            n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s", strerror(errno));
            goto fail;
        }
        if (n == 0) {
            snprintf(err, errlen, "connection closed before the SSH banner");
            goto fail;
        }
        if (peek) {
            /* Still readable while the same bytes sit unread: without
             * news, pause instead of spinning. */
            struct timespec pause = {0, 5 * 1000 * 1000};
            if ((size_t)n == got)
                nanosleep(&pause, NULL);
            got = (size_t)n;
        } else {
            got += (size_t)n;
        }
        buf[got] = '\0';
        if (has_banner(buf, got))
            return fd;
        if (got == sizeof buf - 1) {
            snprintf(err, errlen, "1 KiB without an SSH banner");
            goto fail;
        }
    }
fail:
    close(fd);
    return -1;
}

static int l_ssh_wait_banner(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    double timeout = luaL_checknumber(L, 3);
    double attempt = luaL_optnumber(L, 4, 1.0);
    double gap = luaL_optnumber(L, 5, 0.075);
    struct addrinfo *res = NULL;
    char last[256] = "no attempt";
    char err[ERRLEN];
    double deadline = 0;
    int rc = 0;

    luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1..65535");
    luaL_argcheck(L, timeout > 0, 3, "timeout must be > 0 seconds");
    luaL_argcheck(L, attempt > 0, 4, "attempt must be > 0 seconds");
    luaL_argcheck(L, gap >= 0 && gap < 60, 5, "pause must be 0..60 seconds");
    rc = resolve_tcp(host, port, &res);
    if (rc != 0)
        return dj_pushfail(L, "ssh.wait_banner: %s:%d: %s", host, (int)port,
                           gai_strerror(rc));
    deadline = dj_now() + timeout;
    for (;;) {
        double left = deadline - dj_now();
        double wait = gap;
        struct timespec pause;
        int fd = -1;
        if (left <= 0)
            break;
        fd = banner_attempt(res, left < attempt ? left : attempt, 0, last,
                            sizeof last);
        if (fd >= 0) {
            close(fd);
            freeaddrinfo(res);
            lua_pushboolean(L, 1);
            return 1;
        }
        left = deadline - dj_now();
        if (left <= 0)
            break;
        if (left < wait)
            wait = left;
        pause.tv_sec = (time_t)wait;
        pause.tv_nsec = (long)((wait - (double)pause.tv_sec) * 1e9);
        nanosleep(&pause, NULL);
    }
    freeaddrinfo(res);
    errf(err,
         "ssh.wait_banner: %s:%d: no SSH banner within %g s (last "
         "attempt: %s)",
         host, (int)port, timeout, last);
    return dj_pushfail(L, "%s", err);
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
        errf(err, "ssh.connect: %s: no server host key: %s", s->where,
             ssh_errtext(s));
        return -1;
    }
    rc = ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen);
    ssh_key_free(key);
    if (rc != 0) {
        errf(err, "ssh.connect: %s: cannot hash the host key: %s", s->where,
             ssh_errtext(s));
        return -1;
    }
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    if (fp == NULL) {
        errf(err,
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
                     s->where, auth_names[methods[i]], ssh_errtext(s));
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

/*
** banner_timeout: connect and wait for the "SSH-" banner ourselves, leaving
** it unread, then hand the socket to libssh (SSH_OPTIONS_FD; libssh 0.10
** does not always close such a socket: see release_session). A boot wait
** then fails fast while the guest is not listening, yet the key exchange
** keeps the longer `timeout`, and the banner is seen on the one connection
** that logs in: no separate poll.
*/
static int connect_banner(struct ssh_ud *s, const char *host, lua_Integer port,
                          double limit, char *err)
{
    struct addrinfo *res = NULL;
    const struct addrinfo *ai = NULL;
    char why[256] = "no address";
    double deadline = dj_now() + limit;
    int fd = -1;
    int rc = resolve_tcp(host, port, &res);

    if (rc != 0) {
        errf(err, "ssh.connect: %s: %s", s->where, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        double left = deadline - dj_now();
        if (left <= 0)
            break;
        fd = banner_attempt(ai, left, 1, why, sizeof why);
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errf(err, "ssh.connect: %s: no SSH banner within %g s (%s)", s->where,
             limit, why);
        return -1;
    }
    s->t_banner = dj_now();
    s->fd = fd; /* closed by release_session, after ssh_free */
    if (ssh_options_set(s->ssh, SSH_OPTIONS_FD, &fd) < 0) {
        errf(err, "ssh.connect: %s: bad option: %s", s->where, ssh_errtext(s));
        return -1;
    }
    return 0;
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
    luaL_setmetatable(L, SESSION_MT);
    s->no_sftp = no_sftp;
    s->io_timeout = io_timeout;
    s->auth_method = "";
    snprintf(s->where, sizeof s->where, "%s:%d", host, (int)port);

    s->ssh = ssh_new();
    if (s->ssh == NULL) {
        errf(err,
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
            set_timeout(s, timeout) < 0) {
            errf(err, "ssh.connect: %s: bad option: %s", s->where,
                 ssh_errtext(s));
            goto fail;
        }
    }
    if (banner_timeout > 0 &&
        connect_banner(s, host, port, banner_timeout, err) < 0)
        goto fail;
    rc = ssh_connect(s->ssh);
    if (rc != SSH_OK) {
        errf(err, "ssh.connect: %s: %s", s->where, ssh_errtext(s));
        goto fail;
    }
    s->t_kex = dj_now();
    if (read_fingerprint(s, err) < 0)
        goto fail;
    if (expected != NULL && strcmp(expected, s->fingerprint) != 0) {
        errf(err, "ssh.connect: %s: host key mismatch: expected %s, got %s",
             s->where, expected, s->fingerprint);
        goto fail;
    }
    if (authenticate(s, methods, nmethods, user, password, identity, err) < 0)
        goto fail;
    s->t_auth = dj_now();
    if (set_timeout(s, io_timeout) < 0) {
        errf(err, "ssh.connect: %s: %s", s->where, ssh_errtext(s));
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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
    qsort(keys, n, sizeof *keys, cmp_str);
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

static int l_session_exec(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
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

    release_channel(s, 1); /* left behind by a raise (out of memory) */
    s->exit_signal[0] = '\0';
    s->busy = 1;
    if (timeout > 0)
        deadline = dj_now() + timeout;

    /* Open the channel, send env and exec; each step bounded. */
    if (set_timeout(s, deadline > 0 && deadline - dj_now() < s->io_timeout
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
        if (wait_packets(s, wait_ms) < 0)
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
        if (set_timeout(s, step) < 0)
            goto ssh_fail;
        status = ssh_channel_get_exit_status(s->chan);
        if (status >= 0)
            break;
        if (s->exit_signal[0] != '\0') {
            errf(err, "ssh.exec: %s: the command was killed by signal %s",
                 s->where, s->exit_signal);
            code = "signal";
            goto fail;
        }
        if (!ssh_is_connected(s->ssh))
            goto ssh_fail;
        if (ssh_channel_is_closed(s->chan)) {
            errf(err,
                 "ssh.exec: %s: the server closed the channel without "
                 "an exit status",
                 s->where);
            goto fail;
        }
    }
    (void)set_timeout(s, s->io_timeout);
    release_channel(s, 0);
    s->busy = 0;
    finish_output(L, &x);
    lua_pushinteger(L, status);
    lua_pushvalue(L, x.info);
    return 2;

raise:
    /* The callback's error is on top: release, then re-raise it. */
    (void)set_timeout(s, s->io_timeout);
    release_channel(s, 1);
    s->busy = 0;
    return lua_error(L);
cancelled:
    (void)set_timeout(s, s->io_timeout);
    release_channel(s, 1);
    s->busy = 0;
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushliteral(L, "cancelled");
    return 3;
timed_out:
    errf(err,
         "ssh.exec: %s: timeout: the command ran "
         "longer than %g s",
         s->where, timeout);
    code = "timeout";
    goto fail;
ssh_fail:
    errf(err, "ssh.exec: %s: %s", s->where, ssh_errtext(s));
    code = unstarted;
fail:
    (void)set_timeout(s, s->io_timeout);
    release_channel(s, 1);
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
static int l_session_env_probe(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    const char **keys = NULL;
    size_t nkeys = 0;
    int rejected = 0;
    char err[ERRLEN];

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    keys = env_keys(L, 2, &nkeys);
    lua_newtable(L);
    rejected = lua_gettop(L);
    release_channel(s, 1); /* left behind by a raise (out of memory) */
    if (set_timeout(s, s->io_timeout) < 0)
        goto ssh_fail;
    s->chan = ssh_channel_new(s->ssh);
    if (s->chan == NULL)
        goto ssh_fail;
    if (ssh_channel_open_session(s->chan) != SSH_OK)
        goto ssh_fail;
    if (send_env(L, s, 2, keys, nkeys, rejected) < 0)
        goto ssh_fail;
    release_channel(s, 0);
    lua_pushvalue(L, rejected);
    return 1;
ssh_fail:
    errf(err, "ssh.env_probe: %s: %s", s->where, ssh_errtext(s));
    release_channel(s, 0);
    return dj_pushfail(L, "%s", err);
}

/* ----------------------------------------------------------- put/get -- */

/* A source of bytes: a local fd or a memory block. */
struct source {
    int fd;
    const char *data;
    size_t len;
    size_t off;
};

static ssize_t source_read(struct source *src, char *buf, size_t n)
{
    if (src->fd >= 0) {
        ssize_t r = 0;
        do {
            r = read(src->fd, buf, n);
        } while (r < 0 && errno == EINTR);
        return r;
    }
    if (n > src->len - src->off)
        n = src->len - src->off;
    memcpy(buf, src->data + src->off, n);
    src->off += n;
    return (ssize_t)n;
}

/*
** put/get's progress option: fn(done, total) under lua_pcall, at most
** every 0.1 s. An error stays on top of the stack (raised = 1); the
** transfer stops and the caller re-raises it once everything is released.
*/
struct progress {
    lua_State *L;
    int fn; /* stack index, 0 = none */
    int raised;
    double next;
};

static int progress_tick(struct progress *p, uint64_t done, int64_t total)
{
    double now = 0;
    if (p == NULL || p->fn == 0)
        return 0;
    if (p->raised)
        return -1;
    now = dj_now();
    if (now < p->next)
        return 0;
    p->next = now + 0.1;
    lua_pushvalue(p->L, p->fn);
    lua_pushinteger(p->L, (lua_Integer)done);
    if (total >= 0)
        lua_pushinteger(p->L, (lua_Integer)total);
    else
        lua_pushnil(p->L);
    if (lua_pcall(p->L, 2, 0, 0) != LUA_OK) {
        p->raised = 1;
        return -1;
    }
    return 0;
}

/* The progress option of the table at idx (pushed; stays on the stack). */
static void progress_opt(lua_State *L, int idx, struct progress *p)
{
    memset(p, 0, sizeof *p);
    p->L = L;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "progress") != LUA_TNIL) {
        luaL_argcheck(L, lua_isfunction(L, -1), idx,
                      "option 'progress' must be a function");
        p->fn = lua_gettop(L);
    }
}

static int sftp_upload(struct ssh_ud *s, const char *fn, struct source *src,
                       uint64_t size, const char *remote, int mode,
                       struct progress *prog, char *err)
{
    sftp_file f = NULL;
    char buf[XFER_CHUNK];
    uint64_t sent = 0;
    int rc = 0;

    f = sftp_open(s->sftp, remote, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    if (f == NULL) {
        sftp_errmsg(s, err, fn, "cannot create", remote);
        return -1;
    }
    for (;;) {
        ssize_t n = source_read(src, buf, sizeof buf);
        ssize_t w = 0;
        if (n < 0) {
            errf(err, "ssh.%s: reading the local file: %s", fn,
                 strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        w = sftp_write(f, buf, (size_t)n);
        if (w != n) {
            sftp_errmsg(s, err, fn, "writing", remote);
            goto fail;
        }
        sent += (uint64_t)n;
        if (progress_tick(prog, sent, (int64_t)size) < 0) {
            errf(err, "ssh.%s: the progress callback raised", fn);
            goto fail;
        }
    }
    rc = sftp_close(f);
    f = NULL;
    if (rc != SSH_NO_ERROR) {
        sftp_errmsg(s, err, fn, "closing", remote);
        return -1;
    }
    /* sftp_open's mode is subject to the server's umask and does not touch
     * an existing file: set it explicitly. */
    rc = sftp_chmod(s->sftp, remote, (mode_t)mode);
    if (rc != 0) {
        sftp_errmsg(s, err, fn, "chmod", remote);
        return -1;
    }
    return 0;
fail:
    (void)sftp_close(f);
    return -1;
}

/*
** Let the server finish an SCP channel before the next channel is opened.
** dropbear (2022.83) reaps the scp child asynchronously; a session channel
** opened before that can get the OLD child's exit: the server then sends
** exit-status, EOF and CLOSE on the new channel at once (seen with
** TCP_NODELAY, 2026-11-27: "SCP put onto a directory" failed). The exec
** path is not affected: it waits for the exit status, which dropbear sends
** only after reaping. Processes packets for 300 ms (SCP is the fallback
** for servers without SFTP, so the cost is rarely paid).
*/
static void scp_settle(struct ssh_ud *s)
{
    double end = dj_now() + 0.3;
    double left = 0;
    while ((left = end - dj_now()) > 0) {
        if (wait_packets(s, (int)(left * 1000) + 1) < 0)
            return;
    }
}

#pragma GCC diagnostic push
/* libssh 0.10 marks its SCP API deprecated; it is the documented fallback
 * for servers without an SFTP subsystem. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static int scp_upload(struct ssh_ud *s, const char *fn, struct source *src,
                      uint64_t size, const char *remote, int mode, char *err)
{
    ssh_scp scp = NULL;
    char buf[XFER_CHUNK];
    char cmd[8300];
    char quoted[8200];
    const char *base = strrchr(remote, '/');
    uint64_t sent = 0;
    int rc = 0;

    base = base != NULL ? base + 1 : remote;
    if (*base == '\0') {
        errf(err, "ssh.%s: %s: %s: the remote path must name a file", fn,
             s->where, remote);
        return -1;
    }
    if (sh_quote(quoted, sizeof quoted, remote) < 0) {
        errf(err, "ssh.%s: %s: path too long", fn, remote);
        return -1;
    }
    /* "scp -t PATH" writes to PATH, or into it when PATH is a directory;
     * SFTP refuses the latter, and so do we. */
    snprintf(cmd, sizeof cmd, "test -d %s", quoted);
    rc = run_quiet(s, fn, cmd, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        errf(err, "ssh.%s: %s: cannot create %s: Is a directory", fn, s->where,
             remote);
        return -1;
    }
    if (set_timeout(s, s->io_timeout) < 0)
        goto ssh_fail;
    scp = ssh_scp_new(s->ssh, SSH_SCP_WRITE, remote);
    if (scp == NULL)
        goto ssh_fail;
    rc = ssh_scp_init(scp);
    if (rc != SSH_OK)
        goto ssh_fail;
    rc = ssh_scp_push_file64(scp, base, size, mode);
    if (rc != SSH_OK)
        goto ssh_fail;
    do {
        ssize_t n = source_read(src, buf, sizeof buf);
        if (n < 0) {
            errf(err, "ssh.%s: reading the local file: %s", fn,
                 strerror(errno));
            goto fail;
        }
        if ((uint64_t)n > size - sent || (n == 0 && sent < size)) {
            errf(err,
                 "ssh.%s: the local file changed size "
                 "while being copied",
                 fn);
            goto fail;
        }
        rc = ssh_scp_write(scp, buf, (size_t)n);
        if (rc != SSH_OK)
            goto ssh_fail;
        sent += (uint64_t)n;
    } while (sent < size);
    rc = ssh_scp_close(scp);
    ssh_scp_free(scp);
    scp = NULL;
    scp_settle(s);
    if (rc != SSH_OK)
        goto ssh_fail;
    /* scp -t keeps the mode of an existing file: set it explicitly. */
    snprintf(cmd, sizeof cmd, "chmod %o %s", (unsigned)mode, quoted);
    rc = run_quiet(s, fn, cmd, err);
    if (rc < 0)
        return -1;
    if (rc != 0) {
        errf(err, "ssh.%s: %s: '%s' exited with %d", fn, s->where, cmd, rc);
        return -1;
    }
    return 0;
ssh_fail:
    errf(err, "ssh.%s: %s: SCP upload of %s failed: %s (%s)", fn, s->where,
         remote, ssh_errtext(s), s->sftp_why);
fail:
    if (scp != NULL) {
        (void)ssh_scp_close(scp);
        ssh_scp_free(scp);
        scp_settle(s);
    }
    return -1;
}

/* Write all of buf to fd. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
** get: -2 = over the byte limit; *size is the remote size when it was
** known before the transfer (the SFTP stat, the SCP header), else -1.
*/
#define OVER_LIMIT (-2)

/* The message of an OVER_LIMIT get. */
static void limit_msg(struct ssh_ud *s, char *err, const char *remote,
                      long long max, long long size)
{
    if (size >= 0)
        errf(err,
             "ssh.get: %s: %s: %lld bytes is larger than the limit of "
             "%lld bytes",
             s->where, remote, size, max);
    else
        errf(err,
             "ssh.get: %s: %s: larger than the limit of %lld bytes (the "
             "transfer was stopped)",
             s->where, remote, max);
}

static int scp_download(struct ssh_ud *s, const char *remote, int fd, int *mode,
                        long long max, long long *osize, char *err)
{
    ssh_scp scp = NULL;
    char buf[XFER_CHUNK];
    uint64_t size = 0;
    uint64_t got = 0;
    int rc = 0;
    int over = 0;

    if (set_timeout(s, s->io_timeout) < 0)
        goto ssh_fail;
    scp = ssh_scp_new(s->ssh, SSH_SCP_READ, remote);
    if (scp == NULL)
        goto ssh_fail;
    rc = ssh_scp_init(scp);
    if (rc != SSH_OK)
        goto ssh_fail;
    rc = ssh_scp_pull_request(scp);
    if (rc == SSH_SCP_REQUEST_WARNING) {
        errf(err, "ssh.get: %s: %s", s->where,
             ssh_scp_request_get_warning(scp));
        goto fail;
    }
    if (rc == SSH_ERROR)
        goto ssh_fail;
    if (rc != SSH_SCP_REQUEST_NEWFILE) {
        errf(err, "ssh.get: %s: %s: not a regular file", s->where, remote);
        goto fail;
    }
    size = ssh_scp_request_get_size64(scp);
    *mode = ssh_scp_request_get_permissions(scp);
    if (max >= 0 && size > (uint64_t)max) {
        /* Refused before a byte of it moves: the remote scp gets a fatal
         * error and exits, so closing the channel drains nothing. */
        *osize = size > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)size;
        limit_msg(s, err, remote, max, *osize);
        (void)ssh_scp_deny_request(scp, "larger than the receiver's limit");
        over = 1;
        goto fail;
    }
    rc = ssh_scp_accept_request(scp);
    if (rc != SSH_OK)
        goto ssh_fail;
    /* At least one read, even for an empty file: it acknowledges the end. */
    do {
        int n = ssh_scp_read(scp, buf, sizeof buf);
        if (n < 0)
            goto ssh_fail;
        if (n == 0 && got < size) {
            errf(err,
                 "ssh.get: %s: %s: the transfer ended after "
                 "%llu of %llu bytes",
                 s->where, remote, (unsigned long long)got,
                 (unsigned long long)size);
            goto fail;
        }
        /* Counted too (libssh reads at most the announced size, so this
         * holds unless that changes). */
        if (max >= 0 && got + (uint64_t)n > (uint64_t)max) {
            limit_msg(s, err, remote, max, -1);
            over = 1;
            goto fail;
        }
        if (write_all(fd, buf, (size_t)n) < 0) {
            errf(err, "ssh.get: writing the local file: %s", strerror(errno));
            goto fail;
        }
        got += (uint64_t)n;
    } while (got < size);
    rc = ssh_scp_pull_request(scp);
    if (rc == SSH_ERROR)
        goto ssh_fail;
    (void)ssh_scp_close(scp);
    ssh_scp_free(scp);
    scp_settle(s);
    return 0;
ssh_fail:
    errf(err, "ssh.get: %s: SCP download of %s failed: %s (%s)", s->where,
         remote, ssh_errtext(s), s->sftp_why);
fail:
    if (scp != NULL) {
        (void)ssh_scp_close(scp);
        ssh_scp_free(scp);
        scp_settle(s);
    }
    return over ? OVER_LIMIT : -1;
}

#pragma GCC diagnostic pop

static int upload(struct ssh_ud *s, const char *fn, struct source *src,
                  uint64_t size, const char *remote, int mode,
                  struct progress *prog, char *err)
{
    if (sftp_ready(s))
        return sftp_upload(s, fn, src, size, remote, mode, prog, err);
    return scp_upload(s, fn, src, size, remote, mode, err);
}

static int check_mode(lua_State *L, int idx, int def)
{
    lua_Integer mode = luaL_optinteger(L, idx, def);
    luaL_argcheck(L, mode >= 0 && mode <= 07777, idx,
                  "mode must be 0..4095 (e.g. 420 for 0644)");
    return (int)mode;
}

static int l_session_put(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    const char *local = luaL_checkstring(L, 2);
    const char *remote = luaL_checkstring(L, 3);
    int mode = lua_isnoneornil(L, 4) ? -1 : check_mode(L, 4, 0);
    struct progress prog;
    struct source src;
    struct stat st;
    char err[ERRLEN];
    int rc = 0;

    progress_opt(L, 5, &prog);
    memset(&src, 0, sizeof src);
    src.fd = open(local, O_RDONLY | O_CLOEXEC);
    if (src.fd < 0)
        return dj_pushfail(L, "ssh.put: %s: %s", local, strerror(errno));
    /* No Lua call between open() and close(). */
    if (fstat(src.fd, &st) < 0) {
        errf(err, "ssh.put: %s: %s", local, strerror(errno));
        rc = -1;
    } else if (!S_ISREG(st.st_mode)) {
        errf(err, "ssh.put: %s: not a regular file", local);
        rc = -1;
    } else {
        if (mode < 0)
            mode = (int)(st.st_mode & 07777);
        rc = upload(s, "put", &src, (uint64_t)st.st_size, remote, mode, &prog,
                    err);
    }
    close(src.fd);
    if (prog.raised)
        return lua_error(L); /* the callback's error, on top */
    if (rc < 0)
        return dj_pushfail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_session_put_data(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    size_t len = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    const char *remote = luaL_checkstring(L, 3);
    int mode = check_mode(L, 4, 0644);
    struct source src;
    char err[ERRLEN];

    memset(&src, 0, sizeof src);
    src.fd = -1;
    src.data = data;
    src.len = len;
    if (upload(s, "put_data", &src, (uint64_t)len, remote, mode, NULL, err) < 0)
        return dj_pushfail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static int sftp_download(struct ssh_ud *s, const char *remote, int fd,
                         int *mode, long long max, long long *osize,
                         struct progress *prog, char *err)
{
    int64_t total = -1;
    sftp_file f = NULL;
    sftp_attributes a = NULL;
    char buf[XFER_CHUNK];
    uint64_t got = 0;

    a = sftp_stat(s->sftp, remote);
    if (a == NULL) {
        sftp_errmsg(s, err, "get", "cannot stat", remote);
        return -1;
    }
    if (a->type != SSH_FILEXFER_TYPE_REGULAR) {
        errf(err, "ssh.get: %s: %s: not a regular file", s->where, remote);
        sftp_attributes_free(a);
        return -1;
    }
    *mode = (int)(a->permissions & 07777);
    if (max >= 0 && (a->flags & SSH_FILEXFER_ATTR_SIZE) != 0 &&
        a->size > (uint64_t)max) {
        *osize = a->size > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)a->size;
        sftp_attributes_free(a);
        limit_msg(s, err, remote, max, *osize);
        return OVER_LIMIT; /* refused before opening it */
    }
    if ((a->flags & SSH_FILEXFER_ATTR_SIZE) != 0 && a->size <= INT64_MAX)
        total = (int64_t)a->size;
    sftp_attributes_free(a);
    f = sftp_open(s->sftp, remote, O_RDONLY, 0);
    if (f == NULL) {
        sftp_errmsg(s, err, "get", "cannot open", remote);
        return -1;
    }
    for (;;) {
        ssize_t n = sftp_read(f, buf, sizeof buf);
        if (n < 0) {
            sftp_errmsg(s, err, "get", "reading", remote);
            goto fail;
        }
        if (n == 0)
            break;
        /* The file may have grown since the stat (or stat small, like a
         * /proc file): the bytes are counted too. */
        if (max >= 0 && got + (uint64_t)n > (uint64_t)max) {
            limit_msg(s, err, remote, max, -1);
            (void)sftp_close(f); /* no request is outstanding */
            return OVER_LIMIT;
        }
        got += (uint64_t)n;
        if (write_all(fd, buf, (size_t)n) < 0) {
            errf(err, "ssh.get: writing the local file: %s", strerror(errno));
            goto fail;
        }
        if (progress_tick(prog, got, total) < 0) {
            errf(err, "ssh.get: the progress callback raised");
            goto fail;
        }
    }
    (void)sftp_close(f); /* read-only: nothing to lose */
    return 0;
fail:
    (void)sftp_close(f);
    return -1;
}

static int l_session_get(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    const char *remote = luaL_checkstring(L, 2);
    const char *local = luaL_checkstring(L, 3);
    char tmp[4200];
    char err[ERRLEN];
    int fd = -1;
    int mode = 0644;
    int rc = 0;
    long long max = -1;
    long long size = -1;
    struct progress prog;

    progress_opt(L, 4, &prog);
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        if (lua_getfield(L, 4, "max") != LUA_TNIL) {
            lua_Integer m = 0;

            if (!lua_isinteger(L, -1))
                return luaL_argerror(L, 4,
                                     "option 'max' must be an integer "
                                     "(bytes)");
            m = lua_tointeger(L, -1);
            luaL_argcheck(L, m >= 0, 4, "option 'max' must be >= 0 bytes");
            max = (long long)m;
        }
        lua_pop(L, 1);
    }
    /* Into a temporary file beside the target, renamed when complete. */
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.djinn-XXXXXX", local) >=
        sizeof tmp)
        return dj_pushfail(L, "ssh.get: %s: path too long", local);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return dj_pushfail(L,
                           "ssh.get: %s: cannot create a temporary file "
                           "beside it: %s",
                           local, strerror(errno));
    if (sftp_ready(s))
        rc = sftp_download(s, remote, fd, &mode, max, &size, &prog, err);
    else
        rc = scp_download(s, remote, fd, &mode, max, &size, err);
    if (rc == 0 && fchmod(fd, (mode_t)(mode & 07777)) < 0) {
        errf(err, "ssh.get: %s: chmod: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (close(fd) < 0 && rc == 0) {
        errf(err, "ssh.get: %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, local) < 0) {
        errf(err, "ssh.get: %s: %s", local, strerror(errno));
        rc = -1;
    }
    if (rc < 0) {
        (void)unlink(tmp); /* the partial file */
        if (prog.raised)
            return lua_error(L); /* the callback's error, on top */
        dj_pushfail(L, "%s", err);
        if (rc != OVER_LIMIT)
            return 2;
        lua_pushliteral(L, "limit");
        if (size < 0)
            return 3;
        lua_pushinteger(L, (lua_Integer)size);
        return 4;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* -------------------------------------------------------- glob, stat -- */

struct strv {
    char **v;
    size_t n;
    size_t cap;
};

static void strv_push(struct strv *sv, char *owned)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 16;
        sv->v = dj_xreallocarray(sv->v, sv->cap, sizeof *sv->v);
    }
    sv->v[sv->n++] = owned;
}

static void strv_free(struct strv *sv)
{
    size_t i = 0;
    for (i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    memset(sv, 0, sizeof *sv);
}

static char *path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    size_t nl = strlen(name);
    char *p = dj_xmalloc(dl + nl + 2);
    memcpy(p, dir, dl);
    if (dl > 0 && dir[dl - 1] != '/')
        p[dl++] = '/';
    memcpy(p + dl, name, nl + 1);
    return p;
}

static int push_strv(lua_State *L)
{
    const struct strv *sv = lua_touserdata(L, 1);
    size_t i = 0;
    lua_createtable(L, sv->n > INT32_MAX ? 0 : (int)sv->n, 0);
    for (i = 0; i < sv->n; i++) {
        lua_pushstring(L, sv->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int has_magic(const char *s)
{
    return strpbrk(s, "*?[\\") != NULL;
}

/* Expand one component over every prefix in `cur` into `next`. */
static int glob_step(struct ssh_ud *s, const char *comp, int magic,
                     const struct strv *cur, struct strv *next, char *err)
{
    size_t i = 0;
    for (i = 0; i < cur->n; i++) {
        const char *prefix = cur->v[i];
        sftp_dir d = NULL;
        sftp_attributes a = NULL;
        if (!magic) {
            strv_push(next, path_join(prefix, comp));
            continue;
        }
        d = sftp_opendir(s->sftp, prefix[0] ? prefix : ".");
        if (d == NULL) {
            int code = sftp_get_error(s->sftp);
            /* Not a directory, missing, unreadable: no matches there. */
            if (code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH ||
                code == SSH_FX_PERMISSION_DENIED || code == SSH_FX_FAILURE)
                continue;
            sftp_errmsg(s, err, "glob", "cannot list", prefix);
            return -1;
        }
        for (;;) {
            a = sftp_readdir(s->sftp, d);
            if (a == NULL)
                break;
            if (a->name != NULL && strcmp(a->name, ".") != 0 &&
                strcmp(a->name, "..") != 0 &&
                fnmatch(comp, a->name, FNM_PERIOD) == 0) {
                if (next->n >= GLOB_MAX) {
                    sftp_attributes_free(a);
                    (void)sftp_closedir(d);
                    errf(err,
                         "ssh.glob: %s: more than %d "
                         "matches",
                         s->where, GLOB_MAX);
                    return -1;
                }
                strv_push(next, path_join(prefix, a->name));
            }
            sftp_attributes_free(a);
        }
        if (!sftp_dir_eof(d)) {
            sftp_errmsg(s, err, "glob", "reading the directory", prefix);
            (void)sftp_closedir(d);
            return -1;
        }
        (void)sftp_closedir(d);
    }
    return 0;
}

static int l_session_glob(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    const char *pattern = luaL_checkstring(L, 2);
    struct strv cur = {NULL, 0, 0};
    struct strv next = {NULL, 0, 0};
    char *pat = NULL;
    char *save = NULL;
    char *comp = NULL;
    char err[ERRLEN];
    int literal_tail = 0;
    size_t i = 0;

    luaL_argcheck(L, pattern[0] != '\0', 2, "empty pattern");
    if (!sftp_ready(s))
        return dj_pushfail(L, "ssh.glob: %s: needs SFTP: %s", s->where,
                           s->sftp_why);
    /* From here to the end, only C memory: pushed after it is freed. */
    pat = dj_xstrdup(pattern);
    strv_push(&cur, dj_xstrdup(pattern[0] == '/' ? "/" : ""));
    for (comp = strtok_r(pat, "/", &save); comp != NULL;
         comp = strtok_r(NULL, "/", &save)) {
        int magic = has_magic(comp);
        literal_tail = !magic;
        if (glob_step(s, comp, magic, &cur, &next, err) < 0)
            goto fail;
        strv_free(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    /* Components after the last wildcard were appended unchecked. */
    for (i = 0; i < cur.n && literal_tail; i++) {
        sftp_attributes a = sftp_lstat(s->sftp, cur.v[i]);
        if (a != NULL) {
            sftp_attributes_free(a);
            strv_push(&next, cur.v[i]);
        } else {
            int code = sftp_get_error(s->sftp);
            if (code != SSH_FX_NO_SUCH_FILE && code != SSH_FX_NO_SUCH_PATH &&
                code != SSH_FX_PERMISSION_DENIED && code != SSH_FX_FAILURE) {
                sftp_errmsg(s, err, "glob", "cannot stat", cur.v[i]);
                goto fail;
            }
            free(cur.v[i]);
        }
        cur.v[i] = NULL;
    }
    if (literal_tail) {
        free(cur.v);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    free(pat);
    pat = NULL;
    if (cur.n > 1)
        qsort(cur.v, cur.n, sizeof *cur.v, cmp_str);
    /* Lua may raise (memory) while the list is C-owned: push it under
     * lua_pcall, free it, and only then re-raise. */
    lua_pushcfunction(L, push_strv);
    lua_pushlightuserdata(L, &cur);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        strv_free(&cur);
        return lua_error(L);
    }
    strv_free(&cur);
    return 1;
fail:
    free(pat);
    strv_free(&cur);
    strv_free(&next);
    return dj_pushfail(L, "%s", err);
}

static int l_session_stat(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    const char *path = luaL_checkstring(L, 2);
    sftp_attributes a = NULL;
    const char *type = "other";
    uint64_t size = 0;
    unsigned mode = 0;
    char err[ERRLEN];

    if (!sftp_ready(s))
        return dj_pushfail(L, "ssh.stat: %s: needs SFTP: %s", s->where,
                           s->sftp_why);
    a = sftp_stat(s->sftp, path);
    if (a == NULL) {
        sftp_errmsg(s, err, "stat", "cannot stat", path);
        return dj_pushfail(L, "%s", err);
    }
    if (a->type == SSH_FILEXFER_TYPE_REGULAR)
        type = "file";
    else if (a->type == SSH_FILEXFER_TYPE_DIRECTORY)
        type = "dir";
    else if (a->type == SSH_FILEXFER_TYPE_SYMLINK)
        type = "link";
    size = a->size;
    mode = a->permissions & 07777;
    sftp_attributes_free(a);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)mode);
    lua_setfield(L, -2, "mode");
    return 1;
}

/* ---------------------------------------------------- small methods -- */

static int l_session_fingerprint(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    lua_pushstring(L, s->fingerprint);
    return 1;
}

static int l_session_auth_method(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    lua_pushstring(L, s->auth_method);
    return 1;
}

/* session:timing() -> { banner =, kex =, auth = } in proc.now() seconds:
 * when connect saw the banner (banner_timeout only), finished the key
 * exchange, and was logged in. */
static int l_session_timing(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
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

/* session:sftp() -> true | nil, why */
static int l_session_sftp(lua_State *L)
{
    struct ssh_ud *s = check_session(L, 1);
    if (!sftp_ready(s))
        return dj_pushfail(L, "%s", s->sftp_why);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"sftp", l_session_sftp},
    {"exec", l_session_exec},
    {"env_probe", l_session_env_probe},
    {"put", l_session_put},
    {"put_data", l_session_put_data},
    {"get", l_session_get},
    {"glob", l_session_glob},
    {"stat", l_session_stat},
    {"fingerprint", l_session_fingerprint},
    {"auth_method", l_session_auth_method},
    {"timing", l_session_timing},
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

/*
** ssh.keygen(path) -> "ssh-ed25519 <base64>" | nil, msg
** A new ed25519 key pair: the private key is written to `path` (created,
** mode 0600, never over an existing file or through a symlink), the
** public key is returned as an authorized_keys line without comment.
*/
static int l_ssh_keygen(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    ssh_key key = NULL;
    char *priv = NULL;
    char *pub = NULL;
    char line[512];
    char why[256] = "";
    size_t len = 0;
    size_t off = 0;
    int fd = -1;

    line[0] = '\0';
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        snprintf(why, sizeof why, "cannot generate an ed25519 key");
        goto done;
    }
    if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &priv) != SSH_OK ||
        ssh_pki_export_pubkey_base64(key, &pub) != SSH_OK) {
        snprintf(why, sizeof why, "cannot export the key");
        goto done;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
        goto done;
    }
    len = strlen(priv);
    while (off < len) {
        ssize_t n = write(fd, priv + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, sizeof why, "%s: %s", path,
                     n < 0 ? strerror(errno) : "short write");
            goto done;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    snprintf(line, sizeof line, "ssh-ed25519 %s", pub);
done:
    if (fd >= 0) {
        close(fd);
        (void)unlink(path);
    }
    if (priv != NULL) {
        explicit_bzero(priv, strlen(priv));
        ssh_string_free_char(priv);
    }
    if (pub != NULL)
        ssh_string_free_char(pub);
    ssh_key_free(key);
    if (line[0] == '\0')
        return dj_pushfail(L, "ssh.keygen: %s", why);
    lua_pushstring(L, line);
    return 1;
}

static const luaL_Reg ssh_funcs[] = {
    {"connect", l_ssh_connect},
    {"wait_banner", l_ssh_wait_banner},
    {"keygen", l_ssh_keygen},
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
