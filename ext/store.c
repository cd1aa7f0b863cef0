/*
** store.c - the content-addressed file store of a registry: where it is,
** who owns it, what references a file in it, the streaming ingest that puts
** a file in, removal, djinn_fsck, and the SQL functions that only read
** files (image_sha256, image_verify).
**
** Place in the one-way graph (see schema.h): above schema.c and qcow2.c,
** below registry.c. It never calls registry.c; registry.c uses store.h.
**
** The store is a directory: `images/` beside the database file, or the
** 'store' setting (a relative value is taken against the database's
** directory). It is created (mode 0755) on first use. Files are stored as
** <store>/<sha256>.qcow2, mode 0444; images with identical content share one
** file, which is unlinked when its last reference (view store_refs) goes.
** The store holds a marker, .djinn-store, naming the registry that owns it
** ("The store's owner", below).
**
** SQL functions registered here (reg_store_functions), documented with the
** others at the top of registry.c: djinn_store, djinn_store_check,
** djinn_fsck, image_sha256, image_verify.
**
** Ownership: strings built here are sqlite3_malloc()ed and freed on every
** path; results are handed over with SQLITE_TRANSIENT or sqlite3_free.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "jsonstr.h"
#include "qcow2.h"
#include "schema.h"
#include "store.h"

#define REG_COPY_BUF (1 << 20)

/* Append s as a JSON string, by the one rule of jsonstr.h (invalid UTF-8
** becomes U+FFFD); null when memory runs out. */
static void reg_json_str(sqlite3_str *out, const char *s)
{
    char *q = dj_json_quote(s);

    sqlite3_str_appendall(out, q ? q : "null");
    free(q);
}

/* 64 lowercase hex digits and nothing else: a SHA-256 as the store
** writes it. Anything else read from a row is damage, never a path. */
int store_hex_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int store_sha_ok(const char *s, size_t n)
{
    return s != NULL && n == 64 && store_hex_ok(s, 64);
}

/* ---------------------------------------------------------------------- */
/* What references a stored file                                           */

