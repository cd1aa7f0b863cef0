/*
** registry_fuzz.c - libFuzzer harness for the registry extension on hostile
** database files.
**
** Each input is a whole SQLite database image. It is written to reg.db in
** a private directory (mkdtemp under $TMPDIR, else /dev/shm, else /tmp; made
** once per process and removed at exit; a file, not sqlite3_deserialize,
** because the extension treats in-memory databases differently), opened
** like the stock shell opens a file, and sqlite3_djinn_init() runs on it:
** the load-time policy (djinn.c) reads application_id, user_version and the
** schema, and may migrate. Whether or not that succeeded, the harness then
** runs the registry's read paths and its write paths:
**
**   djinn_version(), SELECT * FROM image_list, image_path('team/ci','x'),
**   image_path() of every listed image, djinn_setting('store', <private
**   store>), djinn_store(), djinn_store_check(), djinn_fsck(),
**   djinn_fsck('repair'), namespace_resolve('a/b'), image_remove() of the
**   seed images (x and y share a file), image_register() of a small valid
**   image, and, with the store set to a directory that does not exist yet,
**   register / repair / remove again.
**
** SQL errors are expected and ignored; a crash, a leak, undefined
** behaviour (UBSan is fatal) or a hang (a progress handler bounds every
** statement) is a finding.
**
** Before every input, the default store (images/ beside reg.db) and a
** second one (store/) hold the files of the images
** tests/fuzz/mkcorpus-registry.sh registers (the same bytes: qemu-img's 1
** and 2 MiB images with 512-byte clusters, rebuilt here by tiny_qcow2()),
** so rows of the seed registries find their files, plus an orphan, a
** .trash-* and a stale .tmp-* file and a notes.txt. For inputs of odd
** length the 2 MiB image is there only as .trash-<sha256>-..., as a crash
** inside image_remove leaves it (repair must put it back).
**
** Containment: a damaged registry names paths, and the extension renames
** and unlinks files. The binary is linked with -Wl,--wrap for unlink,
** unlinkat, rename, renameat, link, linkat and mkdir (see the Makefile):
** while an input runs, any of them aimed outside the private directory
** aborts with "registry_fuzz: ... outside the sandbox" (a finding: the
** extension must only ever change its store) instead of touching the host.
** The destructive calls only run when djinn_store() is inside the private
** directory.
**
** Built and run by `make fuzz` (tests/fuzz/run.sh), seeds generated into
** BUILD/fuzz/corpus-registry by tests/fuzz/mkcorpus-registry.sh.
** Reproduce a crash: BUILD/fuzz/registry_fuzz CRASH-FILE.
*/
/* realpath(3) is XSI; the Makefile defines only _POSIX_C_SOURCE. */
#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "djinn.h"
#include "qcow2.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The wrapped calls (-Wl,--wrap=NAME): __real_NAME is the libc one. */
int __real_unlink(const char *path);
int __real_unlinkat(int dfd, const char *path, int flags);
int __real_rename(const char *from, const char *to);
int __real_renameat(int fdf, const char *from, int fdt, const char *to);
int __real_link(const char *from, const char *to);
int __real_linkat(int fdf, const char *from, int fdt, const char *to,
                  int flags);
int __real_mkdir(const char *path, mode_t mode);
int __wrap_unlink(const char *path);
int __wrap_unlinkat(int dfd, const char *path, int flags);
int __wrap_rename(const char *from, const char *to);
int __wrap_renameat(int fdf, const char *from, int fdt, const char *to);
int __wrap_link(const char *from, const char *to);
int __wrap_linkat(int fdf, const char *from, int fdt, const char *to,
                  int flags);
int __wrap_mkdir(const char *path, mode_t mode);

#define STEP_LIMIT 2000 /* progress callbacks (x100 VM ops) per statement */

static char sandbox[PATH_MAX]; /* realpath of the private directory */
static char db_path[PATH_MAX + 16], images[PATH_MAX + 16],
    store[PATH_MAX + 16], fresh[PATH_MAX + 16], src[PATH_MAX + 16];
static int guarding; /* 1 while the extension runs on an input */
static int steps;

/* ---------------------------------------------------------------------- */
/* Containment                                                             */

/* The absolute form of `path` taken against the directory open at dfd. */
static int full_path(int dfd, const char *path, char *out, size_t n)
{
    char link[64], dir[PATH_MAX];
    ssize_t len;

    if (path[0] == '/' || dfd == AT_FDCWD) {
        if (path[0] == '/')
            return snprintf(out, n, "%s", path) < (int)n ? 0 : -1;
        if (getcwd(dir, sizeof(dir)) == NULL)
            return -1;
    } else {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", dfd);
        len = readlink(link, dir, sizeof(dir) - 1);
        if (len < 0)
            return -1;
        dir[len] = '\0';
    }
    return snprintf(out, n, "%s/%s", dir, path) < (int)n ? 0 : -1;
}

