/*
** store.h - the content-addressed file store (store.c).
**
** Place in the one-way graph (see schema.h): uses schema.c and qcow2.c;
** used by registry.c, djinn.c and djinn-lua (runtime/l_registry.c).
**
** Ownership: every char * an out-parameter returns is sqlite3_malloc()ed and
** released by the caller with sqlite3_free(). A NULL message with an error
** return means that memory ran out.
*/
#ifndef DJINN_STORE_H
#define DJINN_STORE_H

#include <stddef.h>
#include <sys/stat.h>

#include <sqlite3.h>

/* The longest value of the 'store' setting. */
#define REG_MAX_STORE 4096

/* s[0..n) is n lowercase hex digits; store_sha_ok: exactly 64 of them, a
** SHA-256 as the store writes it (anything else read from a row is
** damage, never a path). */
int store_hex_ok(const char *s, size_t n);
int store_sha_ok(const char *s, size_t n);

/* hex gets 2 * len lowercase hex digits + NUL. */
void store_hex(const unsigned char *md, unsigned len, char *hex);

/*
** The one definition of "a stored file is needed" (view store_refs,
** schema/004): how many references the file of content sha has. sha NULL:
** 1 when the store has any reference at all, else 0.
*/
int store_refs_count(sqlite3 *db, const char *sha, sqlite3_int64 *n,
                     char **err);

/* The store directory in effect, absolute, without a trailing '/'. */
int store_dir(sqlite3 *db, char **dir, char **err);

/* Before the 'store' setting becomes value (NULL: the default): every
** referenced file must already be there. */
int store_has_all(sqlite3 *db, const char *value, char **err);

/* Open a source file for reading: regular files only, never blocks. */
int store_open_source(const char *path, int *fd, struct stat *st, char **err);

/* Read fd to EOF, hashing it with SHA-256; what names it in messages. */
int store_hash_fd(int fd, const char *what, char hex[65], sqlite3_int64 *size,
                  char **err);

/*
** Streaming ingest: a file enters the store without being written twice.
**
**   store_ingest_begin   resolves and creates the store, checks that it is
**                        this registry's, opens an O_EXCL temp file
**                        <store>/.tmp-<pid>-<hex> (0600, locked)
**   store_ingest_write   appends bytes to the temp file while hashing them
**                        (SHA-256, libcrypto EVP)
**   store_ingest_finish  fsyncs, validates THE TEMP FILE with the QCOW2
**                        validator, makes it 0444
**   store_ingest_claim   inside the caller's BEGIN IMMEDIATE: the store
**   store_ingest_link    becomes this registry's; the temp file is renamed
**                        to <sha256>.qcow2 (or dropped when identical
**                        content is already referenced)
**   store_ingest_unlink  after a ROLLBACK: undo the link
**   store_ingest_abort   closes and frees; removes the temp file if it is
**                        still there (also after a successful commit)
**
** reg_ingest_commit (registry.h) runs finish, claim, link and the images
** row in one transaction; image_register reads its source through this.
** `what` names the source in messages (a path, or a URL).
*/
struct store_ingest;
int store_ingest_begin(sqlite3 *db, const char *what, struct store_ingest **out,
                       char **err);
int store_ingest_write(struct store_ingest *ing, const void *buf, size_t n,
                       char **err);
int store_ingest_finish(struct store_ingest *ing, char **err);
int store_ingest_claim(sqlite3 *db, struct store_ingest *ing, char **err);
int store_ingest_link(sqlite3 *db, struct store_ingest *ing, char **err);
void store_ingest_unlink(struct store_ingest *ing);
void store_ingest_abort(struct store_ingest *ing);
/* After finish: the content's SHA-256 (NULL before), sizes, the store. */
/* The content must have this SHA-256 (64 hex digits, either case), else
** store_ingest_finish refuses it before validating. */
int store_ingest_expect(struct store_ingest *ing, const char *sha256,
                        char **err);
const char *store_ingest_sha256(const struct store_ingest *ing);
sqlite3_int64 store_ingest_size(const struct store_ingest *ing);
sqlite3_int64 store_ingest_vsize(const struct store_ingest *ing);
const char *store_ingest_dir(const struct store_ingest *ing);

/*
** Removal of the file of content sha, inside the caller's write
** transaction, after its last reference is gone: the store must be this
** registry's (claimed if need be); the file is renamed to
** .trash-<sha256>-<pid>-<hex>. store_trash_end after COMMIT (committed 1:
** unlinked) or ROLLBACK (0: renamed back), and on every path.
*/
struct store_trash {
    int dfd;
    char *dir;
    char final[80];
    char trash[128];
    int trashed;
};
int store_trash(sqlite3 *db, const char *sha, struct store_trash *t,
                char **err);
void store_trash_end(struct store_trash *t, int committed);

/* Register (drop 0) or remove (drop 1) the SQL functions of the store. */
int reg_store_functions(sqlite3 *db, int drop);

#endif /* DJINN_STORE_H */
