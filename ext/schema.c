/*
** schema.c - the registry database: schema version and migrations,
** transactions, settings, and the error and argument helpers of the SQL
** functions.
**
** Place in the one-way graph (see schema.h): the bottom of the SQLite part.
** Uses only SQLite and build/schema.c (the migrations of schema/, embedded
** by schema/embed.sh); store.c, registry.c, sql_qcow2.c and djinn.c use it.
**
** On load (reg_schema_apply, called by djinn.c), for the connection's main
** database:
**   - read-only database: nothing.
**   - empty database (no schema objects, application_id 0): becomes a
**     registry: journal_mode = WAL (unless in memory or temporary),
**     application_id 0x446a6e6e ("Djnn"), every migration of schema/.
**   - a djinn registry (our application_id) at an older schema version:
**     migrated, one BEGIN IMMEDIATE transaction per migration, each
**     re-checking user_version inside the transaction so that several
**     processes opening the same file at once migrate it exactly once.
**   - a registry newer than this extension, a damaged one (our
**     application_id with a user_version below 0, or 0 on a file with
**     schema objects: reg_damaged), or anybody else's database: left
**     alone, nothing written. The registry functions raise an error that
**     says why they cannot work there and what to do (reg_check_registry).
**   - a registry opened read-write keeps its -wal and -shm files after
**     the last close (reg_keep_wal), so users who may only read it can
**     open it.
** Waiting for other writers is bounded by the busy timeout as a whole
** (reg_begin_immediate), not per attempt.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "schema.h"

/* Run a one-value query; *out gets column 0 of the first row (0 if none). */
int reg_query_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
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

static sqlite3_int64 reg_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
** The one bound on waiting for other writers: the connection's busy
** timeout (10 s unless the caller set another; PRAGMA busy_timeout), from
** `start` on, whatever the number of attempts. Returns 1 after a short
** randomised pause when there is time left for another attempt, whose own
** busy wait is cut to what is left; 0 when the time is up. reg_wait_end
** puts the connection's timeout back.
*/
struct reg_wait {
    sqlite3_int64 start, bound;
};

static void reg_wait_begin(sqlite3 *db, struct reg_wait *w)
{
    w->start = reg_now_ms();
    if (reg_query_int(db, "PRAGMA busy_timeout", &w->bound) != SQLITE_OK ||
        w->bound < 0)
        w->bound = 0;
}

static int reg_wait_more(sqlite3 *db, const struct reg_wait *w)
{
    sqlite3_int64 left = w->bound - (reg_now_ms() - w->start);
    unsigned char r;
    int pause;

    if (left <= 0)
        return 0;
    sqlite3_randomness(1, &r);
    pause = 10 + r % 40;
    if (pause > left)
        pause = (int)left;
    sqlite3_sleep(pause);
    left -= pause;
    if (left <= 0)
        return 0;
    sqlite3_busy_timeout(db, (int)left);
    return 1;
}

static void reg_wait_end(sqlite3 *db, const struct reg_wait *w)
{
    if (w->bound > 0)
        sqlite3_busy_timeout(db, (int)w->bound);
}

int reg_begin_immediate(sqlite3 *db, char **err)
{
    struct reg_wait w;
    int rc;

    *err = NULL;
    reg_wait_begin(db, &w);
    for (;;) {
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            break;
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (sqlite3_extended_errcode(db) == SQLITE_BUSY_SNAPSHOT) {
            *err = sqlite3_mprintf(
                "another connection changed the registry while the "
                "enclosing statement was reading it, so this connection "
                "cannot write until that statement ends (SQLITE_BUSY_"
                "SNAPSHOT); call the function from a statement of its own, "
                "e.g. SELECT image_register(...) without FROM");
            rc = SQLITE_BUSY;
            break;
        }
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
            *err = sqlite3_mprintf("cannot start a write transaction: %s",
                                   sqlite3_errmsg(db));
            break;
        }
        if (!reg_wait_more(db, &w)) {
            *err = sqlite3_mprintf(
                "cannot start a write transaction: another writer kept the "
                "registry locked for %.1f s, the busy timeout "
                "(PRAGMA busy_timeout = %lld ms); try again when it is done",
                (double)(reg_now_ms() - w.start) / 1000.0, w.bound);
            break;
        }
    }
    reg_wait_end(db, &w);
    return rc;
}