/*
** The one definition of "a stored file is needed": a row of the view
** store_refs (schema/004) has its SHA-256. image_remove (is the file still
** needed after the row is gone?), image_register (is identical content
** already referenced?), djinn_fsck (which files are orphans?), the store's
** owner (does the registry have images?) and djinn_setting('store') (which
** files must the new store hold?) all read it, and nothing else. A future
** user of the store (a download cache) adds its rows to the view.
**
** How many references the file of content sha has; sha NULL: 1 when
** there is any reference at all, else 0.
*/
int store_refs_count(sqlite3 *db, const char *sha, sqlite3_int64 *n, char **err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *n = 0;
    rc = sqlite3_prepare_v2(
        db,
        sha != NULL ? "SELECT count(*) FROM store_refs WHERE sha256 = ?1"
                    : "SELECT count(*) FROM (SELECT 1 FROM store_refs LIMIT 1)",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(db, err, "store_refs");
    if (sha != NULL)
        sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *n = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else {
        rc = reg_dberr(db, err, "store_refs");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Settings and the store directory                                        */

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
int store_dir(sqlite3 *db, char **dir, char **err)
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
int store_has_all(sqlite3 *db, const char *value, char **err)
{
    sqlite3_stmt *st = NULL;
    char *v = NULL, *dir = NULL;
    char first[65];
    struct stat sb;
    sqlite3_int64 need = 0, lack = 0;
    int rc, dfd = -1;

    rc = store_refs_count(db, NULL, &need, err);
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
    rc = sqlite3_prepare_v2(db, "SELECT DISTINCT sha256 FROM store_refs", -1,
                            &st, NULL);
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
        if (!store_sha_ok(h, h ? strlen(h) : 0))
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

void store_hex(const unsigned char *md, unsigned len, char *hex)
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
    store_hex(digest, dlen, hex);
done:
    EVP_MD_CTX_free(md);
    sqlite3_free(buf);
    return rc;
}

int store_hash_fd(int fd, const char *what, char hex[65], sqlite3_int64 *size,
                  char **err)
{
    return reg_hash_fd(fd, -1, what, NULL, hex, size, err);
}

/* Open a source file for reading: regular files only, never blocks. */
int store_open_source(const char *path, int *fd, struct stat *st, char **err)
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
    store_hex(r, sizeof(r), hex);
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
    return strlen(name) == 70 && store_sha_ok(name, 64) &&
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
    if (v != NULL && strlen(v) == 32 && store_hex_ok(v, 32))
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
        !store_hex_ok(buf + head, 32))
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
        rc = store_refs_count(db, NULL, &rows, err);
        if (rc != SQLITE_OK)
            return rc;
        if (rows == 0) {
            m = reg_store_has_images(dfd);
            if (m < 0) {
                *err = sqlite3_mprintf("store '%s': cannot list it: %s", dir,
                                       strerror(errno));
                return SQLITE_IOERR;
            }
            /* A registry claims the store (writes the marker) before
             * it writes any file into it, so files and no marker can
             * also be a registry that claimed the store and wrote an
             * image after our read of the marker, before its commit
             * (rows == 0): read the marker again. */
            if (m > 0 && reg_marker_read(dfd, mark) != 0)
                continue;
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
/* Streaming ingest                                                        */

struct store_ingest {
    char *what;      /* names the source in messages */
    char expect[65]; /* the content's SHA-256 must be this ("": any) */
    char *dir;       /* the store directory */
    int dfd, tfd;
    char tmp[64]; /* temp name in dir while it exists, else "" */
    EVP_MD_CTX *md;
    char sha[65];
    char final[80];
    sqlite3_int64 size, vsize, refs;
    int finished; /* hashed, synced and validated */
    int failed;   /* a write failed: the temp file is incomplete */
    int renamed;  /* store_ingest_link put the file in place */
};

int store_ingest_begin(sqlite3 *db, const char *what, struct store_ingest **out,
                       char **err)
{
    struct store_ingest *ing;
    struct flock lk;
    int rc;

    *out = NULL;
    ing = sqlite3_malloc64(sizeof(*ing));
    if (ing == NULL)
        return SQLITE_NOMEM;
    memset(ing, 0, sizeof(*ing));
    ing->dfd = ing->tfd = -1;
    ing->what = sqlite3_mprintf("%s", what);
    ing->md = EVP_MD_CTX_new();
    if (ing->what == NULL || ing->md == NULL) {
        rc = SQLITE_NOMEM;
        goto fail;
    }
    if (EVP_DigestInit_ex(ing->md, EVP_sha256(), NULL) != 1) {
        *err = sqlite3_mprintf("SHA-256 is not available from libcrypto");
        rc = SQLITE_ERROR;
        goto fail;
    }
    rc = store_dir(db, &ing->dir, err);
    if (rc == SQLITE_OK)
        rc = reg_mkdir_p(ing->dir, err);
    if (rc != SQLITE_OK)
        goto fail;
    ing->dfd = open(ing->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ing->dfd < 0) {
        *err = sqlite3_mprintf("store '%s': cannot open: %s", ing->dir,
                               strerror(errno));
        rc = SQLITE_CANTOPEN;
        goto fail;
    }
    /* Before writing: is the store this registry's? (Checked again, and
    ** claimed, under the write lock: store_ingest_claim.) */
    rc = reg_store_ours(db, ing->dir, ing->dfd, 0, err);
    if (rc != SQLITE_OK)
        goto fail;
    for (int tries = 0; ing->tfd < 0; tries++) {
        reg_temp_name(ing->tmp, sizeof(ing->tmp), ".tmp-");
        ing->tfd =
            openat(ing->dfd, ing->tmp,
                   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (ing->tfd < 0 && (errno != EEXIST || tries >= 10)) {
            *err = sqlite3_mprintf("store '%s': cannot create a temp file: "
                                   "%s",
                                   ing->dir, strerror(errno));
            ing->tmp[0] = '\0';
            rc = SQLITE_CANTOPEN;
            goto fail;
        }
    }
    /* A lock on the copy says "in use" to djinn_fsck('repair') (besides
    ** the pid in its name), also from another host over NFS. */
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    (void)fcntl(ing->tfd, F_SETLK, &lk);
    *out = ing;
    return SQLITE_OK;

fail:
    store_ingest_abort(ing);
    return rc;
}

int store_ingest_write(struct store_ingest *ing, const void *buf, size_t n,
                       char **err)
{
    if (ing->finished || ing->failed || ing->tfd < 0) {
        *err = sqlite3_mprintf(
            "%s: the ingest is %s; start a new one", ing->what,
            ing->failed ? "broken by an earlier error" : "already finished");
        return SQLITE_MISUSE;
    }
    if (n == 0)
        return SQLITE_OK;
    if (EVP_DigestUpdate(ing->md, buf, n) != 1) {
        ing->failed = 1;
        *err = sqlite3_mprintf("SHA-256 update failed");
        return SQLITE_ERROR;
    }
    if (write_all(ing->tfd, (const unsigned char *)buf, n) != 0) {
        ing->failed = 1;
        *err = sqlite3_mprintf("cannot write the copy of %s in %s: %s",
                               ing->what, ing->dir, strerror(errno));
        return SQLITE_IOERR;
    }
    ing->size += (sqlite3_int64)n;
    return SQLITE_OK;
}

int store_ingest_finish(struct store_ingest *ing, char **err)
{
    struct qcow2_report rep;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;

    if (ing->finished)
        return SQLITE_OK;
    if (ing->failed || ing->tfd < 0) {
        *err = sqlite3_mprintf("%s: the ingest is broken by an earlier "
                               "error; start a new one",
                               ing->what);
        return SQLITE_MISUSE;
    }
    ing->failed = 1; /* until it is done */
    if (EVP_DigestFinal_ex(ing->md, digest, &dlen) != 1 || dlen != 32) {
        *err = sqlite3_mprintf("SHA-256 final failed");
        return SQLITE_ERROR;
    }
    store_hex(digest, dlen, ing->sha);
    if (ing->expect[0] != '\0' && strcmp(ing->expect, ing->sha) != 0) {
        *err = sqlite3_mprintf("%s: the content's SHA-256 is %s, not the "
                               "expected %s",
                               ing->what, ing->sha, ing->expect);
        return SQLITE_CONSTRAINT;
    }
    snprintf(ing->final, sizeof(ing->final), "%s.qcow2", ing->sha);
    if (fsync(ing->tfd) != 0) {
        *err = sqlite3_mprintf("cannot fsync the copy in %s: %s", ing->dir,
                               strerror(errno));
        return SQLITE_IOERR;
    }
    /* Validate the copy: what is checked is what gets stored. */
    memset(&rep, 0, sizeof(rep));
    if (qcow2_check_fd(ing->tfd, 0, &rep) != 0) {
        qcow2_report_free(&rep);
        return SQLITE_NOMEM;
    }
    if (!rep.valid) {
        *err = reg_rejection(ing->what, &rep);
        qcow2_report_free(&rep);
        return SQLITE_CONSTRAINT;
    }
    ing->vsize = (sqlite3_int64)rep.info.virtual_size;
    qcow2_report_free(&rep);
    if (fchmod(ing->tfd, 0444) != 0) {
        *err = sqlite3_mprintf("cannot chmod the copy in %s: %s", ing->dir,
                               strerror(errno));
        return SQLITE_IOERR;
    }
    ing->failed = 0;
    ing->finished = 1;
    return SQLITE_OK;
}

int store_ingest_expect(struct store_ingest *ing, const char *sha256,
                        char **err)
{
    size_t i, n = sha256 ? strlen(sha256) : 0;
    int ok = n == 64;

    for (i = 0; ok && i < n; i++)
        ok = strchr("0123456789abcdefABCDEF", sha256[i]) != NULL;
    if (!ok) {
        *err = sqlite3_mprintf("the expected SHA-256 '%s' is not 64 hex "
                               "digits",
                               sha256 ? sha256 : "");
        return SQLITE_MISUSE;
    }
    for (i = 0; i < 64; i++)
        ing->expect[i] =
            (char)(sha256[i] >= 'A' && sha256[i] <= 'F' ? sha256[i] + 32
                                                        : sha256[i]);
    ing->expect[64] = '\0';
    return SQLITE_OK;
}

const char *store_ingest_sha256(const struct store_ingest *ing)
{
    return ing->finished ? ing->sha : NULL;
}

sqlite3_int64 store_ingest_size(const struct store_ingest *ing)
{
    return ing->size;
}

sqlite3_int64 store_ingest_vsize(const struct store_ingest *ing)
{
    return ing->vsize;
}

const char *store_ingest_dir(const struct store_ingest *ing)
{
    return ing->dir;
}

int store_ingest_claim(sqlite3 *db, struct store_ingest *ing, char **err)
{
    /* Under the write lock: no other process of this registry is between
    ** its own claim and COMMIT. */
    return reg_store_ours(db, ing->dir, ing->dfd, 1, err);
}

int store_ingest_link(sqlite3 *db, struct store_ingest *ing, char **err)
{
    struct stat sb;
    int rc;

    if (!ing->finished || ing->tmp[0] == '\0') {
        *err = sqlite3_mprintf("%s: the ingest is not finished or already "
                               "linked",
                               ing->what);
        return SQLITE_MISUSE;
    }
    rc = store_refs_count(db, ing->sha, &ing->refs, err);
    if (rc != SQLITE_OK)
        return rc;
    if (ing->refs > 0 &&
        fstatat(ing->dfd, ing->final, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(sb.st_mode) && sb.st_size == ing->size) {
        /* Identical content already stored and referenced: share it. */
        (void)unlinkat(ing->dfd, ing->tmp, 0);
    } else {
        /* New content, or a leftover nobody references: (re)place it. */
        if (renameat(ing->dfd, ing->tmp, ing->dfd, ing->final) != 0) {
            *err = sqlite3_mprintf("cannot rename the copy to %s/%s: %s",
                                   ing->dir, ing->final, strerror(errno));
            return SQLITE_IOERR;
        }
        ing->renamed = 1;
        ing->tmp[0] = '\0';
        if (fsync(ing->dfd) != 0) {
            *err = sqlite3_mprintf("cannot fsync the store directory %s: %s",
                                   ing->dir, strerror(errno));
            return SQLITE_IOERR;
        }
    }
    ing->tmp[0] = '\0'; /* the temp name is gone either way */
    return SQLITE_OK;
}

void store_ingest_unlink(struct store_ingest *ing)
{
    /* A file this ingest put in place is referenced by no row, unless it
    ** replaced a damaged copy that rows share (same name, same SHA-256). */
    if (ing->renamed && ing->refs == 0)
        (void)unlinkat(ing->dfd, ing->final, 0);
    ing->renamed = 0;
}

void store_ingest_abort(struct store_ingest *ing)
{
    if (ing == NULL)
        return;
    if (ing->tfd >= 0)
        close(ing->tfd);
    if (ing->tmp[0] != '\0' && ing->dfd >= 0)
        (void)unlinkat(ing->dfd, ing->tmp, 0);
    if (ing->dfd >= 0)
        close(ing->dfd);
    EVP_MD_CTX_free(ing->md);
    sqlite3_free(ing->dir);
    sqlite3_free(ing->what);
    sqlite3_free(ing);
}

/* ---------------------------------------------------------------------- */
/* Removal                                                                 */

/* ---------------------------------------------------------------------- */
/* Warm VM snapshots (issue 15): djinn-lua keeps a registered image's       */
/* snapshots in <store>/warm/<sha256>.<shape>/ (files only), each with a    */
/* lock file <sha256>.<shape>.lock, and makes them in .tmp-<name>-<pid>/    */
/* (lua/djinn/warm.lua). They go with their image's file, and fsck lists    */
/* them.                                                                    */

#define WARM_DIR "warm"

/* Remove the snapshot directory `name` in wfd (its files, then itself). */
static int reg_warm_rmdir(int wfd, const char *name)
{
    int fd = openat(wfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT)
            rc = -1;
    }
    closedir(d);
    if (rc == 0 && unlinkat(wfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

/* Is the lock file `name` held by some process (a snapshot being made)? */
static int reg_warm_locked(int wfd, const char *name)
{
    int fd = openat(wfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC), busy;

    if (fd < 0)
        return 0;
    busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* drops the lock when we took it */
    return busy;
}

/* The image of content sha is gone: so are its snapshots (best effort: a
** left one is an orphan that fsck reports and repairs). */
static void store_warm_drop(int dfd, const char *sha)
{
    int wfd =
        openat(dfd, WARM_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *e;

    if (wfd < 0)
        return;
    d = fdopendir(wfd);
    if (d == NULL) {
        close(wfd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);

        if (n <= 65 || memcmp(e->d_name, sha, 64) != 0 || e->d_name[64] != '.')
            continue;
        if (n > 5 && strcmp(e->d_name + n - 5, ".lock") == 0)
            (void)unlinkat(wfd, e->d_name, 0);
        else
            (void)reg_warm_rmdir(wfd, e->d_name);
    }
    closedir(d);
}

int store_trash(sqlite3 *db, const char *sha, struct store_trash *t, char **err)
{
    char prefix[80];
    int rc;

    memset(t, 0, sizeof(*t));
    t->dfd = -1;
    /* The file goes: the store must be this registry's. */
    rc = store_dir(db, &t->dir, err);
    if (rc != SQLITE_OK)
        return rc;
    t->dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->dfd < 0 && errno != ENOENT) {
        *err = sqlite3_mprintf("store '%s': cannot open: %s", t->dir,
                               strerror(errno));
        return SQLITE_CANTOPEN;
    }
    rc = reg_store_ours(db, t->dir, t->dfd, 1, err);
    if (rc != SQLITE_OK || t->dfd < 0)
        return rc;
    snprintf(t->final, sizeof(t->final), "%s.qcow2", sha);
    snprintf(prefix, sizeof(prefix), ".trash-%s-", sha);
    reg_temp_name(t->trash, sizeof(t->trash), prefix);
    if (renameat(t->dfd, t->final, t->dfd, t->trash) == 0) {
        t->trashed = 1;
    } else if (errno != ENOENT) {
        *err = sqlite3_mprintf("cannot remove %s/%s: %s", t->dir, t->final,
                               strerror(errno));
        return SQLITE_IOERR;
    } /* else already gone: not an error (Djinn does the same) */
    return SQLITE_OK;
}

void store_trash_end(struct store_trash *t, int committed)
{
    if (t->trashed) {
        if (committed)
            (void)unlinkat(t->dfd, t->trash, 0);
        else
            (void)renameat(t->dfd, t->trash, t->dfd, t->final);
    }
    if (committed && t->dfd >= 0 && t->final[0] != '\0')
        store_warm_drop(t->dfd, t->final); /* final: "<sha256>.qcow2" */
    t->trashed = 0;
    if (t->dfd >= 0)
        close(t->dfd);
    t->dfd = -1;
    sqlite3_free(t->dir);
    t->dir = NULL;
}

/* ---------------------------------------------------------------------- */
/* djinn_fsck                                                              */

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
    sqlite3_str *warm_orphans, *warm_temps; /* <store>/warm (issue 15) */
    int nwo, nwt;
    sqlite3_int64 warm_snapshots, warm_bytes;
};

static int reg_sha_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 64);
}

/*
** Which contents the rows need, read from store_refs, which scans the
** table (NOT INDEXED: a damaged index must not make a needed file look
** unneeded). A row without a valid sha256 means the registry is damaged:
** *bad_id gets its id, and repair must not decide anything from it.
*/
static int reg_fsck_load(struct reg_fsck *f, sqlite3_int64 *bad_id, char **err)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc;

    *bad_id = 0;
    rc = sqlite3_prepare_v2(f->db, "SELECT ref_id, sha256 FROM store_refs", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(f->db, err, "store_refs");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 1);

        if (!store_sha_ok(h, h ? strlen(h) : 0)) {
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
        rc = reg_dberr(f->db, err, "store_refs");
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
    if (strlen(name) > 72 && store_sha_ok(name + 7, 64) && name[71] == '-') {
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
        strcmp(name, REG_MARKER) == 0 || strcmp(name, WARM_DIR) == 0)
        return SQLITE_OK; /* warm/: reg_fsck_warm */
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

/* The bytes of the files in snapshot directory `name`. */
static sqlite3_int64 reg_warm_bytes(int wfd, const char *name)
{
    int fd = openat(wfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    struct stat sb;
    sqlite3_int64 total = 0;

    if (fd < 0)
        return 0;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (fstatat(fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(sb.st_mode) && sb.st_size <= INT64_MAX - total)
            total += sb.st_size;
    }
    closedir(d);
    return total;
}

/* A repaired warm entry, listed as warm/<name> among the removed. */
static void reg_warm_listed(sqlite3_str *s, int *n, const char *name)
{
    char item[320];

    snprintf(item, sizeof(item), WARM_DIR "/%s", name);
    reg_list_add(s, n, item);
}

/*
** <store>/warm: a snapshot of an image the rows still need is counted; one
** of a content no row needs (or a name djinn-lua never gives) is an
** orphan, removed by repair; a temporary directory whose maker is gone
** (its lock is free) is listed, and removed by repair.
*/
static int reg_fsck_warm(struct reg_fsck *f, char **err)
{
    int wfd;
    DIR *d;
    struct dirent *e;
    char sha[65];

    if (f->dfd < 0)
        return SQLITE_OK;
    wfd = openat(f->dfd, WARM_DIR,
                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (wfd < 0)
        return SQLITE_OK; /* none yet */
    d = fdopendir(wfd);
    if (d == NULL) {
        close(wfd);
        *err = sqlite3_mprintf("store '%s': cannot list %s: %s", f->dir,
                               WARM_DIR, strerror(errno));
        return SQLITE_IOERR;
    }
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        int is_lock = n > 5 && strcmp(name + n - 5, ".lock") == 0;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            strncmp(name, ".probe-", 7) == 0)
            continue;
        if (strncmp(name, ".tmp-", 5) == 0) {
            char lock[300];
            const char *dash = strrchr(name, '-');
            int len = dash != NULL && dash > name + 5 ? (int)(dash - (name + 5))
                                                      : (int)(n - 5);

            snprintf(lock, sizeof(lock), "%.*s.lock", len, name + 5);
            if (reg_warm_locked(wfd, lock))
                continue; /* being made */
            if (f->repair && reg_warm_rmdir(wfd, name) == 0) {
                reg_warm_listed(f->removed, &f->nr, name);
                continue;
            }
            f->bad = 1;
            reg_list_add(f->warm_temps, &f->nwt, name);
            continue;
        }
        if (n > 65 && store_hex_ok(name, 64) && name[64] == '.') {
            memcpy(sha, name, 64);
            sha[64] = '\0';
            if (reg_fsck_needed(f, sha)) {
                if (!is_lock) {
                    f->warm_snapshots++;
                    f->warm_bytes += reg_warm_bytes(wfd, name);
                }
                continue;
            }
            if (is_lock) {
                if (f->repair)
                    (void)unlinkat(wfd, name, 0);
                continue;
            }
            if (f->repair) {
                char lock[300];

                snprintf(lock, sizeof(lock), "%s.lock", name);
                if (!reg_warm_locked(wfd, lock) &&
                    reg_warm_rmdir(wfd, name) == 0) {
                    (void)unlinkat(wfd, lock, 0);
                    reg_warm_listed(f->removed, &f->nr, name);
                    continue;
                }
            }
        }
        f->bad = 1;
        reg_list_add(f->warm_orphans, &f->nwo, name);
    }
    closedir(d);
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
    rc = sqlite3_prepare_v2(f->db,
                            "SELECT ref_id, sha256 FROM store_refs"
                            " ORDER BY ref_id",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(f->db, err, "store_refs");
    sqlite3_str_appendall(out, ",\"missing\":[");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 1);

        (*rows)++;
        if (store_sha_ok(h, h ? strlen(h) : 0)) {
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
        rc = reg_dberr(f->db, err, "store_refs");
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
        rc = store_dir(db, &dir, &err);
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
    f.warm_orphans = sqlite3_str_new(db);
    f.warm_temps = sqlite3_str_new(db);
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
    rc = reg_fsck_warm(&f, &err);
    if (rc == SQLITE_OK)
        rc = reg_fsck_rows(&f, out, &rows, &err);
    if (rc != SQLITE_OK)
        goto done;
    sqlite3_str_appendf(out, ",\"orphans\":[%s],\"temp\":[%s],",
                        reg_str(f.orphans), reg_str(f.temps));
    if (f.repair)
        sqlite3_str_appendf(out, "\"removed\":[%s],\"restored\":[%s],",
                            reg_str(f.removed), reg_str(f.restored));
    sqlite3_str_appendf(out,
                        "\"warm\":{\"snapshots\":%lld,\"bytes\":%lld,"
                        "\"orphans\":[%s],\"temp\":[%s]},",
                        f.warm_snapshots, f.warm_bytes, reg_str(f.warm_orphans),
                        reg_str(f.warm_temps));
    sqlite3_str_appendf(out, "\"images\":%lld,\"files\":%lld,\"ok\":%s}", rows,
                        f.files, f.bad ? "false" : "true");
    if (sqlite3_str_errcode(out) != SQLITE_OK ||
        sqlite3_str_errcode(f.orphans) != SQLITE_OK ||
        sqlite3_str_errcode(f.temps) != SQLITE_OK ||
        sqlite3_str_errcode(f.removed) != SQLITE_OK ||
        sqlite3_str_errcode(f.restored) != SQLITE_OK ||
        sqlite3_str_errcode(f.warm_orphans) != SQLITE_OK ||
        sqlite3_str_errcode(f.warm_temps) != SQLITE_OK)
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
    sqlite3_free(sqlite3_str_finish(f.warm_orphans));
    sqlite3_free(sqlite3_str_finish(f.warm_temps));
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
        rc = store_dir(db, &dir, &err);
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
        rc = store_dir(db, &dir, &err);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "djinn_store", rc, err);
        return;
    }
    sqlite3_result_text(ctx, dir, -1, sqlite3_free);
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
        store_hex(digest, dlen, hex);
        sqlite3_result_text(ctx, hex, -1, SQLITE_TRANSIENT);
        return;
    }
    if (reg_text_arg(ctx, "image_sha256", argv[0], "path", &path))
        return;
    rc = store_open_source(path, &fd, &sb, &err);
    if (rc == SQLITE_OK)
        rc = store_hash_fd(fd, path, hex, &size, &err);
    if (fd >= 0)
        close(fd);
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_sha256", rc, err);
        return;
    }
    sqlite3_result_text(ctx, hex, -1, SQLITE_TRANSIENT);
}

/* ---------------------------------------------------------------------- */
/* image_verify: the verification cache (table image_verified, schema/002) */

struct reg_ident {
    sqlite3_int64 dev, ino, size, mtime_ns, ctime_ns;
};

static void reg_ident_of(const struct stat *sb, struct reg_ident *id)
{
    id->dev = (sqlite3_int64)sb->st_dev;
    id->ino = (sqlite3_int64)sb->st_ino;
    id->size = (sqlite3_int64)sb->st_size;
    id->mtime_ns =
        (sqlite3_int64)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
    id->ctime_ns =
        (sqlite3_int64)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec;
}

static int reg_ident_eq(const struct reg_ident *a, const struct reg_ident *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* Bind ?1 path, ?2..?6 the identity and ?7 sha: the columns of an
** image_verified row, in the order both statements below name them. */
static void reg_verified_bind(sqlite3_stmt *st, const char *path,
                              const char *sha, const struct reg_ident *id)
{
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id->dev);
    sqlite3_bind_int64(st, 3, id->ino);
    sqlite3_bind_int64(st, 4, id->size);
    sqlite3_bind_int64(st, 5, id->mtime_ns);
    sqlite3_bind_int64(st, 6, id->ctime_ns);
    sqlite3_bind_text(st, 7, sha, -1, SQLITE_STATIC);
}

/* 1 when image_verified has a row for path with this identity and sha. */
static int reg_verified(sqlite3 *db, const char *path, const char *sha,
                        const struct reg_ident *id, int *hit, char **err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *hit = 0;
    rc = sqlite3_prepare_v2(
        db,
        "SELECT 1 FROM image_verified WHERE path = ?1 AND dev = ?2 AND"
        " ino = ?3 AND size = ?4 AND mtime_ns = ?5 AND ctime_ns = ?6 AND"
        " sha256 = ?7",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return reg_dberr(db, err, "image_verified");
    reg_verified_bind(st, path, sha, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *hit = 1;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    } else {
        rc = reg_dberr(db, err, "image_verified");
    }
    sqlite3_finalize(st);
    return rc;
}

/*
** Remember (id and sha non-NULL) or forget (both NULL) a check. The
** cache only saves work: a registry the caller may read but not write
** (another user's) still verifies, so a failed write is not an error.
*/
static void reg_verified_set(sqlite3 *db, const char *path, const char *sha,
                             const struct reg_ident *id)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(
            db,
            id != NULL
                ? "INSERT OR REPLACE INTO image_verified(path, dev, ino, size,"
                  " mtime_ns, ctime_ns, sha256) VALUES (?1,?2,?3,?4,?5,?6,?7)"
                : "DELETE FROM image_verified WHERE path = ?1",
            -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return;
    }
    if (id != NULL)
        reg_verified_bind(st, path, sha, id);
    else
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    (void)sqlite3_step(st);
    sqlite3_finalize(st);
}

static void image_verify_func(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    struct reg_ident before, after;
    struct stat sb;
    const char *path = NULL, *sha = NULL;
    char hex[65];
    char *err = NULL;
    sqlite3_int64 size = 0;
    int rc, hit = 0, fd = -1;

    (void)argc;
    if (reg_text_arg(ctx, "image_verify", argv[0], "path", &path) ||
        reg_text_arg(ctx, "image_verify", argv[1], "sha256", &sha))
        return;
    if (path == NULL || sha == NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    rc = reg_check_registry(db, &err);
    if (rc == SQLITE_OK && path[0] != '/') {
        err = sqlite3_mprintf("path '%s' is not absolute; the cache is kept "
                              "per absolute path",
                              path);
        rc = SQLITE_MISUSE;
    }
    if (rc == SQLITE_OK && !store_sha_ok(sha, strlen(sha))) {
        err =
            sqlite3_mprintf("sha256 '%s' is not 64 lowercase hex digits", sha);
        rc = SQLITE_MISUSE;
    }
    if (rc == SQLITE_OK && stat(path, &sb) != 0) {
        err = sqlite3_mprintf("%s: %s", path, strerror(errno));
        rc = SQLITE_CANTOPEN;
    }
    if (rc == SQLITE_OK) {
        reg_ident_of(&sb, &before);
        rc = reg_verified(db, path, sha, &before, &hit, &err);
    }
    if (rc == SQLITE_OK && hit) {
        sqlite3_result_text(ctx, "cached", -1, SQLITE_STATIC);
        return;
    }
    if (rc == SQLITE_OK)
        rc = store_open_source(path, &fd, &sb, &err);
    if (rc == SQLITE_OK)
        rc = store_hash_fd(fd, path, hex, &size, &err);
    if (fd >= 0)
        close(fd);
    if (rc == SQLITE_OK) {
        int same = stat(path, &sb) == 0;

        if (same) {
            reg_ident_of(&sb, &after);
            same = reg_ident_eq(&before, &after);
        }
        if (!same) {
            err =
                sqlite3_mprintf("%s changed while it was being checked", path);
            rc = SQLITE_ERROR;
        }
    }
    if (rc == SQLITE_OK && strcmp(hex, sha) != 0) {
        reg_verified_set(db, path, NULL, NULL);
        err = sqlite3_mprintf("the file %s does not match the registry "
                              "(SHA-256 %s, registered %s)",
                              path, hex, sha);
        rc = SQLITE_CONSTRAINT;
    }
    if (rc != SQLITE_OK) {
        reg_fail(ctx, "image_verify", rc, err);
        return;
    }
    reg_verified_set(db, path, hex, &before);
    sqlite3_result_text(ctx, "hashed", -1, SQLITE_STATIC);
}

int reg_store_functions(sqlite3 *db, int drop)
{
    static const struct reg_sql_func funcs[] = {
        {"djinn_store", 0, 0, djinn_store_func},
        {"djinn_fsck", 0, SQLITE_DIRECTONLY, djinn_fsck_func},
        {"djinn_fsck", 1, SQLITE_DIRECTONLY, djinn_fsck_func},
        {"djinn_store_check", 0, SQLITE_DIRECTONLY, djinn_store_check_func},
        {"image_sha256", 1, SQLITE_DIRECTONLY, image_sha256_func},
        {"image_verify", 2, SQLITE_DIRECTONLY, image_verify_func},
    };
    return reg_create_functions(db, funcs, sizeof(funcs) / sizeof(funcs[0]),
                                drop);
}
