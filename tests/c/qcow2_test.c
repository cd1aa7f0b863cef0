/*
** qcow2_test.c - TAP tests for the QCOW2 validator (ext/qcow2.c).
**
** Every image is made here with the real qemu-img (spawned from argv arrays
** with posix_spawnp, never through a shell) in a mkdtemp() directory that
** is removed at exit. Hostile images are fresh qemu-img images with bytes
** changed in C. Each rule has its own test that asserts the problem code;
** accepted variants assert valid with no errors, and some fields are
** compared with what `qemu-img info/check --output=json` say.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qcow2.h"
#include "tap.h"

extern char **environ;

static char tmpdir[] = "/tmp/qcow2_test.XXXXXX";
static int have_tmpdir;

/* ------------------------------------------------------------------ */
/* Helpers: paths, processes, files.                                   */

static const char *P(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];

    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void cleanup(void)
{
    DIR *d;
    struct dirent *e;

    if (!have_tmpdir)
        return;
    d = opendir(tmpdir);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            unlink(P(e->d_name));
        }
        closedir(d);
    }
    rmdir(tmpdir);
    have_tmpdir = 0;
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
** Run argv (PATH lookup), stdout into out (if not NULL) and stderr kept.
** Returns the exit status, or -1 if it could not run, was signalled or ran
** past the 120 s deadline (then it is killed by pid).
*/
static int run_out(const char *const argv[], char *out, size_t outlen)
{
    posix_spawn_file_actions_t fa;
    int pfd[2] = {-1, -1}, status = 0, rc = -1;
    size_t used = 0;
    pid_t pid;
    double deadline = mono_s() + 120;

    if (out && pipe(pfd) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    if (out) {
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
        posix_spawn_file_actions_addclose(&fa, pfd[1]);
    } else {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    }
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        if (out) {
            close(pfd[0]);
            close(pfd[1]);
        }
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    if (out) {
        close(pfd[1]);
        out[0] = 0;
        for (;;) {
            struct pollfd p = {pfd[0], POLLIN, 0};
            int left = (int)((deadline - mono_s()) * 1000);
            ssize_t n;

            if (left <= 0 || poll(&p, 1, left) <= 0)
                break;
            n = read(pfd[0], out + used, outlen - 1 - used);
            if (n <= 0)
                break;
            used += (size_t)n;
            out[used] = 0;
            if (used + 1 >= outlen)
                break;
        }
        close(pfd[0]);
    }
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            if (WIFEXITED(status))
                rc = WEXITSTATUS(status);
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
        if (mono_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(2000);
    }
    return rc;
}

static int run(const char *const argv[])
{
    return run_out(argv, NULL, 0);
}

#define RUN(...)                                                             \
    run((const char *const[]){__VA_ARGS__, NULL})
#define RUN_OUT(buf, ...)                                                    \
    run_out((const char *const[]){__VA_ARGS__, NULL}, buf, sizeof(buf))

static unsigned char *read_all(const char *path, size_t *len)
{
    struct stat st;
    unsigned char *p = NULL;
    int fd = open(path, O_RDONLY);

    *len = 0;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0) {
        p = malloc((size_t)st.st_size + 1);
        if (p && pread(fd, p, (size_t)st.st_size, 0) == st.st_size)
            *len = (size_t)st.st_size;
        else {
            free(p);
            p = NULL;
        }
    }
    close(fd);
    return p;
}

static int write_all(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = -1;

    if (fd < 0)
        return -1;
    if (write(fd, buf, len) == (ssize_t)len)
        rc = 0;
    close(fd);
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    size_t len;
    unsigned char *p = read_all(from, &len);
    int rc;

    if (p == NULL)
        return -1;
    rc = write_all(to, p, len);
    free(p);
    return rc;
}

static int pwrite_at(const char *path, uint64_t off, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY);
    int rc = -1;

    if (fd < 0)
        return -1;
    if (pwrite(fd, b, n, (off_t)off) == (ssize_t)n)
        rc = 0;
    close(fd);
    return rc;
}

static uint64_t get_at(const char *path, uint64_t off, int bytes)
{
    unsigned char b[8] = {0};
    uint64_t v = 0;
    int fd = open(path, O_RDONLY), i;

    if (fd >= 0) {
        if (pread(fd, b, (size_t)bytes, (off_t)off) != bytes)
            memset(b, 0, sizeof(b));
        close(fd);
    }
    for (i = 0; i < bytes; i++)
        v = v << 8 | b[i];
    return v;
}

static void put_be(const char *path, uint64_t off, uint64_t v, int bytes)
{
    unsigned char b[8];
    int i;

    for (i = bytes - 1; i >= 0; i--) {
        b[i] = (unsigned char)v;
        v >>= 8;
    }
    if (pwrite_at(path, off, b, (size_t)bytes) != 0)
        printf("# cannot write %s\n", path);
}

static void put_be16(const char *p, uint64_t o, uint64_t v) { put_be(p, o, v, 2); }
static void put_be32(const char *p, uint64_t o, uint64_t v) { put_be(p, o, v, 4); }
static void put_be64(const char *p, uint64_t o, uint64_t v) { put_be(p, o, v, 8); }
static void put_u8(const char *p, uint64_t o, uint64_t v) { put_be(p, o, v, 1); }
static uint64_t get_be64_at(const char *p, uint64_t o) { return get_at(p, o, 8); }
static uint64_t get_be32_at(const char *p, uint64_t o) { return get_at(p, o, 4); }

/* Deterministic raw content: compressible "words" (LCG), len bytes. */
static int make_raw(const char *path, size_t len, int compressible)
{
    static const char *const words[] = {"alpha ", "beta ", "gamma\n",
                                        "kernel ", "qcow2 ", "initrd ",
                                        "djinn ", "registry\n"};
    unsigned char *b = malloc(len);
    uint32_t x = 12345;
    size_t i = 0;
    int rc;

    if (b == NULL)
        return -1;
    while (i < len) {
        x = x * 1103515245u + 12345u;
        if (compressible) {
            const char *w = words[(x >> 16) & 7];
            while (*w && i < len)
                b[i++] = (unsigned char)*w++;
        } else {
            b[i++] = (unsigned char)(x >> 16 | 1);
        }
    }
    rc = write_all(path, b, len);
    free(b);
    return rc;
}

/* Integer after "key": in qemu-img JSON output; -1 if absent. */
static long long json_int(const char *json, const char *key)
{
    char pat[80];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(json, pat);
    if (p == NULL)
        return -1;
    return strtoll(p + strlen(pat), NULL, 10);
}

/* ------------------------------------------------------------------ */
/* Report helpers.                                                     */

static int has_code(const struct qcow2_report *r, enum qcow2_code code)
{
    size_t i;

    for (i = 0; i < r->nerrors; i++)
        if (r->errors[i].code == code)
            return 1;
    for (i = 0; i < r->nwarnings; i++)
        if (r->warnings[i].code == code)
            return 1;
    return 0;
}

