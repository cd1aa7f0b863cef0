/*
** util.h - small helpers shared by the djinn-lua runtime.
**
** dj_x* allocate like tmux's xmalloc family: they never return NULL (they
** abort on out-of-memory, because the host cannot report anything useful
** then) and the array variants check the multiplication for overflow.
** Use them only for memory the caller frees before any Lua call that can
** raise (docs/style.md rule 17); anything that outlives one Lua call lives
** in a userdata.
*/
#ifndef DJINN_UTIL_H
#define DJINN_UTIL_H

#include <limits.h>
#include <stddef.h>

#include <lua.h>

void *dj_xmalloc(size_t size);
void *dj_xcalloc(size_t nmemb, size_t size);
void *dj_xreallocarray(void *ptr, size_t nmemb, size_t size);
char *dj_xstrdup(const char *s);

/* Push nil and a formatted message (lua_pushfstring formats); returns 2. */
int dj_pushfail(lua_State *L, const char *fmt, ...);

/*
** Read an optional number field `name` from the table at index `idx` as
** seconds; returns `def` when absent. Raises on a wrong type (misuse).
*/
double dj_optnumfield(lua_State *L, int idx, const char *name, double def);

/* Monotonic clock, seconds. */
double dj_now(void);

/* A lua_pcall message handler: the message with a traceback (lua.c). */
int dj_msghandler(lua_State *L);

/*
** The exit status of a program from the nres values at the top of the
** stack (what djinn-lua's main and proc.spawn{fn =} children exit with):
**   an integer         that status (outside 0..255: 1)
**   true / false       0 / 1
**   nil, "message" [, code]   "djinn-lua: message" on stderr, then code
**                      (an integer 1..255) or 1
**   anything else      strict (what != NULL): "djinn-lua: internal
**                      error: WHAT returned TYPE instead of an exit
**                      status" and 1; otherwise 0 (as lua.c, for a
**                      script returning nothing).
*/
lua_Integer dj_exit_status(lua_State *L, int nres, const char *what);

/*
** The process title (what ps shows as the command line), as setproctitle
** in sshd and PostgreSQL: main() hands over its argv once (the strings
** are contiguous), and a forked child (proc.spawn{fn =, title =}) writes
** its title over them, NUL-padded, cut to the space the kernel gave.
*/
void dj_title_area(int argc, char **argv);
void dj_set_title(const char *title);

/*
** A file of ours that djinn-lua finds from where it runs (the lazy
** modules, the keeper program), first found wins:
**   <exe dir>/BUILD_REL            (the build tree: build/)
**   <exe dir>/../lib/djinn/NAME    (an installed tree, even moved)
**   DJINN_LIBDIR/NAME              ($(PREFIX)/lib/djinn at build time)
** found: access(path, mode) succeeds. -> 1 with its path in path (size
** DJ_LIBPATH), or 0 with why: "NAME is missing (looked for A, B, C",
** for the caller to end.
*/
#define DJ_LIBPATH (PATH_MAX + 64)
int dj_find_lib(const char *build_rel, const char *name, int mode, char *path,
                char *why, size_t whylen);

#endif /* DJINN_UTIL_H */
