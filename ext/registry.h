/*
** registry.h - the registry layer of the extension (registry.c):
** namespaces, images, settings, and the name rules.
**
** Place in the one-way graph (see schema.h): uses store.h and schema.h;
** used by djinn.c and djinn-lua (runtime/l_registry.c). Not installed.
**
** Ownership: every char * an out-parameter returns is sqlite3_malloc()ed and
** released by the caller with sqlite3_free(). A NULL message with an error
** return means that memory ran out.
*/
#ifndef DJINN_REGISTRY_H
#define DJINN_REGISTRY_H

#include <sqlite3.h>

#include "schema.h"
#include "fetch.h"
#include "store.h"

/*
** Register the registry functions; with drop, remove them again (when the
** entry point fails, SQLite unloads the library: functions left registered
** would point into unmapped code).
*/
int reg_registry_functions(sqlite3 *db, int drop);

/* The longest owner name; an owner buffer holds REG_MAX_OWNER + 1. */
#define REG_MAX_OWNER 64

/*
** The owner a namespace without "@owner" (and a personal image) belongs
** to: the effective user's name from the password database, or the uid
** as a number when that name is not a valid owner.
*/
void reg_current_user(char *out, size_t n);

/*
** The name rules, the same every SQL function applies: SQLITE_OK, or
** SQLITE_ERROR with *err saying what is wrong and what is allowed (the
** messages of the SQL functions, without the function name in front).
** A namespace is path[@owner] (not empty); an image name [A-Za-z0-9_-]+.
*/
int reg_check_namespace(const char *spec, char **err);
int reg_check_image_name(const char *name, char **err);

/*
** Commit a streaming ingest (store.h) as image `name` in namespace spec
** (NULL or "": the current user's personal images): the finished temp
** file is validated, then in ONE transaction the store is claimed, the
** namespace created if need be, the file linked into the store by its hash
** and the images row inserted. On any failure nothing is left of it: no
** row, no namespace, no file (the caller still aborts the ingest, which
** removes the temp file). Not inside a transaction. *id: the new row.
*/
int reg_ingest_commit(sqlite3 *db, struct store_ingest *ing, const char *spec,
                      const char *name, sqlite3_int64 *id, char **err);

/*
** Register image `name` in namespace spec from source: a local file, or a
** URL (http, https, file, sftp: fetch.h) streamed into the store while it
** is hashed. The same validation and the same all-or-nothing commit as a
** file; a URL's origin (redacted URL, content type, bytes, SHA-256, start
** and end times) is recorded in image_sources in the same transaction.
** imp may be NULL (defaults). imp->sha256 pins the content (64 hex digits,
** either case): another content is refused before validation.
** imp->progress sees a URL's bytes as they arrive (nonzero cancels:
** SQLITE_INTERRUPT); imp->got gets what the transfer said.
*/
struct reg_import {
    struct dj_fetch_opts fetch;
    const char *sha256;
    dj_fetch_progress progress;
    void *arg;
    struct dj_fetch_result got; /* out */
};
int reg_image_import(sqlite3 *db, const char *spec, const char *name,
                     const char *source, struct reg_import *imp,
                     sqlite3_int64 *id, char **err);

#endif /* DJINN_REGISTRY_H */