static void dump(const struct qcow2_report *r)
{
    size_t i;

    for (i = 0; i < r->nerrors && i < 8; i++)
        printf("#   error %s: %s\n", qcow2_code_name(r->errors[i].code),
               r->errors[i].message);
    for (i = 0; i < r->nwarnings && i < 8; i++)
        printf("#   warning %s: %s\n", qcow2_code_name(r->warnings[i].code),
               r->warnings[i].message);
}

static void expect_valid(const char *path, const char *name)
{
    struct qcow2_report r;
    int rc = qcow2_check_path(path, 0, &r);

    if (!ok(rc == 0 && r.valid && r.nerrors == 0 && r.is_qcow2 &&
                r.info.deep_checked,
            "%s: valid, no errors", name))
        dump(&r);
    qcow2_report_free(&r);
}

/* The image is refused and one of the errors has the code. */
static void expect_error(const char *path, enum qcow2_code code,
                         const char *name)
{
    struct qcow2_report r;
    size_t i;
    int found = 0;

    qcow2_check_path(path, 0, &r);
    for (i = 0; i < r.nerrors; i++)
        if (r.errors[i].code == code)
            found = 1;
    if (!ok(!r.valid && found, "%s: refused with %s", name,
            qcow2_code_name(code)) ||
        getenv("QCOW2_TEST_VERBOSE"))
        dump(&r);
    qcow2_report_free(&r);
}

/* Accepted, with a warning of this code. */
static void expect_warning(const char *path, enum qcow2_code code,
                           const char *name)
{
    struct qcow2_report r;
    size_t i;
    int found = 0;

    qcow2_check_path(path, 0, &r);
    for (i = 0; i < r.nwarnings; i++)
        if (r.warnings[i].code == code)
            found = 1;
    if (!ok(r.valid && r.nerrors == 0 && found, "%s: valid with warning %s",
            name, qcow2_code_name(code)))
        dump(&r);
    qcow2_report_free(&r);
}

/* A fresh copy of a base image to mutate. */
static const char *mut(const char *base, const char *name)
{
    const char *dst = P(name);

    if (copy_file(P(base), dst) != 0)
        printf("# cannot copy %s\n", base);
    return dst;
}

/* ------------------------------------------------------------------ */
/* Image layout helpers (read from fresh qemu-img images).             */

static uint64_t l1_off(const char *p) { return get_be64_at(p, 40); }
static uint64_t reft_off(const char *p) { return get_be64_at(p, 48); }

/* First L2 table of the active L1. */
static uint64_t l2_off(const char *p)
{
    return get_be64_at(p, l1_off(p)) & 0x00fffffffffffe00ULL;
}

static uint64_t refblock0(const char *p)
{
    return get_be64_at(p, reft_off(p)) & ~0x1ffULL;
}

/* ------------------------------------------------------------------ */

static void test_accepted(void)
{
    char out[8192];
    struct qcow2_report r;

    RUN("qemu-img", "create", "-q", "-f", "qcow2", P("plain.qcow2"), "1G");
    expect_valid(P("plain.qcow2"), "plain v3 1G");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512",
        P("c512.qcow2"), "1G");
    expect_valid(P("c512.qcow2"), "cluster_size=512");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M",
        P("c2m.qcow2"), "1G");
    expect_valid(P("c2m.qcow2"), "cluster_size=2M");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o",
        "compression_type=zstd", P("zstd.qcow2"), "1G");
    expect_valid(P("zstd.qcow2"), "compression_type=zstd");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on",
        P("extl2.qcow2"), "1G");
    expect_valid(P("extl2.qcow2"), "extended_l2=on");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on",
        P("lazy.qcow2"), "1G");
    expect_valid(P("lazy.qcow2"), "lazy_refcounts=on");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1",
        P("rc1.qcow2"), "1G");
    expect_valid(P("rc1.qcow2"), "refcount_bits=1");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=64",
        P("rc64.qcow2"), "1G");
    expect_valid(P("rc64.qcow2"), "refcount_bits=64");

    /* Info fields against qemu-img info. */
    qcow2_check_path(P("plain.qcow2"), 0, &r);
    RUN_OUT(out, "qemu-img", "info", "--output=json", "-f", "qcow2",
            P("plain.qcow2"));
    is_int(r.info.virtual_size, json_int(out, "virtual-size"),
           "plain: virtual_size matches qemu-img info");
    is_int(r.info.cluster_size, json_int(out, "cluster-size"),
           "plain: cluster_size matches qemu-img info");
    is_int(r.info.refcount_bits, json_int(out, "refcount-bits"),
           "plain: refcount_bits matches qemu-img info");
    is_int(r.info.version, 3, "plain: version 3");
    is_int(r.info.header_length, 112, "plain: header_length 112 (qemu 7.2)");
    qcow2_report_free(&r);

    qcow2_check_path(P("c512.qcow2"), 0, &r);
    RUN_OUT(out, "qemu-img", "info", "--output=json", "-f", "qcow2",
            P("c512.qcow2"));
    is_int(r.info.cluster_size, json_int(out, "cluster-size"),
           "512: cluster_size matches qemu-img info");
    qcow2_report_free(&r);
    qcow2_check_path(P("c2m.qcow2"), 0, &r);
    is_int(r.info.cluster_size, 2 << 20, "2M: cluster_size 2 MiB");
    qcow2_report_free(&r);

    qcow2_check_path(P("rc1.qcow2"), 0, &r);
    RUN_OUT(out, "qemu-img", "info", "--output=json", "-f", "qcow2",
            P("rc1.qcow2"));
    is_int(r.info.refcount_bits, json_int(out, "refcount-bits"),
           "refcount_bits=1 matches qemu-img info");
    qcow2_report_free(&r);
    qcow2_check_path(P("rc64.qcow2"), 0, &r);
    RUN_OUT(out, "qemu-img", "info", "--output=json", "-f", "qcow2",
            P("rc64.qcow2"));
    is_int(r.info.refcount_bits, json_int(out, "refcount-bits"),
           "refcount_bits=64 matches qemu-img info");
    qcow2_report_free(&r);

    qcow2_check_path(P("zstd.qcow2"), 0, &r);
    RUN_OUT(out, "qemu-img", "info", "--output=json", "-f", "qcow2",
            P("zstd.qcow2"));
    ok(strstr(out, "\"compression-type\": \"zstd\"") != NULL &&
           r.info.compression_type == 1,
       "zstd: compression_type 1 and qemu-img info says zstd");
    qcow2_report_free(&r);
    qcow2_check_path(P("extl2.qcow2"), 0, &r);
    ok(r.info.incompatible_features == QCOW2_INCOMPAT_EXTL2,
       "extended_l2: incompatible_features is bit 4 only");
    qcow2_report_free(&r);
    qcow2_check_path(P("lazy.qcow2"), 0, &r);
    ok(r.info.compatible_features == QCOW2_COMPAT_LAZY_REFCOUNTS,
       "lazy_refcounts: compatible bit 0");
    qcow2_report_free(&r);
}

