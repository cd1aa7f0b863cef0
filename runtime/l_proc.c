/*
** l_proc.c - djinn.proc: child processes and signals (tmux job.c style).
**
** Lua API (see docs/lua-api.md):
**   proc.spawn{argv = {...}, cwd =, env = {K = V} (whole environment; nil
**     inherits), stdin = "null"|"pipe", stdout = "pipe"|"null"|"inherit",
**     stderr = "pipe"|"stdout"|"null"|"inherit", setpgid = true,
**     pdeathsig = true, reap = false}      -> child | nil, msg
**     reap = true (addition for the os driver, issue 10): the program
**     runs under a keeper, a child subreaper in its own process group
**     (djinn-keeper, runtime/keeper/keeper.c: a program of its own,
**     started with vfork and exec, so the runner's memory is never copied
**     for it; see keeper_program for where it is looked for), so that
**     every process it starts, detached or not, stays in reach. When
**     the program exits the keeper kills whatever it left running and
**     exits with the program's status (the same signal when it was
**     killed by one), so EOF on the pipes and wait() come when the
**     program ends, not when its last background process does.
**     child:pid() is the keeper's pid (the program's $PPID).
**     terminate(): TERM to the program's group, everything killed
**     after 1 s, or at once when grace runs out first; kill("KILL")
**     kills everything at once; other signals of kill() are forwarded to
**     the program's group. pdeathsig: the runner's death makes the keeper
**     kill everything.
**   proc.setenv(name, value | nil)         -> true | nil, msg
**   proc.settitle(s)                       (what ps shows)
**   proc.malloc_keep(bytes)                -> true | nil, msg
**   child:pid()                            -> integer
**   child:read([timeout_s])                -> data, "stdout"|"stderr"
**                                           | nil, "timeout" | nil, "eof"
**   child:write(data [, timeout_s])        -> true | nil, msg
**   child:close_stdin()                    -> true
**   child:wait([timeout_s])                -> "exit", code | "signal", signo
**                                           | nil, "timeout"
**   child:kill([sig = "TERM"])             -> true | nil, msg
**   child:terminate([grace_s = 5])         -> like wait (always reaps)
**     files = {PATH, ...} (addition for warm VM snapshots, issue 15):
**     each file is opened read-only by the runner and inherited by the
**     program as fd 3, 4, ... in order (qemu's -incoming fd:3 reads its
**     saved state so, with no file name on any command line or shell).
**     Not with reap = true; at most MAX_FILES.
**     fn = function (addition for the queue worker, issue 16), instead
**     of argv: the child is a fork of this state that calls fn() and
**     exits with its results as djinn-lua's main would (dj_exit_status;
**     an error: its traceback and 1); the same pipes, env (the child's
**     environ), cwd, setpgid and pdeathsig; not with reap or files.
**     title = "...": what ps shows as the child's command line. Before
**     the fork a full collection runs the finalizers of what is garbage
**     (in their owner) and stdio is flushed; collect = false leaves the
**     collection out, for a caller in generational mode (the worker: its
**     collectgarbage("step") before the spawn is a young collection,
**     which neither writes to its old objects nor leaves the child a
**     cycle half done, where a full one wrote to every page it shares
**     with its running builds). In the child every inherited fd is
**     closed; the handles, connections, databases and sockets it
**     inherited are inert (each records its owner pid and only its owner
**     signals, closes or unlinks through it); the state is closed at the
**     end, so every finalizer runs, but nothing is freed (exit_alloc):
**     the process ends at once, and freeing wrote to every page of the
**     heap it shared with its parent. close = false: no close, the
**     child exits as soon as fn returns (nothing it made is finalized:
**     the processes it started with pdeathsig die with it; the rest is
**     fn's to clean up). Lua's close wrote to every object (the
**     generational collector turns each white again first; each string
**     leaves the string table), a copy-on-write fault on every page.
**   proc.kill(pid [, sig = "TERM"])        -> true | nil, msg
**     (addition for the crash reaper: a process this runner did not
**     spawn, by pid; pid must be > 0, so no process group is signalled)
**   proc.ready(children [, timeout_s])     -> i | nil, "timeout" | nil, "eof"
**     (addition for the queue worker, issue 16: one wait over all its
**     builds) waits until one of the children (an array of child
**     handles) has output or an end of output to read, and returns the
**     index of the first such; "eof" at once when none has an open pipe.
**     Nothing is read. Closed handles are passed over.
**   proc.now() proc.sleep(s) proc.getpid() proc.isatty(fd) proc.environ()
**   proc.on_signals{"INT", ...} proc.pending_signal() proc.default_signals()
**
** A signal recorded by the on_signals handler (installed without
** SA_RESTART) makes a blocking read or wait return early with nil,
** "timeout", and proc.sleep return early, so a loop can check
** pending_signal().
** Additions to the contract (backwards compatible): write takes an
** optional timeout; kill/terminate of a process-group leader that was
** already reaped still signals its group (the kernel does not reuse a
** pid while its process group exists).
**
** Spawning: argv array only, never a shell. All signals are blocked
** around the vfork() (fork() for fn). The child resets every handler to
** SIG_DFL and clears the mask, setpgid(0, 0) when asked,
** PR_SET_PDEATHSIG(SIGKILL) and re-checks getppid() (the parent may have
** died before prctl), dup2()s its pipes, closes every other fd, chdir()s,
** and execs. A failure writes {stage, errno} to a CLOEXEC status pipe and
** _exit(127)s; the parent reads the pipe (EOF = exec succeeded), so a
** missing program is nil, msg and never a child exiting 127.
**
** Ownership: a `djinn.proc.child` userdata is created closed (pid -1, fds
** -1) before anything is acquired; its __gc/__close terminate(2) a live
** child and close the fds. The C globals: the signal handler's volatile
** sig_atomic_t flag, and closing_state (a fn child's state, kept
** reachable as the child exits). The keeper is a program of its own: the
** vfork child that starts it makes only system calls before the exec.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
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

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "proc_spawn.h"
#include "util.h"

/* valgrind's client request: the one place that asks is child_run's close. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define CHILD_MT "djinn.proc.child"
#define READ_CHUNK 65536
#define MAX_FILES 8

extern char **environ;

/* The last signal recorded by on_signals' handler. */
static volatile sig_atomic_t pending_signo;

