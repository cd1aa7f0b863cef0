/*
** url.h - URLs as the registry names them (url.c). Apart from fetch.c so
** that djinn-lua, which loads libcurl only when it downloads
** (runtime/lazy.c), links these without it.
**
** Place in the one-way graph (see schema.h): uses SQLite's allocator only.
** Ownership: dj_url_redact's result is sqlite3_malloc()ed; release it with
** sqlite3_free().
*/
#ifndef DJINN_URL_H
#define DJINN_URL_H

/* s has the form scheme://... (any scheme; dj_fetch says which it takes). */
int dj_url_is(const char *s);

/* url without "user[:password]@" in its authority, otherwise unchanged
** (case kept). NULL: out of memory. */
char *dj_url_redact(const char *url);

#endif /* DJINN_URL_H */