/* Images with data; compare counts with qemu-img check. */
static void check_vs_qemu(const char *path, const char *name)
{
    char out[8192];
    struct qcow2_report r;
    int rc;

    qcow2_check_path(path, 0, &r);
    if (!ok(r.valid && r.nerrors == 0 && r.nwarnings == 0,
            "%s: valid, no errors, no warnings", name))
        dump(&r);
    rc = RUN_OUT(out, "qemu-img", "check", "--output=json", "-f", "qcow2",
                 path);
    is_int(rc, 0, "%s: qemu-img check agrees (rc 0)", name);
    is_int(r.info.allocated_clusters, json_int(out, "allocated-clusters"),
           "%s: allocated_clusters matches qemu-img check", name);
    if (json_int(out, "compressed-clusters") >= 0)
        is_int(r.info.compressed_clusters,
               json_int(out, "compressed-clusters"),
               "%s: compressed_clusters matches qemu-img check", name);
    qcow2_report_free(&r);
}

static void test_data_images(void)
{
    struct qcow2_report r;

    make_raw(P("data.raw"), 4 << 20, 0);
    make_raw(P("text.raw"), 4 << 20, 1);
    RUN("qemu-img", "convert", "-f", "raw", "-O", "qcow2", P("data.raw"),
        P("data.qcow2"));
    check_vs_qemu(P("data.qcow2"), "converted data");
    RUN("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o",
        "cluster_size=512", P("data.raw"), P("data512.qcow2"));
    check_vs_qemu(P("data512.qcow2"), "converted data, 512 B clusters");
    RUN("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o",
        "extended_l2=on", P("data.raw"), P("dataxl2.qcow2"));
    check_vs_qemu(P("dataxl2.qcow2"), "converted data, extended L2");
    RUN("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o",
        "refcount_bits=1", P("data.raw"), P("datarc1.qcow2"));
    check_vs_qemu(P("datarc1.qcow2"), "converted data, refcount_bits=1");
    RUN("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2",
        P("text.raw"), P("zlib.qcow2"));
    check_vs_qemu(P("zlib.qcow2"), "convert -c (zlib)");
    qcow2_check_path(P("zlib.qcow2"), 0, &r);
    ok(r.info.compressed_clusters == 64, "convert -c: 64 compressed clusters");
    qcow2_report_free(&r);
    RUN("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
        "compression_type=zstd", P("text.raw"), P("zstdc.qcow2"));
    check_vs_qemu(P("zstdc.qcow2"), "convert -c (zstd)");
    RUN("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
        "cluster_size=4096", P("text.raw"), P("zlib4k.qcow2"));
    check_vs_qemu(P("zlib4k.qcow2"), "convert -c, 4 KiB clusters");

    copy_file(P("data.qcow2"), P("snap.qcow2"));
    RUN("qemu-img", "snapshot", "-c", "snap1", P("snap.qcow2"));
    check_vs_qemu(P("snap.qcow2"), "internal snapshot");
    qcow2_check_path(P("snap.qcow2"), 0, &r);
    is_int(r.info.nb_snapshots, 1, "snapshot: nb_snapshots 1");
    qcow2_report_free(&r);
    copy_file(P("zlib.qcow2"), P("snapz.qcow2"));
    RUN("qemu-img", "snapshot", "-c", "s1", P("snapz.qcow2"));
    RUN("qemu-img", "snapshot", "-c", "s2", P("snapz.qcow2"));
    check_vs_qemu(P("snapz.qcow2"), "two snapshots of a compressed image");

    copy_file(P("data.qcow2"), P("bitmap.qcow2"));
    RUN("qemu-img", "bitmap", "--add", P("bitmap.qcow2"), "b0");
    check_vs_qemu(P("bitmap.qcow2"), "persistent dirty bitmap");

    /* 100 GiB preallocation=metadata: sparse, validated without loading. */
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o",
        "preallocation=metadata", P("big.qcow2"), "100G");
    qcow2_check_path(P("big.qcow2"), 0, &r);
    if (!ok(r.valid && r.nerrors == 0, "100 GiB preallocation=metadata: valid"))
        dump(&r);
    is_int(r.info.allocated_clusters, 1638400,
           "100 GiB preallocation=metadata: 1638400 allocated clusters");
    qcow2_report_free(&r);
    unlink(P("big.qcow2"));
}

static void test_refused_by_qemu_img(void)
{
    unsigned char g[65536];
    char opt[600];
    uint32_t x = 7;
    size_t i;

    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10",
        P("v2.qcow2"), "1G");
    expect_error(P("v2.qcow2"), QCOW2_E_VERSION, "compat=0.10 (v2)");
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-b", P("plain.qcow2"),
        "-F", "qcow2", P("backing.qcow2"));
    expect_error(P("backing.qcow2"), QCOW2_E_BACKING_FILE, "-b base -F qcow2");
    snprintf(opt, sizeof(opt), "data_file=%s", P("datafile.raw"));
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", opt,
        P("datafile.qcow2"), "64M");
    expect_error(P("datafile.qcow2"), QCOW2_E_DATA_FILE, "data_file=");
    snprintf(opt, sizeof(opt), "data_file=%s,data_file_raw=on",
             P("datafile2.raw"));
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", opt,
        P("datafile2.qcow2"), "64M");
    expect_error(P("datafile2.qcow2"), QCOW2_E_DATA_FILE,
                 "data_file_raw=on");
    /* qemu's PBKDF2 calibration sometimes fails with "Unable to get
     * accurate CPU usage" on a busy machine (its thread CPU clock can read
     * 0 ms for the first round of iterations): a failed attempt costs a few
     * milliseconds, so try up to 25 times. */
    for (i = 0; i < 25 && access(P("luks.qcow2"), F_OK) != 0; i++)
        RUN("qemu-img", "create", "-q", "-f", "qcow2", "--object",
            "secret,id=s0,data=abc", "-o",
            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
            P("luks.qcow2"), "64M");
    expect_error(P("luks.qcow2"), QCOW2_E_ENCRYPTED, "LUKS encrypted");

    /* Not qcow2. */
    make_raw(P("raw.img"), 1 << 20, 0);
    expect_error(P("raw.img"), QCOW2_E_NOT_QCOW2, "raw file");
    write_all(P("empty.img"), "", 0);
    expect_error(P("empty.img"), QCOW2_E_NOT_QCOW2, "empty file");
    for (i = 0; i < sizeof(g); i++) {
        x = x * 1103515245u + 12345u;
        g[i] = (unsigned char)(x >> 16);
    }
    write_all(P("garbage.img"), g, sizeof(g));
    expect_error(P("garbage.img"), QCOW2_E_NOT_QCOW2, "random garbage");
    RUN("qemu-img", "create", "-q", "-f", "vmdk", P("x.vmdk"), "64M");
    expect_error(P("x.vmdk"), QCOW2_E_NOT_QCOW2, "VMDK");
    RUN("qemu-img", "create", "-q", "-f", "vdi", P("x.vdi"), "64M");
    expect_error(P("x.vdi"), QCOW2_E_NOT_QCOW2, "VDI");
    write_all(P("tiny.img"), "QFI\xfb", 4);
    expect_error(P("tiny.img"), QCOW2_E_TRUNCATED, "4-byte QFI file");

    /* A qcow2 header in an ISO9660 system area (os-test-images
     * iso-with-qcow2-in-system). */
    mut("plain.qcow2", "iso.qcow2");
    pwrite_at(P("iso.qcow2"), 0x8000, "\001CD001\001", 7);
    expect_error(P("iso.qcow2"), QCOW2_E_POLYGLOT, "ISO9660 + qcow2 polyglot");
    memset(g, 0, sizeof(g));
    memcpy(g + 0x8001, "CD001", 5);
    write_all(P("iso.img"), g, sizeof(g));
    expect_error(P("iso.img"), QCOW2_E_NOT_QCOW2, "plain ISO9660");
}

