/*
** sql_runner - run the tests/sql files against the extension, linked statically.
**
**     sql_runner DJINN_SO FILE.sql...
**
** DJINN_SO is accepted for symmetry with tests/sql_shell.sh and ignored:
** this driver links ext/ with SQLITE_CORE and calls sqlite3_djinn_init()
** on each connection, so it is also the binary built with sanitizers and run
** under valgrind.
**
** Each file runs against a fresh database, <dir>/reg.db, in a new directory
** under $DJINN_WORK (or $TMPDIR, /tmp), removed afterwards; the default
** store is <dir>/images. The working directory is left alone, so files can
** name 'fixtures/plain.qcow2'.
**
** File format (sqlean rows plus SQLite test-style error expectations):
**     select 'qcow2_info.3', <expr>;
** Every result row is a TAP point named by its first column, which passes
** when its last column reads "1".
**     -- error: <substring>
**     <statement>;
** A `-- error:` comment before a statement means the statement must fail
** with a message containing <substring>: one point. Any other error is a
** failing point, reported as FILE:LINE. After each file one more point checks
** that the store matches the images table (djinn_fsck()), when the database
** is still a registry.
**
** Output is TAP on stdout, deterministic for a given input; exit status 0
** when every point passed.
*/
#include <errno.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "djinn.h"

static int n_tests, n_failed;

static void point(int good, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void point(int good, const char *fmt, ...)
{
    va_list ap;

    n_tests++;
    if (!good)
        n_failed++;
    printf("%sok %d - ", good ? "" : "not ", n_tests);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/*
** Skip whitespace and comments from p. When a line comment is
** "-- error: X", copy X (trimmed) into expect.
*/
static const char *skip_gap(const char *p, char *expect, size_t n)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);

            if (strncmp(p, "-- error:", 9) == 0) {
                const char *s = p + 9;
                size_t sl = len - 9;

                while (sl > 0 && *s == ' ') {
                    s++;
                    sl--;
                }
                while (sl > 0 && (s[sl - 1] == ' ' || s[sl - 1] == '\r'))
                    sl--;
                if (sl >= n)
                    sl = n - 1;
                memcpy(expect, s, sl);
                expect[sl] = '\0';
            }
            p += len;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");

            p = e ? e + 2 : p + strlen(p);
            continue;
        }
        return p;
    }
}

static int line_of(const char *buf, const char *p)
{
    int line = 1;

    for (; buf < p; buf++)
        if (*buf == '\n')
            line++;
    return line;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/*
** readfile(path) -> BLOB, or NULL when the file cannot be read: the same
** as the sqlite3 shell's built-in, so that test files run in both.
*/
static void readfile_func(sqlite3_context *ctx, int argc,
                          sqlite3_value **argv)
{
    const char *path = (const char *)sqlite3_value_text(argv[0]);
    FILE *f = NULL;
    char *buf = NULL;
    long n;

    (void)argc;
    if (path == NULL)
        return;
    f = fopen(path, "rb");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = sqlite3_malloc64((sqlite3_uint64)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n)
            sqlite3_result_blob64(ctx, buf, (sqlite3_uint64)n, sqlite3_free);
        else
            sqlite3_free(buf);
    }
    fclose(f);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* Run one statement; print its points. */
static void run_statement(sqlite3 *db, const char *file, int line,
                          const char *sql, const char **tail,
                          const char *expect)
{
    sqlite3_stmt *st = NULL;
    char *errmsg = NULL;
    int rc, i, n;

    rc = sqlite3_prepare_v2(db, sql, -1, &st, tail);
    if (rc == SQLITE_OK && st == NULL)
        return;
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name, *last;

            n = sqlite3_column_count(st);
            name = (const char *)sqlite3_column_text(st, 0);
            last = (const char *)sqlite3_column_text(st, n - 1);
            if (n < 2) {
                point(0, "%s:%d: a test row needs a name and a value "
                      "(got %d column)", file, line, n);
                continue;
            }
            point(last != NULL && strcmp(last, "1") == 0, "%s: %s", file,
                  name ? name : "(null)");
            if (last == NULL || strcmp(last, "1") != 0) {
                printf("#   %s:%d: got", file, line);
                for (i = 1; i < n; i++) {
                    const char *v = (const char *)sqlite3_column_text(st, i);
                    printf(" %s", v ? v : "NULL");
                }
                printf("\n");
            }
        }
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        errmsg = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (expect[0] != '\0') {
        int good = errmsg != NULL && strstr(errmsg, expect) != NULL;

        point(good, "%s:%d: error '%s'", file, line, expect);
        if (!good)
            printf("#   got: %s\n", errmsg ? errmsg : "no error");
    } else if (errmsg != NULL) {
        point(0, "%s:%d: unexpected error: %s", file, line, errmsg);
    }
    sqlite3_free(errmsg);
}