enum { IO_NULL, IO_PIPE, IO_INHERIT, IO_STDOUT };

struct child {
    pid_t pid;  /* -1: never started */
    int pidfd;  /* -1: none (or closed) */
    int in_fd;  /* parent's write end of the child's stdin */
    int out_fd; /* parent's read end of the child's stdout */
    int err_fd; /* parent's read end of the child's stderr */
    int group;  /* the child leads its own process group */
    int keeper; /* the child is a keeper (reap = true) */
    int reaped;
    int signaled; /* status: 1 = killed by signal, 0 = exited */
    int code;     /* exit code or signal number */
    int next_err; /* read fairness: check stderr first next time */
    pid_t owner;  /* the process that spawned it (see l_proc_gc) */
};

static const struct {
    const char *name;
    int signo;
} signames[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}, {NULL, 0},
};

static const char *signame(int signo)
{
    int i;

    for (i = 0; signames[i].name != NULL; i++) {
        if (signames[i].signo == signo)
            return signames[i].name;
    }
    return NULL;
}

/* Signal name ("TERM", "SIGTERM") or number at idx; raises on misuse. */
static int checksignal(lua_State *L, int idx, const char *def)
{
    const char *s = NULL;
    int i;

    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, idx);

        if (n <= 0 || n >= NSIG)
            luaL_argerror(L, idx, "signal number out of range");
        return (int)n;
    }
    s = luaL_optstring(L, idx, def);
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (i = 0; signames[i].name != NULL; i++) {
        if (strcmp(s, signames[i].name) == 0)
            return signames[i].signo;
    }
    return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", s));
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static struct child *tochild(lua_State *L)
{
    return (struct child *)luaL_checkudata(L, 1, CHILD_MT);
}

static struct child *checkchild(lua_State *L)
{
    struct child *c = tochild(L);

    if (c->pid < 0)
        luaL_error(L, "attempt to use a closed process handle");
    return c;
}

/* Optional timeout argument: < 0 means none (block). Raises on misuse. */
static double opttimeout(lua_State *L, int idx)
{
    double t;

    if (lua_isnoneornil(L, idx))
        return -1;
    t = luaL_checknumber(L, idx);
    if (isnan(t) || t < 0)
        luaL_argerror(L, idx, "timeout must be a number >= 0");
    return t;
}

/* Milliseconds left until `deadline` for poll(); -1 when no deadline. */
static int ms_left(double deadline)
{
    double left;

    if (deadline < 0)
        return -1;
    left = deadline - dj_now();
    if (left <= 0)
        return 0;
    if (left > INT_MAX / 1000)
        return INT_MAX;
    return (int)ceil(left * 1000);
}

static void record_status(struct child *c, int status)
{
    c->reaped = 1;
    if (WIFSIGNALED(status)) {
        c->signaled = 1;
        c->code = WTERMSIG(status);
    } else {
        c->signaled = 0;
        c->code = WEXITSTATUS(status);
    }
    close_fd(&c->pidfd);
}

/*
** Try to reap within `timeout` seconds (< 0: block). Returns 1 when
** reaped, 0 on timeout or an interrupting signal, -1 on error (errno).
*/
static int reap(struct child *c, double timeout)
{
    double deadline = timeout < 0 ? -1 : dj_now() + timeout;
    int status = 0;
    pid_t r;

    if (c->reaped)
        return 1;
    for (;;) {
        r = waitpid(c->pid, &status, timeout < 0 ? 0 : WNOHANG);
        if (r == c->pid) {
            record_status(c, status);
            return 1;
        }
        if (r < 0 && errno == EINTR) {
            if (pending_signo != 0)
                return 0;
            continue;
        }
        if (r < 0)
            return -1;
        if (ms_left(deadline) == 0)
            return 0;
        if (c->pidfd >= 0) {
            struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
            int pr = poll(&p, 1, ms_left(deadline));

            if (pr < 0 && errno == EINTR)
                return 0;
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            double left = deadline - dj_now();

            if (left < 0.01)
                ts.tv_nsec = left > 0 ? (long)(left * 1e9) : 0;
            if (nanosleep(&ts, NULL) < 0 && errno == EINTR &&
                pending_signo != 0)
                return 0;
        }
    }
}

/* Send sig to the child's group (or the child). 0 / -1 with errno. */
static int signal_child(struct child *c, int sig)
{
    if (c->group)
        return kill(-c->pid, sig);
    if (c->reaped) {
        errno = ESRCH;
        return -1;
    }
    return kill(c->pid, sig);
}

static int push_status(lua_State *L, struct child *c)
{
    lua_pushstring(L, c->signaled ? "signal" : "exit");
    lua_pushinteger(L, c->code);
    return 2;
}

/*
** TERM, wait up to grace, KILL, reap; then KILL stragglers of the group.
** A keeper is asked to kill everything at once (QUIT) before it gets a
** KILL: killed itself, it could not sweep the job's descendants.
*/
static int do_terminate(struct child *c, double grace)
{
    int r;

    if (!c->reaped) {
        signal_child(c, SIGTERM);
        /* A stopped child cannot act on TERM until continued. */
        signal_child(c, SIGCONT);
        r = reap(c, grace);
        if (r == 0 && c->keeper) {
            kill(c->pid, SIGQUIT);
            r = reap(c, SPAWN_KEEPER_GIVEUP_MS / 1000.0 + 1);
        }
        if (r == 0) {
            signal_child(c, SIGKILL);
            do {
                r = reap(c, -1);
            } while (r == 0);
        }
        if (r < 0)
            return -1;
    }
    if (c->group)
        kill(-c->pid, SIGKILL); /* ESRCH when the group is gone: fine */
    return 0;
}