static void test_header_mutations(void)
{
    const char *p;

    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 4, 4);
    expect_error(p, QCOW2_E_VERSION, "version 4");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 20, 8);
    expect_error(p, QCOW2_E_CLUSTER_BITS, "cluster_bits 8");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 20, 22);
    expect_error(p, QCOW2_E_CLUSTER_BITS, "cluster_bits 22");
    p = mut("extl2.qcow2", "m.qcow2");
    put_be32(p, 20, 13);
    expect_error(p, QCOW2_E_CLUSTER_BITS, "cluster_bits 13 with extended L2");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 100, 96);
    expect_error(p, QCOW2_E_HEADER_LENGTH, "header_length 96");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 100, 108);
    expect_error(p, QCOW2_E_HEADER_LENGTH, "header_length 108 (not x8)");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 100, 100);
    expect_error(p, QCOW2_E_HEADER_LENGTH, "header_length 100");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 100, 70000);
    expect_error(p, QCOW2_E_HEADER_LENGTH, "header_length 70000");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 107, 1);
    expect_error(p, QCOW2_E_PADDING, "padding byte 107");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 100, 120);
    expect_error(p, QCOW2_E_PADDING,
                 "header_length 120 covers non-zero bytes 112..119");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 79, 0x20);
    expect_error(p, QCOW2_E_INCOMPAT_UNKNOWN, "incompatible bit 5");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 72, 0x80);
    expect_error(p, QCOW2_E_INCOMPAT_UNKNOWN, "incompatible bit 63");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 79, 0x01);
    expect_error(p, QCOW2_E_DIRTY, "dirty bit");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 79, 0x02);
    expect_error(p, QCOW2_E_CORRUPT, "corrupt bit");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 79, 0x08);
    expect_error(p, QCOW2_E_COMPRESSION_TYPE, "bit 3 with type 0");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 79, 0x08);
    put_u8(p, 104, 7);
    expect_error(p, QCOW2_E_COMPRESSION_TYPE, "compression type 7");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 104, 1);
    expect_error(p, QCOW2_E_COMPRESSION_TYPE, "type 1 without bit 3");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 79, 0x04);
    expect_error(p, QCOW2_E_DATA_FILE, "data-file bit without extension");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 95, 0x02);
    expect_error(p, QCOW2_E_DATA_FILE, "autoclear bit 1 (raw data)");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 32, 1);
    expect_error(p, QCOW2_E_ENCRYPTED, "crypt_method 1 (AES)");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 32, 2);
    expect_error(p, QCOW2_E_ENCRYPTED, "crypt_method 2 (LUKS)");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 32, 3);
    expect_error(p, QCOW2_E_ENCRYPTED, "crypt_method 3");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 96, 7);
    expect_error(p, QCOW2_E_REFCOUNT_ORDER, "refcount_order 7");
    p = mut("plain.qcow2", "m.qcow2");
    put_be64(p, 40, l1_off(p) + 8);
    expect_error(p, QCOW2_E_L1_TABLE, "unaligned l1_table_offset");
    p = mut("plain.qcow2", "m.qcow2");
    put_be64(p, 40, 1ULL << 40);
    expect_error(p, QCOW2_E_L1_TABLE, "l1_table_offset past EOF");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 36, 0);
    expect_error(p, QCOW2_E_L1_TOO_SMALL, "l1_size 0");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 36, 0x7fffffff);
    expect_error(p, QCOW2_E_TABLE_TOO_LARGE, "l1_size 0x7fffffff");
    p = mut("plain.qcow2", "m.qcow2");
    put_be64(p, 24, 1ULL << 62);
    expect_error(p, QCOW2_E_L1_TOO_SMALL, "virtual size 2^62 (size_to_l1)");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 56, 0);
    expect_error(p, QCOW2_E_REFCOUNT_TABLE, "refcount_table_clusters 0");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 56, 0x7fffffff);
    expect_error(p, QCOW2_E_TABLE_TOO_LARGE, "refcount_table_clusters huge");
    p = mut("plain.qcow2", "m.qcow2");
    put_be64(p, 48, reft_off(p) + 512);
    expect_error(p, QCOW2_E_REFCOUNT_TABLE, "unaligned refcount_table_offset");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 60, 0x7fffffff);
    expect_error(p, QCOW2_E_TABLE_TOO_LARGE, "nb_snapshots huge");
    p = mut("plain.qcow2", "m.qcow2");
    put_be64(p, 64, 4096);
    expect_error(p, QCOW2_E_SNAPSHOT_TABLE, "snapshots_offset misaligned");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 60, 3);
    put_be64(p, 64, 1ULL << 40);
    expect_error(p, QCOW2_E_SNAPSHOT_TABLE, "snapshot table past EOF");
    p = mut("plain.qcow2", "m.qcow2");
    put_be64(p, 8, 0x200);
    put_be32(p, 16, 5);
    expect_error(p, QCOW2_E_BACKING_FILE, "backing_file_offset set");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 16, 5);
    expect_warning(p, QCOW2_W_BACKING_SIZE,
                   "backing_file_size without backing_file_offset");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 95, 0x01);
    expect_warning(p, QCOW2_W_UNKNOWN_AUTOCLEAR,
                   "autoclear bit 0 without bitmaps extension");
    p = mut("plain.qcow2", "m.qcow2");
    put_u8(p, 95, 0x20);
    expect_warning(p, QCOW2_W_UNKNOWN_AUTOCLEAR, "unknown autoclear bit 5");
}

/* Header extensions: qemu 7.2 writes the feature table at 112 (length
 * 0x180) and the end marker at 504. */
