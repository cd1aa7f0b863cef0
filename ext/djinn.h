/*
** djinn.h - the registry extension's entry point, for static linking.
**
** build/djinn.so is loaded by SQLite (".load build/djinn" finds
** sqlite3_djinn_init). djinn-lua and the test drivers link the same
** sources compiled with -DSQLITE_CORE and call the entry point directly on
** every connection they open:
**
**     char *err = NULL;
**     if (sqlite3_djinn_init(db, &err, NULL) != SQLITE_OK) { ... err ... }
**     sqlite3_free(err);
*/
#ifndef DJINN_EXT_H
#define DJINN_EXT_H

#include <sqlite3.h>

struct sqlite3_api_routines;

int sqlite3_djinn_init(sqlite3 *db, char **pzErrMsg,
                       const struct sqlite3_api_routines *pApi);

#endif /* DJINN_EXT_H */
