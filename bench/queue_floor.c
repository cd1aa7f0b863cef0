/*
** queue_floor.c - the floor under bench/queue.sh's throughput row: the
** processes a queued os build starts, with no work in them (no Lua, no
** Redis, no state file, no log), run N times SLOTS at a time.
**
**   queue_floor MODE N SLOTS [KEEPER]
**     keeper       a build's processes in the worker: its runner (a
**                  long-lived child of the worker, played here by this
**                  process) starts KEEPER (djinn-keeper) with vfork and
**                  exec, as proc.spawn{reap = true} does (fd 3 a status
**                  pipe, every signal blocked); the keeper forks the job,
**                  `/bin/sh -c true`, and sweeps after it
**     fork-keeper  the same with a fork of a worker-sized process for each
**                  build, which then starts the keeper: the worker's shape
**                  before its runners
**     fork-exec    the prototype of the team's scale-out research note
**                  (its Q8): a fork and an exec of /bin/true per build
**   -> "N builds in S s: R builds/s; CPU a build C ms" on stdout (CPU: the
**      user and system time of every process it started), exit 0; or a
**      message on stderr and exit 1 (a spawn failed, or a job did not
**      exit 0: a floor is never timed over failures).
**
** This process first writes WORKER_HEAP bytes, about the anonymous memory
** of an idle `djinn-lua worker`, so that each fork copies the page tables
** of a worker-sized process. Built by bench/queue.sh:
**   cc -O2 -o BUILD/queue_floor bench/queue_floor.c
*/
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKER_HEAP (2 << 20)

enum mode { KEEPER, FORK_KEEPER, FORK_EXEC };

static const char *keeper_path;

/*
** Start the keeper of one build with vfork and exec (as spawn_keeper in
** runtime/l_proc.c). -> its pid, or -1.
*/
static pid_t start_keeper(void)
{
    static char k0[] = "djinn-keeper", k1[] = "inherit", k2[] = "--",
                k3[] = "/bin/sh", k4[] = "-c", k5[] = "true";
    char *kargv[] = {k0, k1, k2, k3, k4, k5, NULL};
    sigset_t all, old;
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid = vfork();
    if (pid == 0) {
        /* The status pipe's write end as fd 3, kept across the exec. */
        if (fds[1] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(fds[1], 3) < 0)
            _exit(121);
        execv(keeper_path, kargv);
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    close(fds[0]);
    return pid;
}

/* One build's processes. -> the pid this process waits for, or -1. */
static pid_t start(enum mode mode)
{
    pid_t pid;
    int st;

    if (mode == KEEPER)
        return start_keeper();
    pid = fork();
    if (pid != 0)
        return pid;
    if (mode == FORK_EXEC) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    /* fork-keeper: this child is the build's runner. */
    pid = start_keeper();
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        _exit(122);
    _exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 123);
}

int main(int argc, char **argv)
{
    enum mode mode;
    struct timespec t0, t1;
    struct rusage ru;
    char *heap;
    long n, slots, started = 0, running = 0, failed = 0;
    double secs, cpu;

    if (argc < 4) {
        fprintf(stderr, "usage: queue_floor keeper|fork-keeper|fork-exec N "
                        "SLOTS [KEEPER]\n");
        return 1;
    }
    if (strcmp(argv[1], "keeper") == 0)
        mode = KEEPER;
    else if (strcmp(argv[1], "fork-keeper") == 0)
        mode = FORK_KEEPER;
    else if (strcmp(argv[1], "fork-exec") == 0)
        mode = FORK_EXEC;
    else {
        fprintf(stderr,
                "queue_floor: mode %s: keeper, fork-keeper or "
                "fork-exec\n",
                argv[1]);
        return 1;
    }
    n = strtol(argv[2], NULL, 10);
    slots = strtol(argv[3], NULL, 10);
    keeper_path = argc > 4 ? argv[4] : NULL;
    if (mode != FORK_EXEC && keeper_path == NULL) {
        fprintf(stderr, "queue_floor: %s needs the keeper's path\n", argv[1]);
        return 1;
    }
    if (n < 1 || slots < 1) {
        fprintf(stderr, "queue_floor: N and SLOTS must be positive\n");
        return 1;
    }
    heap = malloc(WORKER_HEAP);
    if (heap == NULL)
        return 1;
    memset(heap, 1, WORKER_HEAP);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (started < n || running > 0) {
        int st;

        while (running < slots && started < n) {
            if (start(mode) < 0) {
                fprintf(stderr, "queue_floor: fork: %s\n", strerror(errno));
                return 1;
            }
            running++;
            started++;
        }
        if (wait(&st) < 0) {
            fprintf(stderr, "queue_floor: wait: %s\n", strerror(errno));
            return 1;
        }
        running--;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (failed > 0) {
        fprintf(stderr, "queue_floor: %ld of %ld builds failed\n", failed, n);
        return 1;
    }
    getrusage(RUSAGE_CHILDREN, &ru);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
          (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("%ld builds in %.2f s: %.1f builds/s; CPU a build %.1f ms\n", n,
           secs, (double)n / secs, cpu * 1000 / (double)n);
    free(heap);
    return 0;
}
