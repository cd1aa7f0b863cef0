/*
** registry.c - the image registry's SQL functions: namespaces, images, the
** content-addressed file store and settings.
**
** All of them need the main database to be a djinn registry (see djinn.c);
** elsewhere they raise "<function>: this database is not a djinn registry
** (application_id ...)". NULL in gives NULL out (except the namespace of the
** image_* functions, where NULL or '' means the current user's personal
** images). Bad input raises "<function>: <what>: <why, what is allowed>".
**
** Namespaces are written `path[@owner]` as in Djinn: path segments of
** letters and digits ([A-Za-z0-9]+) joined by '/', at most 20 of them; the
** owner ([A-Za-z0-9_.-]+) defaults to the current Unix user (the user name of
** geteuid(), or the uid as a number). A namespace that does not exist is
** created on the fly with every missing ancestor, each exactly once; a child
** takes its parent's visibility. Image names are [A-Za-z0-9_-]+ (1 to 255).
**
** The store is a directory: `images/` beside the database file, or the
** 'store' setting (a relative value is taken against the database's
** directory). It is created (mode 0755) on first use. Files are stored as
** <store>/<sha256>.qcow2, mode 0444; images with identical content share one
** file, which is unlinked when the last row with that content is removed.
** A row never names a path: its sha256 does, under the store in effect
** (schema/003), so a registry moved with its store keeps working, and a
** file is kept as long as any row has its sha256. The store holds a marker,
** .djinn-store, naming the registry that owns it ("The store's owner",
** below): a second registry, or a registry file that was lost and
** re-created empty, never writes to it or repairs it.
**
** TEXT arguments with a NUL byte inside are refused (reg_text_arg): a C
** string would silently stop at it.
**
**   image_register(namespace, name, path) -> id of the new image.
**       Copies the file at path into the store (O_EXCL temp file, 0600) while
**       hashing it (SHA-256), fsyncs it, validates THE COPY with the QCOW2
**       validator, then in one short BEGIN IMMEDIATE transaction creates the
**       namespace if needed, renames the copy to its final name (or drops it
**       when an identical file is already referenced), fsyncs the directory,
**       inserts the row and commits. Any failure leaves nothing behind: no
**       row, no namespace, no temp file, no unreferenced file. Refused
**       before anything is copied when the store is another registry's;
**       the first registration marks an unclaimed store as this one's.
**       A rejected image raises with every reason the validator gave.
**       Refuses to run inside an open transaction (a file copy cannot be
**       rolled back) or inside a statement that writes. Inside a SELECT
**       that reads the registry (SELECT image_register(...) FROM t) it works
**       unless another process wrote meanwhile; then it says so.
**         SELECT image_register('team/ci', 'debian', '/tmp/debian.qcow2');
**         SELECT image_register(NULL, 'mine', 'disk.qcow2');   -- personal
**         SELECT image_register('ci@alice', 'x', 'x.qcow2');   -- alice's
**
**   image_path(namespace, name) -> absolute path of the stored file,
**       <store>/<sha256>.qcow2, or NULL when there is no such image.
**       Creates nothing.
**         SELECT image_path('team/ci', 'debian');
**
**   image_remove(namespace, name) -> 1 if the image was removed, 0 if there
**       was none. Deletes the row and, when no other row shares the file,
**       the file <store>/<row's sha256>.qcow2 and nothing else (renamed to
**       .trash-<sha256>-<pid>-<hex> before COMMIT, unlinked after, renamed
**       back if COMMIT fails; after a crash in between, repair restores it
**       because the row still needs it). Same transaction rules as
**       register.
**         SELECT image_remove('team/ci', 'debian');
**
**   namespace_resolve(path) -> id of the namespace, created on the fly.
**       Inside a user transaction it runs in a SAVEPOINT, so it rolls back
**       with the transaction.
**         SELECT namespace_resolve('team/ci/nightly@alice');
**
**   djinn_setting(key) -> the value, or NULL when unset.
**   djinn_setting(key, value) -> sets it and returns value; a NULL value
**       removes the setting (back to the default) and returns NULL.
**       Known keys: 'store' (directory of the image files; no '..'). The
**       store can change only to a directory that already holds every
**       image's file (or while the registry has no images): move the
**       files first (mv OLD/<sha256>.qcow2 NEW/), then set it.
**         SELECT djinn_setting('store', '/srv/djinn/images');
**
**   djinn_store() -> the store directory in effect, as an absolute path
**       (whether or not it exists yet).
**
**   djinn_store_check() -> NULL when this registry may use its store, else
**       why not and what to do (another registry's marker, an unreadable
**       marker, or an unmarked store full of images beside an empty
**       registry: a lost registry). Cheap: meant for every `image ls`.
**
**   djinn_fsck() -> JSON: does the store match the table?
**       {"store":"/x/images","registry":"<id>","owner":"ours","missing":[],
**        "orphans":[],"temp":[],"images":2,"files":1,"ok":true}
**       owner: ours, unclaimed, none (no store yet), or foreign / lost /
**       damaged, with "error" saying why; missing: rows whose file is gone;
**       orphans: files no row needs; temp: leftover .tmp-* / .trash-*
**       files. A damaged registry file (PRAGMA integrity_check, or a row
**       without a valid sha256) gives ok false and an "error".
**   djinn_fsck('repair') -> the same JSON after repairing what is safe,
**       plus "removed":[names] and "restored":[names]: in one BEGIN
**       IMMEDIATE transaction (so no registration or removal is between
**       its rename and its COMMIT) it puts back a .trash-* file whose
**       content a row needs and whose file is missing (a crash inside
**       image_remove), deletes other .trash-* files, .tmp-* files whose
**       registering process is gone (the pid in the name is not alive and
**       nobody holds the file's lock), and <sha256>.qcow2 files no row has
**       the sha256 of (read with one scan of the table, never through an
**       index). Other names are kept and still reported; rows whose file
**       is missing are reported, never deleted (image_remove them).
**       Refused, changing nothing, when the store is not this registry's
**       (foreign, lost, damaged marker) or the registry file is damaged.
**       Not inside a transaction.
**
**   image_sha256(X) -> lowercase hex SHA-256 of the file at path X (TEXT)
**       or of the bytes X (BLOB).
**         SELECT image_sha256('disk.qcow2');
**
**   djinn_version() -> 'djinn 0.1.0 (schema 1)'.
**
** Flags: image_register, image_remove, namespace_resolve, djinn_setting/2
** write tables or files, djinn_fsck, djinn_store_check and image_sha256
** read arbitrary files:
** SQLITE_UTF8 | SQLITE_DIRECTONLY (never from views, triggers or schema).
** image_path, djinn_setting/1 and djinn_store only read the registry, but
** their result depends on the table contents and the process's user: plain
** SQLITE_UTF8 (not deterministic, not innocuous). djinn_version is a
** constant: SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS.
**
** Ownership: strings built here are sqlite3_malloc()ed and freed on every
** path; results are handed over with SQLITE_TRANSIENT or sqlite3_free.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "qcow2.h"
#include "registry.h"

#define REG_MAX_DEPTH 20
#define REG_MAX_NS_PATH 1024
#define REG_MAX_NAME 255
#define REG_MAX_STORE 4096
#define REG_COPY_BUF (1 << 20)

/* ---------------------------------------------------------------------- */
/* Results and errors                                                      */

/*
** Report an error from an internal helper: err (may be NULL when memory
** ran out) gets the function name in front. Frees err.
*/
static void reg_fail(sqlite3_context *ctx, const char *fn, int rc, char *err)
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

static int reg_dberr(sqlite3 *db, char **err, const char *what)
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
        if (msg == NULL) {
            sqlite3_result_error_nomem(ctx);
        } else {
            sqlite3_result_error(ctx, msg, -1);
            sqlite3_free(msg);
        }
        return -1;
    }
    *out = s;
    return 0;
}

/* Append s as a JSON string. */
static void reg_json_str(sqlite3_str *out, const char *s)
{
    const unsigned char *p;

    sqlite3_str_appendchar(out, 1, '"');
    for (p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sqlite3_str_appendf(out, "\\%c", *p);
        else if (*p < 0x20)
            sqlite3_str_appendf(out, "\\u%04x", *p);
        else
            sqlite3_str_appendchar(out, 1, (char)*p);
    }
    sqlite3_str_appendchar(out, 1, '"');
}

/* ---------------------------------------------------------------------- */
/* Names                                                                   */

static int is_alnum(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

static int reg_owner_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > REG_MAX_OWNER)
        return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (i = 0; i < n; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' &&
            s[i] != '-')
            return 0;
    return 1;
}

/* The current Unix user's name, or the uid as a number. */
void reg_current_user(char *out, size_t n)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    uid_t uid = geteuid();

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL &&
        res->pw_name != NULL && strlen(res->pw_name) < n &&
        reg_owner_ok(res->pw_name, strlen(res->pw_name))) {
        memcpy(out, res->pw_name, strlen(res->pw_name) + 1);
        return;
    }
    snprintf(out, n, "%lu", (unsigned long)uid);
}

static int reg_check_name(const char *name, char **err)
{
    size_t i, n = strlen(name);
    int good = n >= 1 && n <= REG_MAX_NAME;

    for (i = 0; good && i < n; i++)
        if (!is_alnum((unsigned char)name[i]) && name[i] != '_' &&
            name[i] != '-')
            good = 0;
    if (good)
        return SQLITE_OK;
    *err = sqlite3_mprintf("image name '%s': a name may contain only the "
                           "letters A-Z, a-z, the digits 0-9, '_' and '-' "
                           "(1 to %d characters)",
                           name, REG_MAX_NAME);
    return SQLITE_ERROR;
}