/* Abort unless `path` (relative to dfd) is inside the sandbox: its parent
** directory, resolved, is the sandbox or below it, and its last component
** is not "..". A parent that does not exist cannot be changed: allowed. */
static void contain(const char *op, int dfd, const char *path)
{
    char full[PATH_MAX * 2], parent[PATH_MAX];
    char *slash;
    const char *base;
    size_t n = strlen(sandbox);

    if (!guarding)
        return;
    if (full_path(dfd, path, full, sizeof(full)) != 0)
        goto escape;
    slash = strrchr(full, '/');
    base = slash + 1;
    if (slash == full)
        goto escape; /* a file directly in / */
    *slash = '\0';
    if (realpath(full, parent) == NULL)
        return; /* ENOENT and the like: the call will fail the same way */
    if (strcmp(base, "..") == 0 || strcmp(base, ".") == 0)
        goto escape;
    if (strncmp(parent, sandbox, n) == 0 &&
        (parent[n] == '\0' || parent[n] == '/'))
        return;
escape:
    fprintf(stderr,
            "registry_fuzz: %s(%s) outside the sandbox %s: the extension "
            "changed a file that is not in its store\n",
            op, path, sandbox);
    abort();
}

int __wrap_unlink(const char *path)
{
    contain("unlink", AT_FDCWD, path);
    return __real_unlink(path);
}

int __wrap_unlinkat(int dfd, const char *path, int flags)
{
    contain("unlinkat", dfd, path);
    return __real_unlinkat(dfd, path, flags);
}

int __wrap_rename(const char *from, const char *to)
{
    contain("rename", AT_FDCWD, from);
    contain("rename", AT_FDCWD, to);
    return __real_rename(from, to);
}

int __wrap_renameat(int fdf, const char *from, int fdt, const char *to)
{
    contain("renameat", fdf, from);
    contain("renameat", fdt, to);
    return __real_renameat(fdf, from, fdt, to);
}

int __wrap_link(const char *from, const char *to)
{
    contain("link", AT_FDCWD, to);
    return __real_link(from, to);
}

int __wrap_linkat(int fdf, const char *from, int fdt, const char *to,
                  int flags)
{
    contain("linkat", fdt, to);
    return __real_linkat(fdf, from, fdt, to, flags);
}

int __wrap_mkdir(const char *path, mode_t mode)
{
    struct stat sb;

    /* mkdir -p walks the ancestors: an existing one is not created. */
    if (stat(path, &sb) != 0)
        contain("mkdir", AT_FDCWD, path);
    return __real_mkdir(path, mode);
}

/* ---------------------------------------------------------------------- */
/* The private directory                                                   */

/* Remove everything under dir (not dir itself); files are 0444. */
static void empty_dir(const char *dir)
{
    char p[PATH_MAX * 2];
    struct dirent *e;
    struct stat sb;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            chmod(p, 0700);
            empty_dir(p);
            rmdir(p);
        } else {
            __real_unlink(p);
        }
    }
    closedir(d);
}

static void remove_sandbox(void)
{
    guarding = 0;
    if (sandbox[0] != '\0') {
        empty_dir(sandbox);
        rmdir(sandbox);
    }
}

static void write_file(const char *path, const void *buf, size_t len,
                       mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
        fprintf(stderr, "registry_fuzz: cannot write %s: %s\n", path,
                strerror(errno));
        abort();
    }
    close(fd);
    chmod(path, mode);
}

/* A valid QCOW2 v3 image of `mib` MiB, byte for byte what
** `qemu-img create -f qcow2 -o cluster_size=512 X <mib>M` writes (QEMU 7):
** header, refcount table at 0x200, refcount block at 0x400, an empty L1
** table at 0x600. Returns its length; buf holds at least 4096 bytes. */
static size_t tiny_qcow2(unsigned char *buf, unsigned mib)
{
    uint64_t size = (uint64_t)mib << 20;
    uint32_t l1 = mib * 32; /* 32 KiB per L2 table of 64 entries */
    uint32_t l1_clusters = (l1 * 8 + 511) / 512;
    size_t len = 0x600 + (size_t)l1 * 8;
    uint32_t i;

    memset(buf, 0, 4096);
    memcpy(buf, "QFI\xfb", 4);
    buf[7] = 3;                        /* version */
    buf[23] = 9;                       /* cluster_bits */
    for (i = 0; i < 8; i++)            /* size */
        buf[24 + i] = (unsigned char)(size >> (56 - 8 * i));
    buf[36] = (unsigned char)(l1 >> 24); /* l1_size */
    buf[37] = (unsigned char)(l1 >> 16);
    buf[38] = (unsigned char)(l1 >> 8);
    buf[39] = (unsigned char)l1;
    buf[46] = 0x06;                    /* l1_table_offset 0x600 */
    buf[54] = 0x02;                    /* refcount_table_offset 0x200 */
    buf[59] = 1;                       /* refcount_table_clusters */
    buf[99] = 4;                       /* refcount_order */
    buf[103] = 0x70;                   /* header_length */
    buf[0x206] = 0x04;                 /* refcount block at 0x400 */
    for (i = 0; i < 3 + l1_clusters; i++)
        buf[0x400 + 2 * i + 1] = 1;
    return len;
}

