/*
** keeper.c - djinn-keeper, the keeper program of proc.spawn{reap = true}
** (runtime/l_proc.c; issue 10; a program of its own since issue 16).
**
**   djinn-keeper inherit -- ARGV...    the job inherits our environment
**   djinn-keeper env [PATH] -- ARGV... our environment is the job's own;
**                                      PATH: the runner's, to seek the
**                                      job's program on (none: not given)
**
** The spawner starts it with vfork and exec, so that the runner's memory
** is never copied for it (it was a fork of the runner: every page the
** runner wrote after that fork was a copy-on-write fault, and the fork
** copied its page tables). It comes with fds 0-2 the job's, fd 3 the
** status pipe (proc_spawn.h; not close-on-exec, to outlive this exec),
** its own process group, PDEATHSIG = TERM when the runner asked for one,
** the job's working directory, every handler SIG_DFL and every signal
** blocked. The job's program is sought on the runner's PATH, as it
** always was. (The job's environment comes as ours, never on the command
** line: anyone may read a command line, and it may hold secrets.)
**
** It sets the status pipe close-on-exec (the job's exec closes it: EOF),
** becomes a child subreaper and starts the job; the job's exec failing is
** reported on the status pipe as {SPAWN_EXEC, errno}. Run by hand
** (no fd 3): a usage line, exit 2.
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc_spawn.h"

extern char **environ;

#define STATUS_FD 3
#define KEEPER_GRACE_MS 1000
#define KEEPER_MAX_KIDS 512

/*
** What the keeper does. It is a child subreaper (PR_SET_CHILD_SUBREAPER)
** leading its own process group; it starts the job (leading another
** group) and waits with every signal blocked (sigwaitinfo: no handler
** ever runs). Every process the job starts stays its descendant: orphans
** are reparented to it however they detach ((cmd &), setsid, nohup,
** double forks). The keeper
**   - reaps orphans that exit while the job runs;
**   - when the job exits: kills every remaining descendant (the sweep)
**     and exits with the job's status (killed by a signal: it raises the
**     same signal on itself, with core dumps off);
**   - on TERM, INT or HUP (terminate, or the runner's death through
**     PDEATHSIG = TERM): sends TERM and CONT to the job's process group,
**     waits up to KEEPER_GRACE_MS for the job, then sweeps;
**   - on QUIT (terminate's escalation, child:kill("KILL")): sweeps now;
**   - forwards USR1, USR2, ALRM, CONT and WINCH to the job's group.
** The sweep lists the keeper's children (/proc/thread-self/children, or
** a scan of /proc/N/stat without it), SIGKILLs each, and its process
** group when it leads one (a group a descendant made holds only
** descendants), reaps, and repeats until waitpid says no child is left
** (the children of a killed process come to the keeper), giving up after
** SPAWN_KEEPER_GIVEUP_MS. It never signals its own group, the runner's,
** or -1. Once the job runs: raw open/read/getdents64/kill/waitpid, no
** malloc or stdio.
*/

/* The layout of a getdents64 record (only read through a pointer). */
struct keeper_dirent {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[256];
};

static long long keeper_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Decimal numbers separated by anything else, from fd into out. */
static int read_pids(int fd, pid_t *out, int max)
{
    char buf[1024];
    long cur = -1;
    int n = 0;

    for (;;) {
        ssize_t got = read(fd, buf, sizeof(buf));
        ssize_t i;

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        for (i = 0; i < got; i++) {
            if (buf[i] >= '0' && buf[i] <= '9' && cur < 100000000) {
                cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
            } else if (cur >= 0) {
                if (n < max)
                    out[n++] = (pid_t)cur;
                cur = -1;
            }
        }
    }
    if (cur >= 0 && n < max)
        out[n++] = (pid_t)cur;
    return n;
}

/* The parent of the process /proc/<name>, from its stat; -1 if unknown. */
static pid_t stat_ppid(const char *name)
{
    char path[64];
    char buf[512];
    size_t len = strlen(name);
    const char *p = NULL;
    ssize_t n;
    long ppid = 0;
    int fd;

    if (len > 20)
        return -1;
    memcpy(path, "/proc/", 6);
    memcpy(path + 6, name, len);
    memcpy(path + 6 + len, "/stat", 6);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold ')', take the last one */
    p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
        return -1;
    for (p += 4; *p >= '0' && *p <= '9'; p++)
        ppid = ppid * 10 + (*p - '0');
    return (pid_t)ppid;
}

