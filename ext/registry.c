/*
** registry.c - the image registry's SQL functions: namespaces, images and
** settings, over the content-addressed file store (store.c).
**
** Place in the one-way graph (see schema.h): uses store.c, schema.c and
** qcow2.c; only djinn.c (the entry point) and djinn-lua use it. The SQL
** functions of the store (djinn_store, djinn_store_check, djinn_fsck,
** image_sha256, image_verify) are registered by store.c and documented here
** with the others.
**
** All of them need the main database to be a djinn registry (see schema.c);
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
**   image_verify(path, sha256) -> 'cached' or 'hashed': is the file at the
**       absolute path the content sha256? The check before a boot, with its
**       cache (table image_verified, schema/002): the file's identity
**       (device, inode, size, mtime and ctime in ns) is taken; when a row
**       for path has that identity and sha256 the answer is 'cached'.
**       Otherwise the file is hashed (streaming), its identity taken again
**       (changed: raises "image_verify: PATH changed while it was being
**       checked"), and a different hash deletes the row and raises
**       "image_verify: the file PATH does not match the registry (SHA-256
**       X, registered Y)"; a match is remembered (INSERT OR REPLACE; a
**       registry the caller cannot write still verifies) and the answer
**       is 'hashed'.
**         SELECT image_verify(image_path('team/ci', 'debian'),
**                             (SELECT sha256 FROM image_list WHERE ...));
**
**   djinn_version() -> 'djinn 0.1.0 (schema N)'.
**
** What references a stored file is defined once, by the view store_refs
** (schema/004): image_remove unlinks a file when its last reference is
** gone, djinn_fsck reports and repairs against it, image_register shares
** content it lists.
**
** Flags: image_register, image_remove, namespace_resolve, djinn_setting/2
** write tables or files, djinn_fsck, djinn_store_check, image_sha256 and
** image_verify read arbitrary files (image_verify also writes its cache):
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

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "registry.h"
#include "schema.h"
#include "store.h"

#define REG_MAX_DEPTH 20
#define REG_MAX_NS_PATH 1024
#define REG_MAX_NAME 255
#define REG_COPY_BUF (1 << 20)

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

/*
** The current Unix user's name, or the uid as a number. The answer is
** found once per thread (the first time it is asked) and
** kept: the password database is not read, nor the effective uid asked
** (a system call), on every call (issue 13: these were most of
** image_path's time for a namespace without "@owner"). A thread that
** changes its effective uid after that keeps the first name; it can name
** the owner explicitly (path@owner).
*/
static _Thread_local char user_name[REG_MAX_OWNER + 1];

void reg_current_user(char *out, size_t n)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    uid_t uid;

    if (user_name[0] == '\0') {
        uid = geteuid();
        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL &&
            res->pw_name != NULL && strlen(res->pw_name) <= REG_MAX_OWNER &&
            reg_owner_ok(res->pw_name, strlen(res->pw_name)))
            memcpy(user_name, res->pw_name, strlen(res->pw_name) + 1);
        else
            snprintf(user_name, sizeof(user_name), "%lu", (unsigned long)uid);
    }
    snprintf(out, n, "%s", user_name);
}

int reg_check_image_name(const char *name, char **err)
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