/* A parsed `path[@owner]`. buf owns path and owner. */
struct reg_ns {
    char *buf;
    const char *spec; /* as given, for messages */
    char *path;
    char *owner;
    int depth;
};

static void reg_ns_free(struct reg_ns *ns)
{
    sqlite3_free(ns->buf);
    ns->buf = NULL;
}

/*
** Parse spec into ns (zeroed first). spec must not be empty. Returns
** SQLITE_OK, SQLITE_NOMEM, or SQLITE_ERROR with *err set.
*/
static int reg_ns_parse(const char *spec, struct reg_ns *ns, char **err)
{
    const char *at;
    size_t plen, len = strlen(spec), i, start;
    int seg;

    memset(ns, 0, sizeof(*ns));
    ns->spec = spec;
    at = strchr(spec, '@');
    plen = at ? (size_t)(at - spec) : len;
    if (plen == 0) {
        *err = sqlite3_mprintf("namespace '%s': the path before '@' is "
                               "empty; write path[@owner], e.g. "
                               "'team/ci@alice'",
                               spec);
        return SQLITE_ERROR;
    }
    if (plen > REG_MAX_NS_PATH) {
        *err = sqlite3_mprintf("namespace: path of %llu bytes is longer "
                               "than the limit of %d",
                               (unsigned long long)plen, REG_MAX_NS_PATH);
        return SQLITE_ERROR;
    }
    if (at != NULL && !reg_owner_ok(at + 1, strlen(at + 1))) {
        *err = sqlite3_mprintf(
            "namespace '%s': owner '%s' may contain only the letters A-Z, "
            "a-z, the digits 0-9, '_', '.' and '-' (1 to %d characters, "
            "not '.' or '..')",
            spec, at + 1, REG_MAX_OWNER);
        return SQLITE_ERROR;
    }
    if (spec[0] == '/' || spec[plen - 1] == '/') {
        *err = sqlite3_mprintf("namespace '%s': a path may not start or end "
                               "with '/'",
                               spec);
        return SQLITE_ERROR;
    }
    seg = 0;
    start = 0;
    for (i = 0; i <= plen; i++) {
        if (i < plen && spec[i] != '/')
            continue;
        seg++;
        if (i == start) {
            *err = sqlite3_mprintf("namespace '%s': segment %d is empty", spec,
                                   seg);
            return SQLITE_ERROR;
        }
        for (size_t j = start; j < i; j++) {
            if (!is_alnum((unsigned char)spec[j])) {
                *err = sqlite3_mprintf(
                    "namespace: segment %d '%.*s' of '%.*s': a segment may "
                    "contain only the letters A-Z, a-z and the digits 0-9",
                    seg, (int)(i - start), spec + start, (int)plen, spec);
                return SQLITE_ERROR;
            }
        }
        start = i + 1;
    }
    if (seg > REG_MAX_DEPTH) {
        *err = sqlite3_mprintf("namespace '%.*s': cannot exceed depth of %d "
                               "(it has %d segments)",
                               (int)plen, spec, REG_MAX_DEPTH, seg);
        return SQLITE_ERROR;
    }
    ns->buf = sqlite3_malloc64(plen + 1 + REG_MAX_OWNER + 1);
    if (ns->buf == NULL)
        return SQLITE_NOMEM;
    ns->path = ns->buf;
    memcpy(ns->path, spec, plen);
    ns->path[plen] = '\0';
    ns->owner = ns->buf + plen + 1;
    if (at != NULL)
        memcpy(ns->owner, at + 1, strlen(at + 1) + 1);
    else
        reg_current_user(ns->owner, REG_MAX_OWNER + 1);
    ns->depth = seg;
    return SQLITE_OK;
}

/*
** The namespace's id: 0 when it does not exist and create is 0. With create,
** missing namespaces are made, ancestors first; the caller holds a write
** transaction (or savepoint).
*/
static int reg_ns_id(sqlite3 *db, const struct reg_ns *ns, int create,
                     sqlite3_int64 *id, char **err)
{
    static const char find_sql[] =
        "SELECT id FROM namespaces WHERE owner = ?1 AND path = ?2";
    static const char make_sql[] =
        "INSERT INTO namespaces(owner, path, name, parent_id, root_id, level,"
        " visibility) VALUES (?1, ?2, ?3, ?4,"
        " (SELECT root_id FROM namespaces WHERE id = ?4), ?5,"
        " ifnull((SELECT visibility FROM namespaces WHERE id = ?4),"
        " 'private')) ON CONFLICT (owner, path) DO NOTHING";
    sqlite3_stmt *find = NULL, *make = NULL;
    sqlite3_int64 parent = 0;
    size_t i, len, start = 0;
    int rc, level = 0;

    *id = 0;
    rc = sqlite3_prepare_v2(db, find_sql, -1, &find, NULL);
    if (rc != SQLITE_OK)
        goto dberr;
    len = strlen(ns->path);
    if (!create) {
        sqlite3_bind_text(find, 1, ns->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(find, 2, ns->path, -1, SQLITE_STATIC);
        rc = sqlite3_step(find);
        if (rc == SQLITE_ROW)
            *id = sqlite3_column_int64(find, 0);
        else if (rc != SQLITE_DONE)
            goto dberr;
        rc = SQLITE_OK;
        goto done;
    }
    rc = sqlite3_prepare_v2(db, make_sql, -1, &make, NULL);
    if (rc != SQLITE_OK)
        goto dberr;
    for (i = 0; i <= len; i++) {
        if (i < len && ns->path[i] != '/')
            continue;
        /* Prefix ns->path[0..i) names the namespace at this level. */
        sqlite3_bind_text(make, 1, ns->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(make, 2, ns->path, (int)i, SQLITE_STATIC);
        sqlite3_bind_text(make, 3, ns->path + start, (int)(i - start),
                          SQLITE_STATIC);
        if (parent != 0)
            sqlite3_bind_int64(make, 4, parent);
        else
            sqlite3_bind_null(make, 4);
        sqlite3_bind_int(make, 5, level);
        rc = sqlite3_step(make);
        sqlite3_reset(make);
        if (rc != SQLITE_DONE)
            goto dberr;
        sqlite3_bind_text(find, 1, ns->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(find, 2, ns->path, (int)i, SQLITE_STATIC);
        rc = sqlite3_step(find);
        if (rc != SQLITE_ROW) {
            if (rc == SQLITE_DONE) {
                *err = sqlite3_mprintf("namespace '%.*s' of owner '%s' was "
                                       "not created",
                                       (int)i, ns->path, ns->owner);
                rc = SQLITE_ERROR;
                goto done;
            }
            goto dberr;
        }
        parent = sqlite3_column_int64(find, 0);
        sqlite3_reset(find);
        level++;
        start = i + 1;
    }
    *id = parent;
    rc = SQLITE_OK;
    goto done;

dberr:
    rc = reg_dberr(db, err, "namespace");
done:
    sqlite3_finalize(make);
    sqlite3_finalize(find);
    return rc;
}

/*
** Parse the namespace argument of the image_* functions (already checked
** by reg_text_arg): NULL or '' means personal (ns->buf NULL, *owner = the
** current user), else path[@owner].
*/
static int reg_image_ns(const char *spec, struct reg_ns *ns, char *owner,
                        size_t owner_len, char **err)
{
    int rc;

    memset(ns, 0, sizeof(*ns));
    if (spec == NULL || spec[0] == '\0') {
        reg_current_user(owner, owner_len);
        return SQLITE_OK;
    }
    rc = reg_ns_parse(spec, ns, err);
    if (rc == SQLITE_OK)
        snprintf(owner, owner_len, "%s", ns->owner);
    return rc;
}

/* "in namespace 'x'" or "among the personal images of 'u'" */
static char *reg_where(const struct reg_ns *ns, const char *owner)
{
    if (ns->buf != NULL)
        return sqlite3_mprintf("in namespace '%s'", ns->spec);
    return sqlite3_mprintf("among the personal images of '%s'", owner);
}

/* 64 lowercase hex digits and nothing else: a SHA-256 as the store
** writes it. Anything else read from a row is damage, never a path. */
static int reg_hex_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int reg_sha_ok(const char *s, size_t n)
{
    return s != NULL && n == 64 && reg_hex_ok(s, 64);
}

/* Find an image row: *id 0 when absent; sha (may be NULL) gets its
** SHA-256, which names its file <store>/<sha256>.qcow2. */
static int reg_image_find(sqlite3 *db, const char *owner, sqlite3_int64 ns_id,
                          const char *name, sqlite3_int64 *id, char *sha,
                          char **err)
{
    sqlite3_stmt *st = NULL;
    const char *h;
    int rc;

    *id = 0;
    if (sha != NULL)
        sha[0] = '\0';
    rc = sqlite3_prepare_v2(db,
                            "SELECT id, sha256 FROM images WHERE owner = ?1"
                            " AND ifnull(namespace_id, 0) = ?2 AND name = ?3",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(db, err, "images");
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ns_id);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        h = (const char *)sqlite3_column_text(st, 1);
        if (!reg_sha_ok(h, h ? strlen(h) : 0)) {
            *err = sqlite3_mprintf(
                "the row of image '%s' (id %lld) has no valid sha256: the "
                "registry is damaged; nothing was changed",
                name, (long long)*id);
            sqlite3_finalize(st);
            return SQLITE_CORRUPT;
        }
        if (sha != NULL)
            memcpy(sha, h, 65);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    } else {
        rc = reg_dberr(db, err, "images");
    }
    sqlite3_finalize(st);
    return rc;
}

/* How many rows need the file of content sha (NULL: how many rows). */
static int reg_count_refs(sqlite3 *db, const char *sha, sqlite3_int64 *n,
                          char **err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *n = 0;
    rc = sqlite3_prepare_v2(
        db,
        sha != NULL ? "SELECT count(*) FROM images WHERE sha256 = ?1"
                    : "SELECT count(*) FROM (SELECT 1 FROM images LIMIT 1)",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(db, err, "images");
    if (sha != NULL)
        sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *n = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else {
        rc = reg_dberr(db, err, "images");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Settings and the store directory                                        */

static const char *const reg_known_keys[] = {"store", NULL};

static int reg_setting_get(sqlite3 *db, const char *key, char **value,
                           char **err)
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

/* 1 if path has a '..' segment. */
static int has_dotdot(const char *path)
{
    const char *p = path;

    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);

        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}

/* The store directory for the setting `value` (consumed; NULL: the
** default), absolute, without a trailing '/'. */
static int reg_store_resolve(sqlite3 *db, char *value, char **dir, char **err)
{
    const char *file;
    const char *slash;
    size_t n;

    *dir = NULL;
    file = sqlite3_db_filename(db, "main");
    if (value != NULL && value[0] == '/') {
        *dir = value;
        value = NULL;
    } else if (file == NULL || file[0] == '\0') {
        if (value != NULL)
            *err = sqlite3_mprintf(
                "the store setting '%s' is relative, but the database is in "
                "memory or temporary, so there is no directory to take it "
                "against; set an absolute one with SELECT "
                "djinn_setting('store', '/abs/dir')",
                value);
        else
            *err = sqlite3_mprintf(
                "the database is in memory or temporary, so there is no "
                "default store beside it; set one with SELECT "
                "djinn_setting('store', '/abs/dir')");
        sqlite3_free(value);
        return SQLITE_ERROR;
    } else {
        slash = strrchr(file, '/');
        n = slash ? (size_t)(slash - file) : 0;
        if (slash == NULL)
            *dir = sqlite3_mprintf("./%s", value ? value : "images");
        else
            *dir = sqlite3_mprintf("%.*s/%s", (int)n, file,
                                   value ? value : "images");
        sqlite3_free(value);
        if (*dir == NULL)
            return SQLITE_NOMEM;
    }
    n = strlen(*dir);
    while (n > 1 && (*dir)[n - 1] == '/')
        (*dir)[--n] = '\0';
    return SQLITE_OK;
}

/* The store directory in effect, absolute, without a trailing '/'. */
static int reg_store_dir(sqlite3 *db, char **dir, char **err)
{
    char *value = NULL;
    int rc;

    *dir = NULL;
    rc = reg_setting_get(db, "store", &value, err);
    if (rc != SQLITE_OK)
        return rc;
    return reg_store_resolve(db, value, dir, err);
}

/*
** Before the store setting changes: every image's file must already be in
** the new store (files are found by content under the store in effect, so
** a store that lacks them would make every such image vanish). An empty
** registry may point anywhere.
*/
static int reg_store_has_all(sqlite3 *db, const char *value, char **err)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL, *dir = NULL;
    char first[65];
    struct stat sb;
    sqlite3_int64 need = 0, lack = 0;
    int rc, dfd = -1;

    rc = reg_count_refs(db, NULL, &need, err);
    if (rc != SQLITE_OK || need == 0)
        return rc;
    need = 0;
    if (value != NULL) {
        v = sqlite3_mprintf("%s", value);
        if (v == NULL)
            return SQLITE_NOMEM;
    }
    rc = reg_store_resolve(db, v, &dir, err);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_prepare_v2(db, "SELECT DISTINCT sha256 FROM images", -1, &st,
                            NULL);
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "images");
        goto done;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    first[0] = '\0';
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        char final[80];

        need++;
        if (!reg_sha_ok(h, h ? strlen(h) : 0))
            continue;
        snprintf(final, sizeof(final), "%s.qcow2", h);
        if (dfd >= 0 && fstatat(dfd, final, &sb, 0) == 0 && S_ISREG(sb.st_mode))
            continue;
        if (lack++ == 0)
            memcpy(first, h, 65);
    }
    if (rc != SQLITE_DONE) {
        rc = reg_dberr(db, err, "images");
        goto done;
    }
    rc = SQLITE_OK;
    if (lack > 0) {
        *err = sqlite3_mprintf(
            "store '%s': %lld of the %lld image files of this registry are "
            "not there (e.g. %s.qcow2), so those images would be lost; move "
            "the files of the current store there first (each is named "
            "<sha256>.qcow2, e.g. mv OLD/*.qcow2 %s/), then set it",
            dir, lack, need, first[0] ? first : "?", dir);
        rc = SQLITE_ERROR;
    }
done:
    if (dfd >= 0)
        close(dfd);
    sqlite3_finalize(st);
    sqlite3_free(dir);
    return rc;
}

/* mkdir -p dir (mode 0755 for what it creates). */
static int reg_mkdir_p(const char *dir, char **err)
{
    char *p = sqlite3_mprintf("%s", dir);
    struct stat st;
    size_t i;

    if (p == NULL)
        return SQLITE_NOMEM;
    for (i = 1;; i++) {
        char c = p[i];

        if (c != '/' && c != '\0')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            *err = sqlite3_mprintf("store '%s': cannot create directory "
                                   "'%s': %s",
                                   dir, p, strerror(errno));
            sqlite3_free(p);
            return SQLITE_CANTOPEN;
        }
        p[i] = c;
        if (c == '\0')
            break;
    }
    sqlite3_free(p);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        *err = sqlite3_mprintf("store '%s': not a directory", dir);
        return SQLITE_CANTOPEN;
    }
    return SQLITE_OK;
}