/*
** In a proc.spawn{fn =} child (a fork of this state), the handles it
** inherited are its parent's: their fds were closed at the fork (and the
** numbers may be reused), and their processes are not its children. Such
** a handle is only marked closed here, never signalled.
*/
static int l_proc_gc(lua_State *L)
{
    struct child *c = tochild(L);

    if (c->owner != getpid()) {
        c->pid = -1;
        c->pidfd = c->in_fd = c->out_fd = c->err_fd = -1;
        return 0;
    }
    if (c->pid > 0 && !c->reaped)
        do_terminate(c, 2);
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    close_fd(&c->err_fd);
    close_fd(&c->pidfd);
    return 0;
}

static int l_proc_tostring(lua_State *L)
{
    struct child *c = tochild(L);

    if (c->pid < 0)
        lua_pushliteral(L, "djinn.proc.child (closed)");
    else if (c->reaped)
        lua_pushfstring(L, "djinn.proc.child (pid %d, %s %d)", (int)c->pid,
                        c->signaled ? "signal" : "exit", c->code);
    else
        lua_pushfstring(L, "djinn.proc.child (pid %d, running)", (int)c->pid);
    return 1;
}

static int optio(lua_State *L, int tidx, const char *field, const char *def,
                 const char *const names[], const int values[])
{
    int i;
    const char *s = NULL;

    lua_getfield(L, tidx, field);
    if (lua_isnil(L, -1)) {
        s = def;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tostring(L, -1);
    } else {
        return luaL_error(L, "proc.spawn: option '%s' must be a string", field);
    }
    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], s) == 0) {
            lua_pop(L, 1);
            return values[i];
        }
    }
    return luaL_error(L, "proc.spawn: invalid %s '%s'", field, s);
}

static int optbool(lua_State *L, int tidx, const char *field, int def)
{
    int v = def;

    lua_getfield(L, tidx, field);
    if (lua_isboolean(L, -1))
        v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "proc.spawn: option '%s' must be a boolean", field);
    lua_pop(L, 1);
    return v;
}

/* In a child after fork(): every handler back to SIG_DFL (mask kept). */
static void child_default_signals(void)
{
    struct sigaction sa;
    int i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (i = 1; i < NSIG; i++)
        sigaction(i, &sa, NULL); /* fails harmlessly for KILL/STOP, RT */
}

/*
** In a child after fork(): stdin/stdout/stderr as modes say, the nfiles
** inherited files (spawn's files option) as fds 3 .. 3 + nfiles - 1, the
** status pipe moved just above them (CLOEXEC), every fd above it closed.
** Returns the status pipe's fd, or -1 with errno (status_fd still open
** then).
*/
static int child_fds(int fds[3], const int modes[3], int status_fd,
                     const int *files, int nfiles)
{
    int i, fd, top = 3 + nfiles;
    int moved[MAX_FILES];

    for (i = 0; i < 3; i++) {
        if (modes[i] == IO_INHERIT)
            continue;
        if (modes[i] == IO_STDOUT) {
            fd = 1;
        } else if (modes[i] == IO_NULL) {
            fd = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (fd < 0)
                return -1;
        } else {
            fd = fds[i];
        }
        if (fd == i) {
            if (fcntl(fd, F_SETFD, 0) < 0)
                return -1;
        } else if (dup2(fd, i) < 0) {
            return -1;
        }
    }
    /* The files and the status pipe may sit where they must go: copy
    ** them all above the targets first, then down into place. */
    for (i = 0; i < nfiles; i++) {
        moved[i] = fcntl(files[i], F_DUPFD_CLOEXEC, top + 1);
        if (moved[i] < 0)
            return -1;
    }
    if (nfiles > 0) {
        status_fd = fcntl(status_fd, F_DUPFD_CLOEXEC, top + 1);
        if (status_fd < 0)
            return -1;
    }
    for (i = 0; i < nfiles; i++) {
        if (dup2(moved[i], 3 + i) < 0) /* dup2: not CLOEXEC */
            return -1;
    }
    /* Keep the status pipe as fd top, close everything above it. */
    if (status_fd != top && dup3(status_fd, top, O_CLOEXEC) < 0)
        return -1;
    closefrom(top + 1);
    return top;
}

/*
** Child side after vfork() or fork(), shared by spawn_program, child_run
** and spawn_keeper: default handlers, an empty mask (unless keep_mask:
** the keeper starts with every signal blocked), the process group,
** PDEATHSIG = deathsig (0: none), the fds (child_fds), the working
** directory. Returns the status pipe's fd; a failure is reported on it
** and the child _exits. Only async-signal-safe calls.
*/
static int child_setup(int fds[3], const int modes[3], int status_fd, int setpg,
                       int deathsig, pid_t parent, const int *files, int nfiles,
                       const char *cwd, int keep_mask)
{
    sigset_t none;
    int fd3;

    child_default_signals();
    if (!keep_mask) {
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    if (setpg)
        setpgid(0, 0);
    if (deathsig) {
        if (prctl(PR_SET_PDEATHSIG, deathsig) != 0)
            spawn_fail(status_fd, SPAWN_SETUP, errno);
        if (getppid() != parent)
            _exit(127); /* the parent died before prctl took effect */
    }
    fd3 = child_fds(fds, modes, status_fd, files, nfiles);
    if (fd3 < 0)
        spawn_fail(status_fd, SPAWN_SETUP, errno);
    if (cwd != NULL && chdir(cwd) < 0)
        spawn_fail(fd3, SPAWN_CHDIR, errno);
    return fd3;
}

/*
** Start argv with vfork: the child (child_setup, then the exec) makes only
** system calls until the exec, every handler back to SIG_DFL before the
** mask is cleared, so no handler runs on the shared memory, and it writes
** no variable of this function's caller; the runner's memory and page
** tables are not copied (a fork of a large runner copied its page tables,
** and every page the runner wrote afterwards while the child lived was a
** copy-on-write fault). A function of its own, so that no local of the
** caller lives across the vfork. Returns the child's pid, or -1 (errno).
*/
static pid_t spawn_program(char **argv, char **envp, const char *cwd,
                           int fds[3], const int modes[3], int status_fd,
                           int setpg, int deathsig, pid_t parent,
                           const int *files, int nfiles)
{
    pid_t pid = vfork();

    if (pid == 0) {
        int fd3 =
            child_setup(fds, modes, status_fd, setpg, deathsig ? SIGKILL : 0,
                        parent, files, nfiles, cwd, 0);

        spawn_exec(argv, envp, fd3);
    }
    return pid;
}

/*
** The allocator of a fn child's state while it closes: every finalizer
** runs (they may allocate), nothing is freed. Freeing each object wrote
** to every page of a heap the child shares with its parent, each write a
** copy-on-write fault, for memory that _exit returns a moment later.
** What the close itself lets go stays reachable from closing_state; a
** buffer a finalizer frees does not, so under valgrind (whose leak check
** would count it as lost) the close frees as usual.
*/
static lua_State *volatile closing_state;

static void *exit_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0)
        return NULL;
    return realloc(ptr, nsize);
}

