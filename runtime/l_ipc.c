/*
** l_ipc.c - djinn.ipc: file locks and a one-shot Unix-socket receiver,
** for the warm VM snapshot cache (issue 15).
**
** Lua API (operational failures return nil, msg; misuse raises):
**   ipc.lock(path [, wait_s = 0 [, mode = "exclusive"]])
**                                -> lock | nil, msg [, "busy"]
**       A flock(2) on path (created 0600 when missing, never through a
**       symbolic link), exclusive or "shared" (many shared holders, no
**       exclusive one: the image cache's "in use" marks, issue 16). Held
**       by another process: retried every 20 ms for up to wait_s
**       seconds, then nil, "ipc.lock: PATH: held by another process",
**       "busy". The kernel releases it when the process dies, so a killed
**       holder never leaves a stale lock.
**   lock:unlock()                -> true (also __close and __gc)
**   ipc.listen_unix(path)        -> listener | nil, msg
**       A SOCK_STREAM socket bound to path (which must not exist; the
**       directory's permissions decide who may connect), listening for
**       one connection.
**   listener:receive(dst, stall_s [, pid [, max]]) -> bytes | nil, msg
**       Accepts one connection (waiting up to stall_s) and copies what it
**       sends, to EOF, into the new file dst (O_EXCL, 0600), then fsyncs
**       it. stall_s also bounds every wait for more bytes. pid: the
**       peer's pid (SO_PEERCRED) must be this one, or the connection is
**       refused. max: more bytes than this is an error. On any failure dst
**       is removed. QEMU's `migrate` writes a VM's state so, with no file
**       name in a shell command (exec:) and no fd passing over QMP.
**   listener:close()             -> true: closes and unlinks the socket
**                                   (also __close and __gc)
**
** Ownership: each C resource (a lock's fd, the listener's fd and path, the
** accepted connection and the destination file while receiving) lives in
** its userdata from the moment it is acquired, so a raise leaks nothing.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "util.h"

#define LOCK_MT "djinn.ipc.lock"
#define LISTENER_MT "djinn.ipc.listener"
#define COPY_CHUNK 65536

/* owner: the process that made it. In a proc.spawn{fn =} child, what it
** inherited is its parent's (the fds were closed at the fork and their
** numbers may be reused): released there as forgotten, never closed or
** unlinked. */
struct lock {
    int fd;
    pid_t owner;
};