int reg_check_namespace(const char *spec, char **err)
{
    struct reg_ns ns;
    int rc = reg_ns_parse(spec, &ns, err);

    reg_ns_free(&ns);
    return rc;
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
        if (!store_sha_ok(h, h ? strlen(h) : 0)) {
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

/* ---------------------------------------------------------------------- */
/* image_register, and the commit of any ingest                            */

/*
** One transaction: the store is claimed, the namespace created if need
** be, the name checked, the file linked into the store by its hash, the row
** inserted, COMMIT. On failure: ROLLBACK and the link undone (the caller
** aborts the ingest, which removes its temp file).
*/
/* Where a URL import came from: its image_sources row. */
struct reg_origin {
    const char *url; /* redacted */
    const char *content_type;
    const char *started_at;
    sqlite3_int64 bytes;
};

static int reg_insert_origin(sqlite3 *db, sqlite3_int64 id, const char *sha,
                             const struct reg_origin *o, char **err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "INSERT INTO image_sources(image_id, url, content_type, bytes,"
        " sha256, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, o->url, -1, SQLITE_STATIC);
        if (o->content_type != NULL && o->content_type[0] != '\0')
            sqlite3_bind_text(st, 3, o->content_type, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, o->bytes);
        sqlite3_bind_text(st, 5, sha, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, o->started_at, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK)
        rc = reg_dberr(db, err, "image_sources");
    sqlite3_finalize(st);
    return rc;
}

static int reg_commit_txn(sqlite3 *db, struct store_ingest *ing,
                          struct reg_ns *ns, const char *owner,
                          const char *author, const char *name,
                          const struct reg_origin *origin, sqlite3_int64 *id,
                          char **err)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 ns_id = 0, existing = 0;
    char *where = NULL;
    int rc;

    rc = reg_begin_immediate(db, err);
    if (rc != SQLITE_OK)
        return rc;
    rc = store_ingest_claim(db, ing, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (ns->buf != NULL) {
        rc = reg_ns_id(db, ns, 1, &ns_id, err);
        if (rc != SQLITE_OK)
            goto fail;
    }
    rc = reg_image_find(db, owner, ns_id, name, &existing, NULL, err);
    if (rc != SQLITE_OK)
        goto fail;
    if (existing != 0) {
        where = reg_where(ns, owner);
        *err = sqlite3_mprintf("image '%s' already exists %s", name,
                               where ? where : "");
        rc = SQLITE_CONSTRAINT;
        goto fail;
    }
    rc = store_ingest_link(db, ing, err);
    if (rc != SQLITE_OK)
        goto fail;
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
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, author, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, store_ingest_sha256(ing), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, store_ingest_size(ing));
    sqlite3_bind_int64(st, 7, store_ingest_vsize(ing));
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        rc = reg_dberr(db, err, "images");
        goto fail;
    }
    *id = sqlite3_last_insert_rowid(db);
    if (origin != NULL) {
        rc = reg_insert_origin(db, *id, store_ingest_sha256(ing), origin, err);
        if (rc != SQLITE_OK)
            goto fail;
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "commit");
        goto fail;
    }
    rc = SQLITE_OK;
    goto done;

fail:
    reg_rollback(db);
    store_ingest_unlink(ing);
done:
    sqlite3_finalize(st);
    sqlite3_free(where);
    return rc;
}

/* What every registration checks first: a usable registry, no open
** transaction, the name, the namespace (ns and owner filled in; the caller
** frees ns with reg_ns_free, also on failure). */
static int reg_register_prologue(sqlite3 *db, const char *spec,
                                 const char *name, struct reg_ns *ns,
                                 char owner[REG_MAX_OWNER + 1], char **err)
{
    int rc;

    memset(ns, 0, sizeof(*ns));
    rc = reg_check_registry(db, err);
    if (rc == SQLITE_OK)
        rc = reg_need_autocommit(db, err);
    if (rc == SQLITE_OK)
        rc = reg_check_image_name(name, err);
    if (rc == SQLITE_OK)
        rc = reg_image_ns(spec, ns, owner, REG_MAX_OWNER + 1, err);
    return rc;
}

static int reg_commit_from(sqlite3 *db, struct store_ingest *ing,
                           const char *spec, const char *name,
                           const struct reg_origin *origin, sqlite3_int64 *id,
                           char **err)
{
    struct reg_ns ns;
    char owner[REG_MAX_OWNER + 1], author[REG_MAX_OWNER + 1];
    int rc;

    *id = 0;
    rc = reg_register_prologue(db, spec, name, &ns, owner, err);
    /* Validated before the write lock is taken: the validator reads the
    ** whole file. */
    if (rc == SQLITE_OK)
        rc = store_ingest_finish(ing, err);
    if (rc == SQLITE_OK) {
        reg_current_user(author, sizeof(author));
        rc = reg_commit_txn(db, ing, &ns, owner, author, name, origin, id, err);
    }
    reg_ns_free(&ns);
    return rc;
}

int reg_ingest_commit(sqlite3 *db, struct store_ingest *ing, const char *spec,
                      const char *name, sqlite3_int64 *id, char **err)
{
    return reg_commit_from(db, ing, spec, name, NULL, id, err);
}