/* ---------------------------------------------------------------------- */
/* Files                                                                   */

static void hex_digest(const unsigned char *md, unsigned len, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    unsigned i;

    for (i = 0; i < len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * len] = '\0';
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
** Read fd `in` to EOF, hashing it with SHA-256 and, when out >= 0, writing
** it to out. hex gets 64 digits + NUL. what names the source for messages.
*/
static int reg_hash_fd(int in, int out, const char *what, const char *dest,
                       char hex[65], sqlite3_int64 *size, char **err)
{
    EVP_MD_CTX *md = NULL;
    unsigned char *buf = NULL;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int rc = SQLITE_OK;

    *size = 0;
    buf = sqlite3_malloc64(REG_COPY_BUF);
    md = EVP_MD_CTX_new();
    if (buf == NULL || md == NULL) {
        rc = SQLITE_NOMEM;
        goto done;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        *err = sqlite3_mprintf("SHA-256 is not available from libcrypto");
        rc = SQLITE_ERROR;
        goto done;
    }
    for (;;) {
        ssize_t r = read(in, buf, REG_COPY_BUF);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = sqlite3_mprintf("%s: read error: %s", what, strerror(errno));
            rc = SQLITE_IOERR;
            goto done;
        }
        if (r == 0)
            break;
        if (EVP_DigestUpdate(md, buf, (size_t)r) != 1) {
            *err = sqlite3_mprintf("SHA-256 update failed");
            rc = SQLITE_ERROR;
            goto done;
        }
        if (out >= 0 && write_all(out, buf, (size_t)r) != 0) {
            *err = sqlite3_mprintf("cannot write the copy of %s in %s: %s",
                                   what, dest, strerror(errno));
            rc = SQLITE_IOERR;
            goto done;
        }
        *size += r;
    }
    if (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32) {
        *err = sqlite3_mprintf("SHA-256 final failed");
        rc = SQLITE_ERROR;
        goto done;
    }
    hex_digest(digest, dlen, hex);
done:
    EVP_MD_CTX_free(md);
    sqlite3_free(buf);
    return rc;
}

/* Open a source file for reading: regular files only, never blocks. */
static int reg_open_source(const char *path, int *fd, struct stat *st,
                           char **err)
{
    int flags;

    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (*fd < 0) {
        *err = sqlite3_mprintf("%s: cannot open: %s", path, strerror(errno));
        return SQLITE_CANTOPEN;
    }
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        *err = sqlite3_mprintf("%s: not a regular file", path);
        close(*fd);
        *fd = -1;
        return SQLITE_CANTOPEN;
    }
    flags = fcntl(*fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(*fd, F_SETFL, flags & ~O_NONBLOCK);
    return SQLITE_OK;
}

/* A fresh name for a temp or trash file: <prefix><pid>-<16 hex>. */
static void reg_temp_name(char *out, size_t n, const char *prefix)
{
    unsigned char r[8];
    char hex[17];

    sqlite3_randomness(sizeof(r), r);
    hex_digest(r, sizeof(r), hex);
    snprintf(out, n, "%s%ld-%s", prefix, (long)getpid(), hex);
}

/* Join the validator's error messages with "; ". */
static char *reg_rejection(const char *path, const struct qcow2_report *r)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    size_t i;

    sqlite3_str_appendf(
        s, "%s: rejected, not an acceptable QCOW2 v3 image: ", path);
    for (i = 0; i < r->nerrors; i++)
        sqlite3_str_appendf(s, "%s%s", i ? "; " : "", r->errors[i].message);
    if (r->nerrors == 0)
        sqlite3_str_appendall(s, "invalid");
    if (r->errors_dropped)
        sqlite3_str_appendf(s, "; and %llu more",
                            (unsigned long long)r->errors_dropped);
    return sqlite3_str_finish(s);
}

/* <64 lowercase hex>.qcow2: a name the store gave a file. */
static int reg_store_name(const char *name)
{
    return strlen(name) == 70 && reg_sha_ok(name, 64) &&
           strcmp(name + 64, ".qcow2") == 0;
}