/*
** Child side of proc.spawn{fn =} after fork(): the same setup as
** spawn_program's child, then, instead of an exec, the function runs in
** this copy of the state and the process exits with its results
** (dj_exit_status, as djinn-lua's main; an error: its traceback and 1).
** The state is closed first (closestate), so the child's own objects are
** finalized; what it inherited is inert (see l_proc_gc and the other
** modules' owner checks). Never returns.
*/
static void child_run(lua_State *L, int fn, const char *title, char **envp,
                      const char *cwd, int fds[3], const int modes[3],
                      int status_fd, int setpg, int deathsig, pid_t parent,
                      int closestate)
{
    int fd3, base;
    lua_Integer st;

    pending_signo = 0;
    fd3 = child_setup(fds, modes, status_fd, setpg, deathsig ? SIGKILL : 0,
                      parent, NULL, 0, cwd, 0);
    if (envp != NULL)
        environ = envp; /* the array lives in this copy of the state */
    if (title != NULL)
        dj_set_title(title);
    close(fd3); /* EOF: started */
    base = lua_gettop(L);
    lua_pushcfunction(L, dj_msghandler);
    lua_pushvalue(L, fn);
    if (lua_pcall(L, 0, LUA_MULTRET, base + 1) != LUA_OK) {
        fprintf(stderr, "djinn-lua: %s\n", lua_tostring(L, -1));
        st = 1;
    } else {
        st = dj_exit_status(L, lua_gettop(L) - base - 1, "proc.spawn's fn");
    }
    fflush(NULL);
    closing_state = L;
    if (closestate) {
        if (!RUNNING_ON_VALGRIND)
            lua_setallocf(L, exit_alloc, NULL);
        lua_close(L);
        fflush(NULL);
    }
    _exit((int)st);
}

/*
** The keeper program (reap = true; runtime/keeper/keeper.c): djinn-keeper
** beside djinn-lua, in <exe dir>/../lib/djinn or in DJINN_LIBDIR
** (dj_find_lib). Its path into path (size DJ_LIBPATH), or 0 with why.
*/
static int keeper_program(char *path, char *why, size_t whylen)
{
    size_t n = (size_t)snprintf(why, whylen, "the keeper program ");

    if (n >= whylen)
        n = 0;
    if (dj_find_lib("djinn-keeper", "djinn-keeper", X_OK, path, why + n,
                    whylen - n))
        return 1;
    n = strlen(why);
    snprintf(why + n, whylen - n,
             "; build it with make, or install with make install)");
    return 0;
}