/* Children of self by scanning /proc (no children file); -1 if no /proc. */
static int scan_children(pid_t self, pid_t *out, int max)
{
    long long buf[512]; /* 4 KiB, 8-byte aligned for the records */
    int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int n = 0;

    if (fd < 0)
        return -1;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        long off = 0;

        if (got <= 0)
            break;
        while (off < got) {
            const struct keeper_dirent *d =
                (const struct keeper_dirent *)((char *)buf + off);
            pid_t pid = 0;
            const char *q = NULL;

            off += d->d_reclen;
            if (d->d_name[0] < '1' || d->d_name[0] > '9')
                continue;
            for (q = d->d_name; *q >= '0' && *q <= '9'; q++)
                pid = pid * 10 + (*q - '0');
            if (*q == '\0' && n < max && stat_ppid(d->d_name) == self)
                out[n++] = pid;
        }
    }
    close(fd);
    return n;
}

/* The keeper's (single-threaded) children; -1 when they cannot be read. */
static int list_children(pid_t self, pid_t *out, int max)
{
    int fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
    int n;

    if (fd < 0)
        return scan_children(self, out, max);
    n = read_pids(fd, out, max);
    close(fd);
    return n;
}

/* Reap what has exited (the job's status into *status, *done = 1). */
static int keeper_reap(pid_t job, int *status, int *done)
{
    int st = 0;

    for (;;) {
        pid_t r = waitpid(-1, &st, WNOHANG);

        if (r > 0) {
            if (r == job) {
                *status = st;
                *done = 1;
            }
            continue;
        }
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        return -1; /* ECHILD: no child left */
    }
}

/* Kill and reap every descendant (see above). */
static void keeper_sweep(pid_t self, pid_t job, int *status, int *done)
{
    pid_t kids[KEEPER_MAX_KIDS];
    long long start = keeper_ms();
    struct timespec tick = {0, 20 * 1000 * 1000};
    sigset_t chld;
    int n, i;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    while (keeper_reap(job, status, done) == 0) {
        n = list_children(self, kids, KEEPER_MAX_KIDS);
        for (i = 0; i < n; i++) {
            if (kids[i] <= 1 || kids[i] == self)
                continue;
            if (getpgid(kids[i]) == kids[i])
                kill(-kids[i], SIGKILL);
            kill(kids[i], SIGKILL);
        }
        if (keeper_ms() - start > SPAWN_KEEPER_GIVEUP_MS)
            return;
        /* until a child changes state, or 20 ms (just reparented ones) */
        (void)sigtimedwait(&chld, NULL, &tick);
    }
}