static unsigned char img[3][4096];
static size_t img_len[3];
static char img_sha[3][65];

static void sha256_hex(const unsigned char *p, size_t n, char out[65])
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    /* Through the extension's own image_sha256 on a BLOB. */
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_djinn_init(db, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT image_sha256(?1)", -1, &st, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "registry_fuzz: image_sha256: %s\n",
                db ? sqlite3_errmsg(db) : "no memory");
        abort();
    }
    sqlite3_bind_blob(st, 1, p, (int)n, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_bytes(st, 0) != 64)
        abort();
    memcpy(out, sqlite3_column_text(st, 0), 65);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char tmpl[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    struct qcow2_report r;
    int i;

    (void)argc;
    (void)argv;
    /* Files are created and deleted thousands of times a second: tmpfs
    ** is half as slow again as ext4 at that. */
    if (tmp == NULL || tmp[0] == '\0')
        tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpl, sizeof(tmpl), "%s/registry_fuzz.XXXXXX", tmp);
    if (mkdtemp(tmpl) == NULL || realpath(tmpl, sandbox) == NULL) {
        fprintf(stderr, "registry_fuzz: mkdtemp %s: %s\n", tmpl,
                strerror(errno));
        abort();
    }
    atexit(remove_sandbox);
    snprintf(db_path, sizeof(db_path), "%s/reg.db", sandbox);
    snprintf(images, sizeof(images), "%s/images", sandbox);
    snprintf(store, sizeof(store), "%s/store", sandbox);
    snprintf(fresh, sizeof(fresh), "%s/fresh", sandbox);
    snprintf(src, sizeof(src), "%s/src.qcow2", sandbox);
    for (i = 0; i < 3; i++) {
        img_len[i] = tiny_qcow2(img[i], (unsigned)i + 1);
        qcow2_check_buf(img[i], img_len[i], 0, &r);
        if (!r.valid) {
            fprintf(stderr, "registry_fuzz: tiny_qcow2(%d) is invalid\n", i);
            abort();
        }
        qcow2_report_free(&r);
        sha256_hex(img[i], img_len[i], img_sha[i]);
    }
    /* Bound SQLite's heap below libFuzzer's RSS limit. */
    sqlite3_hard_heap_limit64(512 << 20);
    return 0;
}

/* Fill the store directory dir. Layout 0: the files of the seed images
** (1 and 2 MiB), an orphan (3 MiB), an old-style .trash-* copy, the
** .tmp-* of a dead registration and a notes.txt. Layout 1 is what a crash
** inside image_remove leaves: the 2 MiB image only as
** .trash-<sha256>-<pid>-<hex>, which repair must put back. */
static void fill_store(const char *dir, int layout)
{
    char p[PATH_MAX * 2];

    __real_mkdir(dir, 0755);
    snprintf(p, sizeof(p), "%s/%s.qcow2", dir, img_sha[0]);
    write_file(p, img[0], img_len[0], 0444);
    if (layout == 0)
        snprintf(p, sizeof(p), "%s/%s.qcow2", dir, img_sha[1]);
    else
        snprintf(p, sizeof(p), "%s/.trash-%s-1-00112233aabbccdd", dir,
                 img_sha[1]);
    write_file(p, img[1], img_len[1], 0444);
    snprintf(p, sizeof(p), "%s/%s.qcow2", dir, img_sha[2]);
    write_file(p, img[2], img_len[2], 0444);
    snprintf(p, sizeof(p), "%s/.trash-1-00112233aabbccdd", dir);
    write_file(p, img[0], img_len[0], 0444);
    snprintf(p, sizeof(p), "%s/.tmp-2147483646-00112233aabbccdd", dir);
    write_file(p, img[2], img_len[2], 0600);
    snprintf(p, sizeof(p), "%s/notes.txt", dir);
    write_file(p, "not an image\n", 13, 0644);
}