/*
** Start the keeper (reap = true) with vfork and exec: the child only makes
** system calls until the exec (every handler back to SIG_DFL first, the
** mask kept full, so no handler runs on the shared memory) and writes no
** variable of this function's caller; the runner's memory is not copied.
** In the child: child_setup with the mask kept full, its own process
** group and PDEATHSIG = TERM (the keeper then sweeps the job); the status
** pipe (fd 3) kept open across the exec; then exec path with kargv and envp,
** the job's environment (keeper.c). A function of its own, so that no
** local of the caller lives across the vfork. Returns the keeper's pid,
** or -1 (errno).
*/
static pid_t spawn_keeper(const char *path, char **kargv, char **envp,
                          const char *cwd, int fds[3], const int modes[3],
                          int status_fd, int deathsig, pid_t parent)
{
    pid_t pid = vfork();
    int fd3;

    if (pid != 0)
        return pid;
    fd3 = child_setup(fds, modes, status_fd, 1, deathsig ? SIGTERM : 0, parent,
                      NULL, 0, cwd, 1);
    if (fcntl(fd3, F_SETFD, 0) < 0)
        spawn_fail(fd3, SPAWN_SETUP, errno);
    execve(path, kargv, envp);
    spawn_fail(fd3, SPAWN_KEEPER, errno);
    return -1; /* not reached */
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/*
** proc.spawn(opts): see the file header. Lua-side work first (may
** raise; nothing acquired yet), then pipes + fork with no Lua call
** in between, then results.
*/
static int l_proc_spawn(lua_State *L)
{
    static const char *const in_names[] = {"null", "pipe", NULL};
    static const int in_vals[] = {IO_NULL, IO_PIPE};
    static const char *const out_names[] = {"pipe", "null", "inherit", NULL};
    static const int out_vals[] = {IO_PIPE, IO_NULL, IO_INHERIT};
    static const char *const err_names[] = {"pipe", "stdout", "null", "inherit",
                                            NULL};
    static const int err_vals[] = {IO_PIPE, IO_STDOUT, IO_NULL, IO_INHERIT};
    static char fn_name[] = "fn";
    static char *fn_argv[] = {fn_name, NULL};
    static char kname[] = "djinn-keeper", kinherit[] = "inherit",
                kenv[] = "env", dashdash[] = "--";
    struct child *c = NULL;
    const char *title = NULL;
    char **argv = NULL;
    char **envp = NULL;
    const char *cwd = NULL;
    int modes[3];
    int setpg, deathsig, keeper, fn, collect, closestate;
    lua_Integer argc = 0, i;
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int status_pipe[2] = {-1, -1};
    int childfds[3] = {-1, -1, -1};
    int files[MAX_FILES];
    int nfiles = 0, fidx;
    struct spawn_failure f = {0, 0};
    char **kargv = NULL;
    char kpath[DJ_LIBPATH];
    sigset_t all, old;
    pid_t pid, parent = getpid();
    ssize_t n;
    int k, saved;
    char msg[512];

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    /* 2: the child userdata, closed. */
    c = (struct child *)lua_newuserdatauv(L, sizeof(*c), 0);
    c->pid = -1;
    c->pidfd = c->in_fd = c->out_fd = c->err_fd = -1;
    c->group = c->keeper = c->reaped = c->signaled = c->code = 0;
    c->next_err = 0;
    c->owner = parent;
    luaL_setmetatable(L, CHILD_MT);

    /* 3: fn, 4: argv table, 5: argv array (userdata, Lua-owned). */
    lua_getfield(L, 1, "fn");
    if (!lua_isnil(L, 3) && !lua_isfunction(L, 3))
        return luaL_error(L, "proc.spawn: fn must be a function");
    fn = lua_isfunction(L, 3);
    if (fn) {
        if (lua_getfield(L, 1, "argv") != LUA_TNIL)
            return luaL_error(L, "proc.spawn: argv and fn do not go together");
        lua_pushnil(L);
        argv = fn_argv; /* (its name, for messages) */
    } else if (lua_getfield(L, 1, "argv") != LUA_TTABLE) {
        return luaL_error(L, "proc.spawn: argv must be a table of strings "
                             "(or give fn, a function)");
    } else {
        argc = (lua_Integer)lua_rawlen(L, 4);
        if (argc < 1 || argc > 65536)
            return luaL_error(L, "proc.spawn: argv must have 1..65536 entries");
        argv = (char **)lua_newuserdatauv(
            L, (size_t)(argc + 1) * sizeof(char *), 0);
        for (i = 1; i <= argc; i++) {
            size_t len;

            if (lua_rawgeti(L, 4, i) != LUA_TSTRING)
                return luaL_error(L, "proc.spawn: argv[%d] must be a string",
                                  (int)i);
            argv[i - 1] = (char *)lua_tolstring(L, -1, &len);
            if (strlen(argv[i - 1]) != len)
                return luaL_error(L, "proc.spawn: argv[%d] contains a NUL byte",
                                  (int)i);
            lua_pop(L, 1); /* still anchored by the argv table */
        }
        argv[argc] = NULL;
        if (argv[0][0] == '\0')
            return luaL_error(L, "proc.spawn: argv[1] (the program) is empty");
    }

    /* 6: env strings table, 7: envp array. */
    lua_newtable(L);
    if (lua_getfield(L, 1, "env") == LUA_TTABLE) {
        lua_Integer nenv = 0;

        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING ||
                lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "proc.spawn: env must map strings to "
                                     "strings");
            if (strchr(lua_tostring(L, -2), '=') != NULL ||
                lua_tostring(L, -2)[0] == '\0')
                return luaL_error(L, "proc.spawn: invalid env name '%s'",
                                  lua_tostring(L, -2));
            lua_pushfstring(L, "%s=%s", lua_tostring(L, -2),
                            lua_tostring(L, -1));
            lua_rawseti(L, 6, ++nenv);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        envp = (char **)lua_newuserdatauv(
            L, (size_t)(nenv + 1) * sizeof(char *), 0);
        for (i = 1; i <= nenv; i++) {
            lua_rawgeti(L, 6, i);
            envp[i - 1] = (char *)lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        envp[nenv] = NULL;
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "proc.spawn: env must be a table");
    } else {
        lua_pop(L, 1);
        lua_pushnil(L);
    }

    /* 8: cwd. */
    lua_getfield(L, 1, "cwd");
    if (lua_type(L, -1) == LUA_TSTRING)
        cwd = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        return luaL_error(L, "proc.spawn: cwd must be a string");

    modes[0] = optio(L, 1, "stdin", "null", in_names, in_vals);
    modes[1] = optio(L, 1, "stdout", "pipe", out_names, out_vals);
    modes[2] = optio(L, 1, "stderr", "pipe", err_names, err_vals);
    setpg = optbool(L, 1, "setpgid", 1);
    deathsig = optbool(L, 1, "pdeathsig", 1);
    keeper = optbool(L, 1, "reap", 0);
    if (keeper)
        setpg = 1; /* the keeper leads its group; the job leads another */
    if (fn && keeper)
        return luaL_error(L, "proc.spawn: fn and reap = true do not go "
                             "together");
    collect = optbool(L, 1, "collect", 1);
    if (!collect && !fn)
        return luaL_error(L, "proc.spawn: collect goes with fn");
    closestate = optbool(L, 1, "close", 1);
    if (!closestate && !fn)
        return luaL_error(L, "proc.spawn: close goes with fn");
    /* 9: title (fn only). */
    lua_getfield(L, 1, "title");
    if (lua_type(L, -1) == LUA_TSTRING && fn)
        title = lua_tostring(L, -1);
    else if (!lua_isnil(L, -1))
        return luaL_error(L, "proc.spawn: title must be a string, and goes "
                             "with fn");

    /* fidx: the files table (checked before any fd is opened). */
    if (lua_getfield(L, 1, "files") == LUA_TTABLE) {
        lua_Integer nf = (lua_Integer)lua_rawlen(L, -1);

        if (nf > MAX_FILES)
            return luaL_error(L, "proc.spawn: at most %d files", MAX_FILES);
        if (nf > 0 && fn)
            return luaL_error(L, "proc.spawn: files and fn do not go "
                                 "together");
        if (nf > 0 && keeper)
            return luaL_error(L, "proc.spawn: files and reap = true do not "
                                 "go together");
        for (i = 1; i <= nf; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                return luaL_error(L, "proc.spawn: files[%d] must be a path",
                                  (int)i);
            lua_pop(L, 1);
        }
        nfiles = (int)nf;
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "proc.spawn: files must be a table of paths");
    }
    fidx = lua_gettop(L);

    /* reap: the keeper program and its argv (keeper.c): "djinn-keeper",
    ** "inherit", or "env" and this process's PATH (the job's program is
    ** sought on it, as execvpe here would), "--", the job's argv. The
    ** job's environment is the keeper's own (never on a command line). */
    if (keeper) {
        lua_Integer at = 0;
        char why[3 * PATH_MAX + 256];
        char *search = getenv("PATH");

        if (!keeper_program(kpath, why, sizeof(why)))
            return dj_pushfail(L, "proc.spawn: %s: %s", argv[0], why);
        kargv = (char **)lua_newuserdatauv(
            L, (size_t)(argc + 5) * sizeof(char *), 0);
        kargv[at++] = kname;
        if (envp == NULL) {
            kargv[at++] = kinherit;
        } else {
            kargv[at++] = kenv;
            if (search != NULL && *search != '\0')
                kargv[at++] = search;
        }
        kargv[at++] = dashdash;
        for (i = 0; i < argc; i++)
            kargv[at++] = argv[i];
        kargv[at] = NULL;
    }

    /* fn: the finalizers of what is already garbage run here, in its
    ** owner, not in the child. It also starts the child at the beginning
    ** of a collection cycle: a child that inherited one half done would
    ** mark its whole heap, each page a copy-on-write fault. collect =
    ** false: the caller collects (see the file header). */
    if (fn && collect)
        lua_gc(L, LUA_GCCOLLECT);

    /* From here on: no Lua call until the fds are owned or closed. */
    for (k = 0; k < nfiles; k++) {
        const char *path;

        lua_rawgeti(L, fidx, k + 1);
        path = lua_tostring(L, -1);
        lua_pop(L, 1); /* still anchored by the files table */
        files[k] = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (files[k] < 0) {
            saved = errno;
            while (k-- > 0)
                close(files[k]);
            return dj_pushfail(L, "proc.spawn: %s: cannot open %s: %s", argv[0],
                               path, strerror(saved));
        }
    }
    for (k = 0; k < 3; k++) {
        if (modes[k] == IO_PIPE && pipe2(pipes[k], O_CLOEXEC) < 0)
            goto syserr;
    }
    if (pipe2(status_pipe, O_CLOEXEC) < 0)
        goto syserr;
    childfds[0] = pipes[0][0];
    childfds[1] = pipes[1][1];
    childfds[2] = pipes[2][1];

    if (fn)
        fflush(NULL); /* no buffered output written twice */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    if (keeper) {
        pid = spawn_keeper(kpath, kargv, envp != NULL ? envp : environ, cwd,
                           childfds, modes, status_pipe[1], deathsig, parent);
    } else if (fn) {
        pid = fork();
        if (pid == 0) {
            close_fd(&status_pipe[0]);
            child_run(L, 3, title, envp, cwd, childfds, modes, status_pipe[1],
                      setpg, deathsig, parent, closestate);
        }
    } else {
        pid = spawn_program(argv, envp, cwd, childfds, modes, status_pipe[1],
                            setpg, deathsig, parent, files, nfiles);
    }
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    for (k = 0; k < nfiles; k++)
        close(files[k]);
    nfiles = 0;
    if (pid < 0) {
        errno = saved;
        goto syserr;
    }
    c->pid = pid;
    c->group = setpg;
    c->keeper = keeper;
    if (setpg)
        setpgid(pid, pid); /* also in the parent: no race with kill(-pid) */
    c->in_fd = pipes[0][1];
    c->out_fd = pipes[1][0];
    c->err_fd = pipes[2][0];
    close_fd(&pipes[0][0]);
    close_fd(&pipes[1][1]);
    close_fd(&pipes[2][1]);
    close_fd(&status_pipe[1]);