/* ---------------------------------------------------------------------- */
/* The store's owner                                                       */

/*
** A store belongs to one registry. Repair deletes the files of the store
** that none of ITS rows needs, so a second registry sharing the store, or a
** registry file that was lost and silently re-created empty, would delete
** the first one's images. Each registry has a random id (table
** registry_identity, schema/003); the store holds a marker file
** .djinn-store, "djinn-store 1\nregistry <id>\n", naming its owner. The
** first write of a registry to its store creates the marker (a temp file
** linked into place: never replaced once there). Writes and repair refuse a
** store whose marker names another registry or cannot be read. A store
** without a marker (made before markers) is claimed by a registry that has
** rows, or when it holds no image files; an EMPTY registry beside a store
** full of images and without a marker is what a lost registry looks like,
** and is refused as well.
*/
#define REG_MARKER ".djinn-store"
#define REG_MARKER_HEAD "djinn-store 1\nregistry "

enum reg_owner {
    REG_OWNER_NONE,      /* there is no store directory yet */
    REG_OWNER_OURS,      /* the marker names this registry */
    REG_OWNER_UNCLAIMED, /* no marker, and this registry may claim it */
    REG_OWNER_FOREIGN,   /* the marker names another registry */
    REG_OWNER_LOST,      /* no marker, images, and an empty registry */
    REG_OWNER_DAMAGED    /* the marker cannot be read */
};

static const char *const reg_owner_names[] = {
    "none", "ours", "unclaimed", "foreign", "lost", "damaged",
};

/* This registry's id (32 hex digits). */
static int reg_registry_id(sqlite3 *db, char id[33], char **err)
{
    sqlite3_stmt *st = NULL;
    const char *v;
    int rc;

    id[0] = '\0';
    rc = sqlite3_prepare_v2(
        db, "SELECT id FROM registry_identity WHERE only = 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(db, err, "registry_identity");
    rc = sqlite3_step(st);
    v = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (v != NULL && strlen(v) == 32 && reg_hex_ok(v, 32))
        memcpy(id, v, 33);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rc = reg_dberr(db, err, "registry_identity");
    } else if (id[0] == '\0') {
        *err = sqlite3_mprintf("the registry has no valid identity (table "
                               "registry_identity): the file is damaged; "
                               "nothing was changed");
        rc = SQLITE_CORRUPT;
    } else {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* The marker of the store open at dfd: 1 (owner filled), 0 when there is
** none, -1 when it is not what a marker says (not a file, other content),
** -2 when the system would not let us read it (errno kept: EMFILE, EIO). */
static int reg_marker_read(int dfd, char owner[33])
{
    char buf[128];
    struct stat sb;
    ssize_t n;
    size_t head = strlen(REG_MARKER_HEAD);
    int fd;

    owner[0] = '\0';
    fd = openat(dfd, REG_MARKER,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : errno == ELOOP ? -1 : -2;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return -1;
    }
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -2;
    }
    close(fd);
    if ((size_t)n != head + 33)
        return -1;
    buf[n] = '\0';
    if (memcmp(buf, REG_MARKER_HEAD, head) != 0 || buf[head + 32] != '\n' ||
        !reg_hex_ok(buf + head, 32))
        return -1;
    memcpy(owner, buf + head, 32);
    owner[32] = '\0';
    return 1;
}

/* Does the store open at dfd hold image or trash files? 1, 0, -1. */
static int reg_store_has_images(int dfd)
{
    struct dirent *e;
    DIR *d;
    int fd, found = 0;

    fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    while (!found && (e = readdir(d)) != NULL)
        if (reg_store_name(e->d_name) || strncmp(e->d_name, ".trash-", 7) == 0)
            found = 1;
    closedir(d);
    return found;
}

/* Write this registry's marker: SQLITE_OK, SQLITE_BUSY when a marker
** appeared meanwhile (read it again), or an error. */
static int reg_marker_write(int dfd, const char *dir, const char *id,
                            char **err)
{
    char tmp[64], body[64];
    int fd, n, e;

    reg_temp_name(tmp, sizeof(tmp), ".tmp-");
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0444);
    if (fd < 0) {
        *err = sqlite3_mprintf("store '%s': cannot create its owner marker: "
                               "%s",
                               dir, strerror(errno));
        return SQLITE_CANTOPEN;
    }
    n = snprintf(body, sizeof(body), REG_MARKER_HEAD "%s\n", id);
    if (write_all(fd, (const unsigned char *)body, (size_t)n) != 0 ||
        fsync(fd) != 0) {
        e = errno;
        close(fd);
        (void)unlinkat(dfd, tmp, 0);
        *err = sqlite3_mprintf("store '%s': cannot write its owner marker: "
                               "%s",
                               dir, strerror(e));
        return SQLITE_IOERR;
    }
    close(fd);
    if (linkat(dfd, tmp, dfd, REG_MARKER, 0) != 0) {
        e = errno;
        (void)unlinkat(dfd, tmp, 0);
        if (e == EEXIST)
            return SQLITE_BUSY;
        *err = sqlite3_mprintf("store '%s': cannot create its owner marker: "
                               "%s",
                               dir, strerror(e));
        return SQLITE_IOERR;
    }
    (void)unlinkat(dfd, tmp, 0);
    if (fsync(dfd) != 0) {
        *err = sqlite3_mprintf("cannot fsync the store directory %s: %s", dir,
                               strerror(errno));
        return SQLITE_IOERR;
    }
    return SQLITE_OK;
}

/*
** Who owns the store `dir`, open at dfd (-1: it does not exist). With
** claim, an unclaimed store becomes this registry's (the marker is
** written). For FOREIGN, LOST and DAMAGED, *why says what happened and
** what to do (the caller frees it).
*/
static int reg_store_owner(sqlite3 *db, const char *dir, int dfd, int claim,
                           enum reg_owner *owner, char **why, char **err)
{
    sqlite3_int64 rows = 0;
    char id[33], mark[33];
    int rc, m, tries;

    *owner = REG_OWNER_NONE;
    *why = NULL;
    rc = reg_registry_id(db, id, err);
    if (rc != SQLITE_OK || dfd < 0)
        return rc;
    for (tries = 0;; tries++) {
        m = reg_marker_read(dfd, mark);
        if (m == -2) {
            *err = sqlite3_mprintf("store '%s': cannot read its owner marker "
                                   "%s: %s",
                                   dir, REG_MARKER, strerror(errno));
            return SQLITE_IOERR;
        }
        if (m < 0) {
            *owner = REG_OWNER_DAMAGED;
            *why = sqlite3_mprintf(
                "the owner marker of the store %s (%s/" REG_MARKER ") cannot "
                "be read or is damaged, so it is not known which registry "
                "the store belongs to; nothing was changed. It must read "
                "\"djinn-store 1\\nregistry <id>\\n\" with the id of the "
                "registry that owns the store (this registry's id is %s)",
                dir, dir, id);
            return SQLITE_OK;
        }
        if (m == 1) {
            if (strcmp(mark, id) == 0) {
                *owner = REG_OWNER_OURS;
                return SQLITE_OK;
            }
            *owner = REG_OWNER_FOREIGN;
            *why = sqlite3_mprintf(
                "the store %s belongs to another registry (its marker names "
                "registry %s; this one is %s), so nothing was changed. Two "
                "registries must not share a store: each would delete the "
                "other's images as orphans. Give this registry a store of "
                "its own (SELECT djinn_setting('store', '/new/dir')). If "
                "this registry file replaced one that was lost or "
                "truncated, keep the files: move the store aside (mv %s "
                "%s.recovered) and register them again from there; each is "
                "named <sha256>.qcow2",
                dir, mark, id, dir, dir);
            return SQLITE_OK;
        }
        /* No marker. */
        rc = reg_count_refs(db, NULL, &rows, err);
        if (rc != SQLITE_OK)
            return rc;
        if (rows == 0) {
            m = reg_store_has_images(dfd);
            if (m < 0) {
                *err = sqlite3_mprintf("store '%s': cannot list it: %s", dir,
                                       strerror(errno));
                return SQLITE_IOERR;
            }
            if (m > 0) {
                *owner = REG_OWNER_LOST;
                *why = sqlite3_mprintf(
                    "the store %s holds image files but has no owner "
                    "marker, and this registry has no images: the registry "
                    "that owned the store looks lost (truncated, deleted or "
                    "re-created empty); nothing was changed. Restore the "
                    "registry from a backup, or move the store aside (mv %s "
                    "%s.recovered) and register its files again from there; "
                    "each is named <sha256>.qcow2",
                    dir, dir, dir);
                return SQLITE_OK;
            }
        }
        *owner = REG_OWNER_UNCLAIMED;
        if (!claim)
            return SQLITE_OK;
        rc = reg_marker_write(dfd, dir, id, err);
        if (rc == SQLITE_OK) {
            *owner = REG_OWNER_OURS;
            return SQLITE_OK;
        }
        if (rc != SQLITE_BUSY || tries >= 2)
            return rc == SQLITE_BUSY ? SQLITE_IOERR : rc;
    }
}