/* dj_fetch's sink and progress for a URL import: the ingest, and the
** caller's progress. */
struct reg_fetching {
    struct store_ingest *ing;
    struct reg_import *imp;
};

static int reg_fetch_sink(void *arg, const void *buf, size_t n, char **err)
{
    return store_ingest_write(((struct reg_fetching *)arg)->ing, buf, n, err);
}

static int reg_fetch_progress(void *arg, sqlite3_int64 got, sqlite3_int64 total)
{
    struct reg_import *imp = ((struct reg_fetching *)arg)->imp;

    return imp->progress != NULL ? imp->progress(imp->arg, got, total) : 0;
}

/* Now, as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes it. */
static void reg_now_text(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char day[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", day, (int)(ts.tv_nsec / 1000000));
}

/* Stream src (a file, or a URL: dj_fetch) through an ingest, then commit
** it (with the URL's origin). */
static int reg_register(sqlite3 *db, struct reg_ns *ns, const char *owner,
                        const char *name, const char *src,
                        struct reg_import *imp, sqlite3_int64 *id, char **err)
{
    struct store_ingest *ing = NULL;
    struct reg_origin origin;
    struct reg_fetching fetching;
    struct stat sb;
    sqlite3_int64 ns_id = 0, existing = 0;
    char *where = NULL, *dir = NULL, *red = NULL;
    char started[40];
    unsigned char *buf = NULL;
    int rc, sfd = -1, url = dj_url_is(src);

    /* The store must be known (an in-memory registry has none) ... */
    rc = store_dir(db, &dir, err);
    sqlite3_free(dir);
    if (rc != SQLITE_OK)
        return rc;
    /* ... and the name free, so a big file is not copied for nothing. */
    if (ns->buf != NULL)
        rc = reg_ns_id(db, ns, 0, &ns_id, err);
    if (rc == SQLITE_OK && (ns->buf == NULL || ns_id != 0))
        rc = reg_image_find(db, owner, ns_id, name, &existing, NULL, err);
    if (rc != SQLITE_OK)
        return rc;
    if (existing != 0) {
        where = reg_where(ns, owner);
        *err = sqlite3_mprintf("image '%s' already exists %s", name,
                               where ? where : "");
        sqlite3_free(where);
        return SQLITE_CONSTRAINT;
    }
    if (url) {
        red = dj_url_redact(src);
        if (red == NULL)
            return SQLITE_NOMEM;
        reg_now_text(started, sizeof(started));
        rc = store_ingest_begin(db, red, &ing, err);
    } else {
        rc = store_open_source(src, &sfd, &sb, err);
        if (rc != SQLITE_OK)
            return rc;
        rc = store_ingest_begin(db, src, &ing, err);
    }
    if (rc == SQLITE_OK && imp->sha256 != NULL)
        rc = store_ingest_expect(ing, imp->sha256, err);
    if (rc == SQLITE_OK && url) {
        fetching.ing = ing;
        fetching.imp = imp;
        rc = dj_fetch(src, &imp->fetch, reg_fetch_sink, reg_fetch_progress,
                      &fetching, &imp->got, err);
    } else if (rc == SQLITE_OK) {
        buf = sqlite3_malloc64(REG_COPY_BUF);
        if (buf == NULL)
            rc = SQLITE_NOMEM;
    }
    while (rc == SQLITE_OK && !url) {
        ssize_t r = read(sfd, buf, REG_COPY_BUF);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = sqlite3_mprintf("%s: read error: %s", src, strerror(errno));
            rc = SQLITE_IOERR;
            break;
        }
        if (r == 0)
            break;
        rc = store_ingest_write(ing, buf, (size_t)r, err);
    }
    sqlite3_free(buf);
    if (sfd >= 0)
        close(sfd);
    if (rc == SQLITE_OK) {
        memset(&origin, 0, sizeof(origin));
        origin.url = red;
        origin.content_type = imp->got.content_type;
        origin.started_at = started;
        origin.bytes = imp->got.bytes;
        rc = reg_commit_from(db, ing, ns->spec, name, url ? &origin : NULL, id,
                             err);
        /* A web page (a login form, an error page sent with status 200)
        ** is refused by the validator; its type says why. */
        if (rc != SQLITE_OK && url && *err != NULL &&
            strncmp(imp->got.content_type, "text/", 5) == 0) {
            char *more = sqlite3_mprintf("%s\n(the server sent it as %s: a "
                                         "web page, not a disk image?)",
                                         *err, imp->got.content_type);

            sqlite3_free(*err);
            *err = more;
        }
    }
    store_ingest_abort(ing);
    sqlite3_free(red);
    return rc;
}

