/*
** djinn.c - entry point of the djinn SQLite extension (build/djinn.so).
**
**     sqlite3 registry.db -cmd '.load build/djinn'
**     conn.enable_load_extension(True); conn.load_extension('build/djinn')
**
** djinn-lua and the test drivers compile the same sources with SQLITE_CORE
** and call sqlite3_djinn_init(db, &err, NULL) on every connection.
**
** On load, for the connection's main database:
**   - PRAGMA foreign_keys = ON; a busy timeout of 10 s if none is set.
**   - read-only database: nothing else.
**   - empty database (no schema objects, application_id 0): becomes a
**     registry: journal_mode = WAL (unless in memory or temporary),
**     application_id 0x446a6e6e ("Djnn"), every migration of schema/.
**   - a djinn registry (our application_id) at an older schema version:
**     migrated, one BEGIN IMMEDIATE transaction per migration, each
**     re-checking user_version inside the transaction so that several
**     processes opening the same file at once migrate it exactly once.
**   - a registry newer than this extension, or anybody else's database:
**     left alone. The qcow2_* functions work everywhere; the registry
**     functions raise an error that says why they cannot work there.
** Before that, every SQL function is registered (see sql_qcow2.c and
** registry.c for the list, with examples, and the reasons for their flags).
** The entry point returns the first error, with "djinn: <why>" in *pzErrMsg.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <stdio.h>
#include <string.h>

#include "djinn.h"
#include "registry.h"

#define REG_BEGIN_TRIES 40

/* Run a one-value query; *out gets column 0 of the first row (0 if none). */
static int reg_query_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *out = 0;
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

struct reg_state {
    sqlite3_int64 app_id, version, objects;
};

