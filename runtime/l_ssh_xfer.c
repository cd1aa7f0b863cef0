/*
** l_ssh_xfer.c - file transfer of djinn.ssh: session:put, put_data, get
** (SFTP, or SCP when the server has no SFTP subsystem), glob, stat, sftp.
** (djinn.ssh; the module's API and ownership rules are at the top of
** l_ssh.c, the shared session internals in l_ssh.h).
*/
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "l_ssh.h"

#define GLOB_MAX 100000 /* glob results */

/* -------------------------------------------------------------- sftp -- */

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
        text = lssh_errtext(s);
    lssh_errf(err, "ssh.%s: %s: %s %s: %s", fn, s->where, what, path, text);
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
    if (lssh_set_timeout(s, s->io_timeout) < 0) {
        snprintf(s->sftp_why, sizeof s->sftp_why, "%s", lssh_errtext(s));
        return 0;
    }
    s->sftp = sftp_new(s->ssh);
    if (s->sftp == NULL) {
        snprintf(s->sftp_why, sizeof s->sftp_why, "no SFTP subsystem: %s",
                 lssh_errtext(s));
        return 0;
    }
    rc = sftp_init(s->sftp);
    if (rc != SSH_OK) {
        snprintf(s->sftp_why, sizeof s->sftp_why,
                 "SFTP subsystem did not start: %s", lssh_errtext(s));
        sftp_free(s->sftp);
        s->sftp = NULL;
        return 0;
    }
    s->sftp_state = SFTP_OK;
    return 1;
}

/* session:sftp() -> true | nil, why */
int lssh_session_sftp(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
    if (!sftp_ready(s))
        return dj_pushfail(L, "%s", s->sftp_why);
    lua_pushboolean(L, 1);
    return 1;
}

/* --------------------------------------------------------------- scp -- */

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

    if (lssh_set_timeout(s, s->io_timeout) < 0)
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
    lssh_errf(err, "ssh.%s: %s: running '%s': %s", fn, s->where, cmd,
              lssh_errtext(s));
    if (chan != NULL) {
        (void)ssh_channel_close(chan);
        ssh_channel_free(chan);
    }
    return -1;
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
            lssh_errf(err, "ssh.%s: reading the local file: %s", fn,
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
            lssh_errf(err, "ssh.%s: the progress callback raised", fn);
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
        if (lssh_wait_packets(s, (int)(left * 1000) + 1) < 0)
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
        lssh_errf(err, "ssh.%s: %s: %s: the remote path must name a file", fn,
                  s->where, remote);
        return -1;
    }
    if (sh_quote(quoted, sizeof quoted, remote) < 0) {
        lssh_errf(err, "ssh.%s: %s: path too long", fn, remote);
        return -1;
    }
    /* "scp -t PATH" writes to PATH, or into it when PATH is a directory;
     * SFTP refuses the latter, and so do we. */
    snprintf(cmd, sizeof cmd, "test -d %s", quoted);
    rc = run_quiet(s, fn, cmd, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        lssh_errf(err, "ssh.%s: %s: cannot create %s: Is a directory", fn,
                  s->where, remote);
        return -1;
    }
    if (lssh_set_timeout(s, s->io_timeout) < 0)
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
            lssh_errf(err, "ssh.%s: reading the local file: %s", fn,
                      strerror(errno));
            goto fail;
        }
        if ((uint64_t)n > size - sent || (n == 0 && sent < size)) {
            lssh_errf(err,
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
        lssh_errf(err, "ssh.%s: %s: '%s' exited with %d", fn, s->where, cmd,
                  rc);
        return -1;
    }
    return 0;
ssh_fail:
    lssh_errf(err, "ssh.%s: %s: SCP upload of %s failed: %s (%s)", fn, s->where,
              remote, lssh_errtext(s), s->sftp_why);
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
        lssh_errf(err,
                  "ssh.get: %s: %s: %lld bytes is larger than the limit of "
                  "%lld bytes",
                  s->where, remote, size, max);
    else
        lssh_errf(err,
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

    if (lssh_set_timeout(s, s->io_timeout) < 0)
        goto ssh_fail;
    scp = ssh_scp_new(s->ssh, SSH_SCP_READ, remote);
    if (scp == NULL)
        goto ssh_fail;
    rc = ssh_scp_init(scp);
    if (rc != SSH_OK)
        goto ssh_fail;
    rc = ssh_scp_pull_request(scp);
    if (rc == SSH_SCP_REQUEST_WARNING) {
        lssh_errf(err, "ssh.get: %s: %s", s->where,
                  ssh_scp_request_get_warning(scp));
        goto fail;
    }
    if (rc == SSH_ERROR)
        goto ssh_fail;
    if (rc != SSH_SCP_REQUEST_NEWFILE) {
        lssh_errf(err, "ssh.get: %s: %s: not a regular file", s->where, remote);
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
            lssh_errf(err,
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
            lssh_errf(err, "ssh.get: writing the local file: %s",
                      strerror(errno));
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
    lssh_errf(err, "ssh.get: %s: SCP download of %s failed: %s (%s)", s->where,
              remote, lssh_errtext(s), s->sftp_why);
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

int lssh_session_put(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
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
        lssh_errf(err, "ssh.put: %s: %s", local, strerror(errno));
        rc = -1;
    } else if (!S_ISREG(st.st_mode)) {
        lssh_errf(err, "ssh.put: %s: not a regular file", local);
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

int lssh_session_put_data(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
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
        lssh_errf(err, "ssh.get: %s: %s: not a regular file", s->where, remote);
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
            lssh_errf(err, "ssh.get: writing the local file: %s",
                      strerror(errno));
            goto fail;
        }
        if (progress_tick(prog, got, total) < 0) {
            lssh_errf(err, "ssh.get: the progress callback raised");
            goto fail;
        }
    }
    (void)sftp_close(f); /* read-only: nothing to lose */
    return 0;
fail:
    (void)sftp_close(f);
    return -1;
}

int lssh_session_get(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
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
        lssh_errf(err, "ssh.get: %s: chmod: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (close(fd) < 0 && rc == 0) {
        lssh_errf(err, "ssh.get: %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, local) < 0) {
        lssh_errf(err, "ssh.get: %s: %s", local, strerror(errno));
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
                    lssh_errf(err,
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

int lssh_session_glob(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
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
        qsort(cur.v, cur.n, sizeof *cur.v, lssh_cmp_str);
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

int lssh_session_stat(lua_State *L)
{
    struct ssh_ud *s = lssh_check_session(L, 1);
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