/* The store's owner must be this registry (claimed if need be) before
** anything in it is written or deleted: SQLITE_OK or an error. */
static int reg_store_ours(sqlite3 *db, const char *dir, int dfd, int claim,
                          char **err)
{
    enum reg_owner owner;
    char *why = NULL;
    int rc;

    rc = reg_store_owner(db, dir, dfd, claim, &owner, &why, err);
    if (rc != SQLITE_OK)
        return rc;
    if (why != NULL) {
        *err = why;
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

/* ---------------------------------------------------------------------- */
/* Transactions                                                            */

/*
** The functions that write store files commit their own transaction, so
** they cannot run where the caller's transaction or statement would have to
** include them.
*/
static int reg_need_autocommit(sqlite3 *db, char **err)
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

static void reg_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------- */
/* image_register                                                          */

struct reg_job {
    const char *name, *src;
    struct reg_ns ns;
    char owner[REG_MAX_OWNER + 1];
    char author[REG_MAX_OWNER + 1];
    char *dir; /* store directory */
    int dfd, sfd, tfd;
    char tmp[64]; /* temp name in dir while tfd is open, else "" */
    char sha[65];
    sqlite3_int64 size;
    sqlite3_int64 vsize;
};

/* The part inside the write transaction. */
static int reg_register_txn(sqlite3 *db, struct reg_job *j, sqlite3_int64 *id,
                            char **err)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 ns_id = 0, existing = 0, refs = 0;
    char final[80];
    char *where = NULL;
    struct stat sb;
    int rc, renamed = 0;

    snprintf(final, sizeof(final), "%s.qcow2", j->sha);
    rc = reg_begin_immediate(db, err);
    if (rc != SQLITE_OK)
        return rc;
    /* Claimed under the write lock: no other process of this registry
    ** is between its own claim and COMMIT. */
    rc = reg_store_ours(db, j->dir, j->dfd, 1, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (j->ns.buf != NULL) {
        rc = reg_ns_id(db, &j->ns, 1, &ns_id, err);
        if (rc != SQLITE_OK)
            goto fail;
    }
    rc = reg_image_find(db, j->owner, ns_id, j->name, &existing, NULL, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (existing != 0) {
        where = reg_where(&j->ns, j->owner);
        *err = sqlite3_mprintf("image '%s' already exists %s", j->name,
                               where ? where : "");
        rc = SQLITE_CONSTRAINT;
        goto fail;
    }
    rc = reg_count_refs(db, j->sha, &refs, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (refs > 0 && fstatat(j->dfd, final, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(sb.st_mode) && sb.st_size == j->size) {
        /* Identical content already stored and referenced: share it. */
        (void)unlinkat(j->dfd, j->tmp, 0);
    } else {
        /* New content, or a leftover nobody references: (re)place it. */
        if (renameat(j->dfd, j->tmp, j->dfd, final) != 0) {
            *err = sqlite3_mprintf("cannot rename the copy to %s/%s: %s",
                                   j->dir, final, strerror(errno));
            rc = SQLITE_IOERR;
            goto fail;
        }
        renamed = 1;
        if (fsync(j->dfd) != 0) {
            *err = sqlite3_mprintf("cannot fsync the store directory %s: %s",
                                   j->dir, strerror(errno));
            rc = SQLITE_IOERR;
            goto fail;
        }
    }
    j->tmp[0] = '\0'; /* the temp name is gone either way */
    rc = sqlite3_prepare_v2(
        db,
        "INSERT INTO images(namespace_id, owner, author, name, driver, sha256,"
        " file_size, virtual_size) VALUES (?1, ?2, ?3, ?4, 'qemu', ?5, ?6, ?7)",
        -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "images");
        goto fail;
    }
    if (ns_id != 0)
        sqlite3_bind_int64(st, 1, ns_id);
    else
        sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, j->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->author, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, j->sha, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, j->size);
    sqlite3_bind_int64(st, 7, j->vsize);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        rc = reg_dberr(db, err, "images");
        goto fail;
    }
    *id = sqlite3_last_insert_rowid(db);
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "commit");
        goto fail;
    }
    rc = SQLITE_OK;
    goto done;

fail:
    reg_rollback(db);
    /* A file this call put in place is referenced by no row, unless it
    ** replaced a damaged copy that rows share (same name, same SHA-256). */
    if (renamed && refs == 0)
        (void)unlinkat(j->dfd, final, 0);
done:
    sqlite3_finalize(st);
    sqlite3_free(where);
    return rc;
}

static int reg_register(sqlite3 *db, struct reg_job *j, sqlite3_int64 *id,
                        char **err)
{
    struct qcow2_report rep;
    struct stat sb;
    sqlite3_int64 ns_id = 0, existing = 0;
    char *where = NULL;
    int rc;

    memset(&rep, 0, sizeof(rep));
    rc = reg_store_dir(db, &j->dir, err);
    if (rc != SQLITE_OK)
        return rc;
    /* Early duplicate check, so a big file is not copied for nothing. */
    if (j->ns.buf != NULL)
        rc = reg_ns_id(db, &j->ns, 0, &ns_id, err);
    if (rc == SQLITE_OK && (j->ns.buf == NULL || ns_id != 0))
        rc = reg_image_find(db, j->owner, ns_id, j->name, &existing, NULL, err);
    if (rc != SQLITE_OK)
        return rc;
    if (existing != 0) {
        where = reg_where(&j->ns, j->owner);
        *err = sqlite3_mprintf("image '%s' already exists %s", j->name,
                               where ? where : "");
        sqlite3_free(where);
        return SQLITE_CONSTRAINT;
    }
    rc = reg_open_source(j->src, &j->sfd, &sb, err);
    if (rc != SQLITE_OK)
        return rc;
    rc = reg_mkdir_p(j->dir, err);
    if (rc != SQLITE_OK)
        return rc;
    j->dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dfd < 0) {
        *err = sqlite3_mprintf("store '%s': cannot open: %s", j->dir,
                               strerror(errno));
        return SQLITE_CANTOPEN;
    }
    /* Before copying: is the store this registry's? (Checked again, and
    ** claimed, under the write lock.) */
    rc = reg_store_ours(db, j->dir, j->dfd, 0, err);
    if (rc != SQLITE_OK)
        return rc;
    for (int tries = 0; j->tfd < 0; tries++) {
        reg_temp_name(j->tmp, sizeof(j->tmp), ".tmp-");
        j->tfd =
            openat(j->dfd, j->tmp,
                   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (j->tfd < 0 && (errno != EEXIST || tries >= 10)) {
            *err = sqlite3_mprintf("store '%s': cannot create a temp file: "
                                   "%s",
                                   j->dir, strerror(errno));
            j->tmp[0] = '\0';
            return SQLITE_CANTOPEN;
        }
    }
    /* A lock on the copy says "in use" to djinn_fsck('repair') (besides
    ** the pid in its name), also from another host over NFS. */
    {
        struct flock lk;
        memset(&lk, 0, sizeof(lk));
        lk.l_type = F_WRLCK;
        lk.l_whence = SEEK_SET;
        (void)fcntl(j->tfd, F_SETLK, &lk);
    }
    rc = reg_hash_fd(j->sfd, j->tfd, j->src, j->dir, j->sha, &j->size, err);
    if (rc != SQLITE_OK)
        return rc;
    if (fsync(j->tfd) != 0) {
        *err = sqlite3_mprintf("cannot fsync the copy in %s: %s", j->dir,
                               strerror(errno));
        return SQLITE_IOERR;
    }
    /* Validate the copy: what is checked is what gets stored. */
    if (qcow2_check_fd(j->tfd, 0, &rep) != 0) {
        qcow2_report_free(&rep);
        return SQLITE_NOMEM;
    }
    if (!rep.valid) {
        *err = reg_rejection(j->src, &rep);
        qcow2_report_free(&rep);
        return SQLITE_CONSTRAINT;
    }
    j->vsize = (sqlite3_int64)rep.info.virtual_size;
    qcow2_report_free(&rep);
    if (fchmod(j->tfd, 0444) != 0) {
        *err = sqlite3_mprintf("cannot chmod the copy in %s: %s", j->dir,
                               strerror(errno));
        return SQLITE_IOERR;
    }
    return reg_register_txn(db, j, id, err);
}