int reg_image_import(sqlite3 *db, const char *spec, const char *name,
                     const char *source, struct reg_import *imp,
                     sqlite3_int64 *id, char **err)
{
    struct reg_import none;
    struct reg_ns ns;
    char owner[REG_MAX_OWNER + 1];
    int rc;

    *id = 0;
    if (imp == NULL) {
        memset(&none, 0, sizeof(none));
        imp = &none;
    }
    rc = reg_register_prologue(db, spec, name, &ns, owner, err);
    if (rc == SQLITE_OK)
        rc = reg_register(db, &ns, owner, name, source, imp, id, err);
    reg_ns_free(&ns);
    return rc;
}

/*
** image_register's fourth argument: a JSON object of import options
** (reg_import), every key optional. j and its strings outlive the import.
*/
static const char *const reg_import_keys =
    "sha256, max_size, connect_timeout, stall_timeout, timeout, "
    "max_redirects, insecure, ca_file, identity, known_hosts";

static int reg_import_opts(json_t *j, struct reg_import *imp, char **err)
{
    const char *key;
    json_t *v;

    if (!json_is_object(j)) {
        *err = sqlite3_mprintf("options: expected a JSON object with the "
                               "keys %s",
                               reg_import_keys);
        return SQLITE_MISMATCH;
    }
    json_object_foreach(j, key, v)
    {
        const char *want = NULL;
        double num = json_is_number(v) ? json_number_value(v) : -1;

        if (strcmp(key, "sha256") == 0 || strcmp(key, "ca_file") == 0 ||
            strcmp(key, "identity") == 0 || strcmp(key, "known_hosts") == 0) {
            const char *t = json_string_value(v);

            if (t == NULL || t[0] == '\0')
                want = "a non-empty string";
            else if (key[0] == 's')
                imp->sha256 = t;
            else if (key[0] == 'c')
                imp->fetch.ca_file = t;
            else if (key[0] == 'i')
                imp->fetch.identity = t;
            else
                imp->fetch.known_hosts = t;
        } else if (strcmp(key, "insecure") == 0) {
            if (!json_is_boolean(v))
                want = "true or false";
            else
                imp->fetch.insecure = json_is_true(v);
        } else if (strcmp(key, "max_size") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) <= 0)
                want = "a positive integer (bytes)";
            else
                imp->fetch.max_size = json_integer_value(v);
        } else if (strcmp(key, "max_redirects") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 100)
                want = "an integer from 0 to 100";
            else
                imp->fetch.max_redirects = json_integer_value(v) == 0
                                               ? -1
                                               : (long)json_integer_value(v);
        } else if (strcmp(key, "connect_timeout") == 0 ||
                   strcmp(key, "stall_timeout") == 0 ||
                   strcmp(key, "timeout") == 0) {
            if (!(num > 0 && num <= 31 * 86400.0))
                want = "a number of seconds, more than 0 and at most 31 days";
            else if (key[0] == 'c')
                imp->fetch.connect_timeout = num;
            else if (key[0] == 's')
                imp->fetch.stall_timeout = num;
            else
                imp->fetch.timeout = num;
        } else {
            *err = sqlite3_mprintf("options: unknown key '%s' (allowed: %s)",
                                   key, reg_import_keys);
            return SQLITE_MISMATCH;
        }
        if (want != NULL) {
            *err = sqlite3_mprintf("options: %s must be %s", key, want);
            return SQLITE_MISMATCH;
        }
    }
    return SQLITE_OK;
}

