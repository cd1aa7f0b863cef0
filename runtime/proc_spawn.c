/*
** proc_spawn.c - the status pipe's two calls (see proc_spawn.h), shared by
** djinn.proc's children and the keeper program.
*/
#include <errno.h>
#include <unistd.h>

#include "proc_spawn.h"

void spawn_fail(int status_fd, int stage, int err)
{
    struct spawn_failure f;

    f.stage = stage;
    f.err = err;
    while (write(status_fd, &f, sizeof(f)) < 0 && errno == EINTR)
        ;
    _exit(127);
}

void spawn_exec(char **argv, char **envp, int status_fd)
{
    if (envp != NULL)
        execvpe(argv[0], argv, envp);
    else
        execvp(argv[0], argv);
    spawn_fail(status_fd, SPAWN_EXEC, errno);
}