static void image_register_func(sqlite3_context *ctx, int argc,
                                sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_job j;
    sqlite3_int64 id = 0;
    const char *spec = NULL;
    char *err = NULL;
    int rc;

    (void)argc;
    memset(&j, 0, sizeof(j));
    j.dfd = j.sfd = j.tfd = -1;
    if (reg_text_arg(ctx, "image_register", argv[0], "namespace", &spec) ||
        reg_text_arg(ctx, "image_register", argv[1], "image name", &j.name) ||
        reg_text_arg(ctx, "image_register", argv[2], "path", &j.src))
        return;
    if (j.name == NULL || j.src == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_need_autocommit(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_check_name(j.name, &err);
    if (rc == SQLITE_OK)
        rc = reg_image_ns(spec, &j.ns, j.owner, sizeof(j.owner), &err);
    if (rc == SQLITE_OK) {
        reg_current_user(j.author, sizeof(j.author));
        rc = reg_register(db, &j, &id, &err);
    }
    if (j.tfd >= 0)
        close(j.tfd);
    if (j.tmp[0] != '\0')
        (void)unlinkat(j.dfd, j.tmp, 0);
    if (j.sfd >= 0)
        close(j.sfd);
    if (j.dfd >= 0)
        close(j.dfd);
    sqlite3_free(j.dir);
    reg_ns_free(&j.ns);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_register", rc, err);
        return;
    }
    sqlite3_result_int64(ctx, id);
}

/* ---------------------------------------------------------------------- */
/* image_path, image_remove                                                */

static void image_path_func(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_ns ns;
    char owner[REG_MAX_OWNER + 1];
    char sha[65];
    const char *name = NULL, *spec = NULL;
    char *err = NULL, *dir = NULL, *path = NULL;
    sqlite3_int64 ns_id = 0, id = 0;
    int rc;

    (void)argc;
    memset(&ns, 0, sizeof(ns));
    if (reg_text_arg(ctx, "image_path", argv[0], "namespace", &spec) ||
        reg_text_arg(ctx, "image_path", argv[1], "image name", &name))
        return;
    if (name == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_check_name(name, &err);
    if (rc == SQLITE_OK)
        rc = reg_image_ns(spec, &ns, owner, sizeof(owner), &err);
    if (rc == SQLITE_OK && ns.buf != NULL)
        rc = reg_ns_id(db, &ns, 0, &ns_id, &err);
    if (rc == SQLITE_OK && (ns.buf == NULL || ns_id != 0))
        rc = reg_image_find(db, owner, ns_id, name, &id, sha, &err);
    if (rc == SQLITE_OK && id != 0)
        rc = reg_store_dir(db, &dir, &err);
    if (rc == SQLITE_OK && id != 0) {
        path = sqlite3_mprintf("%s/%s.qcow2", dir, sha);
        if (path == NULL)
            rc = SQLITE_NOMEM;
    }
    sqlite3_free(dir);
    reg_ns_free(&ns);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_path", rc, err);
        return;
    }
    if (path == NULL)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_text(ctx, path, -1, sqlite3_free);
}

/*
** Delete the row; when no other row has its content, rename the file to
** .trash-<sha256>-<pid>-<hex> before COMMIT and unlink it after. A crash
** in between leaves the row and the trash file: djinn_fsck('repair') puts
** the file back, because a row still needs its content (the name says
** which). Only <store>/<row's sha256>.qcow2 is ever touched.
*/
static int reg_remove(sqlite3 *db, const struct reg_ns *ns, const char *owner,
                      const char *name, int *removed, char **err)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 ns_id = 0, id = 0, refs = 0;
    char sha[65], final[80], prefix[80], trash[128];
    char *dir = NULL;
    int rc, dfd = -1, trashed = 0;

    *removed = 0;
    rc = reg_begin_immediate(db, err);
    if (rc != SQLITE_OK)
        return rc;
    if (ns->buf != NULL)
        rc = reg_ns_id(db, ns, 0, &ns_id, err);
    if (rc == SQLITE_OK && (ns->buf == NULL || ns_id != 0))
        rc = reg_image_find(db, owner, ns_id, name, &id, sha, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (id == 0) {
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            rc = reg_dberr(db, err, "commit");
            goto fail;
        }
        goto done;
    }
    rc = reg_count_refs(db, sha, &refs, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (refs <= 1) {
        /* The file goes: the store must be this registry's. */
        rc = reg_store_dir(db, &dir, err);
        if (rc != SQLITE_OK)
            goto fail;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 && errno != ENOENT) {
            *err = sqlite3_mprintf("store '%s': cannot open: %s", dir,
                                   strerror(errno));
            rc = SQLITE_CANTOPEN;
            goto fail;
        }
        rc = reg_store_ours(db, dir, dfd, 1, err);
        if (rc != SQLITE_OK)
            goto fail;
    }
    rc = sqlite3_prepare_v2(db, "DELETE FROM images WHERE id = ?1", -1, &st,
                            NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "images");
        goto fail;
    }
    if (refs <= 1 && dfd >= 0) {
        snprintf(final, sizeof(final), "%s.qcow2", sha);
        snprintf(prefix, sizeof(prefix), ".trash-%s-", sha);
        reg_temp_name(trash, sizeof(trash), prefix);
        if (renameat(dfd, final, dfd, trash) == 0) {
            trashed = 1;
        } else if (errno != ENOENT) {
            *err = sqlite3_mprintf("cannot remove %s/%s: %s", dir, final,
                                   strerror(errno));
            rc = SQLITE_IOERR;
            goto fail;
        } /* else already gone: not an error (Djinn does the same) */
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "commit");
        if (trashed)
            (void)renameat(dfd, trash, dfd, final);
        goto fail;
    }
    if (trashed)
        (void)unlinkat(dfd, trash, 0);
    *removed = 1;
    goto done;

fail:
    reg_rollback(db);
done:
    sqlite3_finalize(st);
    if (dfd >= 0)
        close(dfd);
    sqlite3_free(dir);
    return rc;
}

static void image_remove_func(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_ns ns;
    char owner[REG_MAX_OWNER + 1];
    const char *name = NULL, *spec = NULL;
    char *err = NULL;
    int rc, removed = 0;

    (void)argc;
    memset(&ns, 0, sizeof(ns));
    if (reg_text_arg(ctx, "image_remove", argv[0], "namespace", &spec) ||
        reg_text_arg(ctx, "image_remove", argv[1], "image name", &name))
        return;
    if (name == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_need_autocommit(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_check_name(name, &err);
    if (rc == SQLITE_OK)
        rc = reg_image_ns(spec, &ns, owner, sizeof(owner), &err);
    if (rc == SQLITE_OK)
        rc = reg_remove(db, &ns, owner, name, &removed, &err);
    reg_ns_free(&ns);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_remove", rc, err);
        return;
    }
    sqlite3_result_int(ctx, removed);
}

/* ---------------------------------------------------------------------- */
/* namespace_resolve                                                       */

static void namespace_resolve_func(sqlite3_context *ctx, int argc,
                                   sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_ns ns;
    const char *spec = NULL;
    char *err = NULL;
    sqlite3_int64 id = 0;
    int rc, mode = 0; /* 0 none, 1 BEGIN IMMEDIATE, 2 SAVEPOINT */

    (void)argc;
    memset(&ns, 0, sizeof(ns));
    if (reg_text_arg(ctx, "namespace_resolve", argv[0], "namespace", &spec))
        return;
    if (spec == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK && spec[0] == '\0') {
        err = sqlite3_mprintf("empty namespace path; write path[@owner], "
                              "e.g. 'team/ci' or 'team/ci@alice'");
        rc = SQLITE_ERROR;
    }
    if (rc == SQLITE_OK)
        rc = reg_ns_parse(spec, &ns, &err);
    if (rc == SQLITE_OK) {
        if (!sqlite3_get_autocommit(db)) {
            mode = 2;
            rc = sqlite3_exec(db, "SAVEPOINT djinn_ns", NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                rc = reg_dberr(db, &err, "savepoint");
        } else if (sqlite3_txn_state(db, "main") != SQLITE_TXN_WRITE) {
            mode = 1;
            rc = reg_begin_immediate(db, &err);
        } /* else: part of the enclosing writing statement */
        if (rc != SQLITE_OK)
            mode = 0;
    }
    if (rc == SQLITE_OK)
        rc = reg_ns_id(db, &ns, 1, &id, &err);
    if (mode == 1) {
        if (rc == SQLITE_OK &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            rc = reg_dberr(db, &err, "commit");
        if (rc != SQLITE_OK)
            reg_rollback(db);
    } else if (mode == 2) {
        if (rc != SQLITE_OK)
            sqlite3_exec(db, "ROLLBACK TO djinn_ns", NULL, NULL, NULL);
        sqlite3_exec(db, "RELEASE djinn_ns", NULL, NULL, NULL);
    }
    reg_ns_free(&ns);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "namespace_resolve", rc, err);
        return;
    }
    sqlite3_result_int64(ctx, id);
}

/* ---------------------------------------------------------------------- */
/* Settings, store, fsck, sha256, version                                  */

static int reg_check_key(const char *key, char **err)
{
    int i;

    for (i = 0; reg_known_keys[i] != NULL; i++)
        if (strcmp(key, reg_known_keys[i]) == 0)
            return SQLITE_OK;
    *err = sqlite3_mprintf("unknown key '%s'; known keys: store", key);
    return SQLITE_ERROR;
}

static void djinn_setting_func(sqlite3_context *ctx, int argc,
                               sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    sqlite3_stmt *st = NULL;
    const char *key = NULL, *value = NULL;
    char *err = NULL, *cur = NULL;
    int rc;

    if (reg_text_arg(ctx, "djinn_setting", argv[0], "key", &key) ||
        (argc == 2 &&
         reg_text_arg(ctx, "djinn_setting", argv[1], "value", &value)))
        return;
    if (key == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_check_key(key, &err);
    if (rc == SQLITE_OK && argc == 1) {
        rc = reg_setting_get(db, key, &cur, &err);
        if (rc == SQLITE_OK) {
            if (cur == NULL)
                sqlite3_result_null(ctx);
            else
                sqlite3_result_text(ctx, cur, -1, sqlite3_free);
            return;
        }
    }
    if (rc == SQLITE_OK && value != NULL) {
        if (value[0] == '\0' || strlen(value) > REG_MAX_STORE) {
            err = sqlite3_mprintf("store: the directory must be 1 to %d "
                                  "bytes long",
                                  REG_MAX_STORE);
            rc = SQLITE_ERROR;
        } else if (has_dotdot(value)) {
            err = sqlite3_mprintf("store '%s': '..' is not allowed in the "
                                  "store path",
                                  value);
            rc = SQLITE_ERROR;
        }
    }
    if (rc == SQLITE_OK)
        rc = reg_store_has_all(db, value, &err);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(
            db,
            value ? "INSERT INTO settings(key, value) VALUES (?1, ?2)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                  : "DELETE FROM settings WHERE key = ?1",
            -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            if (value != NULL)
                sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        }
        if (rc != SQLITE_OK)
            rc = reg_dberr(db, &err, "settings");
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "djinn_setting", rc, err);
        return;
    }
    if (value == NULL)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_text(ctx, value, -1, SQLITE_TRANSIENT);
}

static void djinn_store_func(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    char *err = NULL, *dir = NULL;
    int rc;

    (void)argc;
    (void)argv;
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_store_dir(db, &dir, &err);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "djinn_store", rc, err);
        return;
    }
    sqlite3_result_text(ctx, dir, -1, sqlite3_free);
}

