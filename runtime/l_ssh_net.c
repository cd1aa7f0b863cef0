/*
** l_ssh_net.c - networking helpers of djinn.ssh: ssh.wait_banner, and
** connect's banner_timeout (TCP connect + wait for "SSH-", then the socket
** goes to libssh).
** (djinn.ssh; the module's API and ownership rules are at the top of
** l_ssh.c, the shared session internals in l_ssh.h).
*/
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "l_ssh.h"

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

int lssh_wait_banner(lua_State *L)
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
    lssh_errf(err,
              "ssh.wait_banner: %s:%d: no SSH banner within %g s (last "
              "attempt: %s)",
              host, (int)port, timeout, last);
    return dj_pushfail(L, "%s", err);
}

/* ----------------------------------------------- connect_banner -- */

/*
** banner_timeout: connect and wait for the "SSH-" banner ourselves, leaving
** it unread, then hand the socket to libssh (SSH_OPTIONS_FD; libssh 0.10
** does not always close such a socket: see release_session). A boot wait
** then fails fast while the guest is not listening, yet the key exchange
** keeps the longer `timeout`, and the banner is seen on the one connection
** that logs in: no separate poll.
*/
int lssh_connect_banner(struct ssh_ud *s, const char *host, lua_Integer port,
                        double limit, char *err)
{
    struct addrinfo *res = NULL;
    const struct addrinfo *ai = NULL;
    char why[256] = "no address";
    double deadline = dj_now() + limit;
    int fd = -1;
    int rc = resolve_tcp(host, port, &res);

    if (rc != 0) {
        lssh_errf(err, "ssh.connect: %s: %s", s->where, gai_strerror(rc));
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
        lssh_errf(err, "ssh.connect: %s: no SSH banner within %g s (%s)",
                  s->where, limit, why);
        return -1;
    }
    s->t_banner = dj_now();
    s->fd = fd; /* closed by release_session, after ssh_free */
    if (ssh_options_set(s->ssh, SSH_OPTIONS_FD, &fd) < 0) {
        lssh_errf(err, "ssh.connect: %s: bad option: %s", s->where,
                  lssh_errtext(s));
        return -1;
    }
    return 0;
}
