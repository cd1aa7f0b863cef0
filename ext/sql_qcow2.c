/*
** sql_qcow2.c - SQL adapters over the QCOW2 validator (qcow2.h).
**
** Each function takes one argument X:
**   - a BLOB: the image's bytes, checked in memory (qcow2_check_buf);
**   - TEXT: a file path, read with pread() (qcow2_check_path), relative
**     paths against the process's working directory. Only a regular file
**     or a block device is read: a FIFO, socket or directory is refused at
**     once (opened without blocking). A path with a NUL byte inside raises;

**   - NULL: the result is NULL.
** Any other type (INTEGER, REAL) is a misuse and raises
** "<function>: expected a BLOB (image bytes) or TEXT (file path), got ...".
**
**   qcow2_validate(X) -> 1 if X is an acceptable QCOW2 v3 image, else 0.
**       Never raises for a bad or unreadable image: a missing file is 0.
**         SELECT qcow2_validate('fixtures/plain.qcow2');        -- 1
**         SELECT qcow2_validate(x'00');                        -- 0
**         SELECT qcow2_validate(readfile('disk.qcow2'));       -- BLOB
**
**   qcow2_check(X) -> JSON text listing every problem found:
**       {"valid":false,"errors":[{"code":"version","message":"..."}],
**        "warnings":[...]}. Never raises for a bad image.
**         SELECT json_extract(qcow2_check('v2.qcow2'), '$.errors[0].code');
**
**   qcow2_info(X) -> JSON text with what the header says and what the deep
**       check measured ({"version":3,"virtual_size":1073741824,...}).
**       Raises "qcow2_info: <path>: not a qcow2 image (<reason>)" when X is
**       not QCOW2 at all or cannot be read; a QCOW2 image with problems
**       (v2, dirty, backing file) still gets its info.
**         SELECT json_extract(qcow2_info('fixtures/plain.qcow2'),
**                             '$.virtual_size');               -- 1073741824
**
** Flags: SQLITE_UTF8 | SQLITE_DIRECTONLY, and not DETERMINISTIC. With a
** TEXT argument these functions read a file, whose content can change
** between calls, so they are not deterministic; and reading arbitrary files
** is not innocuous: DIRECTONLY keeps them out of views, triggers, CHECK
** constraints and generated columns, where a database file from someone
** else could make them probe the filesystem.
**
** Memory: the validator's JSON is malloc()ed (qcow2.h); it is handed to
** SQLite with SQLITE_TRANSIENT and freed at once.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <stdlib.h>
#include <string.h>

#include "qcow2.h"
#include "schema.h"
#include "sql_qcow2.h"

static const char *type_name(int t)
{
    switch (t) {
    case SQLITE_INTEGER:
        return "INTEGER";
    case SQLITE_FLOAT:
        return "REAL";
    case SQLITE_BLOB:
        return "BLOB";
    case SQLITE_TEXT:
        return "TEXT";
    default:
        return "NULL";
    }
}

/*
** Run the check on argv[0]. Returns 0 when the check ran (r filled; also
** for a bad image), 1 when the argument is NULL (result already NULL), -1
** when an error was set on ctx.
*/
static int check_arg(sqlite3_context *ctx, const char *fn, sqlite3_value *v,
                     struct qcow2_report *r)
{
    static const unsigned char empty[1] = {0};
    const void *blob;
    const char *path;
    int t, rc, n;
    char *msg = NULL;

    memset(r, 0, sizeof(*r));
    t = sqlite3_value_type(v);
    if (t == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return 1;
    }
    if (t == SQLITE_BLOB) {
        blob = sqlite3_value_blob(v);
        n = sqlite3_value_bytes(v);
        if (blob == NULL && n > 0) {
            sqlite3_result_error_nomem(ctx);
            return -1;
        }
        rc = qcow2_check_buf(blob != NULL ? blob : empty, (size_t)n, 0, r);
    } else if (t == SQLITE_TEXT) {
        if (reg_text_arg(ctx, fn, v, "path", &path) != 0)
            return -1;
        rc = qcow2_check_path(path, 0, r);
    } else {
        msg = sqlite3_mprintf("%s: expected a BLOB (image bytes) or TEXT "
                              "(file path), got %s",
                              fn, type_name(t));
        reg_result_msg(ctx, msg);
        return -1;
    }
    if (rc != 0) {
        qcow2_report_free(r);
        sqlite3_result_error_nomem(ctx);
        return -1;
    }
    return 0;
}

/* Hand malloc()ed JSON to SQLite; NULL means the validator ran out. */
static void result_json(sqlite3_context *ctx, char *json)
{
    if (json == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, json, -1, SQLITE_TRANSIENT);
    free(json);
}

static void qcow2_validate_func(sqlite3_context *ctx, int argc,
                                sqlite3_value **argv)
{
    struct qcow2_report r;

    (void)argc;
    if (check_arg(ctx, "qcow2_validate", argv[0], &r) != 0)
        return;
    sqlite3_result_int(ctx, r.valid ? 1 : 0);
    qcow2_report_free(&r);
}

static void qcow2_check_func(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv)
{
    struct qcow2_report r;

    (void)argc;
    if (check_arg(ctx, "qcow2_check", argv[0], &r) != 0)
        return;
    result_json(ctx, qcow2_report_json(&r));
    qcow2_report_free(&r);
}

static void qcow2_info_func(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv)
{
    struct qcow2_report r;
    const char *why;
    char *msg = NULL;

    (void)argc;
    if (check_arg(ctx, "qcow2_info", argv[0], &r) != 0)
        return;
    if (!r.is_qcow2) {
        why = qcow2_first_error(&r);
        if (sqlite3_value_type(argv[0]) == SQLITE_BLOB)
            msg = sqlite3_mprintf(
                "qcow2_info: BLOB of %d bytes: not a qcow2 image (%s)",
                sqlite3_value_bytes(argv[0]), why ? why : "no QFI magic");
        else
            msg = sqlite3_mprintf("qcow2_info: %s: not a qcow2 image (%s)",
                                  (const char *)sqlite3_value_text(argv[0]),
                                  why ? why : "no QFI magic");
        if (msg == NULL) {
            sqlite3_result_error_nomem(ctx);
        } else {
            sqlite3_result_error(ctx, msg, -1);
            sqlite3_free(msg);
        }
        qcow2_report_free(&r);
        return;
    }
    result_json(ctx, qcow2_info_json(&r));
    qcow2_report_free(&r);
}

int reg_qcow2_functions(sqlite3 *db, int drop)
{
    static const struct reg_sql_func funcs[] = {
        {"qcow2_validate", 1, SQLITE_DIRECTONLY, qcow2_validate_func},
        {"qcow2_check", 1, SQLITE_DIRECTONLY, qcow2_check_func},
        {"qcow2_info", 1, SQLITE_DIRECTONLY, qcow2_info_func},
    };

    return reg_create_functions(db, funcs, sizeof(funcs) / sizeof(funcs[0]),
                                drop);
}