#ifdef SYS_pidfd_open
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (c->pidfd < 0)
        c->pidfd = -1;
#endif

    /* EOF: exec succeeded. A record: the child failed and _exited. */
    do {
        n = read(status_pipe[0], &f, sizeof(f));
    } while (n < 0 && errno == EINTR);
    close_fd(&status_pipe[0]);
    if (c->in_fd >= 0)
        set_nonblock(c->in_fd);
    if (c->out_fd >= 0)
        set_nonblock(c->out_fd);
    if (c->err_fd >= 0)
        set_nonblock(c->err_fd);
    if (n == (ssize_t)sizeof(f)) {
        while (reap(c, -1) == 0)
            ;
        close_fd(&c->in_fd);
        close_fd(&c->out_fd);
        close_fd(&c->err_fd);
        if (f.stage == SPAWN_CHDIR)
            return dj_pushfail(L, "proc.spawn: chdir %s: %s", cwd,
                               strerror(f.err));
        if (f.stage == SPAWN_SETUP)
            return dj_pushfail(L, "proc.spawn: %s: child setup failed: %s",
                               argv[0], strerror(f.err));
        if (f.stage == SPAWN_KEEPER)
            return dj_pushfail(L, "proc.spawn: %s: the keeper program %s: %s",
                               argv[0], kpath, strerror(f.err));
        return dj_pushfail(L, "proc.spawn: %s: %s", argv[0], strerror(f.err));
    }
    lua_pushvalue(L, 2);
    return 1;

syserr:
    saved = errno;
    for (k = 0; k < nfiles; k++)
        close(files[k]);
    for (k = 0; k < 3; k++) {
        close_fd(&pipes[k][0]);
        close_fd(&pipes[k][1]);
    }
    close_fd(&status_pipe[0]);
    close_fd(&status_pipe[1]);
    snprintf(msg, sizeof(msg), "proc.spawn: %s: %s", argv[0], strerror(saved));
    return dj_pushfail(L, "%s", msg);
}

static int l_proc_pid(lua_State *L)
{
    lua_pushinteger(L, checkchild(L)->pid);
    return 1;
}

