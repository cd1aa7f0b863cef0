/*
** proc_spawn.h - what djinn.proc's spawner (l_proc.c) and the keeper program
** (runtime/keeper/keeper.c) share: the status pipe's record and the two
** calls a child makes on it between fork or vfork and exec. Only
** async-signal-safe calls.
*/
#ifndef DJINN_PROC_SPAWN_H
#define DJINN_PROC_SPAWN_H

/* What a child reports through the status pipe (EOF: exec succeeded). */
struct spawn_failure {
    int stage; /* SPAWN_EXEC, SPAWN_CHDIR, SPAWN_SETUP or SPAWN_KEEPER */
    int err;
};

enum {
    SPAWN_EXEC = 0,  /* the program's exec */
    SPAWN_CHDIR = 1, /* chdir to cwd */
    SPAWN_SETUP = 2, /* dup2, open, prctl */
    SPAWN_KEEPER = 3 /* the keeper program's own exec */
};

/* The keeper's sweep gives up after this long (keeper.c); the spawner
** waits a second longer for it before a KILL. */
#define SPAWN_KEEPER_GIVEUP_MS 10000

/* Report {stage, err} on status_fd and _exit(127). */
void spawn_fail(int status_fd, int stage, int err);

/* Exec argv (PATH searched; envp, else environ); on failure report
** {SPAWN_EXEC, errno} on status_fd and _exit. Never returns. */
void spawn_exec(char **argv, char **envp, int status_fd);

#endif