/* Is the .tmp-<pid>-<hex> file `name` in `dir` still some registration's?
** Yes when its pid is alive (or the name has no pid) or its lock is held. */
static int reg_temp_busy(int dfd, const char *name)
{
    const char *p = name + 5; /* after ".tmp-" */
    char *end = NULL;
    long pid;
    int fd, busy = 1;
    struct flock lk;

    errno = 0;
    pid = strtol(p, &end, 10);
    if (errno != 0 || end == p || *end != '-' || pid <= 0)
        return 1;
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
        return 1;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : 1;
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type == F_UNLCK)
        busy = 0;
    close(fd);
    return busy;
}

/* One djinn_fsck run: the store open at dfd (-1: no store directory). */
struct reg_fsck {
    sqlite3 *db;
    const char *dir;
    int dfd;
    int repair;
    int bad;
    sqlite3_int64 files;
    char (*need)[65]; /* the rows' SHA-256s, sorted */
    size_t nneed;
    sqlite3_str *orphans, *temps, *removed, *restored;
    int no, nt, nr, nrs;
};

static int reg_sha_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 64);
}

/*
** Which contents the rows need, read with one scan of the table (not
** through an index: a damaged index must not make a needed file look
** unneeded). A row without a valid sha256 means the registry is damaged:
** *bad_id gets its id, and repair must not decide anything from it.
*/
static int reg_fsck_load(struct reg_fsck *f, sqlite3_int64 *bad_id, char **err)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc;

    *bad_id = 0;
    rc = sqlite3_prepare_v2(f->db, "SELECT id, sha256 FROM images NOT INDEXED",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(f->db, err, "images");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 1);

        if (!reg_sha_ok(h, h ? strlen(h) : 0)) {
            if (*bad_id == 0)
                *bad_id = sqlite3_column_int64(st, 0);
            continue;
        }
        if (f->nneed == cap) {
            char(*grown)[65] = NULL;

            cap = cap ? 2 * cap : 64;
            grown = sqlite3_realloc64(f->need, cap * sizeof(*f->need));
            if (grown == NULL) {
                sqlite3_finalize(st);
                return SQLITE_NOMEM;
            }
            f->need = grown;
        }
        memcpy(f->need[f->nneed++], h, 65);
    }
    if (rc != SQLITE_DONE)
        rc = reg_dberr(f->db, err, "images");
    else
        rc = SQLITE_OK;
    sqlite3_finalize(st);
    if (f->nneed > 1)
        qsort(f->need, f->nneed, sizeof(*f->need), reg_sha_cmp);
    return rc;
}

/* The first problem PRAGMA integrity_check finds (caller frees), or NULL
** when the file is sound; *rc an error when the check itself failed. */
static char *reg_integrity(sqlite3 *db, int *rc, char **err)
{
    sqlite3_stmt *st = NULL;
    const char *v;
    char *problem = NULL;

    *rc =
        sqlite3_prepare_v2(db, "PRAGMA main.integrity_check(1)", -1, &st, NULL);
    if (*rc != SQLITE_OK) {
        *rc = reg_dberr(db, err, "integrity_check");
        return NULL;
    }
    *rc = sqlite3_step(st);
    if (*rc == SQLITE_ROW) {
        v = (const char *)sqlite3_column_text(st, 0);
        if (v == NULL || strcmp(v, "ok") != 0)
            problem = sqlite3_mprintf("%s", v ? v : "(no answer)");
        *rc = SQLITE_OK;
    } else {
        *rc = reg_dberr(db, err, "integrity_check");
    }
    sqlite3_finalize(st);
    return problem;
}

static void reg_list_add(sqlite3_str *s, int *n, const char *item)
{
    sqlite3_str_appendall(s, (*n)++ ? "," : "");
    reg_json_str(s, item);
}

/* 1 when a row has content sha, else 0. */
static int reg_fsck_needed(const struct reg_fsck *f, const char *sha)
{
    return f->nneed > 0 && bsearch(sha, f->need, f->nneed, sizeof(*f->need),
                                   reg_sha_cmp) != NULL;
}

/* The content of a trash file: .trash-<sha256>-<pid>-<hex> says it; older
** names (.trash-<pid>-<hex>) are hashed. sha "" when it is not a file. */
static int reg_trash_sha(struct reg_fsck *f, const char *name, char sha[65],
                         char **err)
{
    sqlite3_int64 size = 0;
    struct stat sb;
    int fd, rc;

    sha[0] = '\0';
    if (strlen(name) > 72 && reg_sha_ok(name + 7, 64) && name[71] == '-') {
        memcpy(sha, name + 7, 64);
        sha[64] = '\0';
        return SQLITE_OK;
    }
    fd = openat(f->dfd, name,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return SQLITE_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return SQLITE_OK;
    }
    rc = reg_hash_fd(fd, -1, name, NULL, sha, &size, err);
    close(fd);
    return rc;
}

static int reg_fsck_unlink(struct reg_fsck *f, const char *name, char **err)
{
    if (unlinkat(f->dfd, name, 0) != 0 && errno != ENOENT) {
        *err = sqlite3_mprintf("store '%s': cannot remove %s: %s", f->dir, name,
                               strerror(errno));
        return SQLITE_IOERR;
    }
    reg_list_add(f->removed, &f->nr, name);
    return SQLITE_OK;
}

/* A .trash-* file: put back when a row needs its content and the store
** lacks it; otherwise garbage (repair) or reported. */
static int reg_fsck_trash(struct reg_fsck *f, const char *name, char **err)
{
    char sha[65], final[80];
    struct stat sb;
    int rc, need = 0, have;

    rc = reg_trash_sha(f, name, sha, err);
    if (rc != SQLITE_OK)
        return rc;
    if (sha[0] != '\0')
        need = reg_fsck_needed(f, sha);
    snprintf(final, sizeof(final), "%s.qcow2", sha);
    have = sha[0] != '\0' &&
           fstatat(f->dfd, final, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(sb.st_mode);
    if (!f->repair) {
        f->files++;
        f->bad = 1;
        reg_list_add(f->temps, &f->nt, name);
        return SQLITE_OK;
    }
    if (need && !have) {
        if (renameat(f->dfd, name, f->dfd, final) != 0 || fsync(f->dfd) != 0) {
            *err = sqlite3_mprintf("store '%s': cannot restore %s as %s: %s",
                                   f->dir, name, final, strerror(errno));
            return SQLITE_IOERR;
        }
        f->files++;
        reg_list_add(f->restored, &f->nrs, final);
        return SQLITE_OK;
    }
    return reg_fsck_unlink(f, name, err);
}

/* One directory entry of the store. */
static int reg_fsck_entry(struct reg_fsck *f, const char *name, char **err)
{
    char sha[65];

    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strcmp(name, REG_MARKER) == 0)
        return SQLITE_OK;
    if (strncmp(name, ".tmp-", 5) == 0) {
        if (f->repair && !reg_temp_busy(f->dfd, name))
            return reg_fsck_unlink(f, name, err);
        f->files++;
        f->bad = 1;
        reg_list_add(f->temps, &f->nt, name);
        return SQLITE_OK;
    }
    if (strncmp(name, ".trash-", 7) == 0)
        return reg_fsck_trash(f, name, err);
    if (reg_store_name(name)) {
        memcpy(sha, name, 64);
        sha[64] = '\0';
        if (reg_fsck_needed(f, sha)) {
            f->files++;
            return SQLITE_OK;
        }
        if (f->repair)
            return reg_fsck_unlink(f, name, err);
    }
    /* An orphan <sha256>.qcow2, or a name the store never gives: only
    ** ever reported. */
    f->files++;
    f->bad = 1;
    reg_list_add(f->orphans, &f->no, name);
    return SQLITE_OK;
}