static void image_register_func(sqlite3_context *ctx, int argc,
                                sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_import imp;
    sqlite3_int64 id = 0;
    const char *spec = NULL, *name = NULL, *src = NULL, *opts = NULL;
    json_t *j = NULL;
    json_error_t jerr;
    char *err = NULL;
    int rc = SQLITE_OK;

    memset(&imp, 0, sizeof(imp));
    if (reg_text_arg(ctx, "image_register", argv[0], "namespace", &spec) ||
        reg_text_arg(ctx, "image_register", argv[1], "image name", &name) ||
        reg_text_arg(ctx, "image_register", argv[2], "path", &src) ||
        (argc > 3 &&
         reg_text_arg(ctx, "image_register", argv[3], "options", &opts)))
        return;
    if (name == NULL || src == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (opts != NULL) {
        j = json_loads(opts, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL) {
            err = sqlite3_mprintf("options: not JSON: %s at 1:%d", jerr.text,
                                  jerr.column);
            rc = SQLITE_MISMATCH;
        } else {
            rc = reg_import_opts(j, &imp, &err);
        }
    }
    if (rc == SQLITE_OK)
        rc = reg_image_import(db, spec, name, src, &imp, &id, &err);
    json_decref(j);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_register", rc, err);
        return;
    }
    sqlite3_result_int64(ctx, id);
}

/* ---------------------------------------------------------------------- */
/* image_path, image_remove                                                */

/*
** image_path's per-connection cache (issue 13: each call prepared three
** statements and checked the registry's header, ~40 us where the same
** lookup in plain SQL takes ~2 us). One statement, prepared once, finds
** the namespace and the image in one row; the registry check and the store
** directory are kept for the database's data version
** (SQLITE_FCNTL_DATA_VERSION, which changes with every commit by any
** connection or process, this one too) and done again when it changes.
** Inside BEGIN the cache is not used: a change made there moves no data
** version, and may yet roll back.
**
** A prepared statement left on a connection makes sqlite3_close() fail
** (SQLITE_BUSY), so the statement is finalized by the xDisconnect of an
** eponymous virtual table, djinn_lookup_hook, that the cache connects
** before it keeps anything: SQLite disconnects virtual tables before it
** checks for statements left open (as FTS5 keeps its statements). The
** struct is shared by the function (user data) and the module (client
** data); the last of the two destructors frees it.
**
** Anything unusual -- the hook or the statement cannot be made, the check
** fails, a row is damaged, a statement is busy (a nested call) -- takes
** the slow path below, which is the reference and words every error.
*/
struct reg_lookup {
    int refs;
    int hooked;         /* djinn_lookup_hook is connected */
    int checked;        /* the registry check passed at `version` */
    unsigned version;   /* SQLITE_FCNTL_DATA_VERSION of that check */
    sqlite3_stmt *find; /* namespace id and image sha256, one row */
    char *dir;          /* store_dir() at `version` */
};

static void lookup_release(void *p)
{
    struct reg_lookup *c = p;

    if (c == NULL || --c->refs > 0)
        return;
    sqlite3_finalize(c->find);
    sqlite3_free(c->dir);
    sqlite3_free(c);
}

/* The hook: a table with no rows whose only work is xDisconnect. */
struct lookup_vtab {
    sqlite3_vtab base;
    struct reg_lookup *c;
};

static int hook_connect(sqlite3 *db, void *aux, int argc,
                        const char *const *argv, sqlite3_vtab **out, char **err)
{
    struct lookup_vtab *t;
    int rc;

    (void)argc;
    (void)argv;
    (void)err;
    rc = sqlite3_declare_vtab(db, "CREATE TABLE x(unused)");
    if (rc != SQLITE_OK)
        return rc;
    t = sqlite3_malloc(sizeof(*t));
    if (t == NULL)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof(*t));
    t->c = aux;
    *out = &t->base;
    return SQLITE_OK;
}

static int hook_disconnect(sqlite3_vtab *vt)
{
    struct lookup_vtab *t = (struct lookup_vtab *)vt;

    sqlite3_finalize(t->c->find);
    t->c->find = NULL;
    t->c->hooked = 0;
    t->c->checked = 0;
    sqlite3_free(t);
    return SQLITE_OK;
}

static int hook_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    info->estimatedCost = 1;
    info->estimatedRows = 0;
    return SQLITE_OK;
}

static int hook_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **cur)
{
    (void)vt;
    *cur = sqlite3_malloc(sizeof(**cur));
    if (*cur == NULL)
        return SQLITE_NOMEM;
    memset(*cur, 0, sizeof(**cur));
    return SQLITE_OK;
}

