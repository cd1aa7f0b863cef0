/*
** djinn.c - entry point of the djinn SQLite extension (build/djinn.so).
**
** Place in the one-way graph (see schema.h): the top. It registers the SQL
** functions of sql_qcow2.c, store.c and registry.c and applies the schema
** (schema.c); nothing calls into it but SQLite and djinn-lua.
**
**     sqlite3 registry.db -cmd '.load build/djinn'
**     conn.enable_load_extension(True); conn.load_extension('build/djinn')
**
** djinn-lua and the test drivers compile the same sources with SQLITE_CORE
** and call sqlite3_djinn_init(db, &err, NULL) on every connection.
**
** On load: every SQL function is registered (see sql_qcow2.c and
** registry.c for the list, with examples, and the reasons for their
** flags); PRAGMA foreign_keys = ON; a busy timeout of 10 s if none is set;
** then the schema policy of schema.c (reg_schema_apply: create, migrate,
** or leave alone) and, on a registry opened read-write, the -wal and -shm
** files are kept after the last close (reg_keep_wal). The qcow2_*
** functions work on any database; the registry functions raise an error
** that says why they cannot work on one that is not a usable registry.
** The entry point returns the first error, with "djinn: <why>" in
** *pzErrMsg.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "djinn.h"
#include "registry.h"
#include "schema.h"
#include "sql_qcow2.h"
#include "store.h"

#ifdef _WIN32
__declspec(dllexport)
#endif
    int sqlite3_djinn_init(sqlite3 *db, char **pzErrMsg,
                           const sqlite3_api_routines *pApi)
{
    sqlite3_int64 timeout = 0;
    char *err = NULL;
    int rc;

    SQLITE_EXTENSION_INIT2(pApi);
    rc = reg_qcow2_functions(db, 0);
    if (rc == SQLITE_OK)
        rc = reg_store_functions(db, 0);
    if (rc == SQLITE_OK)
        rc = reg_registry_functions(db, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = reg_query_int(db, "PRAGMA busy_timeout", &timeout);
    if (rc == SQLITE_OK && timeout == 0)
        rc = sqlite3_busy_timeout(db, 10000);
    if (rc != SQLITE_OK) {
        err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    } else {
        rc = reg_schema_apply(db, &err);
    }
    if (rc != SQLITE_OK) {
        /* A failed load is unloaded (dlclose): nothing of ours may stay
        ** registered on the connection, or its next call jumps into
        ** unmapped code. */
        reg_registry_functions(db, 1);
        reg_store_functions(db, 1);
        reg_qcow2_functions(db, 1);
        if (pzErrMsg != NULL)
            *pzErrMsg =
                sqlite3_mprintf("djinn: %s", err ? err : "out of memory");
        sqlite3_free(err);
        return rc;
    }
    reg_keep_wal(db);
    return SQLITE_OK;
}
