/*
** runtime/l_ssh.h - private to djinn.ssh (l_ssh.c and l_ssh_*.c): the
** session userdata and the helpers its files share. Not an API: nothing
** outside runtime/l_ssh*.c includes it. The module's API, error rules and
** ownership rules are described at the top of l_ssh.c.
**
**   l_ssh.c         module open, session object, connect + auth, helpers
**   l_ssh_exec.c    exec channels (exec, env_probe)
**   l_ssh_xfer.c    SFTP/SCP transfer (put, put_data, get, glob, stat, sftp)
**   l_ssh_net.c     sockets: wait_banner, connect's banner_timeout
**   l_ssh_keygen.c  keygen
*/
#ifndef DJINN_L_SSH_H
#define DJINN_L_SSH_H

#include <sys/types.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "util.h"

#define SESSION_MT "djinn.ssh.session"
#define ERRLEN 768
#define XFER_CHUNK 32768 /* SFTP packet payload and read size; stdin chunk */
#define POLL_MS 100      /* exec: cancel/timeout check interval */

enum { SFTP_UNTRIED, SFTP_OK, SFTP_NONE };

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
    char errtext[300]; /* lssh_errtext's copy */
    const char *auth_method;
    pid_t owner; /* the process that connected (see release_session) */
};

/* l_ssh.c: helpers every part uses. */

/* Format a message into an ERRLEN buffer (truncation is acceptable). */
void lssh_errf(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* libssh's last error; it can be empty when the peer just went away. */
const char *lssh_errtext(struct ssh_ud *s);
/* The open, idle session at idx; raises when closed or busy (misuse). */
struct ssh_ud *lssh_check_session(lua_State *L, int idx);
/* Bound every blocking libssh step that follows; 0 or -1. */
int lssh_set_timeout(struct ssh_ud *s, double secs);
/* Process incoming packets for up to ms milliseconds; 0 or -1. */
int lssh_wait_packets(struct ssh_ud *s, int ms);
/* Release exec's channel; abort: stop the command first (TERM, KILL). */
void lssh_release_channel(struct ssh_ud *s, int abort);
/* qsort comparator for an array of C strings. */
int lssh_cmp_str(const void *a, const void *b);

/* l_ssh_net.c */
int lssh_connect_banner(struct ssh_ud *s, const char *host, lua_Integer port,
                        double limit, char *err);
int lssh_wait_banner(lua_State *L);

/* l_ssh_exec.c */
int lssh_session_exec(lua_State *L);
int lssh_session_env_probe(lua_State *L);

/* l_ssh_xfer.c */
int lssh_session_put(lua_State *L);
int lssh_session_put_data(lua_State *L);
int lssh_session_get(lua_State *L);
int lssh_session_glob(lua_State *L);
int lssh_session_stat(lua_State *L);
int lssh_session_sftp(lua_State *L);

/* l_ssh_keygen.c */
int lssh_keygen(lua_State *L);

#endif /* DJINN_L_SSH_H */