static int hook_close(sqlite3_vtab_cursor *cur)
{
    sqlite3_free(cur);
    return SQLITE_OK;
}

static int hook_filter(sqlite3_vtab_cursor *cur, int idx, const char *s,
                       int argc, sqlite3_value **argv)
{
    (void)cur;
    (void)idx;
    (void)s;
    (void)argc;
    (void)argv;
    return SQLITE_OK;
}

static int hook_next(sqlite3_vtab_cursor *cur)
{
    (void)cur;
    return SQLITE_OK;
}

static int hook_eof(sqlite3_vtab_cursor *cur)
{
    (void)cur;
    return 1;
}

static int hook_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i)
{
    (void)cur;
    (void)ctx;
    (void)i;
    return SQLITE_OK;
}

static int hook_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
    (void)cur;
    *rowid = 0;
    return SQLITE_OK;
}

static sqlite3_module hook_module = {
    0,
    NULL,
    hook_connect,
    hook_best_index,
    hook_disconnect,
    NULL,
    hook_open,
    hook_close,
    hook_filter,
    hook_next,
    hook_eof,
    hook_column,
    hook_rowid,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

/*
** The fast path: 1 with *path set (NULL: no such image) when it could
** answer, 0 when the slow path must (nothing is left open either way).
*/
static int lookup_fast(sqlite3 *db, struct reg_lookup *c,
                       const struct reg_ns *ns, const char *owner,
                       const char *name, char **path)
{
    static const char sql[] =
        "SELECT n.id, i.sha256 FROM (SELECT CASE WHEN ?2 IS NULL THEN 0"
        " ELSE (SELECT id FROM namespaces WHERE owner = ?1 AND path = ?2)"
        " END AS id) AS n LEFT JOIN images AS i ON i.owner = ?1"
        " AND ifnull(i.namespace_id, 0) = n.id AND i.name = ?3";
    const char *h;
    char *err = NULL, *dir = NULL;
    unsigned version = 0;
    int ok = 0;

    *path = NULL;
    if (c == NULL)
        return 0;
    if (!c->hooked) {
        if (sqlite3_exec(db, "SELECT * FROM djinn_lookup_hook", NULL, NULL,
                         NULL) != SQLITE_OK)
            return 0;
        c->hooked = 1; /* hook_connect ran: the statement may be kept */
    }
    if (c->find == NULL &&
        sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->find,
                           NULL) != SQLITE_OK) {
        c->find = NULL;
        return 0;
    }
    if (sqlite3_stmt_busy(c->find))
        return 0; /* a nested call: leave the running one alone */
    if (!sqlite3_get_autocommit(db))
        return 0; /* inside BEGIN: what it changes may yet roll back */
    sqlite3_bind_text(c->find, 1, owner, -1, SQLITE_STATIC);
    if (ns->buf != NULL)
        sqlite3_bind_text(c->find, 2, ns->path, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(c->find, 2);
    sqlite3_bind_text(c->find, 3, name, -1, SQLITE_STATIC);
    if (sqlite3_step(c->find) != SQLITE_ROW)
        goto done;
    /* The read transaction is open while the row is current: the data
     * version read now is the snapshot's, and a check made now sees it. */
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &version) !=
        SQLITE_OK)
        goto done;
    if (!c->checked || version != c->version) {
        c->checked = 0;
        if (reg_check_registry(db, &err) != SQLITE_OK ||
            store_dir(db, &dir, &err) != SQLITE_OK)
            goto done;
        sqlite3_free(c->dir);
        c->dir = dir;
        dir = NULL;
        c->version = version;
        c->checked = 1;
    }
    if (sqlite3_column_type(c->find, 1) == SQLITE_NULL) {
        ok = 1; /* no such namespace or image */
        goto done;
    }
    h = (const char *)sqlite3_column_text(c->find, 1);
    if (!store_sha_ok(h, h ? strlen(h) : 0))
        goto done; /* damaged: the slow path says so */
    *path = sqlite3_mprintf("%s/%s.qcow2", c->dir, h);
    ok = *path != NULL;