/*
** Our application_id with a schema version no migration ever leaves: below
** 0, or 0 with schema objects (the migrations set user_version and
** application_id in the same transaction). Such a file is damaged and is
** never written; the version must never index the migrations. An EMPTY
** file stamped with our id and version 0 has nothing to lose and is
** initialised like a new one.
*/
static int reg_damaged(const struct reg_state *s)
{
    return s->app_id == DJINN_APPLICATION_ID &&
           (s->version < 0 || (s->version == 0 && s->objects > 0));
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
    if (reg_damaged(&s)) {
        *err = sqlite3_mprintf(
            "the registry is damaged: it is marked as a djinn registry "
            "(application_id 0x%08x) but its schema version (PRAGMA "
            "user_version) is %lld, where a registry has 1 to %d; nothing "
            "was changed. Restore the file from a backup, or move it aside "
            "and register the images again from its store (the files there "
            "are named <sha256>.qcow2)",
            DJINN_APPLICATION_ID, s.version, djinn_schema_version);
        return SQLITE_CORRUPT;
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
        s.version >= djinn_schema_version || reg_damaged(&s)) {
        /* Up to date, newer, made foreign meanwhile, or damaged (a
        ** version below 1 on our file: never an index into the array). */
        *done = 1;
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            goto dberr;
        return SQLITE_OK;
    }
    next = (int)s.version + 1;
    if (next < 1 || next > djinn_schema_version) { /* cannot happen */
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        *err = sqlite3_mprintf("schema version %lld out of range", s.version);
        return SQLITE_CORRUPT;
    }
    rc = sqlite3_exec(db, djinn_schema_migrations[next - 1], NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        *err = sqlite3_mprintf(
            "schema migration %d failed: %s (rolled back, nothing changed; "
            "if the file's PRAGMA user_version was edited or damaged, "
            "restore the registry from a backup)",
            next, msg ? msg : sqlite3_errmsg(db));
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
        /* Up to date, newer, or damaged: left alone; the registry
        ** functions say why they refuse (reg_check_registry). */
        if (s.version >= djinn_schema_version || reg_damaged(&s))
            return SQLITE_OK;
    } else if (s.app_id == 0 && s.version == 0 && s.objects == 0) {
        file = sqlite3_db_filename(db, "main");
        if (file != NULL && file[0] != '\0') {
            struct reg_wait w;

            /* Outside a transaction. Several processes may do this at
            ** once; the change needs an exclusive lock, so retry within
            ** the busy timeout. */
            reg_wait_begin(db, &w);
            do {
                rc = sqlite3_exec(db, "PRAGMA main.journal_mode = WAL", NULL,
                                  NULL, NULL);
            } while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
                     reg_wait_more(db, &w));
            reg_wait_end(db, &w);
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

/*
** On a registry opened read-write: keep the -wal and -shm files when the
** last connection closes (SQLITE_FCNTL_PERSIST_WAL). A user who may read
** the registry but not write it or its directory can only open a WAL
** database whose -wal and -shm files exist (SQLite 3.22+); without this,
** every read command of such a user fails with "attempt to write a
** readonly database".
*/
void reg_keep_wal(sqlite3 *db)
{
    struct reg_state s;
    int on = 1;

    if (sqlite3_db_readonly(db, "main") != 0)
        return;
    if (reg_read_state(db, &s) != SQLITE_OK || s.app_id != DJINN_APPLICATION_ID)
        return;
    (void)sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
}

/* ---------------------------------------------------------------------- */
/* Results and errors                                                      */

void reg_fail(sqlite3_context *ctx, const char *fn, int rc, char *err)
{
    char *msg = NULL;

    if (err == NULL) {
        if (rc == SQLITE_NOMEM || rc == SQLITE_OK)
            sqlite3_result_error_nomem(ctx);
        else
            sqlite3_result_error_code(ctx, rc);
        return;
    }
    msg = sqlite3_mprintf("%s: %s", fn, err);
    sqlite3_free(err);
    if (msg == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
}

int reg_dberr(sqlite3 *db, char **err, const char *what)
{
    int rc = sqlite3_errcode(db);

    *err = sqlite3_mprintf("%s: %s", what, sqlite3_errmsg(db));
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

int reg_text_arg(sqlite3_context *ctx, const char *fn, sqlite3_value *v,
                 const char *what, const char **out)
{
    const char *s;
    size_t len;
    int n;
    char *msg = NULL;

    *out = NULL;
    if (sqlite3_value_type(v) == SQLITE_NULL)
        return 0;
    s = (const char *)sqlite3_value_text(v);
    if (s == NULL) {
        sqlite3_result_error_nomem(ctx);
        return -1;
    }
    n = sqlite3_value_bytes(v);
    len = strlen(s);
    if (n < 0 || len != (size_t)n) {
        /* A C string would silently stop at the NUL: 'a\0b' is not 'a'. */
        msg = sqlite3_mprintf("%s: the %s has a NUL byte at offset %llu of "
                              "its %d bytes; NUL is not allowed in a %s",
                              fn, what, (unsigned long long)len, n, what);
        reg_result_msg(ctx, msg);
        return -1;
    }
    *out = s;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Transactions                                                            */

/*
** The functions that write store files commit their own transaction, so
** they cannot run where the caller's transaction or statement would have to
** include them.
*/
int reg_need_autocommit(sqlite3 *db, char **err)
{
    if (sqlite3_db_readonly(db, "main") == 1) {
        *err = sqlite3_mprintf("the registry is open read-only");
        return SQLITE_READONLY;
    }
    if (!sqlite3_get_autocommit(db)) {
        *err = sqlite3_mprintf(
            "cannot run inside an open transaction (BEGIN ... COMMIT): it "
            "changes files in the store, which a ROLLBACK could not undo; "
            "COMMIT or ROLLBACK first");
        return SQLITE_ERROR;
    }
    if (sqlite3_txn_state(db, "main") == SQLITE_TXN_WRITE) {
        *err = sqlite3_mprintf(
            "cannot run inside a statement that writes the registry (such as "
            "INSERT ... SELECT image_register(...)): it commits its own "
            "transaction; call it from a SELECT");
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

void reg_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------- */
/* Settings                                                                */

int reg_setting_get(sqlite3 *db, const char *key, char **value, char **err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *value = NULL;
    rc = sqlite3_prepare_v2(db, "SELECT value FROM settings WHERE key = ?1", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(db, err, "settings");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *value =
            sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
        rc = *value ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    } else {
        rc = reg_dberr(db, err, "settings");
    }
    sqlite3_finalize(st);
    return rc;
}

void reg_result_msg(sqlite3_context *ctx, char *msg)
{
    if (msg == NULL) {
        sqlite3_result_error_nomem(ctx);
    } else {
        sqlite3_result_error(ctx, msg, -1);
        sqlite3_free(msg);
    }
}

int reg_create_functions(sqlite3 *db, const struct reg_sql_func *funcs,
                         size_t n, int drop)
{
    size_t i;
    int rc = SQLITE_OK;

    for (i = 0; i < n; i++) {
        if (drop)
            (void)sqlite3_create_function(db, funcs[i].name, funcs[i].nargs,
                                          SQLITE_UTF8 | funcs[i].flags, NULL,
                                          NULL, NULL, NULL);
        else if (rc == SQLITE_OK)
            rc = sqlite3_create_function(db, funcs[i].name, funcs[i].nargs,
                                         SQLITE_UTF8 | funcs[i].flags, NULL,
                                         funcs[i].fn, NULL, NULL);
    }
    return rc;
}