/* Before every input: no database, the default store (images/ beside
** reg.db) and store/ filled; the layout follows the input's length, so
** that both are fuzzed (the seeds include odd lengths). */
static void reset(const uint8_t *data, size_t size)
{
    empty_dir(sandbox);
    fill_store(images, (int)(size & 1));
    fill_store(store, (int)(size & 1));
    write_file(src, img[2], img_len[2], 0644);
    write_file(db_path, data, size, 0644);
}

static int progress(void *arg)
{
    (void)arg;
    return ++steps > STEP_LIMIT;
}

/* Run one statement to the end, reading every column; errors ignored.
** Returns the first column of the first row in out (if given). */
static void run(sqlite3 *db, const char *sql, char *out, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc, i, row = 0;

    if (out != NULL)
        out[0] = '\0';
    steps = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            if (out != NULL && row == 0 && i == 0 && t != NULL)
                snprintf(out, n, "%s", (const char *)t);
        }
        row++;
    }
    (void)rc;
    sqlite3_finalize(st);
}

static int in_sandbox(const char *path)
{
    size_t n = strlen(sandbox);
    return strncmp(path, sandbox, n) == 0 && path[n] == '/' &&
           strstr(path, "/..") == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    char sql[PATH_MAX * 2 + 128], dir[PATH_MAX * 2];

    reset(data, size);
    guarding = 1;
    if (sqlite3_open_v2(db_path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        goto done;
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1 << 20);
    sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, 1 << 20);
    sqlite3_progress_handler(db, 100, progress, NULL);
    /* A busy timeout the extension keeps: nothing else uses the file. */
    sqlite3_busy_timeout(db, 20);
    steps = 0;
    (void)sqlite3_djinn_init(db, &err, NULL);
    sqlite3_free(err);
    err = NULL;

    /* Read paths. */
    run(db, "SELECT djinn_version()", NULL, 0);
    run(db, "SELECT * FROM image_list", NULL, 0);
    run(db, "SELECT image_path('team/ci', 'x')", NULL, 0);
    run(db, "SELECT image_path(namespace, name) FROM image_list LIMIT 50",
        NULL, 0);
    run(db, "SELECT djinn_setting('store')", NULL, 0);
    run(db, "SELECT djinn_store_check()", NULL, 0);
    run(db, "SELECT djinn_fsck()", NULL, 0);

    /* Write paths, in the store the registry names (the default is
    ** images/ beside reg.db), if it is in the sandbox. */
    run(db, "SELECT djinn_store()", dir, sizeof(dir));
    if (in_sandbox(dir)) {
        run(db, "SELECT djinn_fsck('repair')", NULL, 0);
        run(db, "SELECT namespace_resolve('a/b')", NULL, 0);
        run(db, "SELECT image_remove('team/ci', 'y')", NULL, 0);
        run(db, "SELECT image_remove('team/ci', 'x')", NULL, 0);
        snprintf(sql, sizeof(sql),
                 "SELECT image_register('team/ci', 'fz', '%s')", src);
        run(db, sql, NULL, 0);
        run(db, "SELECT image_path('team/ci', 'fz')", NULL, 0);
        run(db, "SELECT image_remove(NULL, 'p')", NULL, 0);
        run(db, "SELECT djinn_fsck('repair')", NULL, 0);
    }
    /* The store setting moved to store/ (filled like images/). */
    snprintf(sql, sizeof(sql), "SELECT djinn_setting('store', '%s')", store);
    run(db, sql, NULL, 0);
    run(db, "SELECT djinn_store()", dir, sizeof(dir));
    if (in_sandbox(dir)) {
        run(db, "SELECT djinn_store_check()", NULL, 0);
        run(db, "SELECT djinn_fsck()", NULL, 0);
        run(db, "SELECT djinn_fsck('repair')", NULL, 0);
        run(db, "SELECT image_remove('team/ci/nightly', 'z')", NULL, 0);
    }
    /* A store that does not exist yet. */
    snprintf(sql, sizeof(sql), "SELECT djinn_setting('store', '%s')", fresh);
    run(db, sql, NULL, 0);
    run(db, "SELECT djinn_store()", dir, sizeof(dir));
    if (in_sandbox(dir)) {
        snprintf(sql, sizeof(sql),
                 "SELECT image_register('fz/new', 'n', '%s')", src);
        run(db, sql, NULL, 0);
        snprintf(sql, sizeof(sql), "SELECT image_register(NULL, 'm', '%s')",
                 src);
        run(db, sql, NULL, 0);
        run(db, "SELECT djinn_fsck('repair')", NULL, 0);
        run(db, "SELECT image_remove('fz/new', 'n')", NULL, 0);
        run(db, "SELECT image_remove('', 'm')", NULL, 0);
        run(db, "SELECT djinn_fsck('repair')", NULL, 0);
    }
    run(db, "SELECT * FROM image_list", NULL, 0);
done:
    sqlite3_close(db);
    guarding = 0;
    return 0;
}