static void test_extensions(void)
{
    const char *p;

    p = mut("plain.qcow2", "m.qcow2");
    ok(get_be32_at(p, 112) == 0x6803f857 && get_be32_at(p, 116) == 0x180 &&
           get_be64_at(p, 504) == 0,
       "layout: feature table at 112, end marker at 504");
    put_be32(p, 504, 0x12345678);
    put_be32(p, 508, 0);
    put_be32(p, 512, 0x12345678);
    put_be32(p, 516, 0);
    expect_error(p, QCOW2_E_HEADER_EXTENSION, "duplicate header extension");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0x12345678);
    put_be32(p, 508, 0x100000);
    expect_error(p, QCOW2_E_HEADER_EXTENSION,
                 "header extension longer than the cluster");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0x12345678);
    put_be32(p, 508, 65536 - 512);
    expect_error(p, QCOW2_E_HEADER_EXTENSION,
                 "unterminated header extensions");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 116, 0x17f);
    expect_error(p, QCOW2_E_HEADER_EXTENSION,
                 "feature table length not a multiple of 48");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0x44415441);
    put_be32(p, 508, 11);
    pwrite_at(p, 512, "/etc/passwd", 11);
    expect_error(p, QCOW2_E_DATA_FILE, "data-file name extension injected");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0x0537be77);
    put_be32(p, 508, 16);
    put_be64(p, 512, 0x40000);
    put_be64(p, 520, 4096);
    expect_error(p, QCOW2_E_ENCRYPTED, "FDE extension injected");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0xe2792aca);
    put_be32(p, 508, 5);
    pwrite_at(p, 512, "qcow2", 5);
    expect_error(p, QCOW2_E_BACKING_FILE, "backing-format extension injected");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0x23852875);
    put_be32(p, 508, 16);
    expect_error(p, QCOW2_E_BITMAPS, "bitmaps extension with length 16");
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 504, 0x23852875);
    put_be32(p, 508, 24);
    put_be32(p, 512, 1);
    put_be64(p, 520, 64);
    put_be64(p, 528, 1ULL << 40);
    expect_error(p, QCOW2_E_BITMAPS, "bitmap directory past EOF");
}

static void test_table_mutations(void)
{
    const char *p;
    uint64_t l1, l2, rb, e;

    /* L1 entries (data.qcow2 has L1[0] -> one L2 table). */
    p = mut("data.qcow2", "t.qcow2");
    l1 = l1_off(p);
    e = get_be64_at(p, l1);
    ok(e != 0 && (e >> 63), "layout: data.qcow2 L1[0] is set with COPIED");
    put_be64(p, l1, e | 2);
    expect_error(p, QCOW2_E_L1_ENTRY, "L1 entry with reserved bit 1");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l1, e | (1ULL << 56));
    expect_error(p, QCOW2_E_L1_ENTRY, "L1 entry with reserved bit 56");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l1, (1ULL << 63) | (1ULL << 40));
    expect_error(p, QCOW2_E_L1_ENTRY, "L1 entry past EOF");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l1, (1ULL << 63) | (e & 0x00fffffffffffe00ULL) | 512);
    expect_error(p, QCOW2_E_L1_ENTRY, "L1 entry misaligned");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l1, (1ULL << 63) | reft_off(p));
    expect_error(p, QCOW2_E_OVERLAP, "L1 entry pointing at the refcount table");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l1, e & ~(1ULL << 63));
    expect_warning(p, QCOW2_W_COPIED, "L1 entry without COPIED, refcount 1");

    /* L2 entries. */
    p = mut("data.qcow2", "t.qcow2");
    l2 = l2_off(p);
    e = get_be64_at(p, l2);
    ok(e != 0 && (e >> 63) && !(e & (1ULL << 62)),
       "layout: data.qcow2 L2[0] is a standard COPIED entry");
    put_be64(p, l2, e | 4);
    expect_error(p, QCOW2_E_L2_ENTRY, "L2 entry with reserved bit 2");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l2, e | 512);
    expect_error(p, QCOW2_E_L2_ENTRY, "L2 entry misaligned");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l2, (1ULL << 63) | (1ULL << 40));
    expect_error(p, QCOW2_E_L2_ENTRY, "L2 entry past EOF");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l2, 1ULL << 63);
    expect_error(p, QCOW2_E_L2_ENTRY, "L2 entry offset 0 with COPIED");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l2, (1ULL << 63) | l1_off(p));
    expect_error(p, QCOW2_E_OVERLAP, "L2 entry pointing at the L1 table");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, l2 + 8, e);
    expect_error(p, QCOW2_E_REFCOUNT, "two L2 entries share a data cluster");

    /* Extended L2: allocation and zero bitmaps must be disjoint. */
    p = mut("dataxl2.qcow2", "t.qcow2");
    l2 = l2_off(p);
    ok(get_be64_at(p, l2 + 8) != 0, "layout: extended L2 entry has a bitmap");
    put_be32(p, l2 + 8, 1);
    expect_error(p, QCOW2_E_L2_ENTRY, "extended L2 alloc and zero overlap");

    p = mut("dataxl2.qcow2", "t.qcow2");
    put_be64(p, l2, get_be64_at(p, l2) | 1);
    expect_error(p, QCOW2_E_L2_ENTRY, "extended L2 entry with bit 0 (zero)");
    p = mut("dataxl2.qcow2", "t.qcow2");
    put_be64(p, l2 + 16, 0);
    put_be64(p, l2 + 24, 1);
    expect_error(p, QCOW2_E_L2_ENTRY,
                 "extended L2: unallocated entry with allocation bits");
    RUN("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
        "extended_l2=on", P("text.raw"), P("zxl2.qcow2"));
    check_vs_qemu(P("zxl2.qcow2"), "convert -c, extended L2");
    p = mut("zxl2.qcow2", "t.qcow2");
    l2 = l2_off(p);
    ok((get_be64_at(p, l2) >> 62) == 1 && get_be64_at(p, l2 + 8) == 0,
       "layout: zxl2.qcow2 L2[0] is compressed, second word 0");
    put_be64(p, l2 + 8, 1);
    expect_error(p, QCOW2_E_L2_ENTRY,
                 "extended L2: compressed entry with a non-zero bitmap");

    /* Refcount table and blocks. */
    p = mut("data.qcow2", "t.qcow2");
    e = get_be64_at(p, reft_off(p));
    put_be64(p, reft_off(p), e | 1);
    expect_error(p, QCOW2_E_REFCOUNT_ENTRY, "refcount table entry reserved bit");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, reft_off(p), 1ULL << 40);
    expect_error(p, QCOW2_E_REFCOUNT_ENTRY, "refcount block past EOF");
    p = mut("data.qcow2", "t.qcow2");
    put_be64(p, reft_off(p), l1_off(p));
    expect_error(p, QCOW2_E_OVERLAP, "refcount block on the L1 table");
    p = mut("data.qcow2", "t.qcow2");
    rb = refblock0(p);
    ok(get_at(p, rb, 2) == 1, "layout: header refcount is 1 (16-bit)");
    put_be16(p, rb + 2 * (l1_off(p) >> 16), 0);
    expect_error(p, QCOW2_E_REFCOUNT, "refcount lowered to 0 (L1 cluster)");
    p = mut("data.qcow2", "t.qcow2");
    put_be16(p, rb, 2);
    expect_warning(p, QCOW2_W_LEAK, "refcount raised to 2 (leak)");
    {
        struct qcow2_report r;
        char out[4096];
        int rc;

        qcow2_check_path(p, 0, &r);
        rc = RUN_OUT(out, "qemu-img", "check", "--output=json", "-f", "qcow2",
                     p);
        is_int(rc, 3, "raised refcount: qemu-img check says leaks (rc 3)");
        is_int(r.info.leaked_clusters, json_int(out, "leaks"),
               "raised refcount: leaked_clusters matches qemu-img check");
        qcow2_report_free(&r);
    }
    /* refcount_bits=1: the header's bit cleared. */
    p = mut("datarc1.qcow2", "t.qcow2");
    rb = refblock0(p);
    put_u8(p, rb, get_at(p, rb, 1) & 0xfe);
    expect_error(p, QCOW2_E_REFCOUNT, "refcount_bits=1: header bit cleared");

    /* Compressed data corrupted. */
    p = mut("zlib.qcow2", "t.qcow2");
    l2 = l2_off(p);
    e = get_be64_at(p, l2);
    ok((e >> 62) == 1, "layout: zlib.qcow2 L2[0] is compressed");
    {
        uint64_t coff = e & ((1ULL << 54) - 1); /* x = 62 - (16 - 8) */
        unsigned char junk[64];
        memset(junk, 0xa5, sizeof(junk));
        pwrite_at(p, coff, junk, sizeof(junk));
        expect_error(p, QCOW2_E_COMPRESSED, "corrupted zlib cluster");
    }
    p = mut("zstdc.qcow2", "t.qcow2");
    l2 = l2_off(p);
    e = get_be64_at(p, l2);
    {
        uint64_t coff = e & ((1ULL << 54) - 1);
        unsigned char junk[16];
        memset(junk, 0x5a, sizeof(junk));
        pwrite_at(p, coff + 4, junk, sizeof(junk));
        expect_error(p, QCOW2_E_COMPRESSED, "corrupted zstd cluster");
    }
    p = mut("zlib.qcow2", "t.qcow2");
    put_be64(p, l2, e | (1ULL << 63));
    expect_error(p, QCOW2_E_L2_ENTRY, "compressed entry with COPIED");
    p = mut("zlib.qcow2", "t.qcow2");
    /* Fewer sectors than the data: the stream ends early. */
    put_be64(p, l2, e & ~(0xffULL << 54));
    expect_error(p, QCOW2_E_COMPRESSED, "compressed cluster cut short");

    /* Decompression budget: 600 L2 entries share one 2 MiB compressed
     * cluster of a 2 MiB-cluster image (1.2 GiB of output > 1 GiB). */
    RUN("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
        "cluster_size=2M", P("text.raw"), P("z2m.qcow2"));
    check_vs_qemu(P("z2m.qcow2"), "convert -c, 2 MiB clusters");
    p = mut("z2m.qcow2", "t.qcow2");
    l2 = l2_off(p);
    e = get_be64_at(p, l2);
    {
        unsigned char *tab = calloc(600, 8);
        int k, b;
        for (k = 0; tab && k < 600; k++)
            for (b = 0; b < 8; b++)
                tab[k * 8 + b] = (unsigned char)(e >> (56 - 8 * b));
        if (tab)
            pwrite_at(p, l2, tab, 600 * 8);
        free(tab);
    }
    expect_error(p, QCOW2_E_LIMIT, "decompression budget exceeded");

    /* Snapshots. snap.qcow2 has one snapshot entry at snapshots_offset. */
    p = mut("snap.qcow2", "t.qcow2");
    {
        uint64_t so = get_be64_at(p, 64);
        put_be16(p, so + 14, 0xffff);
        expect_error(p, QCOW2_E_SNAPSHOT, "snapshot name length 0xffff");
        p = mut("snap.qcow2", "t.qcow2");
        put_be64(p, so, 1ULL << 40);
        expect_error(p, QCOW2_E_SNAPSHOT, "snapshot L1 past EOF");
        p = mut("snap.qcow2", "t.qcow2");
        put_be64(p, so, get_be64_at(p, so) + 512);
        expect_error(p, QCOW2_E_SNAPSHOT, "snapshot L1 misaligned");
        p = mut("snap.qcow2", "t.qcow2");
        put_be32(p, so + 8, 0x7fffffff);
        expect_error(p, QCOW2_E_SNAPSHOT, "snapshot L1 size too large");
        p = mut("snap.qcow2", "t.qcow2");
        put_be32(p, so + 36, 2000);
        expect_error(p, QCOW2_E_SNAPSHOT, "snapshot extra data 2000");
        p = mut("snap.qcow2", "t.qcow2");
        put_be32(p, so + 36, 8);
        expect_error(p, QCOW2_E_SNAPSHOT, "snapshot extra data 8 (< 16)");
        p = mut("snap.qcow2", "t.qcow2");
        put_be64(p, so, l1_off(p));
        expect_error(p, QCOW2_E_OVERLAP, "snapshot L1 = active L1");
    }
    /* A snapshot shares its L2 table: lowering its refcount to 1 is
     * corruption. */
    p = mut("snap.qcow2", "t.qcow2");
    rb = refblock0(p);
    put_be16(p, rb + 2 * (l2_off(p) >> 16), 1);
    expect_error(p, QCOW2_E_REFCOUNT, "shared L2 with refcount 1");

    /* Truncated files. */
    p = mut("plain.qcow2", "t.qcow2");
    if (truncate(p, 196616) != 0)
        printf("# truncate failed\n");
    expect_error(p, QCOW2_E_TRUNCATED, "file truncated inside the L1 table");
    p = mut("plain.qcow2", "t.qcow2");
    if (truncate(p, 100) != 0)
        printf("# truncate failed\n");
    expect_error(p, QCOW2_E_TRUNCATED, "file truncated inside the header");
    p = mut("data.qcow2", "t.qcow2");
    if (truncate(p, 3 * 65536 + 100) != 0)
        printf("# truncate failed\n");
    {
        struct qcow2_report r;
        qcow2_check_path(p, 0, &r);
        if (!ok(!r.valid && r.nerrors > 0, "data image truncated: refused"))
            dump(&r);
        qcow2_report_free(&r);
    }
}