/* The rows: count them, list those whose file is missing. */
static int reg_fsck_rows(struct reg_fsck *f, sqlite3_str *out,
                         sqlite3_int64 *rows, char **err)
{
    sqlite3_stmt *st = NULL;
    struct stat sb;
    char final[80];
    char *shown = NULL;
    int rc, n = 0;

    *rows = 0;
    rc = sqlite3_prepare_v2(f->db, "SELECT id, sha256 FROM images ORDER BY id",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(f->db, err, "images");
    sqlite3_str_appendall(out, ",\"missing\":[");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 1);

        (*rows)++;
        if (reg_sha_ok(h, h ? strlen(h) : 0)) {
            snprintf(final, sizeof(final), "%s.qcow2", h);
            if (f->dfd >= 0 &&
                fstatat(f->dfd, final, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(sb.st_mode))
                continue;
            shown = sqlite3_mprintf("%s/%s", f->dir, final);
        } else {
            shown = sqlite3_mprintf("(image id %lld: no valid sha256)",
                                    sqlite3_column_int64(st, 0));
        }
        if (shown == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        sqlite3_str_appendall(out, n++ ? "," : "");
        reg_json_str(out, shown);
        sqlite3_free(shown);
        f->bad = 1;
    }
    sqlite3_str_appendall(out, "]");
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    else if (rc != SQLITE_NOMEM)
        rc = reg_dberr(f->db, err, "images");
    sqlite3_finalize(st);
    return rc;
}

static const char *reg_str(sqlite3_str *s)
{
    const char *v = sqlite3_str_value(s);

    return v != NULL ? v : "";
}

static void djinn_fsck_func(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_fsck f;
    sqlite3_str *out = NULL;
    enum reg_owner owner = REG_OWNER_NONE;
    const char *mode = NULL;
    char *err = NULL, *dir = NULL, *why = NULL, *damage = NULL;
    char id[33];
    DIR *d = NULL;
    struct dirent *e;
    sqlite3_int64 rows = 0, bad_id = 0;
    int rc, txn = 0, fd;

    memset(&f, 0, sizeof(f));
    f.dfd = -1;
    if (argc == 1) {
        if (reg_text_arg(ctx, "djinn_fsck", argv[0], "mode", &mode))
            return;
        if (mode == NULL || strcmp(mode, "repair") != 0) {
            err = sqlite3_mprintf("unknown mode '%s'; allowed: 'repair' "
                                  "(or no argument: report only)",
                                  mode ? mode : "NULL");
            reg_fail(ctx, "djinn_fsck", SQLITE_MISUSE, err);
            return;
        }
        f.repair = 1;
    }
    f.db = db;
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK && f.repair) {
        rc = reg_need_autocommit(db, &err);
        if (rc == SQLITE_OK)
            rc = reg_begin_immediate(db, &err);
        if (rc == SQLITE_OK)
            txn = 1;
    }
    if (rc == SQLITE_OK)
        rc = reg_registry_id(db, id, &err);
    if (rc == SQLITE_OK)
        rc = reg_store_dir(db, &dir, &err);
    if (rc != SQLITE_OK)
        goto done;
    f.dir = dir;
    f.dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f.dfd < 0 && errno != ENOENT) {
        err = sqlite3_mprintf("store '%s': cannot open: %s", dir,
                              strerror(errno));
        rc = SQLITE_IOERR;
        goto done;
    }
    rc = reg_store_owner(db, dir, f.dfd, f.repair, &owner, &why, &err);
    if (rc != SQLITE_OK)
        goto done;
    if (why != NULL && f.repair) {
        err = sqlite3_mprintf("refusing to repair: %s", why);
        rc = SQLITE_ERROR;
        goto done;
    }
    /* A damaged registry cannot say which files are needed: report it,
    ** and never repair (delete) from it. */
    damage = reg_integrity(db, &rc, &err);
    if (rc == SQLITE_OK)
        rc = reg_fsck_load(&f, &bad_id, &err);
    if (rc != SQLITE_OK)
        goto done;
    if (damage == NULL && bad_id != 0)
        damage = sqlite3_mprintf("image id %lld has no valid sha256",
                                 (long long)bad_id);
    if (damage != NULL) {
        sqlite3_free(why);
        why = sqlite3_mprintf(
            "the registry file is damaged (%s), so it cannot tell which "
            "files of the store its images need; nothing was changed. "
            "Restore it from a backup, or move it aside and register the "
            "images again from the store (each file is named "
            "<sha256>.qcow2)",
            damage);
        if (why == NULL) {
            rc = SQLITE_NOMEM;
            goto done;
        }
        if (f.repair) {
            err = sqlite3_mprintf("refusing to repair: %s", why);
            rc = SQLITE_CORRUPT;
            goto done;
        }
    }
    out = sqlite3_str_new(db);
    f.orphans = sqlite3_str_new(db);
    f.temps = sqlite3_str_new(db);
    f.removed = sqlite3_str_new(db);
    f.restored = sqlite3_str_new(db);
    sqlite3_str_appendall(out, "{\"store\":");
    reg_json_str(out, dir);
    sqlite3_str_appendf(out, ",\"registry\":\"%s\",\"owner\":\"%s\"", id,
                        reg_owner_names[owner]);
    if (why != NULL) {
        sqlite3_str_appendall(out, ",\"error\":");
        reg_json_str(out, why);
        f.bad = 1;
    }
    /* The directory first (repair may put files back), then the rows. */
    if (f.dfd >= 0) {
        fd = openat(f.dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (d == NULL) {
            if (fd >= 0)
                close(fd);
            err = sqlite3_mprintf("store '%s': cannot list: %s", dir,
                                  strerror(errno));
            rc = SQLITE_IOERR;
            goto done;
        }
        while ((e = readdir(d)) != NULL) {
            rc = reg_fsck_entry(&f, e->d_name, &err);
            if (rc != SQLITE_OK)
                goto done;
        }
    }
    rc = reg_fsck_rows(&f, out, &rows, &err);
    if (rc != SQLITE_OK)
        goto done;
    sqlite3_str_appendf(out, ",\"orphans\":[%s],\"temp\":[%s],",
                        reg_str(f.orphans), reg_str(f.temps));
    if (f.repair)
        sqlite3_str_appendf(out, "\"removed\":[%s],\"restored\":[%s],",
                            reg_str(f.removed), reg_str(f.restored));
    sqlite3_str_appendf(out, "\"images\":%lld,\"files\":%lld,\"ok\":%s}", rows,
                        f.files, f.bad ? "false" : "true");
    if (sqlite3_str_errcode(out) != SQLITE_OK ||
        sqlite3_str_errcode(f.orphans) != SQLITE_OK ||
        sqlite3_str_errcode(f.temps) != SQLITE_OK ||
        sqlite3_str_errcode(f.removed) != SQLITE_OK ||
        sqlite3_str_errcode(f.restored) != SQLITE_OK)
        rc = SQLITE_NOMEM;
done:
    if (d != NULL)
        closedir(d);
    sqlite3_free(f.need);
    sqlite3_free(damage);
    /* Nothing was written to the database: end the lock either way. */
    if (txn)
        reg_rollback(db);
    if (f.dfd >= 0)
        close(f.dfd);
    sqlite3_free(sqlite3_str_finish(f.orphans));
    sqlite3_free(sqlite3_str_finish(f.temps));
    sqlite3_free(sqlite3_str_finish(f.removed));
    sqlite3_free(sqlite3_str_finish(f.restored));
    if (rc == SQLITE_OK) {
        sqlite3_result_text(ctx, sqlite3_str_finish(out), -1, sqlite3_free);
        out = NULL;
    }
    sqlite3_free(sqlite3_str_finish(out));
    sqlite3_free(why);
    sqlite3_free(dir);
    if (rc != SQLITE_OK)
        reg_fail(ctx, "djinn_fsck", rc, err);
}

/* djinn_store_check(): NULL, or why the store cannot be used (cheap:
** the marker, and a listing only when there is no marker). */
static void djinn_store_check_func(sqlite3_context *ctx, int argc,
                                   sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    enum reg_owner owner;
    char *err = NULL, *dir = NULL, *why = NULL;
    int rc, dfd = -1;

    (void)argc;
    (void)argv;
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_store_dir(db, &dir, &err);
    if (rc == SQLITE_OK) {
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 && errno != ENOENT) {
            err = sqlite3_mprintf("store '%s': cannot open: %s", dir,
                                  strerror(errno));
            rc = SQLITE_IOERR;
        }
    }
    if (rc == SQLITE_OK)
        rc = reg_store_owner(db, dir, dfd, 0, &owner, &why, &err);
    if (dfd >= 0)
        close(dfd);
    sqlite3_free(dir);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "djinn_store_check", rc, err);
        return;
    }
    if (why == NULL)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_text(ctx, why, -1, sqlite3_free);
}

static void image_sha256_func(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    char hex[65];
    char *err = NULL;
    const char *path;
    sqlite3_int64 size = 0;
    struct stat sb;
    int rc, fd = -1;

    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_BLOB) {
        const void *p = sqlite3_value_blob(argv[0]);
        int n = sqlite3_value_bytes(argv[0]);

        if (EVP_Digest(p ? p : "", (size_t)n, digest, &dlen, EVP_sha256(),
                       NULL) != 1) {
            sqlite3_result_error(ctx, "image_sha256: SHA-256 failed", -1);
            return;
        }
        hex_digest(digest, dlen, hex);
        sqlite3_result_text(ctx, hex, -1, SQLITE_TRANSIENT);
        return;
    }
    if (reg_text_arg(ctx, "image_sha256", argv[0], "path", &path))
        return;
    rc = reg_open_source(path, &fd, &sb, &err);
    if (rc == SQLITE_OK)
        rc = reg_hash_fd(fd, -1, path, NULL, hex, &size, &err);
    if (fd >= 0)
        close(fd);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_sha256", rc, err);
        return;
    }
    sqlite3_result_text(ctx, hex, -1, SQLITE_TRANSIENT);
}

static void djinn_version_func(sqlite3_context *ctx, int argc,
                               sqlite3_value **argv)
{
    char buf[64];

    (void)argc;
    (void)argv;
    snprintf(buf, sizeof(buf), "djinn %s (schema %d)", DJINN_EXT_VERSION,
             djinn_schema_version);
    sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
}

int reg_registry_functions(sqlite3 *db, int drop)
{
    static const struct {
        const char *name;
        int nargs;
        int flags;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } funcs[] = {
        {"image_register", 3, SQLITE_DIRECTONLY, image_register_func},
        {"image_path", 2, 0, image_path_func},
        {"image_remove", 2, SQLITE_DIRECTONLY, image_remove_func},
        {"namespace_resolve", 1, SQLITE_DIRECTONLY, namespace_resolve_func},
        {"djinn_setting", 1, 0, djinn_setting_func},
        {"djinn_setting", 2, SQLITE_DIRECTONLY, djinn_setting_func},
        {"djinn_store", 0, 0, djinn_store_func},
        {"djinn_fsck", 0, SQLITE_DIRECTONLY, djinn_fsck_func},
        {"djinn_fsck", 1, SQLITE_DIRECTONLY, djinn_fsck_func},
        {"djinn_store_check", 0, SQLITE_DIRECTONLY, djinn_store_check_func},
        {"image_sha256", 1, SQLITE_DIRECTONLY, image_sha256_func},
        {"djinn_version", 0, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
         djinn_version_func},
    };
    size_t i;
    int rc = SQLITE_OK;

    for (i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
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