/* Exit as the job did: its code, or its signal (no core dump). */
static void keeper_exit(int status)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit nocore = {0, 0};
        struct sigaction sa;
        sigset_t one;

        (void)setrlimit(RLIMIT_CORE, &nocore);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(sig, &sa, NULL);
        sigemptyset(&one);
        sigaddset(&one, sig);
        (void)sigprocmask(SIG_UNBLOCK, &one, NULL);
        (void)kill(getpid(), sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

/*
** The keeper starts the job with vfork: the job only makes system calls
** until it execs (every handler is SIG_DFL in the keeper, and the mask
** full until just before the exec, so no handler runs on the shared
** memory). A function of its own, so that no local of main lives across
** the vfork. Returns the job's pid, or -1 (errno).
*/
static pid_t keeper_start_job(char **argv, char **envp, int fd3, pid_t self)
{
    sigset_t none;
    pid_t job = vfork();

    if (job != 0)
        return job;
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        spawn_fail(fd3, SPAWN_SETUP, errno);
    if (getppid() != self)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    spawn_exec(argv, envp, fd3);
    return -1; /* not reached */
}

/*
** The job's argv and its program's search path from ours (see above);
** *search: NULL for "inherit" (the job's environment and search are
** ours), else the runner's PATH ("" for none given). 0, or -1.
*/
static int parse_args(int argc, char **argv, const char **search,
                      char ***job_argv)
{
    int sep = 2;

    if (argc < 4)
        return -1;
    *search = NULL;
    if (strcmp(argv[1], "env") == 0) {
        *search = "";
        if (strcmp(argv[2], "--") != 0) {
            *search = argv[2];
            sep = 3;
        }
    } else if (strcmp(argv[1], "inherit") != 0) {
        return -1;
    }
    if (sep + 1 >= argc || strcmp(argv[sep], "--") != 0)
        return -1;
    *job_argv = argv + sep + 1;
    return 0;
}

int main(int argc, char **argv)
{
    static const int forward[] = {SIGUSR1, SIGUSR2, SIGALRM, SIGCONT, SIGWINCH};
    pid_t self = getpid();
    pid_t job;
    char **envp = NULL, **job_argv = NULL;
    char *path_env[2] = {NULL, NULL};
    const char *search = NULL;
    sigset_t waitset;
    long long deadline = -1;
    int status = 0, done = 0;
    int fd;
    size_t i;

    if (fcntl(STATUS_FD, F_GETFD) < 0) {
        fputs("djinn-keeper: the keeper of djinn-lua's jobs (proc.spawn{reap "
              "= true}), started by djinn-lua, not by hand\n",
              stderr);
        return 2;
    }
    if (parse_args(argc, argv, &search, &job_argv) != 0)
        spawn_fail(STATUS_FD, SPAWN_SETUP, EINVAL);
    if (search != NULL) {
        /* Our environment is the job's; the program is sought on the
        ** runner's PATH (execvpe searches the caller's own). */
        size_t len = strlen(search);

        envp = environ;
        if (len > 0) {
            path_env[0] = malloc(len + 6);
            if (path_env[0] == NULL)
                spawn_fail(STATUS_FD, SPAWN_SETUP, ENOMEM);
            memcpy(path_env[0], "PATH=", 5);
            memcpy(path_env[0] + 5, search, len + 1);
        }
        environ = path_env;
    }
    if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) < 0 ||
        prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        spawn_fail(STATUS_FD, SPAWN_SETUP, errno);
    /* The mask stays full (it was when the spawner exec'd us). */
    job = keeper_start_job(job_argv, envp, STATUS_FD, self);
    if (job < 0)
        spawn_fail(STATUS_FD, SPAWN_SETUP, errno);
    setpgid(job, job); /* also here: no race with kill(-job) */
    /* The job holds the pipes now; the keeper keeps none of them. */
    close(STATUS_FD);
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    sigaddset(&waitset, SIGTERM);
    sigaddset(&waitset, SIGINT);
    sigaddset(&waitset, SIGHUP);
    sigaddset(&waitset, SIGQUIT);
    for (i = 0; i < sizeof(forward) / sizeof(forward[0]); i++)
        sigaddset(&waitset, forward[i]);
    for (;;) {
        int sig;

        if (deadline < 0) {
            sig = sigwaitinfo(&waitset, NULL);
        } else {
            long long left = deadline - keeper_ms();
            struct timespec ts;

            if (left <= 0)
                break;
            ts.tv_sec = (time_t)(left / 1000);
            ts.tv_nsec = (long)(left % 1000) * 1000000;
            sig = sigtimedwait(&waitset, NULL, &ts);
            if (sig < 0 && errno == EAGAIN)
                break; /* the grace is over */
        }
        if (sig < 0)
            continue;
        if (sig == SIGCHLD) {
            (void)keeper_reap(job, &status, &done);
            if (done)
                break;
        } else if (sig == SIGQUIT) {
            break;
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (deadline < 0) {
                kill(-job, SIGTERM);
                kill(-job, SIGCONT); /* a stopped job cannot act on TERM */
                deadline = keeper_ms() + KEEPER_GRACE_MS;
            }
        } else {
            kill(-job, sig);
        }
    }
    keeper_sweep(self, job, &status, &done);
    if (!done)
        _exit(128 + SIGKILL);
    keeper_exit(status);
}