static void test_many_problems(void)
{
    struct qcow2_report r;
    const char *p = mut("plain.qcow2", "m.qcow2");

    /* Several independent header problems are all reported. */
    put_be32(p, 4, 4);
    put_u8(p, 79, 0x23);
    put_be32(p, 32, 1);
    put_be64(p, 8, 0x200);
    qcow2_check_path(p, 0, &r);
    ok(has_code(&r, QCOW2_E_VERSION) && has_code(&r, QCOW2_E_DIRTY) &&
           has_code(&r, QCOW2_E_CORRUPT) &&
           has_code(&r, QCOW2_E_INCOMPAT_UNKNOWN) &&
           has_code(&r, QCOW2_E_ENCRYPTED) &&
           has_code(&r, QCOW2_E_BACKING_FILE),
       "every independent header problem is reported");
    ok(r.nerrors >= 6, "at least 6 errors (%zu)", r.nerrors);
    qcow2_report_free(&r);

    /* cluster_bits broken: no deep walk, other header problems still. */
    p = mut("plain.qcow2", "m.qcow2");
    put_be32(p, 20, 40);
    put_u8(p, 79, 0x01);
    qcow2_check_path(p, 0, &r);
    ok(has_code(&r, QCOW2_E_CLUSTER_BITS) && has_code(&r, QCOW2_E_DIRTY) &&
           !r.info.deep_checked,
       "bad cluster_bits: no deep walk, dirty still reported");
    qcow2_report_free(&r);

    /* Many refcount errors: capped, with a dropped count. */
    p = mut("data512.qcow2", "m.qcow2");
    {
        unsigned char zero[512];
        memset(zero, 0, sizeof(zero));
        pwrite_at(p, refblock0(p), zero, sizeof(zero));
    }
    qcow2_check_path(p, 0, &r);
    ok(r.nerrors == QCOW2_MAX_PROBLEMS && r.errors_dropped > 0 && !r.valid,
       "problems capped at %d with errors_dropped (%zu, %zu dropped)",
       QCOW2_MAX_PROBLEMS, r.nerrors, r.errors_dropped);
    qcow2_report_free(&r);
}

