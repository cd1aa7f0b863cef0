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

#endif /* DJINN_UTIL_H */