/* The three facts in ONE statement, so from one read snapshot: read one
** by one, a concurrent first migration could be seen half (objects but
** no application_id yet: "somebody else's database", left unmigrated). */
static int reg_read_state(sqlite3 *db, struct reg_state *s)
{
    sqlite3_stmt *st = NULL;
    int rc;

    s->app_id = s->version = s->objects = 0;
    rc = sqlite3_prepare_v2(
        db,
        "SELECT (SELECT application_id FROM main.pragma_application_id),"
        " (SELECT user_version FROM main.pragma_user_version),"
        " (SELECT count(*) FROM main.sqlite_schema)",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        s->app_id = sqlite3_column_int64(st, 0);
        s->version = sqlite3_column_int64(st, 1);
        s->objects = sqlite3_column_int64(st, 2);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

int reg_begin_immediate(sqlite3 *db, char **err)
{
    unsigned char r;
    int rc, i;

    *err = NULL;
    for (i = 0;; i++) {
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return SQLITE_OK;
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (sqlite3_extended_errcode(db) == SQLITE_BUSY_SNAPSHOT) {
            *err = sqlite3_mprintf(
                "another connection changed the registry while the "
                "enclosing statement was reading it, so this connection "
                "cannot write until that statement ends (SQLITE_BUSY_"
                "SNAPSHOT); call the function from a statement of its own, "
                "e.g. SELECT image_register(...) without FROM");
            return SQLITE_BUSY;
        }
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
            *err = sqlite3_mprintf("cannot start a write transaction: %s",
                                   sqlite3_errmsg(db));
            return rc;
        }
        if (i + 1 >= REG_BEGIN_TRIES) {
            *err = sqlite3_mprintf(
                "cannot start a write transaction: the registry stayed "
                "locked by other writers through the busy timeout and %d "
                "retries (%s)",
                REG_BEGIN_TRIES, sqlite3_errmsg(db));
            return rc;
        }
        sqlite3_randomness(1, &r);
        sqlite3_sleep(20 + r % 64);
    }
}

int reg_check_registry(sqlite3 *db, char **err)
{
    struct reg_state s;
    int rc;

    *err = NULL;
    rc = reg_read_state(db, &s);
    if (rc != SQLITE_OK) {
        *err =
            sqlite3_mprintf("cannot read the registry: %s", sqlite3_errmsg(db));
        return rc;
    }
    if (s.app_id != DJINN_APPLICATION_ID) {
        *err = sqlite3_mprintf(
            "this database is not a djinn registry (application_id 0x%08llx, "
            "a registry has 0x%08x); open an empty or new file to create one",
            (unsigned long long)(s.app_id & 0xffffffffULL),
            DJINN_APPLICATION_ID);
        return SQLITE_ERROR;
    }
    if (s.version > djinn_schema_version) {
        *err = sqlite3_mprintf(
            "the registry has schema version %lld, newer than this "
            "extension knows (%d); upgrade djinn",
            s.version, djinn_schema_version);
        return SQLITE_ERROR;
    }
    if (s.version < djinn_schema_version) {
        *err = sqlite3_mprintf(
            "the registry has schema version %lld, older than this "
            "extension's %d; open it read-write once to migrate it",
            s.version, djinn_schema_version);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

/* One migration step in its own transaction. *done = 1 when up to date. */
static int reg_migrate_step(sqlite3 *db, int *done, char **err)
{
    struct reg_state s;
    char *sql = NULL;
    char *msg = NULL;
    int rc, next;

    *done = 0;
    rc = reg_begin_immediate(db, err);
    if (rc != SQLITE_OK)
        return rc;
    rc = reg_read_state(db, &s);
    if (rc != SQLITE_OK)
        goto dberr;
    if (!(s.app_id == DJINN_APPLICATION_ID ||
          (s.app_id == 0 && s.version == 0 && s.objects == 0)) ||
        s.version >= djinn_schema_version) {
        /* Up to date, newer, or made foreign meanwhile. */
        *done = 1;
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            goto dberr;
        return SQLITE_OK;
    }
    next = (int)s.version + 1;
    rc = sqlite3_exec(db, djinn_schema_migrations[next - 1], NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        *err = sqlite3_mprintf("schema migration %d failed: %s", next,
                               msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    sql = sqlite3_mprintf("PRAGMA main.user_version = %d; "
                          "PRAGMA main.application_id = %d; COMMIT",
                          next, DJINN_APPLICATION_ID);
    if (sql == NULL) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return SQLITE_NOMEM;
    }
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        goto dberr;
    return SQLITE_OK;

dberr:
    *err = sqlite3_mprintf("schema migration failed: %s", sqlite3_errmsg(db));
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int reg_schema_apply(sqlite3 *db, char **err)
{
    struct reg_state s;
    const char *file;
    int rc, done = 0;

    *err = NULL;
    if (sqlite3_db_readonly(db, "main") != 0)
        return SQLITE_OK;
    rc = reg_read_state(db, &s);
    if (rc != SQLITE_OK) {
        *err =
            sqlite3_mprintf("cannot read the database: %s", sqlite3_errmsg(db));
        return rc;
    }
    if (s.app_id == DJINN_APPLICATION_ID) {
        if (s.version >= djinn_schema_version)
            return SQLITE_OK;
    } else if (s.app_id == 0 && s.version == 0 && s.objects == 0) {
        file = sqlite3_db_filename(db, "main");
        if (file != NULL && file[0] != '\0') {
            /* Outside a transaction. Several processes may do this at
            ** once; the change needs an exclusive lock, so retry. */
            for (int i = 0; i < REG_BEGIN_TRIES; i++) {
                rc = sqlite3_exec(db, "PRAGMA main.journal_mode = WAL", NULL,
                                  NULL, NULL);
                if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                    break;
                sqlite3_sleep(20 + 10 * (i % 4));
            }
            if (rc != SQLITE_OK) {
                *err = sqlite3_mprintf("cannot set journal_mode=WAL: %s",
                                       sqlite3_errmsg(db));
                return rc;
            }
        }
    } else {
        return SQLITE_OK; /* someone else's database */
    }
    while (!done) {
        rc = reg_migrate_step(db, &done, err);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

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
    rc = reg_qcow2_functions(db);
    if (rc == SQLITE_OK)
        rc = reg_registry_functions(db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = reg_query_int(db, "PRAGMA busy_timeout", &timeout);
    if (rc == SQLITE_OK && timeout == 0)
        rc = sqlite3_busy_timeout(db, 10000);
    if (rc != SQLITE_OK) {
        if (pzErrMsg != NULL)
            *pzErrMsg = sqlite3_mprintf("djinn: %s", sqlite3_errmsg(db));
        return rc;
    }
    rc = reg_schema_apply(db, &err);
    if (rc != SQLITE_OK) {
        if (pzErrMsg != NULL)
            *pzErrMsg =
                sqlite3_mprintf("djinn: %s", err ? err : "out of memory");
        sqlite3_free(err);
        return rc;
    }
    return SQLITE_OK;
}