struct listener {
    int fd;
    int conn;       /* the accepted connection while receiving */
    int out;        /* the destination file while receiving */
    char path[108]; /* sizeof(sun_path) */
    char dst[4096]; /* removed by __gc when a raise left it */
    pid_t owner;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* --- locks -------------------------------------------------------------- */

static int lock_release(lua_State *L)
{
    struct lock *k = (struct lock *)luaL_checkudata(L, 1, LOCK_MT);

    if (k->owner != getpid())
        k->fd = -1;
    close_fd(&k->fd); /* closing the only fd drops the flock */
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ipc_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    static const char *const modes[] = {"exclusive", "shared", NULL};
    int how =
        luaL_checkoption(L, 3, "exclusive", modes) == 1 ? LOCK_SH : LOCK_EX;
    double deadline;
    struct lock *k;

    luaL_argcheck(L, wait >= 0 && wait <= 86400, 2, "0 .. 86400 seconds");
    k = (struct lock *)lua_newuserdatauv(L, sizeof(*k), 0);
    k->fd = -1;
    k->owner = getpid();
    luaL_setmetatable(L, LOCK_MT);
    k->fd =
        open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (k->fd < 0)
        return dj_pushfail(L, "ipc.lock: %s: %s", path, strerror(errno));
    deadline = now_s() + wait;
    for (;;) {
        struct timespec ts = {0, 20 * 1000 * 1000};

        if (flock(k->fd, how | LOCK_NB) == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            int e = errno;

            close_fd(&k->fd);
            return dj_pushfail(L, "ipc.lock: %s: %s", path, strerror(e));
        }
        if (now_s() >= deadline)
            break;
        nanosleep(&ts, NULL);
    }
    close_fd(&k->fd);
    lua_pushnil(L);
    lua_pushfstring(L, "ipc.lock: %s: held by another process", path);
    lua_pushliteral(L, "busy");
    return 3;
}

/* --- the Unix-socket receiver ----------------------------------------------
 */

static struct listener *checklistener(lua_State *L)
{
    return (struct listener *)luaL_checkudata(L, 1, LISTENER_MT);
}

/* Drop a half-received file. */
static void drop_dst(struct listener *l)
{
    close_fd(&l->out);
    if (l->dst[0] != '\0') {
        unlink(l->dst);
        l->dst[0] = '\0';
    }
}

static int listener_close(lua_State *L)
{
    struct listener *l = checklistener(L);

    if (l->owner != getpid()) {
        l->fd = l->conn = l->out = -1;
        l->dst[0] = '\0';
    }
    close_fd(&l->conn);
    drop_dst(l);
    if (l->fd >= 0) {
        close_fd(&l->fd);
        unlink(l->path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ipc_listen_unix(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    struct sockaddr_un sa;
    struct listener *l;

    if (len == 0 || len >= sizeof(sa.sun_path))
        return dj_pushfail(L,
                           "ipc.listen_unix: %s: a socket path must be 1 to "
                           "%d bytes long",
                           path, (int)sizeof(sa.sun_path) - 1);
    l = (struct listener *)lua_newuserdatauv(L, sizeof(*l), 0);
    l->fd = l->conn = l->out = -1;
    l->dst[0] = '\0';
    l->owner = getpid();
    memcpy(l->path, path, len + 1);
    luaL_setmetatable(L, LISTENER_MT);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len + 1);
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return dj_pushfail(L, "ipc.listen_unix: socket: %s", strerror(errno));
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        close_fd(&l->fd); /* not bound: nothing to unlink */
        return dj_pushfail(L, "ipc.listen_unix: %s: %s", path, strerror(e));
    }
    if (listen(l->fd, 1) < 0) {
        int e = errno;

        close_fd(&l->fd);
        unlink(path);
        return dj_pushfail(L, "ipc.listen_unix: %s: %s", path, strerror(e));
    }
    return 1;
}

/* Wait until fd is readable: 1, 0 on timeout, -1 with errno. */
static int wait_in(int fd, double timeout)
{
    double deadline = now_s() + timeout;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        double left = deadline - now_s();
        int rc;

        if (left <= 0)
            return 0;
        rc = poll(&p, 1, (int)(left * 1000) + 1);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int l_listener_receive(lua_State *L)
{
    struct listener *l = checklistener(L);
    size_t dlen;
    const char *dst = luaL_checklstring(L, 2, &dlen);
    double stall = luaL_checknumber(L, 3);
    lua_Integer pid = luaL_optinteger(L, 4, 0);
    lua_Integer max = luaL_optinteger(L, 5, 0);
    long long total = 0;
    char *buf;
    int rc;

    luaL_argcheck(L, stall > 0 && stall <= 86400, 3, "0 .. 86400 seconds");
    luaL_argcheck(L, dlen < sizeof(l->dst), 2, "path too long");
    if (l->fd < 0)
        return dj_pushfail(L, "ipc.receive: the listener is closed");
    buf = (char *)lua_newuserdatauv(L, COPY_CHUNK, 0);
    rc = wait_in(l->fd, stall);
    if (rc <= 0)
        return dj_pushfail(L, "ipc.receive: %s: %s", l->path,
                           rc == 0 ? "nobody connected in time"
                                   : strerror(errno));
    l->conn = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (l->conn < 0)
        return dj_pushfail(L, "ipc.receive: %s: accept: %s", l->path,
                           strerror(errno));
    if (pid > 0) {
        struct ucred cred;
        socklen_t clen = sizeof(cred);

        if (getsockopt(l->conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
            (lua_Integer)cred.pid != pid) {
            close_fd(&l->conn);
            return dj_pushfail(L,
                               "ipc.receive: %s: the connection is not "
                               "from pid %d",
                               l->path, (int)pid);
        }
    }
    l->out =
        open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (l->out < 0) {
        int e = errno;

        close_fd(&l->conn);
        return dj_pushfail(L, "ipc.receive: %s: %s", dst, strerror(e));
    }
    memcpy(l->dst, dst, dlen + 1);
    for (;;) {
        ssize_t n, off;

        rc = wait_in(l->conn, stall);
        if (rc <= 0) {
            int e = errno;

            drop_dst(l);
            close_fd(&l->conn);
            if (rc == 0)
                return dj_pushfail(L,
                                   "ipc.receive: %s: no byte for %f s "
                                   "after %I bytes",
                                   l->path, (lua_Number)stall,
                                   (lua_Integer)total);
            return dj_pushfail(L, "ipc.receive: %s: %s", l->path, strerror(e));
        }
        n = read(l->conn, buf, COPY_CHUNK);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            int e = errno;

            if (n == 0)
                break;
            drop_dst(l);
            close_fd(&l->conn);
            return dj_pushfail(L, "ipc.receive: %s: %s", l->path, strerror(e));
        }
        if (max > 0 && total + n > max) {
            drop_dst(l);
            close_fd(&l->conn);
            return dj_pushfail(L, "ipc.receive: %s: more than %I bytes",
                               l->path, max);
        }
        for (off = 0; off < n;) {
            ssize_t w = write(l->out, buf + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                int e = errno;

                drop_dst(l);
                close_fd(&l->conn);
                return dj_pushfail(L, "ipc.receive: %s: %s", dst, strerror(e));
            }
            off += w;
        }
        total += n;
    }
    close_fd(&l->conn);
    if (fsync(l->out) < 0 || close(l->out) < 0) {
        int e = errno;

        l->out = -1;
        drop_dst(l);
        return dj_pushfail(L, "ipc.receive: %s: %s", dst, strerror(e));
    }
    l->out = -1;
    l->dst[0] = '\0'; /* complete: the caller owns it now */
    lua_pushinteger(L, (lua_Integer)total);
    return 1;
}

static const luaL_Reg lock_methods[] = {
    {"unlock", lock_release},
    {NULL, NULL},
};

static const luaL_Reg listener_methods[] = {
    {"receive", l_listener_receive},
    {"close", listener_close},
    {NULL, NULL},
};

static const luaL_Reg ipc_funcs[] = {
    {"lock", l_ipc_lock},
    {"listen_unix", l_ipc_listen_unix},
    {NULL, NULL},
};

static void newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc)
{
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
}

int luaopen_djinn_ipc(lua_State *L)
{
    newclass(L, LOCK_MT, lock_methods, lock_release);
    newclass(L, LISTENER_MT, listener_methods, listener_close);
    luaL_newlib(L, ipc_funcs);
    return 1;
}