/* child:read([timeout]): see header. */
static int l_proc_read(lua_State *L)
{
    struct child *c = checkchild(L);
    double timeout = opttimeout(L, 2);
    double deadline = timeout < 0 ? -1 : dj_now() + timeout;
    struct pollfd p[2];
    int *slot[2];
    int np, i, k, r;
    char buf[READ_CHUNK];
    ssize_t n;

    for (;;) {
        np = 0;
        for (k = 0; k < 2; k++) {
            /* alternate which pipe is served first, for fairness */
            int *fdp =
                ((k == 0) != (c->next_err != 0)) ? &c->out_fd : &c->err_fd;

            if (*fdp >= 0) {
                p[np].fd = *fdp;
                p[np].events = POLLIN;
                p[np].revents = 0;
                slot[np++] = fdp;
            }
        }
        if (np == 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "eof");
            return 2;
        }
        r = poll(p, (nfds_t)np, ms_left(deadline));
        if (r < 0 && errno == EINTR)
            break; /* a signal: let the caller look at pending_signal */
        if (r < 0)
            return dj_pushfail(L, "proc.read: poll: %s", strerror(errno));
        if (r == 0)
            break;
        for (i = 0; i < np; i++) {
            if (p[i].revents == 0)
                continue;
            do {
                n = read(*slot[i], buf, sizeof(buf));
            } while (n < 0 && errno == EINTR);
            if (n > 0) {
                int is_out = slot[i] == &c->out_fd;

                lua_pushlstring(L, buf, (size_t)n);
                lua_pushstring(L, is_out ? "stdout" : "stderr");
                c->next_err = is_out;
                return 2;
            }
            if (n < 0 && errno == EAGAIN)
                continue;
            close_fd(slot[i]); /* EOF or a hard error */
        }
        if (ms_left(deadline) == 0)
            break;
    }
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
}

/* proc.ready(children [, timeout]): see header. */
static int l_proc_ready(lua_State *L)
{
    double timeout = opttimeout(L, 2);
    lua_Integer n, i;
    struct pollfd *p;
    lua_Integer *owner;
    int np = 0, r, k;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = (lua_Integer)lua_rawlen(L, 1);
    luaL_argcheck(L, n <= 4096, 1, "at most 4096 children");
    p = (struct pollfd *)lua_newuserdatauv(
        L, (sizeof(*p) + sizeof(*owner)) * 2 * (size_t)(n + 1), 0);
    owner = (lua_Integer *)(void *)(p + 2 * (n + 1));
    for (i = 1; i <= n; i++) {
        struct child *c;

        lua_rawgeti(L, 1, i);
        c = (struct child *)luaL_testudata(L, -1, CHILD_MT);
        if (c == NULL)
            return luaL_error(L, "proc.ready: item %I is not a child", i);
        lua_pop(L, 1); /* (the array keeps it) */
        for (k = 0; k < 2 && c->pid >= 0; k++) {
            int fd = k == 0 ? c->out_fd : c->err_fd;

            if (fd < 0)
                continue;
            p[np].fd = fd;
            p[np].events = POLLIN;
            p[np].revents = 0;
            owner[np++] = i;
        }
    }
    if (np == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "eof");
        return 2;
    }
    r = poll(p, (nfds_t)np, ms_left(timeout < 0 ? -1 : dj_now() + timeout));
    if (r < 0 && errno != EINTR)
        return dj_pushfail(L, "proc.ready: poll: %s", strerror(errno));
    for (k = 0; r > 0 && k < np; k++) {
        if (p[k].revents != 0) {
            lua_pushinteger(L, owner[k]);
            return 1;
        }
    }
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
}