done:
    sqlite3_reset(c->find);
    sqlite3_clear_bindings(c->find);
    sqlite3_free(err);
    sqlite3_free(dir);
    return ok;
}

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
    if (reg_check_image_name(name, &err) == SQLITE_OK &&
        reg_image_ns(spec, &ns, owner, sizeof(owner), &err) == SQLITE_OK &&
        lookup_fast(db, sqlite3_user_data(ctx), &ns, owner, name, &path)) {
        reg_ns_free(&ns);
        if (path == NULL)
            sqlite3_result_null(ctx);
        else
            sqlite3_result_text(ctx, path, -1, sqlite3_free);
        return;
    }
    sqlite3_free(err);
    err = NULL;
    reg_ns_free(&ns);
    memset(&ns, 0, sizeof(ns));
    /* The slow path: the reference, and the words of every error. */
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK)
        rc = reg_check_image_name(name, &err);
    if (rc == SQLITE_OK)
        rc = reg_image_ns(spec, &ns, owner, sizeof(owner), &err);
    if (rc == SQLITE_OK && ns.buf != NULL)
        rc = reg_ns_id(db, &ns, 0, &ns_id, &err);
    if (rc == SQLITE_OK && (ns.buf == NULL || ns_id != 0))
        rc = reg_image_find(db, owner, ns_id, name, &id, sha, &err);
    if (rc == SQLITE_OK && id != 0)
        rc = store_dir(db, &dir, &err);
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
    struct store_trash t;
    sqlite3_stmt *st = NULL;
    sqlite3_int64 ns_id = 0, id = 0, refs = 0;
    char sha[65];
    int rc;

    *removed = 0;
    memset(&t, 0, sizeof(t));
    t.dfd = -1;
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
    /* The file goes when nothing references it any more (store_refs). */
    rc = store_refs_count(db, sha, &refs, err);
    if (rc == SQLITE_OK && refs == 0)
        rc = store_trash(db, sha, &t, err);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = reg_dberr(db, err, "commit");
        goto fail;
    }
    store_trash_end(&t, 1);
    *removed = 1;
    goto done;

fail:
    reg_rollback(db);
    store_trash_end(&t, 0);
done:
    sqlite3_finalize(st);
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
        rc = reg_check_image_name(name, &err);
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
/* Settings, version                                                       */

static const char *const reg_known_keys[] = {"store", NULL};

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
        rc = store_has_all(db, value, &err);
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

/* image_path and its cache's hook (see struct reg_lookup). */
static int lookup_functions(sqlite3 *db, int drop)
{
    struct reg_lookup *c;

    if (drop) {
        (void)sqlite3_create_function(db, "image_path", 2, SQLITE_UTF8, NULL,
                                      NULL, NULL, NULL);
        (void)sqlite3_create_module(db, "djinn_lookup_hook", NULL, NULL);
        return SQLITE_OK;
    }
    c = sqlite3_malloc(sizeof(*c));
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    c->refs = 2;
    /* On failure the module's destructor runs (one reference left), and
     * the cache keeps nothing (no hook): the function still works, by the
     * slow path. */
    (void)sqlite3_create_module_v2(db, "djinn_lookup_hook", &hook_module, c,
                                   lookup_release);
    return sqlite3_create_function_v2(db, "image_path", 2, SQLITE_UTF8, c,
                                      image_path_func, NULL, NULL,
                                      lookup_release);
}

int reg_registry_functions(sqlite3 *db, int drop)
{
    static const struct reg_sql_func funcs[] = {
        {"image_register", 3, SQLITE_DIRECTONLY, image_register_func},
        {"image_register", 4, SQLITE_DIRECTONLY, image_register_func},
        {"image_remove", 2, SQLITE_DIRECTONLY, image_remove_func},
        {"namespace_resolve", 1, SQLITE_DIRECTONLY, namespace_resolve_func},
        {"djinn_setting", 1, 0, djinn_setting_func},
        {"djinn_setting", 2, SQLITE_DIRECTONLY, djinn_setting_func},
        {"djinn_version", 0, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
         djinn_version_func},
    };
    int rc = lookup_functions(db, drop);

    if (rc != SQLITE_OK)
        return rc;
    return reg_create_functions(db, funcs, sizeof(funcs) / sizeof(funcs[0]),
                                drop);
}