static void run_file(const char *path)
{
    const char *file = base_name(path);
    const char *work = getenv("DJINN_WORK");
    char dir[4096], dbpath[4200], expect[512];
    const char *p, *tail = NULL;
    char *sql = NULL, *err = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc;

    printf("# %s\n", file);
    if (work == NULL || work[0] == '\0')
        work = getenv("TMPDIR");
    if (work == NULL || work[0] == '\0')
        work = "/tmp";
    snprintf(dir, sizeof(dir), "%s/sql-%s.XXXXXX", work, file);
    if (mkdtemp(dir) == NULL) {
        point(0, "%s: mkdtemp %s: %s", file, dir, strerror(errno));
        return;
    }
    snprintf(dbpath, sizeof(dbpath), "%s/reg.db", dir);
    sql = read_file(path);
    if (sql == NULL) {
        point(0, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    rc = sqlite3_open_v2(dbpath, &db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_djinn_init(db, &err, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "readfile", 1, SQLITE_UTF8, NULL,
                                     readfile_func, NULL, NULL);
    if (rc != SQLITE_OK) {
        point(0, "%s: open %s: %s", file, dbpath,
              err ? err : sqlite3_errmsg(db));
        goto done;
    }
    p = sql;
    for (;;) {
        expect[0] = '\0';
        p = skip_gap(p, expect, sizeof(expect));
        if (*p == '\0')
            break;
        tail = NULL;
        run_statement(db, file, line_of(sql, p), p, &tail, expect);
        if (tail == NULL || tail == p) {
            /* prepare failed without consuming: skip to the next ';' */
            const char *semi = strchr(p, ';');

            if (semi == NULL)
                break;
            tail = semi + 1;
        }
        p = tail;
    }
    /* The store must match the table after every file. */
    rc = sqlite3_prepare_v2(
        db,
        "SELECT CASE WHEN (SELECT application_id FROM pragma_application_id)"
        " = 0x446a6e6e THEN json_extract(djinn_fsck(), '$.ok') ELSE 1 END,"
        " CASE WHEN (SELECT application_id FROM pragma_application_id)"
        " = 0x446a6e6e THEN djinn_fsck() END",
        -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    point(rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 1,
          "%s: store matches the images table (djinn_fsck)", file);
    if (rc != SQLITE_ROW || sqlite3_column_int(st, 0) != 1)
        printf("#   %s\n", rc == SQLITE_ROW
                               ? (const char *)sqlite3_column_text(st, 1)
                               : sqlite3_errmsg(db));
    sqlite3_finalize(st);
done:
    sqlite3_free(err);
    if (sqlite3_close(db) != SQLITE_OK)
        point(0, "%s: close: %s", file, sqlite3_errmsg(db));
    free(sql);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    int i;

    if (argc < 3) {
        fprintf(stderr, "usage: sql_runner DJINN_SO FILE.sql...\n");
        return 2;
    }
    for (i = 2; i < argc; i++)
        run_file(argv[i]);
    printf("1..%d\n", n_tests);
    return n_failed == 0 ? 0 : 1;
}