/* child:write(data [, timeout]): all of data, or nil, msg. */
static int l_proc_write(lua_State *L)
{
    struct child *c = checkchild(L);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    double timeout = opttimeout(L, 3);
    double deadline = timeout < 0 ? -1 : dj_now() + timeout;
    sigset_t pipeset, old;
    int err = 0;

    if (c->in_fd < 0)
        return dj_pushfail(L, "proc.write: stdin is not a pipe or is closed");
    /* Block SIGPIPE so a reader that went away gives EPIPE, not death. */
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipeset, &old);
    while (off < len) {
        ssize_t n = write(c->in_fd, data + off, len - off);

        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = c->in_fd, .events = POLLOUT};
            int r = poll(&p, 1, ms_left(deadline));

            if (r == 0) {
                err = ETIMEDOUT;
                break;
            }
            if (r < 0 && errno != EINTR) {
                err = errno;
                break;
            }
            continue;
        }
        err = errno;
        break;
    }
    if (err == EPIPE && !sigismember(&old, SIGPIPE)) {
        struct timespec zero = {0, 0};

        sigtimedwait(&pipeset, NULL, &zero); /* discard our SIGPIPE */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (err == ETIMEDOUT)
        return dj_pushfail(L, "timeout");
    if (err != 0)
        return dj_pushfail(L, "proc.write: %s", strerror(err));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_proc_close_stdin(lua_State *L)
{
    struct child *c = checkchild(L);

    close_fd(&c->in_fd);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_proc_wait(lua_State *L)
{
    struct child *c = checkchild(L);
    double timeout = opttimeout(L, 2);
    int r = reap(c, timeout);

    if (r < 0)
        return dj_pushfail(L, "proc.wait: %s", strerror(errno));
    if (r == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    return push_status(L, c);
}

static int l_proc_kill(lua_State *L)
{
    struct child *c = checkchild(L);
    int sig = checksignal(L, 2, "TERM");

    if (c->keeper && sig == SIGKILL)
        sig = SIGQUIT; /* the keeper kills the whole job at once */

    if (signal_child(c, sig) < 0)
        return dj_pushfail(L, "proc.kill: pid %d: %s", (int)c->pid,
                           strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

/* proc.kill(pid [, sig]): kill(2) one process by pid (not a child of ours:
 * children use child:kill, which knows about keepers and groups). */
static int l_proc_kill_pid(lua_State *L)
{
    lua_Integer pid = luaL_checkinteger(L, 1);
    int sig = checksignal(L, 2, "TERM");

    luaL_argcheck(L, pid > 0 && pid <= INT_MAX, 1,
                  "pid must be a positive process id");
    if (kill((pid_t)pid, sig) < 0)
        return dj_pushfail(L, "proc.kill: pid %d: %s", (int)pid,
                           strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_proc_terminate(lua_State *L)
{
    struct child *c = checkchild(L);
    double grace = luaL_optnumber(L, 2, 5);

    if (isnan(grace) || grace < 0)
        return luaL_argerror(L, 2, "grace must be a number >= 0");
    if (do_terminate(c, grace) < 0)
        return dj_pushfail(L, "proc.terminate: %s", strerror(errno));
    return push_status(L, c);
}

static int l_proc_now(lua_State *L)
{
    lua_pushnumber(L, dj_now());
    return 1;
}

/* proc.sleep(s): returns early only when a recorded signal arrives. */
static int l_proc_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct timespec ts, rem;

    if (isnan(s) || s < 0)
        return luaL_argerror(L, 1, "seconds must be a number >= 0");
    if (s > 1e9)
        s = 1e9;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &rem) < 0 && errno == EINTR) {
        if (pending_signo != 0)
            break;
        ts = rem;
    }
    return 0;
}

static int l_proc_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int l_proc_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);

    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "fd must be 0, 1 or 2");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

static int l_proc_environ(lua_State *L)
{
    char **e;

    lua_newtable(L);
    for (e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');

        if (eq == NULL || eq == *e)
            continue;
        lua_pushlstring(L, *e, (size_t)(eq - *e));
        lua_pushstring(L, eq + 1);
        lua_rawset(L, -3);
    }
    return 1;
}

/*
** proc.setenv(name, value | nil): this process's environment, which
** children spawned without env = inherit and proc.environ() reads (the
** worker's runners, issue 16: one build after another in one process,
** each with its own DJINN_BUILD). nil removes the variable.
*/
static int l_proc_setenv(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *value = luaL_optstring(L, 2, NULL);

    luaL_argcheck(L, name[0] != '\0' && strchr(name, '=') == NULL, 1,
                  "a variable's name must be non-empty and have no '='");
    if ((value != NULL ? setenv(name, value, 1) : unsetenv(name)) != 0)
        return dj_pushfail(L, "proc.setenv %s: %s", name, strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

/*
** proc.settitle(s): what ps shows as this process's command line (as
** spawn's title; cut to the length of the command line it started with).
** The worker's runners show the build they run.
*/
static int l_proc_settitle(lua_State *L)
{
    dj_set_title(luaL_checkstring(L, 1));
    return 0;
}

/*
** proc.malloc_keep(bytes): glibc's malloc keeps up to bytes of freed
** memory at the top of its heap (M_TRIM_THRESHOLD) and serves requests
** below bytes from the heap (M_MMAP_THRESHOLD), instead of giving memory
** back to the system and taking it again: each give-back is a brk or
** munmap, and on this machine kind the TLB flush that comes with it
** costs more than the copying around it (the queue worker relaying a
** 16 MiB log: 0.22 s of CPU at glibc's default of 128 KiB, 0.04 s with
** 2 MiB kept). For this process and what it forks, not what it execs.
** 0 < bytes <= 32 MiB (glibc's largest mmap threshold).
*/
static int l_proc_malloc_keep(lua_State *L)
{
    lua_Integer bytes = luaL_checkinteger(L, 1);

    luaL_argcheck(L, bytes > 0 && bytes <= 32 * 1024 * 1024, 1,
                  "between 1 byte and 32 MiB");
    if (mallopt(M_TRIM_THRESHOLD, (int)bytes) != 1 ||
        mallopt(M_MMAP_THRESHOLD, (int)bytes) != 1)
        return dj_pushfail(L, "proc.malloc_keep: malloc refused %d bytes",
                           (int)bytes);
    lua_pushboolean(L, 1);
    return 1;
}

static void record_signal(int signo)
{
    pending_signo = signo;
}

/* proc.on_signals{"INT", "TERM"}: handlers without SA_RESTART. */
static int l_proc_on_signals(lua_State *L)
{
    struct sigaction sa;
    lua_Integer n, i;
    int sig;

    luaL_checktype(L, 1, LUA_TTABLE);
    n = (lua_Integer)lua_rawlen(L, 1);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = record_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll/waitpid return EINTR */
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        sig = checksignal(L, lua_gettop(L), NULL);
        if (sig == SIGKILL || sig == SIGSTOP)
            return luaL_error(L, "proc.on_signals: cannot catch %s",
                              signame(sig));
        lua_pop(L, 1);
        if (sigaction(sig, &sa, NULL) < 0)
            return dj_pushfail(L, "proc.on_signals: %s", strerror(errno));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_proc_pending_signal(lua_State *L)
{
    int s = pending_signo;
    const char *name = NULL;

    pending_signo = 0;
    if (s == 0) {
        lua_pushnil(L);
        return 1;
    }
    name = signame(s);
    if (name != NULL)
        lua_pushstring(L, name);
    else
        lua_pushinteger(L, s);
    return 1;
}

/* Restore SIG_DFL wherever our recorder is installed. */
static int l_proc_default_signals(lua_State *L)
{
    struct sigaction cur, dfl;
    int i;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (i = 1; i < NSIG; i++) {
        if (sigaction(i, NULL, &cur) == 0 && cur.sa_handler == record_signal)
            sigaction(i, &dfl, NULL);
    }
    pending_signo = 0;
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg child_methods[] = {
    {"pid", l_proc_pid},
    {"read", l_proc_read},
    {"write", l_proc_write},
    {"close_stdin", l_proc_close_stdin},
    {"wait", l_proc_wait},
    {"kill", l_proc_kill},
    {"terminate", l_proc_terminate},
    {NULL, NULL},
};

static const luaL_Reg child_meta[] = {
    {"__gc", l_proc_gc},
    {"__close", l_proc_gc},
    {"__tostring", l_proc_tostring},
    {"__index", NULL},
    {NULL, NULL},
};

static const luaL_Reg proc_funcs[] = {
    {"spawn", l_proc_spawn},
    {"kill", l_proc_kill_pid},
    {"now", l_proc_now},
    {"sleep", l_proc_sleep},
    {"ready", l_proc_ready},
    {"getpid", l_proc_getpid},
    {"isatty", l_proc_isatty},
    {"environ", l_proc_environ},
    {"setenv", l_proc_setenv},
    {"settitle", l_proc_settitle},
    {"malloc_keep", l_proc_malloc_keep},
    {"on_signals", l_proc_on_signals},
    {"pending_signal", l_proc_pending_signal},
    {"default_signals", l_proc_default_signals},
    {NULL, NULL},
};

int luaopen_djinn_proc(lua_State *L)
{
    luaL_newmetatable(L, CHILD_MT);
    luaL_setfuncs(L, child_meta, 0);
    luaL_newlibtable(L, child_methods);
    luaL_setfuncs(L, child_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, proc_funcs);
    return 1;
}