static void test_buffer_and_flags(void)
{
    struct qcow2_report a, b;
    unsigned char *buf;
    size_t len;
    const char *p;
    int fd;

    buf = read_all(P("zlib.qcow2"), &len);
    qcow2_check_path(P("zlib.qcow2"), 0, &a);
    is_int(qcow2_check_buf(buf, len, 0, &b), 0, "buffer: check ran");
    ok(b.valid == a.valid && b.valid &&
           b.info.allocated_clusters == a.info.allocated_clusters &&
           b.info.compressed_clusters == a.info.compressed_clusters &&
           b.info.deep_checked,
       "buffer path gives the same verdict as the file path (zlib image)");
    qcow2_report_free(&a);
    qcow2_report_free(&b);
    free(buf);

    p = mut("data.qcow2", "b.qcow2");
    put_be64(p, l2_off(p), (1ULL << 63) | (1ULL << 40));
    put_u8(p, 79, 0x01);
    buf = read_all(p, &len);
    qcow2_check_path(p, 0, &a);
    qcow2_check_buf(buf, len, 0, &b);
    ok(!b.valid && b.nerrors == a.nerrors && has_code(&b, QCOW2_E_DIRTY) &&
           has_code(&b, QCOW2_E_L2_ENTRY),
       "buffer path: same errors as the file path (%zu, %zu)", a.nerrors,
       b.nerrors);
    qcow2_report_free(&a);
    qcow2_report_free(&b);

    /* Header only: the L2 problem is not seen, the dirty bit is. */
    qcow2_check_buf(buf, len, QCOW2_HEADER_ONLY, &b);
    ok(!b.valid && has_code(&b, QCOW2_E_DIRTY) &&
           !has_code(&b, QCOW2_E_L2_ENTRY) && !b.info.deep_checked,
       "QCOW2_HEADER_ONLY: first-cluster checks only");
    qcow2_report_free(&b);
    qcow2_check_buf(buf, 64, 0, &b);
    ok(!b.valid && has_code(&b, QCOW2_E_TRUNCATED),
       "buffer of 64 bytes: truncated");
    qcow2_report_free(&b);
    free(buf);
    qcow2_check_buf(NULL, 0, 0, &b);
    ok(!b.valid && !b.is_qcow2 && has_code(&b, QCOW2_E_NOT_QCOW2),
       "NULL buffer: not_qcow2");
    qcow2_report_free(&b);

    fd = open(P("plain.qcow2"), O_RDONLY);
    qcow2_check_fd(fd, QCOW2_HEADER_ONLY, &b);
    ok(b.valid && !b.info.deep_checked, "fd path, header only: valid");
    qcow2_report_free(&b);
    close(fd);
    qcow2_check_path(P("does-not-exist.qcow2"), 0, &b);
    ok(!b.valid && has_code(&b, QCOW2_E_IO) &&
           strstr(b.errors[0].message, "does-not-exist") != NULL,
       "missing file: io error naming the path");
    is_str(qcow2_first_error(&b), b.errors[0].message,
           "qcow2_first_error gives the first message");
    qcow2_report_free(&b);
    qcow2_check_path(tmpdir, 0, &b);
    ok(!b.valid && has_code(&b, QCOW2_E_IO), "a directory: io error");
    qcow2_report_free(&b);
}

static void test_json(void)
{
    struct qcow2_report r;
    struct qcow2_problem e[1], w[1];
    char *j;
    int i, distinct = 1;

    qcow2_check_path(P("zstd.qcow2"), 0, &r);
    j = qcow2_report_json(&r);
    is_str(j, "{\"valid\":true,\"errors\":[],\"warnings\":[]}",
           "report JSON of a valid image");
    free(j);
    j = qcow2_info_json(&r);
    ok(j && strncmp(j, "{\"version\":3,\"virtual_size\":1073741824,", 39) == 0,
       "info JSON starts with version and virtual_size");
    ok(j && strstr(j, "\"cluster_size\":65536,\"cluster_bits\":16,") &&
           strstr(j, "\"refcount_bits\":16") &&
           strstr(j, "\"compression_type\":\"zstd\"") &&
           strstr(j, "\"incompatible_features\":[\"compression_type\"]") &&
           strstr(j, "\"compatible_features\":[]") &&
           strstr(j, "\"autoclear_features\":[]") &&
           strstr(j, "\"nb_snapshots\":0") && strstr(j, "\"file_size\":") &&
           strstr(j, "\"allocated_clusters\":0") &&
           strstr(j, "\"compressed_clusters\":0") &&
           strstr(j, "\"leaked_clusters\":0") &&
           strstr(j, "\"header_length\":112") && strstr(j, "\"l1_size\":2") &&
           strstr(j, "\"crypt_method\":0") &&
           strstr(j, "\"valid\":true}") != NULL,
       "info JSON has every key");
    free(j);
    qcow2_report_free(&r);

    {
        const char *p = mut("plain.qcow2", "j.qcow2");
        put_u8(p, 79, 0xff);
        put_u8(p, 95, 0x05);
        put_u8(p, 87, 0x03);
        qcow2_check_path(p, 0, &r);
    }
    j = qcow2_info_json(&r);
    ok(j && strstr(j, "\"incompatible_features\":[\"dirty\",\"corrupt\","
                      "\"data_file\",\"compression_type\",\"extended_l2\","
                      "\"bit 5\",\"bit 6\",\"bit 7\"]") &&
           strstr(j, "\"compatible_features\":[\"lazy_refcounts\",\"bit 1\"]") &&
           strstr(j, "\"autoclear_features\":[\"bitmaps\",\"bit 2\"]") &&
           strstr(j, "\"valid\":false}"),
       "info JSON names feature bits");
    free(j);
    j = qcow2_report_json(&r);
    ok(j && strncmp(j, "{\"valid\":false,\"errors\":[{\"code\":\"", 34) == 0 &&
           strstr(j, "{\"code\":\"dirty\",\"message\":\"") &&
           strstr(j, "],\"warnings\":[{\"code\":\"unknown_autoclear\"") &&
           j[strlen(j) - 1] == '}',
       "report JSON lists errors and warnings");
    free(j);
    qcow2_report_free(&r);

    /* Escaping: quotes, backslash, control characters. */
    memset(&r, 0, sizeof(r));
    memset(e, 0, sizeof(e));
    memset(w, 0, sizeof(w));
    e[0].code = QCOW2_E_SNAPSHOT;
    strcpy(e[0].message, "a\"b\\c\nd\001e\x7f");
    w[0].code = QCOW2_W_LEAK;
    strcpy(w[0].message, "tab\there");
    r.errors = e;
    r.nerrors = 1;
    r.warnings = w;
    r.nwarnings = 1;
    j = qcow2_report_json(&r);
    is_str(j,
           "{\"valid\":false,\"errors\":[{\"code\":\"snapshot\",\"message\":"
           "\"a\\\"b\\\\c\\nd\\u0001e\x7f\"}],\"warnings\":[{\"code\":"
           "\"leak\",\"message\":\"tab\\there\"}]}",
           "report JSON escapes quotes, backslash and control characters "
           "(ext/jsonstr.h: jansson's escapes)");
    free(j);

    for (i = 0; i < QCOW2_CODE_COUNT && distinct; i++) {
        int k;
        for (k = 0; k < i; k++)
            if (strcmp(qcow2_code_name((enum qcow2_code)i),
                       qcow2_code_name((enum qcow2_code)k)) == 0)
                distinct = 0;
    }
    ok(distinct, "code names are distinct");
    is_str(qcow2_code_name(QCOW2_E_NOT_QCOW2), "not_qcow2", "code name");
    is_str(qcow2_code_name(QCOW2_E_COMPRESSED), "compressed_cluster",
           "code name compressed_cluster");
    is_str(qcow2_code_name(QCOW2_CODE_COUNT), "unknown", "out-of-range code");
}

/* ------------------------------------------------------------------ */
/* Issue 11: two misses found by porting QEMU's iotests.               */

/* Has the report a problem of this code (errors and warnings)? */
static int report_has(const struct qcow2_report *r, enum qcow2_code code)
{
    size_t i;

    for (i = 0; i < r->nerrors; i++)
        if (r->errors[i].code == code)
            return 1;
    for (i = 0; i < r->nwarnings; i++)
        if (r->warnings[i].code == code)
            return 1;
    return 0;
}

/*
** A snapshot table at 1 MiB (iotest 261): 507 entries of 40 + 1024 extra
** + 65535 id + 65535 name bytes (+2 padding), then one whose name length
** makes it end `over` bytes past QEMU's 64 MiB limit (over <= 0: inside).
** Refcounts of the table's clusters are set to 1.
*/
static const char *snaptable_image(const char *name, long over)
{
    const uint64_t start = 1 << 20, sn_size = 40 + 1024 + 65535 + 65535 + 2;
    const char *p;
    unsigned char e[40];
    uint64_t off = start, end, rb, cl;
    int i;

    RUN("qemu-img", "create", "-q", "-f", "qcow2", P(name), "64M");
    p = P(name);
    memset(e, 0, sizeof(e));
    e[12] = e[13] = e[14] = e[15] = 0xff;
    e[38] = 0x04; /* extra data: 1024 bytes */
    for (i = 0; i < 507; i++, off += sn_size)
        pwrite_at(p, off, e, sizeof(e));
    /* last entry: 40 + 1024 + 65535 + nml bytes, ending at 64 MiB + over */
    end = start + (64ULL << 20) + (uint64_t)over;
    put_be16(p, off + 14, end - off - 40 - 1024 - 65535);
    put_be16(p, off + 12, 65535);
    put_be32(p, off + 36, 1024);
    if (truncate(p, (off_t)end) != 0)
        printf("# truncate %s failed\n", name);
    put_be32(p, 60, 508);
    put_be64(p, 64, start);
    rb = refblock0(p);
    for (cl = start >> 16; cl < (end + 65535) >> 16; cl++)
        put_be16(p, rb + 2 * cl, 1);
    return p;
}

static void test_issue11_misses(void)
{
    struct qcow2_report r;
    const char *p;
    uint64_t rt, rb;
    int i;

    /* 2026-12-04, iotest 261 "Snapshot table too big": only where each
     * entry started was compared with the 64 MiB limit. */
    p = snaptable_image("snap-limit.qcow2", 0);
    expect_valid(p, "snapshot table ending exactly at 64 MiB");
    p = snaptable_image("snap-over.qcow2", 1);
    expect_error(p, QCOW2_E_TABLE_TOO_LARGE,
                 "snapshot table whose last entry ends 1 byte past 64 MiB");
    /* An entry with too much extra data is reported and walked over: its
     * end is still checked. The last entry of the table that ended at 64
     * MiB gets 1025 bytes of extra data: it ends 1 byte past. */
    p = P("snap-limit.qcow2");
    put_be32(p, (1 << 20) + 132136ULL * 507 + 36, 1025);
    if (truncate(p, (off_t)((65ULL << 20) + 4096)) != 0)
        printf("# truncate snap-limit.qcow2 failed\n");
    expect_error(p, QCOW2_E_SNAPSHOT, "snapshot with 1025 bytes of extra data");
    qcow2_check_path(p, 0, &r);
    ok(report_has(&r, QCOW2_E_TABLE_TOO_LARGE),
       "table size still checked after an entry with too much extra data");
    qcow2_report_free(&r);

    /* 2026-12-04, iotest 220: refcounts of clusters past the end of the
     * file were never compared. */
    RUN("qemu-img", "create", "-q", "-f", "qcow2", P("eof.qcow2"), "64M");
    p = mut("eof.qcow2", "t.qcow2");
    put_be16(p, refblock0(p) + 2 * 100, 1); /* cluster 100; the file has 4 */
    qcow2_check_path(p, 0, &r);
    if (!ok(r.valid && report_has(&r, QCOW2_W_LEAK) &&
                r.info.leaked_clusters == 1,
            "refcount 1 for cluster 100 of a 4-cluster file: one leak"))
        dump(&r);
    qcow2_report_free(&r);

    /* 1-bit refcounts: a second refcount block (appended, cluster 4)
     * claims all its 524288 clusters, every one past the end. */
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1",
        P("eof1.qcow2"), "64M");
    p = mut("eof1.qcow2", "t.qcow2");
    rt = reft_off(p);
    rb = refblock0(p);
    put_be64(p, rt + 8, 4ULL << 16);
    put_u8(p, rb, get_at(p, rb, 1) | 0x10); /* cluster 4: refcount 1 */
    for (i = 0; i < 65536; i += 8)
        put_be64(p, (4ULL << 16) + (uint64_t)i, UINT64_MAX);
    qcow2_check_path(p, 0, &r);
    if (!ok(r.valid && report_has(&r, QCOW2_W_LEAK) &&
                r.info.leaked_clusters == 524288,
            "1-bit refcount block past the end: 524288 leaked clusters"))
        dump(&r);
    qcow2_report_free(&r);
    /* and a refcount block listed twice is read once (an overlap) */
    put_be64(p, rt + 16, 4ULL << 16);
    qcow2_check_path(p, 0, &r);
    ok(!r.valid && report_has(&r, QCOW2_E_OVERLAP) &&
           r.info.leaked_clusters == 524288,
       "refcount block listed twice: overlap, its leaks counted once");
    qcow2_report_free(&r);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    have_tmpdir = 1;
    atexit(cleanup);
    signal(SIGPIPE, SIG_IGN);

    test_accepted();
    test_data_images();
    test_refused_by_qemu_img();
    test_header_mutations();
    test_extensions();
    test_table_mutations();
    test_many_problems();
    test_buffer_and_flags();
    test_json();
    test_issue11_misses();
    cleanup();
    return tap_done();
}
