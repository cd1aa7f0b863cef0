/*
** qcow2.c - a fail-closed validator for QCOW2 version 3 images.
**
** Provides the API of qcow2.h: qcow2_check_buf/fd/path, qcow2_report_free,
** qcow2_code_name, qcow2_first_error, qcow2_report_json, qcow2_info_json.
**
** Pure C (no SQLite or Lua headers). zlib inflates deflate clusters,
** libzstd decodes zstd clusters. Memory is allocated with malloc/free and
** bounded by the metadata size: one counter (uint32) and one "kind" byte per
** host cluster, the active L1 table, the refcount table and a few
** cluster-sized buffers. Guest data clusters are never read, except
** compressed ones, which are decompressed with a hard output cap of one
** cluster.
**
** What is checked, cheapest first (see docs/qcow2-validation.md §2):
**   1. the first cluster: magic, polyglot probes (ISO9660/UDF at 0x8001,
**      GPT at 512), version, cluster_bits, header_length and padding,
**      feature bits, compression type, crypt method, refcount order,
**      backing file, header extensions, table placement and sizes, L1
**      coverage of the virtual size.  QCOW2_HEADER_ONLY stops here.
**   2. the tables: refcount table and blocks, active L1 and its L2 tables,
**      the snapshot table and each snapshot's L1/L2 tables, the bitmap
**      directory and bitmap tables, every compressed cluster (decompressed),
**      overlap of metadata structures (one kind byte per host cluster), a
**      recomputation of every refcount as `qemu-img check` does it, and the
**      OFLAG_COPIED flags of the active tables.
**
** Where we are stricter than `qemu-img check` (qemu-img 7.2), on purpose:
**   - the dirty and corrupt bits pass `qemu-img check` (rc 0); we reject
**     both (refcounts of a dirty image cannot be trusted, a corrupt image
**     must not be booted);
**   - an L1 table or an L2/refcount block past EOF is only a leak, or
**     "OFLAG_COPIED" noise, for qemu; we reject every offset past EOF;
**   - reserved bits are refused in L1, L2, refcount table and refcount
**     block entries (qemu refuses L1/L2 ones too, but not at open time);
**   - an external data file, a backing file, encryption and version 2 are
**     refused outright (CVE-2024-32498, CVE-2011-3147; v2 has no feature
**     bits, so unknown incompatible features cannot be expressed);
**   - an unterminated header extension list is refused (qemu stops at the
**     end of the cluster silently);
**   - a zlib cluster must inflate to exactly one cluster and no further
**     output (qemu only requires the output buffer to be filled);
**   - zstd frames are limited to a 2^23 window (qemu allows libzstd's
**     default 2^27), which bounds decoder memory; qemu writes frames with
**     a window no larger than one cluster (<= 2^21);
**   - with extended L2 entries, bit 0 ("cluster reads as zero") of a
**     standard descriptor and a non-zero subcluster bitmap of a compressed
**     cluster are refused; qemu ignores both (iotest 271), while the
**     specification says the bit "is always 0" with extended L2 entries
**     and the compressed bitmap is "Reserved (set to 0)";
**   - a guest cluster that is also another structure (e.g. an inactive L2
**     table) is refused even when its refcount covers both uses, which is
**     what `qemu-img check -r all` leaves behind (iotest 060);
**   - non-zero refcounts of clusters past the end of the file are leaks
**     (qemu-img check does not read those refcount blocks, iotest 220);
**   - wrong OFLAG_COPIED flags are counted as corruptions by qemu (and
**     repaired with -r); we only warn, since the image is opened read-only
**     with an overlay and the flag only matters for in-place writes.
**
** Ownership: the report's problem arrays are malloc()ed; qcow2_report_free()
** releases them. The JSON helpers return malloc()ed text.
*/
#include "qcow2.h"

#include "jsonstr.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/* QEMU limits (block/qcow2.h). */
#define MAX_L1_BYTES (32ULL << 20)        /* QCOW_MAX_L1_SIZE */
#define MAX_REFTABLE_BYTES (8ULL << 20)   /* QCOW_MAX_REFTABLE_SIZE */
#define MAX_SNAPSHOTS 65536ULL            /* QCOW_MAX_SNAPSHOTS */
#define MAX_SNAPSHOT_EXTRA 1024U          /* QCOW_MAX_SNAPSHOT_EXTRA_DATA */
#define MAX_SNAPSHOTS_BYTES (64ULL << 20) /* QCOW_MAX_SNAPSHOTS_SIZE */
#define MAX_BITMAPS 65535U                /* QCOW2_MAX_BITMAPS */
#define MAX_BITMAP_DIR_BYTES (1024ULL * MAX_BITMAPS)
#define MAX_BITMAP_TABLE 0x8000000ULL /* BME_MAX_TABLE_SIZE */

/*
** Our own resource limits. 2^25 host clusters cost 160 MiB of counters and
** cover 2 TiB with 64 KiB clusters. The L2 walk budget bounds the work an
** image can cause by making many L1 entries (or snapshots) point at the same
** L2 tables: 2^30 entries is several full walks of a 100 GiB image with
** 512-byte clusters.
*/
#define MAX_HOST_CLUSTERS (1ULL << 25)
#define MAX_L2_WORK (1ULL << 30)
/*
** Decompression budget: at most 64 times the file size (at least 1 GiB) of
** decompressed output per check. Real disk images compress far less than
** 64:1 (zero clusters are not stored), while many L2 entries pointing at
** the same small compressed stream could otherwise make a small file cost
** hours of CPU. Over the budget the image is refused (limit).
*/
#define DECOMPRESS_RATIO 64ULL
#define DECOMPRESS_MIN (1ULL << 30)
#define ZSTD_WINDOW_LOG_MAX 23

/* Entry masks (block/qcow2.h). */
#define L1E_OFFSET_MASK 0x00fffffffffffe00ULL
#define L1E_RESERVED_MASK 0x7f000000000001ffULL
#define L2E_OFFSET_MASK 0x00fffffffffffe00ULL
#define L2E_STD_RESERVED_MASK 0x3f000000000001feULL
#define REFT_OFFSET_MASK 0xfffffffffffffe00ULL
#define REFT_RESERVED_MASK 0x1ffULL
#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define OFLAG_ZERO 1ULL
#define BME_OFFSET_MASK 0x00fffffffffffe00ULL
#define BME_RESERVED_MASK 0xff000000000001feULL

/* Header extension types. */
#define EXT_END 0x00000000U
#define EXT_BACKING_FORMAT 0xe2792acaU
#define EXT_FEATURE_TABLE 0x6803f857U
#define EXT_BITMAPS 0x23852875U
#define EXT_CRYPTO 0x0537be77U
#define EXT_DATA_FILE 0x44415441U
#define MAX_EXTENSIONS 256

/* What occupies a host cluster (low 4 bits of the kind byte). */
enum {
    K_FREE = 0,
    K_HEADER,
    K_L1,
    K_L2,
    K_REFTABLE,
    K_REFBLOCK,
    K_SNAPTABLE,
    K_SNAPL1,
    K_CRYPTO,
    K_BITMAPDIR,
    K_BITMAPTABLE,
    K_BITMAPDATA,
    K_DATA,
    K_COMPRESSED
};
#define K_MASK 0x0f
#define F_L2_CHECKED 0x10    /* L2 table entries already validated */
#define F_COPIED_SET 0x20    /* active reference with OFLAG_COPIED */
#define F_COPIED_CLEAR 0x40  /* active reference without OFLAG_COPIED */
#define F_REFBLOCK_READ 0x80 /* refblock read by the past-EOF pass */

static const char *const kind_names[] = {"free",
                                         "header",
                                         "L1 table",
                                         "L2 table",
                                         "refcount table",
                                         "refcount block",
                                         "snapshot table",
                                         "snapshot L1 table",
                                         "encryption header",
                                         "bitmap directory",
                                         "bitmap table",
                                         "bitmap data",
                                         "data cluster",
                                         "compressed data"};

static const char *const code_names[QCOW2_CODE_COUNT] = {
    "ok",
    "io",
    "not_qcow2",
    "polyglot",
    "truncated",
    "version",
    "cluster_bits",
    "header_length",
    "padding",
    "unknown_incompatible",
    "dirty",
    "corrupt",
    "data_file",
    "backing_file",
    "encrypted",
    "compression_type",
    "refcount_order",
    "header_extension",
    "l1_table",
    "refcount_table",
    "snapshot_table",
    "table_too_large",
    "l1_too_small",
    "l1_entry",
    "l2_entry",
    "refcount_entry",
    "overlap",
    "refcount",
    "compressed_cluster",
    "snapshot",
    "bitmaps",
    "limit",
    "leak",
    "copied_flag",
    "backing_file_size",
    "unknown_autoclear",
};

typedef unsigned long long ull;

/* ---------------------------------------------------------------------
** Byte decoding (big-endian, byte by byte).
*/
static uint16_t get_be16(const unsigned char *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* ---------------------------------------------------------------------
** Reader: the same code path for a file descriptor and a memory buffer.
*/
struct reader {
    int fd;                   /* -1 for a buffer */
    const unsigned char *buf; /* NULL for a file */
    uint64_t size;
    unsigned char *win; /* read-ahead window (files only) */
    size_t win_cap;
    uint64_t win_off;
    size_t win_len;
};

/* Read exactly n bytes at off. 0 on success, -1 on EOF or I/O error. */
static int rd_read(const struct reader *rd, uint64_t off, void *dst, size_t n)
{
    unsigned char *p = dst;

    if (off > rd->size || n > rd->size - off)
        return -1;
    if (rd->buf) {
        if (n)
            memcpy(dst, rd->buf + off, n);
        return 0;
    }
    while (n > 0) {
        size_t chunk = n > (size_t)1 << 30 ? (size_t)1 << 30 : n;
        ssize_t got = pread(rd->fd, p, chunk, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/*
** Bytes [off, off+n) through the read-ahead window (used for compressed
** clusters, which are small, many and mostly sequential). The pointer is
** valid until the next call. NULL on I/O error or when n > window.
*/
static const unsigned char *rd_window(struct reader *rd, uint64_t off, size_t n)
{
    size_t want;

    if (off > rd->size || n > rd->size - off)
        return NULL;
    if (rd->buf)
        return rd->buf + off;
    if (n > rd->win_cap)
        return NULL;
    if (off >= rd->win_off && off - rd->win_off <= rd->win_len &&
        n <= rd->win_len - (size_t)(off - rd->win_off))
        return rd->win + (off - rd->win_off);
    want = rd->win_cap;
    if (rd->size - off < want)
        want = (size_t)(rd->size - off);
    if (rd_read(rd, off, rd->win, want) != 0) {
        rd->win_len = 0;
        return NULL;
    }
    rd->win_off = off;
    rd->win_len = want;
    return rd->win;
}

/* ---------------------------------------------------------------------
** Check context.
*/
struct snap {
    uint64_t l1_offset;
    uint32_t l1_size;
};

struct ctx {
    struct reader rd;
    struct qcow2_report *r;
    unsigned flags;
    int oom;

    /* first cluster */
    unsigned char *hdr;
    size_t hdr_len;
    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cs; /* cluster size */
    int extl2;
    uint32_t l2_entry_size;
    uint64_t l2_entries;
    int has_data_file;
    uint32_t refcount_order;

    /* what can be walked */
    int deep_ok, l1_ok, reft_ok, snap_ok;
    int incomplete; /* some references not counted: leak counts unreliable */

    /* header extensions */
    int have_crypto;
    uint64_t crypto_off, crypto_len;
    int have_bitmaps;
    uint32_t nb_bitmaps;
    uint64_t bitmap_dir_off, bitmap_dir_size;

    /* deep walk */
    uint64_t host_clusters;
    uint32_t *refs;
    unsigned char *kind;
    unsigned char *reft; /* raw refcount table */
    uint64_t reft_n;
    unsigned char *l1; /* raw active L1 table */
    struct snap *snaps;
    uint32_t nsnaps;
    unsigned char *tbuf; /* one cluster: L2 tables, refcount blocks */
    unsigned char *obuf; /* one cluster: decompressed output */
    uint64_t l2_work;
    int l2_budget_hit;
    uint64_t inflate_limit;  /* decompressed output allowed per check */
    uint64_t inflate_budget; /* bytes of it left */
    int inflate_budget_hit;
    z_stream zs;
    int zs_ready;
    ZSTD_DCtx *zd;
};

static struct qcow2_problem *problem_slot(struct ctx *c, int warn)
{
    struct qcow2_report *r = c->r;
    struct qcow2_problem **arr = warn ? &r->warnings : &r->errors;
    size_t *n = warn ? &r->nwarnings : &r->nerrors;
    size_t *dropped = warn ? &r->warnings_dropped : &r->errors_dropped;

    if (*n >= QCOW2_MAX_PROBLEMS) {
        (*dropped)++;
        return NULL;
    }
    if (*arr == NULL) {
        *arr = calloc(QCOW2_MAX_PROBLEMS, sizeof(**arr));
        if (*arr == NULL) {
            c->oom = 1;
            (*dropped)++;
            return NULL;
        }
    }
    return &(*arr)[(*n)++];
}

static void vadd(struct ctx *c, int warn, enum qcow2_code code, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));
static void vadd(struct ctx *c, int warn, enum qcow2_code code, const char *fmt,
                 va_list ap)
{
    struct qcow2_problem *p = problem_slot(c, warn);

    if (p == NULL)
        return;
    p->code = code;
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
}

static void err(struct ctx *c, enum qcow2_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(struct ctx *c, enum qcow2_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vadd(c, 0, code, fmt, ap);
    va_end(ap);
}

static void warn(struct ctx *c, enum qcow2_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn(struct ctx *c, enum qcow2_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vadd(c, 1, code, fmt, ap);
    va_end(ap);
}

/*
** Is [off, off+len) inside the file? Overflow-safe.
*/
static int in_file(const struct ctx *c, uint64_t off, uint64_t len)
{
    return off <= c->rd.size && len <= c->rd.size - off;
}

/* ---------------------------------------------------------------------
** Format detection for files without the qcow2 magic.
*/
static int probe_at(const struct ctx *c, uint64_t off, const char *magic,
                    size_t n)
{
    unsigned char b[16];

    if (n > sizeof(b) || !in_file(c, off, n) || rd_read(&c->rd, off, b, n))
        return 0;
    return memcmp(b, magic, n) == 0;
}

static int probe_iso(const struct ctx *c)
{
    static const char *const ids[] = {"CD001", "BEA01", "NSR02", "NSR03",
                                      "TEA01", "BOOT2", "CDW02"};
    static const uint64_t offs[] = {0x8001, 0x8801, 0x9001};
    unsigned char b[5];
    size_t i, j;

    for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        if (!in_file(c, offs[i], 5) || rd_read(&c->rd, offs[i], b, 5))
            return 0;
        for (j = 0; j < sizeof(ids) / sizeof(ids[0]); j++)
            if (memcmp(b, ids[j], 5) == 0)
                return 1;
    }
    return 0;
}

static const char *probe_other(const struct ctx *c, const unsigned char *b,
                               size_t n)
{
    if (n >= 4 && memcmp(b, "KDMV", 4) == 0)
        return "a VMDK sparse image (KDMV)";
    if (n >= 4 && memcmp(b, "# Disk Descriptor", n < 17 ? n : 17) == 0)
        return "a VMDK descriptor";
    if (n >= 0x44 && get_be32(b + 0x40) == 0x7f10dabeU)
        return "a VDI image";
    if (n >= 4 && memcmp(b, "QFI", 3) == 0 && b[3] == 0)
        return "a QED image";
    if (n >= 4 && memcmp(b, "QFI", 3) == 0)
        return "a QCOW version 1 or unknown QFI image";
    if (n >= 6 && memcmp(b, "LUKS\xba\xbe", 6) == 0)
        return "a LUKS volume";
    if (n >= 8 && memcmp(b, "vhdxfile", 8) == 0)
        return "a VHDX image";
    if (n >= 8 && memcmp(b, "conectix", 8) == 0)
        return "a VHD image";
    if (probe_iso(c))
        return "an ISO9660/UDF image";
    if (probe_at(c, 512, "EFI PART", 8))
        return "a GPT-partitioned raw disk";
    return NULL;
}

/* ---------------------------------------------------------------------
** First-cluster checks.
*/

static int hdr_need(struct ctx *c, size_t n);

/* Make sure hdr holds [0, n) (n <= cluster or file size). Reads ahead up
 * to limit, doubling, so that walking the extensions reads few times and
 * never the whole 2 MiB cluster for a small extension area. 0 or -1. */
static int hdr_need_ahead(struct ctx *c, size_t n, size_t limit)
{
    if (n <= c->hdr_len)
        return 0;
    if (n < 2 * c->hdr_len)
        n = 2 * c->hdr_len < limit ? 2 * c->hdr_len : limit;
    return hdr_need(c, n);
}

static int hdr_need(struct ctx *c, size_t n)
{
    unsigned char *p;

    if (n <= c->hdr_len)
        return 0;
    p = realloc(c->hdr, n);
    if (p == NULL) {
        c->oom = 1;
        return -1;
    }
    c->hdr = p;
    if (rd_read(&c->rd, c->hdr_len, c->hdr + c->hdr_len, n - c->hdr_len)) {
        err(c, QCOW2_E_IO, "read error in the header cluster at offset %zu",
            c->hdr_len);
        return -1;
    }
    c->hdr_len = n;
    return 0;
}

static void features_text(char *buf, size_t len, uint64_t bits)
{
    size_t used = 0;
    int b;

    buf[0] = 0;
    for (b = 0; b < 64 && used + 4 < len; b++)
        if (bits >> b & 1) {
            int w =
                snprintf(buf + used, len - used, "%s%d", used ? "," : "", b);
            if (w < 0 || (size_t)w >= len - used)
                break;
            used += (size_t)w;
        }
}

/* Printable copy of an extension's text for messages. */
static void printable(char *dst, size_t dlen, const unsigned char *s, size_t n)
{
    size_t i, j = 0;

    for (i = 0; i < n && j + 1 < dlen; i++)
        dst[j++] =
            (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? (char)s[i] : '?';
    dst[j] = 0;
}

static void check_bitmaps_ext(struct ctx *c, const unsigned char *p,
                              uint32_t len, size_t at)
{
    uint32_t reserved;

    if (len != 24) {
        err(c, QCOW2_E_BITMAPS,
            "bitmaps extension at offset %zu has length %u; it must be 24", at,
            len);
        return;
    }
    c->nb_bitmaps = get_be32(p);
    reserved = get_be32(p + 4);
    c->bitmap_dir_size = get_be64(p + 8);
    c->bitmap_dir_off = get_be64(p + 16);
    if (c->nb_bitmaps == 0 || c->nb_bitmaps > MAX_BITMAPS)
        err(c, QCOW2_E_BITMAPS,
            "bitmaps extension: nb_bitmaps %u; allowed 1..%u", c->nb_bitmaps,
            MAX_BITMAPS);
    else if (reserved != 0)
        err(c, QCOW2_E_BITMAPS,
            "bitmaps extension: reserved field is 0x%x; it must be 0",
            reserved);
    else if (c->bitmap_dir_size > MAX_BITMAP_DIR_BYTES ||
             c->bitmap_dir_size < 24ULL * c->nb_bitmaps)
        err(c, QCOW2_E_BITMAPS,
            "bitmaps extension: directory size %llu is not in %llu..%llu for "
            "%u bitmaps",
            (ull)c->bitmap_dir_size, 24ULL * c->nb_bitmaps,
            (ull)MAX_BITMAP_DIR_BYTES, c->nb_bitmaps);
    else if (c->bitmap_dir_off == 0 || (c->bitmap_dir_off & (c->cs - 1)))
        err(c, QCOW2_E_BITMAPS,
            "bitmaps extension: directory offset 0x%llx is not a non-zero "
            "multiple of the cluster size %llu",
            (ull)c->bitmap_dir_off, (ull)c->cs);
    else if (!in_file(c, c->bitmap_dir_off, c->bitmap_dir_size))
        err(c, QCOW2_E_BITMAPS,
            "bitmaps extension: directory at 0x%llx (%llu bytes) ends past "
            "the end of the file (%llu bytes)",
            (ull)c->bitmap_dir_off, (ull)c->bitmap_dir_size, (ull)c->rd.size);
    else
        c->have_bitmaps = 1;
}

/*
** Walk {u32 type, u32 len, data, pad to 8} from header_length up to end,
** terminated by type 0. Every type may appear once.
*/
static void check_extensions(struct ctx *c, size_t start, size_t end)
{
    uint32_t seen[MAX_EXTENSIONS];
    size_t nseen = 0, off = start, i;
    int terminated = 0;

    while (off + 8 <= end) {
        uint32_t type, len;
        const unsigned char *data;
        size_t padded;

        if (hdr_need_ahead(c, off + 8, end))
            return;
        type = get_be32(c->hdr + off);
        len = get_be32(c->hdr + off + 4);

        if (type == EXT_END) {
            terminated = 1;
            break;
        }
        if (len > end - off - 8) {
            err(c, QCOW2_E_HEADER_EXTENSION,
                "header extension 0x%08x at offset %zu has length %u, which "
                "ends past the extension area (ends at %zu)",
                type, off, len, end);
            return;
        }
        if (hdr_need_ahead(c, off + 8 + len, end))
            return;
        data = c->hdr + off + 8;
        for (i = 0; i < nseen; i++)
            if (seen[i] == type)
                break;
        if (i < nseen) {
            err(c, QCOW2_E_HEADER_EXTENSION,
                "header extension 0x%08x at offset %zu appears more than "
                "once; each type is allowed once",
                type, off);
        } else if (nseen == MAX_EXTENSIONS) {
            err(c, QCOW2_E_HEADER_EXTENSION,
                "more than %d header extensions (at offset %zu)",
                MAX_EXTENSIONS, off);
            return;
        } else {
            seen[nseen++] = type;
        }
        switch (type) {
        case EXT_BACKING_FORMAT: {
            char name[40];
            printable(name, sizeof(name), data, len);
            err(c, QCOW2_E_BACKING_FILE,
                "backing format header extension (0xe2792aca, \"%s\") at "
                "offset %zu; backing files are not allowed",
                name, off);
            break;
        }
        case EXT_FEATURE_TABLE:
            if (len % 48)
                err(c, QCOW2_E_HEADER_EXTENSION,
                    "feature name table at offset %zu has length %u; it must "
                    "be a multiple of 48",
                    off, len);
            break;
        case EXT_BITMAPS:
            check_bitmaps_ext(c, data, len, off);
            break;
        case EXT_CRYPTO:
            err(c, QCOW2_E_ENCRYPTED,
                "full disk encryption header extension (0x0537be77) at "
                "offset %zu; encrypted images are not allowed",
                off);
            if (len == 16) {
                c->crypto_off = get_be64(data);
                c->crypto_len = get_be64(data + 8);
                c->have_crypto = 1;
            }
            break;
        case EXT_DATA_FILE: {
            char name[60];
            printable(name, sizeof(name), data, len);
            err(c, QCOW2_E_DATA_FILE,
                "external data file name header extension (0x44415441, "
                "\"%s\") at offset %zu; external data files are not allowed",
                name, off);
            break;
        }
        default:
            break; /* unknown extensions may be ignored (spec) */
        }
        padded = ((size_t)len + 7) & ~(size_t)7;
        if (padded > end - off - 8) {
            off = end;
            break;
        }
        off += 8 + padded;
    }
    if (!terminated)
        err(c, QCOW2_E_HEADER_EXTENSION,
            "header extensions starting at offset %zu are not terminated by "
            "an end entry (type 0) before offset %zu",
            start, end);
}

/*
** Placement of a table: aligned, non-zero, within size limits and within
** the file. Returns 1 when the table can be read.
*/
static int check_table(struct ctx *c, enum qcow2_code code, const char *name,
                       uint64_t off, uint64_t entries, uint64_t esz,
                       uint64_t max_bytes)
{
    uint64_t bytes;

    if (entries > max_bytes / esz) {
        err(c, QCOW2_E_TABLE_TOO_LARGE,
            "%s has %llu entries (%llu bytes each); QEMU allows at most "
            "%llu bytes",
            name, (ull)entries, (ull)esz, (ull)max_bytes);
        return 0;
    }
    bytes = entries * esz;
    if (off & (c->cs - 1)) {
        err(c, code, "%s offset 0x%llx is not aligned to the cluster size %llu",
            name, (ull)off, (ull)c->cs);
        return 0;
    }
    if (bytes == 0)
        return 1;
    if (off == 0) {
        err(c, code,
            "%s offset is 0, the header cluster; it must point past the "
            "header",
            name);
        return 0;
    }
    if (off >= c->rd.size) {
        err(c, code,
            "%s offset 0x%llx is past the end of the file (%llu bytes)", name,
            (ull)off, (ull)c->rd.size);
        return 0;
    }
    if (!in_file(c, off, bytes)) {
        err(c, QCOW2_E_TRUNCATED,
            "%s at 0x%llx (%llu bytes) ends past the end of the file (%llu "
            "bytes): the file is truncated",
            name, (ull)off, (ull)bytes, (ull)c->rd.size);
        return 0;
    }
    return 1;
}

static void check_header(struct ctx *c)
{
    struct qcow2_info *in = &c->r->info;
    uint64_t size = c->rd.size, bfo, incompat, autoclear, need_l1;
    uint32_t bfs, hl = 0, ct = 0;
    size_t n0, i, min_len;
    int cb_ok, hl_ok = 0, ro_ok;
    const char *other;
    char bits[200];

    in->file_size = size;
    if (size == 0) {
        err(c, QCOW2_E_NOT_QCOW2,
            "empty file (0 bytes); a QCOW2 v3 image is required");
        return;
    }
    n0 = size < 4096 ? (size_t)size : 4096;
    c->hdr = malloc(n0);
    if (c->hdr == NULL) {
        c->oom = 1;
        return;
    }
    if (rd_read(&c->rd, 0, c->hdr, n0)) {
        err(c, QCOW2_E_IO, "cannot read the first %zu bytes", n0);
        return;
    }
    c->hdr_len = n0;
    if (n0 < 4 || memcmp(c->hdr, "QFI\xfb", 4) != 0) {
        other = probe_other(c, c->hdr, n0);
        err(c, QCOW2_E_NOT_QCOW2,
            "no QCOW2 magic QFI\\xfb at offset 0: the file looks like %s; a "
            "QCOW2 v3 image is required",
            other ? other : "raw data");
        return;
    }
    c->r->is_qcow2 = 1;

    /* Another format's signature too: refuse polyglots (oslo). */
    if (probe_iso(c))
        err(c, QCOW2_E_POLYGLOT,
            "an ISO9660/UDF volume descriptor is at offset 0x8001, 0x8801 or "
            "0x9001 as well as the QCOW2 magic at 0; the file must be "
            "exactly one format");
    if (probe_at(c, 512, "EFI PART", 8))
        err(c, QCOW2_E_POLYGLOT,
            "a GPT header signature (EFI PART) is at offset 512 as well as "
            "the QCOW2 magic at 0; the file must be exactly one format");

    if (n0 < 8) {
        err(c, QCOW2_E_TRUNCATED,
            "file is %zu bytes: too short for a QCOW2 header (104 bytes)", n0);
        return;
    }
    c->version = get_be32(c->hdr + 4);
    in->version = c->version;
    min_len = c->version == 2 ? 72 : 104;
    if (n0 < min_len) {
        err(c, QCOW2_E_TRUNCATED,
            "file is %zu bytes: too short for a version %u QCOW2 header "
            "(%zu bytes)",
            n0, c->version, min_len);
        return;
    }

    bfo = get_be64(c->hdr + 8);
    bfs = get_be32(c->hdr + 16);
    c->cluster_bits = get_be32(c->hdr + 20);
    in->cluster_bits = c->cluster_bits;
    in->virtual_size = get_be64(c->hdr + 24);
    in->crypt_method = get_be32(c->hdr + 32);
    in->l1_size = get_be32(c->hdr + 36);
    in->l1_table_offset = get_be64(c->hdr + 40);
    in->refcount_table_offset = get_be64(c->hdr + 48);
    in->refcount_table_clusters = get_be32(c->hdr + 56);
    in->nb_snapshots = get_be32(c->hdr + 60);
    in->snapshots_offset = get_be64(c->hdr + 64);
    if (c->version == 2) {
        in->refcount_order = 4;
        in->header_length = 72;
        hl = 72;
    } else {
        in->incompatible_features = get_be64(c->hdr + 72);
        in->compatible_features = get_be64(c->hdr + 80);
        in->autoclear_features = get_be64(c->hdr + 88);
        in->refcount_order = get_be32(c->hdr + 96);
        hl = get_be32(c->hdr + 100);
        in->header_length = hl;
        if (hl > 104 && n0 > 104)
            in->compression_type = c->hdr[104];
    }
    incompat = in->incompatible_features;
    autoclear = in->autoclear_features;
    c->refcount_order = in->refcount_order;
    ro_ok = c->refcount_order <= 6;
    if (ro_ok)
        in->refcount_bits = 1U << c->refcount_order;

    /* Version. */
    if (c->version == 2)
        err(c, QCOW2_E_VERSION,
            "QCOW2 version 2 (compat=0.10); version 3 (compat=1.1) is "
            "required");
    else if (c->version != 3)
        err(c, QCOW2_E_VERSION,
            "unsupported QCOW2 version %u at offset 4; version 3 (compat=1.1) "
            "is required",
            c->version);

    /* Cluster size. */
    c->extl2 = (incompat & QCOW2_INCOMPAT_EXTL2) != 0;
    cb_ok = c->cluster_bits >= 9 && c->cluster_bits <= 21;
    if (!cb_ok)
        err(c, QCOW2_E_CLUSTER_BITS,
            "cluster_bits %u at offset 20; allowed 9..21 (512 B to 2 MiB "
            "clusters)",
            c->cluster_bits);
    else if (c->extl2 && c->cluster_bits < 14) {
        err(c, QCOW2_E_CLUSTER_BITS,
            "cluster_bits %u with extended L2 entries; allowed 14..21 (16 KiB "
            "to 2 MiB clusters)",
            c->cluster_bits);
        cb_ok = 0;
    }
    if (cb_ok) {
        c->cs = 1ULL << c->cluster_bits;
        in->cluster_size = c->cs;
        in->host_clusters =
            (size >> c->cluster_bits) + ((size & (c->cs - 1)) != 0);
        c->l2_entry_size = c->extl2 ? 16 : 8;
        c->l2_entries = c->cs / c->l2_entry_size;
    }

    /* Header length, compression type and padding (v3). */
    if (c->version != 2) {
        if (hl < 104)
            err(c, QCOW2_E_HEADER_LENGTH,
                "header_length %u at offset 100 is below 104, the version 3 "
                "minimum",
                hl);
        else if (hl % 8)
            err(c, QCOW2_E_HEADER_LENGTH,
                "header_length %u at offset 100 is not a multiple of 8", hl);
        else if (cb_ok && hl > c->cs)
            err(c, QCOW2_E_HEADER_LENGTH,
                "header_length %u at offset 100 exceeds the cluster size "
                "%llu",
                hl, (ull)c->cs);
        else if (hl > size)
            err(c, QCOW2_E_HEADER_LENGTH,
                "header_length %u at offset 100 is past the end of the file "
                "(%llu bytes)",
                hl, (ull)size);
        else
            hl_ok = cb_ok;
        if (hl_ok && hdr_need(c, hl) == 0) {
            if (hl > 104) {
                ct = c->hdr[104];
                for (i = 105; i < 112 && i < hl; i++)
                    if (c->hdr[i]) {
                        err(c, QCOW2_E_PADDING,
                            "header padding byte %zu is 0x%02x; bytes "
                            "105..111 must be zero",
                            i, c->hdr[i]);
                        break;
                    }
                for (i = 112; i < hl; i++)
                    if (c->hdr[i]) {
                        err(c, QCOW2_E_PADDING,
                            "header byte %zu (in the unknown fields 112..%u "
                            "covered by header_length) is 0x%02x; it must be "
                            "zero",
                            i, hl - 1, c->hdr[i]);
                        break;
                    }
            }
        } else if (!hl_ok && hl > 104 && n0 > 104) {
            ct = c->hdr[104];
        }
        if (ct > 1)
            err(c, QCOW2_E_COMPRESSION_TYPE,
                "compression_type %u at offset 104; allowed 0 (zlib) or 1 "
                "(zstd)",
                ct);
        else if (ct == 1 && !(incompat & QCOW2_INCOMPAT_COMPRESSION))
            err(c, QCOW2_E_COMPRESSION_TYPE,
                "compression_type 1 (zstd) without incompatible feature bit 3; "
                "the bit must be set for a non-zlib type");
        else if (ct == 0 && (incompat & QCOW2_INCOMPAT_COMPRESSION))
            err(c, QCOW2_E_COMPRESSION_TYPE,
                "incompatible feature bit 3 (compression type) is set but "
                "compression_type is 0 (zlib); the bit is only allowed with "
                "zstd");
        in->compression_type = ct;
    }

    /* Feature bits. */
    if (incompat & ~0x1fULL) {
        features_text(bits, sizeof(bits), incompat & ~0x1fULL);
        err(c, QCOW2_E_INCOMPAT_UNKNOWN,
            "unknown incompatible feature bit(s) %s at offset 72; only bits "
            "0..4 are defined",
            bits);
    }
    if (incompat & QCOW2_INCOMPAT_DIRTY)
        err(c, QCOW2_E_DIRTY,
            "incompatible feature bit 0 (dirty) is set: refcounts may be "
            "stale; repair with qemu-img check -r all");
    if (incompat & QCOW2_INCOMPAT_CORRUPT)
        err(c, QCOW2_E_CORRUPT,
            "incompatible feature bit 1 (corrupt) is set: QEMU marked the "
            "image corrupt");
    if (incompat & QCOW2_INCOMPAT_DATA_FILE) {
        c->has_data_file = 1;
        err(c, QCOW2_E_DATA_FILE,
            "incompatible feature bit 2 (external data file) is set; "
            "external data files are not allowed");
    }
    if (autoclear & QCOW2_AUTOCLEAR_DATA_RAW)
        err(c, QCOW2_E_DATA_FILE,
            "autoclear feature bit 1 (raw external data) is set; external "
            "data files are not allowed");
    if (autoclear & ~0x3ULL) {
        features_text(bits, sizeof(bits), autoclear & ~0x3ULL);
        warn(c, QCOW2_W_UNKNOWN_AUTOCLEAR,
             "unknown autoclear feature bit(s) %s at offset 88; QEMU clears "
             "them on write",
             bits);
    }

    /* Encryption, refcount width, backing file. */
    if (in->crypt_method != 0)
        err(c, QCOW2_E_ENCRYPTED,
            "crypt_method %u at offset 32 (%s); only 0 (none) is allowed",
            in->crypt_method,
            in->crypt_method == 1   ? "AES"
            : in->crypt_method == 2 ? "LUKS"
                                    : "unknown");
    if (!ro_ok)
        err(c, QCOW2_E_REFCOUNT_ORDER,
            "refcount_order %u at offset 96; allowed 0..6 (1 to 64-bit "
            "refcounts)",
            c->refcount_order);
    if (bfo != 0)
        err(c, QCOW2_E_BACKING_FILE,
            "backing_file_offset is 0x%llx (name length %u); backing files "
            "are not allowed",
            (ull)bfo, bfs);
    else if (bfs != 0)
        warn(c, QCOW2_W_BACKING_SIZE,
             "backing_file_size is %u but there is no backing file "
             "(backing_file_offset 0)",
             bfs);

    /* Header extensions: from header_length to the backing file name or
     * the end of the first cluster. */
    if (c->version == 3 && hl_ok) {
        uint64_t end = c->cs;
        if (bfo != 0 && bfo < end && bfo >= hl)
            end = bfo;
        if (end > size)
            end = size;
        check_extensions(c, hl, (size_t)end);
    }
    if ((autoclear & QCOW2_AUTOCLEAR_BITMAPS) && !c->have_bitmaps &&
        c->nb_bitmaps == 0)
        warn(c, QCOW2_W_UNKNOWN_AUTOCLEAR,
             "autoclear feature bit 0 (bitmaps) is set without a bitmaps "
             "header extension; QEMU ignores it");

    if (!cb_ok)
        return; /* table placement needs the cluster size */

    /* Tables. */
    c->l1_ok = check_table(c, QCOW2_E_L1_TABLE, "active L1 table",
                           in->l1_table_offset, in->l1_size, 8, MAX_L1_BYTES);
    if (in->refcount_table_clusters == 0) {
        err(c, QCOW2_E_REFCOUNT_TABLE,
            "refcount_table_clusters is 0 at offset 56; at least one cluster "
            "is required");
    } else {
        c->reft_ok =
            check_table(c, QCOW2_E_REFCOUNT_TABLE, "refcount table",
                        in->refcount_table_offset, in->refcount_table_clusters,
                        c->cs, MAX_REFTABLE_BYTES);
    }
    if (in->nb_snapshots > MAX_SNAPSHOTS) {
        err(c, QCOW2_E_TABLE_TOO_LARGE,
            "nb_snapshots %u at offset 60; QEMU allows at most %llu",
            in->nb_snapshots, (ull)MAX_SNAPSHOTS);
    } else if (in->snapshots_offset & (c->cs - 1)) {
        err(c, QCOW2_E_SNAPSHOT_TABLE,
            "snapshots_offset 0x%llx is not aligned to the cluster size %llu",
            (ull)in->snapshots_offset, (ull)c->cs);
    } else if (in->nb_snapshots > 0 && in->snapshots_offset == 0) {
        err(c, QCOW2_E_SNAPSHOT_TABLE,
            "snapshots_offset is 0 (the header) with %u snapshots",
            in->nb_snapshots);
    } else if (in->nb_snapshots > 0 &&
               !in_file(c, in->snapshots_offset, 40ULL * in->nb_snapshots)) {
        err(c, QCOW2_E_SNAPSHOT_TABLE,
            "snapshot table at 0x%llx with %u entries (at least 40 bytes "
            "each) ends past the end of the file (%llu bytes)",
            (ull)in->snapshots_offset, in->nb_snapshots, (ull)size);
    } else {
        c->snap_ok = 1;
    }

    /* The L1 table must cover the virtual size (QEMU: size_to_l1). */
    {
        uint32_t shift =
            c->cluster_bits + c->cluster_bits - (c->extl2 ? 4U : 3U);
        need_l1 = (in->virtual_size >> shift) +
                  ((in->virtual_size & ((1ULL << shift) - 1)) != 0);
        if (need_l1 > INT_MAX)
            err(c, QCOW2_E_L1_TOO_SMALL,
                "virtual size %llu needs %llu L1 entries; QEMU allows at "
                "most %d",
                (ull)in->virtual_size, (ull)need_l1, INT_MAX);
        else if (in->l1_size < need_l1)
            err(c, QCOW2_E_L1_TOO_SMALL,
                "l1_size %u is too small for the virtual size %llu; at least "
                "%llu entries are needed",
                in->l1_size, (ull)in->virtual_size, (ull)need_l1);
    }

    c->deep_ok = (c->version == 2 || c->version == 3) && ro_ok &&
                 (c->version == 2 || hl_ok);
}

/* ---------------------------------------------------------------------
** Deep walk.
*/

/* Count a reference to cluster cl and record its kind. Returns the old
 * kind when the cluster already holds a different (or unshareable)
 * structure, else 0. */
static int mark(struct ctx *c, uint64_t cl, int kind)
{
    unsigned char *k = &c->kind[cl];
    int old = *k & K_MASK;

    if (c->refs[cl] != UINT32_MAX)
        c->refs[cl]++;
    if (old == K_FREE) {
        *k = (unsigned char)((*k & ~K_MASK) | kind);
        return 0;
    }
    if (old == kind && (kind == K_L2 || kind == K_DATA || kind == K_COMPRESSED))
        return 0;
    return old;
}

/* Mark a byte range (already checked to be in the file). */
static void mark_range(struct ctx *c, uint64_t off, uint64_t len, int kind,
                       const char *what)
{
    uint64_t cl, last;

    if (len == 0)
        return;
    last = (off + len - 1) >> c->cluster_bits;
    for (cl = off >> c->cluster_bits; cl <= last && cl < c->host_clusters;
         cl++) {
        int old = mark(c, cl, kind);
        if (old)
            err(c, QCOW2_E_OVERLAP,
                "%s at 0x%llx overlaps the %s in cluster %llu (offset 0x%llx)",
                what, (ull)off, kind_names[old], (ull)cl,
                (ull)(cl << c->cluster_bits));
    }
}

static unsigned char *read_table(struct ctx *c, uint64_t off, uint64_t bytes,
                                 const char *what)
{
    unsigned char *p;

    p = malloc(bytes ? (size_t)bytes : 1);
    if (p == NULL) {
        c->oom = 1;
        return NULL;
    }
    if (rd_read(&c->rd, off, p, (size_t)bytes)) {
        err(c, QCOW2_E_IO, "read error in the %s at 0x%llx", what, (ull)off);
        free(p);
        return NULL;
    }
    return p;
}

/* Refcount table: entries, refcount blocks. */
static void walk_reftable(struct ctx *c)
{
    const struct qcow2_info *in = &c->r->info;
    uint64_t bytes = (uint64_t)in->refcount_table_clusters << c->cluster_bits;
    uint64_t i;

    c->reft = read_table(c, in->refcount_table_offset, bytes, "refcount table");
    if (c->reft == NULL) {
        c->reft_ok = 0;
        return;
    }
    c->reft_n = bytes / 8;
    mark_range(c, in->refcount_table_offset, bytes, K_REFTABLE,
               "refcount table");
    for (i = 0; i < c->reft_n; i++) {
        uint64_t e = get_be64(c->reft + i * 8);
        uint64_t off = e & REFT_OFFSET_MASK;
        int old;

        if (e == 0)
            continue;
        if (e & REFT_RESERVED_MASK) {
            err(c, QCOW2_E_REFCOUNT_ENTRY,
                "refcount table entry %llu (0x%016llx) has reserved bits "
                "0..8 set; they must be zero",
                (ull)i, (ull)e);
        } else if (off & (c->cs - 1)) {
            err(c, QCOW2_E_REFCOUNT_ENTRY,
                "refcount table entry %llu: refcount block offset 0x%llx is "
                "not cluster aligned",
                (ull)i, (ull)off);
        } else if (!in_file(c, off, c->cs)) {
            err(c, QCOW2_E_REFCOUNT_ENTRY,
                "refcount table entry %llu: refcount block at 0x%llx is past "
                "the end of the file (%llu bytes)",
                (ull)i, (ull)off, (ull)c->rd.size);
        } else {
            old = mark(c, off >> c->cluster_bits, K_REFBLOCK);
            if (old)
                err(c, QCOW2_E_OVERLAP,
                    "refcount block at 0x%llx (refcount table entry %llu) "
                    "overlaps the %s",
                    (ull)off, (ull)i, kind_names[old]);
            continue;
        }
        /* unusable entry: the comparison treats its clusters as 0 */
        c->reft[i * 8] = 0xff; /* sentinel: reserved bits make it invalid */
    }
}

/* Is refcount table entry i a usable refcount block? */
static uint64_t refblock_at(const struct ctx *c, uint64_t i)
{
    uint64_t e;

    if (i >= c->reft_n)
        return 0;
    e = get_be64(c->reft + i * 8);
    if ((e & REFT_RESERVED_MASK) || (e & (c->cs - 1)) ||
        !in_file(c, e & REFT_OFFSET_MASK, c->cs))
        return 0;
    return e & REFT_OFFSET_MASK;
}

/* Validate one L1 entry; the L2 offset or 0. */
static uint64_t l1_entry(struct ctx *c, uint64_t e, uint64_t idx,
                         const char *which, int report)
{
    uint64_t off = e & L1E_OFFSET_MASK;

    if (e & L1E_RESERVED_MASK) {
        if (report)
            err(c, QCOW2_E_L1_ENTRY,
                "%s entry %llu (0x%016llx) has reserved bits set (bits 0..8 "
                "and 56..62 must be zero)",
                which, (ull)idx, (ull)e);
        return 0;
    }
    if (off == 0)
        return 0;
    if (off & (c->cs - 1)) {
        if (report)
            err(c, QCOW2_E_L1_ENTRY,
                "%s entry %llu: L2 table offset 0x%llx is not cluster aligned",
                which, (ull)idx, (ull)off);
        return 0;
    }
    if (!in_file(c, off, c->cs)) {
        if (report)
            err(c, QCOW2_E_L1_ENTRY,
                "%s entry %llu: L2 table at 0x%llx is past the end of the "
                "file (%llu bytes)",
                which, (ull)idx, (ull)off, (ull)c->rd.size);
        return 0;
    }
    return off;
}

/* Pass A: mark the L2 tables of one L1 table. */
static void mark_l2_tables(struct ctx *c, const unsigned char *l1, uint32_t n,
                           const char *which, int active)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        uint64_t e = get_be64(l1 + (size_t)i * 8);
        uint64_t off = l1_entry(c, e, i, which, 1);
        uint64_t cl;
        int old;

        if (off == 0)
            continue;
        cl = off >> c->cluster_bits;
        old = mark(c, cl, K_L2);
        if (old)
            err(c, QCOW2_E_OVERLAP,
                "L2 table at 0x%llx (%s entry %u) overlaps the %s", (ull)off,
                which, i, kind_names[old]);
        if (active)
            c->kind[cl] |= (e & OFLAG_COPIED) ? F_COPIED_SET : F_COPIED_CLEAR;
    }
}

/* Decompress one compressed cluster; 0 when it gives exactly one cluster. */
static int decompress(struct ctx *c, const unsigned char *src, size_t n,
                      const char **why)
{
    const struct qcow2_info *in = &c->r->info;

    if (in->compression_type == 1) {
        ZSTD_inBuffer zin = {src, n, 0};
        ZSTD_outBuffer zout = {c->obuf, (size_t)c->cs, 0};
        size_t ret = 1;

        if (c->zd == NULL) {
            c->zd = ZSTD_createDCtx();
            if (c->zd == NULL) {
                c->oom = 1;
                *why = "out of memory";
                return -1;
            }
            ZSTD_DCtx_setParameter(c->zd, ZSTD_d_windowLogMax,
                                   ZSTD_WINDOW_LOG_MAX);
        }
        ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
        /* As QEMU's qcow2_zstd_decompress: fill exactly one cluster and
         * the frame must be complete. */
        while (zout.pos < zout.size) {
            size_t in_pos = zin.pos, out_pos = zout.pos;
            ret = ZSTD_decompressStream(c->zd, &zout, &zin);
            if (ZSTD_isError(ret)) {
                *why = ZSTD_getErrorName(ret);
                return -1;
            }
            if (zin.pos <= in_pos && zout.pos <= out_pos) {
                *why = "the zstd stream ends before one full cluster";
                return -1;
            }
        }
        if (ret != 0) {
            *why = "the zstd frame produces more than one cluster or is "
                   "not complete";
            return -1;
        }
        return 0;
    }

    if (!c->zs_ready) {
        memset(&c->zs, 0, sizeof(c->zs));
        if (inflateInit2(&c->zs, -12) != Z_OK) {
            c->oom = 1;
            *why = "inflateInit2 failed";
            return -1;
        }
        c->zs_ready = 1;
    } else if (inflateReset(&c->zs) != Z_OK) {
        *why = "inflateReset failed";
        return -1;
    }
    {
        unsigned char extra;
        int ret;

        c->zs.next_in = (unsigned char *)(uintptr_t)src;
        c->zs.avail_in = (uInt)n;
        c->zs.next_out = c->obuf;
        c->zs.avail_out = (uInt)c->cs;
        ret = inflate(&c->zs, Z_FINISH);
        if (ret == Z_STREAM_END && c->zs.avail_out == 0)
            return 0;
        if (ret == Z_STREAM_END || c->zs.avail_out != 0) {
            *why = ret == Z_DATA_ERROR ? "invalid deflate data"
                                       : "inflates to less than one cluster";
            return -1;
        }
        /* The output is full but the stream has not ended: QEMU accepts
         * this (the input is only known to sector precision). Refuse only
         * if the stream would produce more output. */
        c->zs.next_out = &extra;
        c->zs.avail_out = 1;
        ret = inflate(&c->zs, Z_FINISH);
        if (c->zs.avail_out == 0) {
            *why = "inflates to more than one cluster";
            return -1;
        }
        (void)ret;
        return 0;
    }
}

/* One compressed L2 entry. */
static void l2_compressed(struct ctx *c, uint64_t e, uint64_t bm,
                          uint64_t l2off, uint64_t idx, int report, int active)
{
    uint32_t x = 62 - (c->cluster_bits - 8);
    uint64_t coff = e & ((1ULL << x) - 1);
    uint64_t nsec = ((e >> x) & ((1ULL << (c->cluster_bits - 8)) - 1)) + 1;
    uint64_t end = (coff & ~511ULL) + nsec * 512;
    uint64_t first, last, cl, rlen;
    const unsigned char *src;
    const char *why = NULL;

    if (e & OFLAG_COPIED) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: compressed cluster has the "
                "COPIED bit set; it must be clear",
                (ull)l2off, (ull)idx);
        return;
    }
    if (c->extl2 && bm != 0) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: compressed cluster with a "
                "non-zero subcluster bitmap 0x%016llx; it must be 0",
                (ull)l2off, (ull)idx, (ull)bm);
        return;
    }
    if (c->has_data_file) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: compressed clusters are not "
                "allowed with an external data file",
                (ull)l2off, (ull)idx);
        return;
    }
    /* The descriptor covers whole 512-byte sectors. qemu-img 7.2 convert -c
     * pads the file to the end of the last sector (checked), but a writer
     * that stops at the end of the data leaves the last range ending past
     * EOF inside the last host cluster: clamp reading to the file and only
     * refuse a range that reaches a cluster past EOF. */
    last = (end - 1) >> c->cluster_bits;
    if (coff >= c->rd.size || last >= c->host_clusters) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: compressed data at "
                "0x%llx..0x%llx is past the end of the file (%llu bytes)",
                (ull)l2off, (ull)idx, (ull)coff, (ull)end, (ull)c->rd.size);
        return;
    }
    first = coff >> c->cluster_bits;
    for (cl = first; cl <= last; cl++) {
        int old = mark(c, cl, K_COMPRESSED);
        if (old && report)
            err(c, QCOW2_E_OVERLAP,
                "compressed cluster at 0x%llx (L2 table 0x%llx entry %llu) "
                "overlaps the %s in cluster %llu",
                (ull)coff, (ull)l2off, (ull)idx, kind_names[old], (ull)cl);
    }
    if (active) {
        c->r->info.allocated_clusters++;
        c->r->info.compressed_clusters++;
    }
    if (!report)
        return;
    if (c->inflate_budget < c->cs) {
        if (!c->inflate_budget_hit)
            err(c, QCOW2_E_LIMIT,
                "compressed clusters decompress to more than %llu bytes (64 "
                "times the file size, at least 1 GiB); stopped at L2 table "
                "0x%llx entry %llu",
                (ull)c->inflate_limit, (ull)l2off, (ull)idx);
        c->inflate_budget_hit = 1;
        return;
    }
    c->inflate_budget -= c->cs;
    rlen = (end > c->rd.size ? c->rd.size : end) - coff;
    src = rd_window(&c->rd, coff, (size_t)rlen);
    if (src == NULL) {
        err(c, QCOW2_E_IO, "read error in compressed data at 0x%llx",
            (ull)coff);
        return;
    }
    if (decompress(c, src, (size_t)rlen, &why))
        err(c, QCOW2_E_COMPRESSED,
            "compressed cluster at 0x%llx (%llu bytes, L2 table 0x%llx entry "
            "%llu): %s; it must decompress to exactly %llu bytes",
            (ull)coff, (ull)rlen, (ull)l2off, (ull)idx, why, (ull)c->cs);
}

/* One standard L2 entry. */
static void l2_standard(struct ctx *c, uint64_t e, uint64_t bm, uint64_t l2off,
                        uint64_t idx, int report, int active)
{
    uint64_t off = e & L2E_OFFSET_MASK;
    uint32_t alloc = (uint32_t)bm, zero = (uint32_t)(bm >> 32);
    uint64_t cl;
    int old;

    if (e & L2E_STD_RESERVED_MASK) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu (0x%016llx) has reserved bits set "
                "(bits 1..8 and 56..61 must be zero)",
                (ull)l2off, (ull)idx, (ull)e);
        return;
    }
    if (c->extl2 && (e & OFLAG_ZERO)) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: bit 0 (zero) is set with extended "
                "L2 entries; the zero bitmap must be used instead",
                (ull)l2off, (ull)idx);
        return;
    }
    if (off == 0) {
        if ((e & OFLAG_COPIED) && !c->has_data_file) {
            if (report)
                err(c, QCOW2_E_L2_ENTRY,
                    "L2 table 0x%llx entry %llu: offset 0 with the COPIED bit "
                    "set; that is only valid with an external data file",
                    (ull)l2off, (ull)idx);
        } else if (c->extl2 && alloc) {
            if (report)
                err(c, QCOW2_E_L2_ENTRY,
                    "L2 table 0x%llx entry %llu: unallocated cluster with "
                    "subcluster allocation bits 0x%08x set",
                    (ull)l2off, (ull)idx, alloc);
        }
        return;
    }
    if (c->extl2 && (alloc & zero)) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: subclusters 0x%08x are marked "
                "both allocated and zero",
                (ull)l2off, (ull)idx, alloc & zero);
        return;
    }
    if (off & (c->cs - 1)) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: data offset 0x%llx is not "
                "cluster aligned",
                (ull)l2off, (ull)idx, (ull)off);
        return;
    }
    if (c->has_data_file)
        return; /* the offset is in the external file: nothing to count */
    if (off >= c->rd.size) {
        if (report)
            err(c, QCOW2_E_L2_ENTRY,
                "L2 table 0x%llx entry %llu: data cluster 0x%llx is past the "
                "end of the file (%llu bytes)",
                (ull)l2off, (ull)idx, (ull)off, (ull)c->rd.size);
        return;
    }
    cl = off >> c->cluster_bits;
    old = mark(c, cl, K_DATA);
    if (old && report)
        err(c, QCOW2_E_OVERLAP,
            "data cluster 0x%llx (L2 table 0x%llx entry %llu) overlaps the %s",
            (ull)off, (ull)l2off, (ull)idx, kind_names[old]);
    if (active) {
        c->r->info.allocated_clusters++;
        c->kind[cl] |= (e & OFLAG_COPIED) ? F_COPIED_SET : F_COPIED_CLEAR;
    }
}

/* Pass B: walk the L2 tables of one L1 table. */
static void walk_l2_tables(struct ctx *c, const unsigned char *l1, uint32_t n,
                           const char *which, int active)
{
    uint32_t i;
    uint64_t j;

    for (i = 0; i < n && !c->oom; i++) {
        uint64_t off = l1_entry(c, get_be64(l1 + (size_t)i * 8), i, which, 0);
        uint64_t cl;
        int report;

        if (off == 0)
            continue;
        cl = off >> c->cluster_bits;
        if ((c->kind[cl] & K_MASK) != K_L2) {
            c->incomplete = 1; /* overlapping: do not read it as an L2 */
            continue;
        }
        if (c->l2_work + c->l2_entries > MAX_L2_WORK) {
            if (!c->l2_budget_hit)
                err(c, QCOW2_E_LIMIT,
                    "the L1 tables reference more than %llu L2 entries in "
                    "total; the walk stops at %s entry %u",
                    (ull)MAX_L2_WORK, which, i);
            c->l2_budget_hit = 1;
            c->incomplete = 1;
            return;
        }
        c->l2_work += c->l2_entries;
        if (rd_read(&c->rd, off, c->tbuf, (size_t)c->cs)) {
            err(c, QCOW2_E_IO, "read error in the L2 table at 0x%llx",
                (ull)off);
            c->incomplete = 1;
            continue;
        }
        report = !(c->kind[cl] & F_L2_CHECKED);
        c->kind[cl] |= F_L2_CHECKED;
        for (j = 0; j < c->l2_entries; j++) {
            const unsigned char *p = c->tbuf + j * c->l2_entry_size;
            uint64_t e = get_be64(p);
            uint64_t bm = c->extl2 ? get_be64(p + 8) : 0;

            if (e == 0 && bm == 0)
                continue;
            if (e & OFLAG_COMPRESSED)
                l2_compressed(c, e, bm, off, j, report, active);
            else
                l2_standard(c, e, bm, off, j, report, active);
        }
    }
}

/* Snapshot table: entries and their L1 tables. */
static void walk_snapshot_table(struct ctx *c)
{
    const struct qcow2_info *in = &c->r->info;
    uint64_t off = in->snapshots_offset;
    uint32_t i;
    unsigned char h[40];

    c->snaps = calloc(in->nb_snapshots, sizeof(*c->snaps));
    if (c->snaps == NULL) {
        c->oom = 1;
        return;
    }
    for (i = 0; i < in->nb_snapshots; i++) {
        uint64_t l1o, len;
        uint32_t l1s, extra;
        uint16_t idl, nml;

        if (!in_file(c, off, 40) || rd_read(&c->rd, off, h, 40)) {
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u: entry header at 0x%llx is past the end of the "
                "file (%llu bytes)",
                i, (ull)off, (ull)c->rd.size);
            c->incomplete = 1;
            break;
        }
        l1o = get_be64(h);
        l1s = get_be32(h + 8);
        idl = get_be16(h + 12);
        nml = get_be16(h + 14);
        extra = get_be32(h + 36);
        if (extra > MAX_SNAPSHOT_EXTRA) {
            /* Reported, and the entry is not used; the walk goes on over
             * it so that the table's size is still checked. */
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u at 0x%llx: extra data size %u; QEMU allows at "
                "most %u",
                i, (ull)off, extra, MAX_SNAPSHOT_EXTRA);
            c->incomplete = 1;
        } else if (c->version >= 3 && extra < 16)
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u at 0x%llx: extra data size %u; version 3 "
                "requires at least 16 (VM state size and disk size)",
                i, (ull)off, extra);
        /* qemu does not write the padding after the last entry: bound the
         * unpadded length, advance by the padded one. */
        len = 40ULL + extra + idl + nml;
        if (!in_file(c, off, len)) {
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u at 0x%llx: entry of %llu bytes (id length %u, "
                "name length %u, extra %u) ends past the end of the file "
                "(%llu bytes)",
                i, (ull)off, (ull)len, idl, nml, extra, (ull)c->rd.size);
            c->incomplete = 1;
            break;
        }
        /* QEMU bounds where each entry ends, not where it starts (iotest
         * 261 "Snapshot table too big"; 2026-12-04 fix: an entry starting
         * below the limit and ending past it was accepted). Both values
         * are below the file size: no overflow. */
        if (off + len - in->snapshots_offset > MAX_SNAPSHOTS_BYTES) {
            err(c, QCOW2_E_TABLE_TOO_LARGE,
                "snapshot %u at 0x%llx ends %llu bytes into the snapshot "
                "table; QEMU allows at most %llu bytes (Snapshot table is "
                "too big)",
                i, (ull)off, (ull)(off + len - in->snapshots_offset),
                (ull)MAX_SNAPSHOTS_BYTES);
            c->incomplete = 1;
            break;
        }
        len = (len + 7) & ~7ULL;
        if (extra > MAX_SNAPSHOT_EXTRA) {
            off += len;
            continue;
        }
        if (l1s > MAX_L1_BYTES / 8)
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u: L1 table of %u entries; QEMU allows at most %llu",
                i, l1s, (ull)(MAX_L1_BYTES / 8));
        else if (l1o & (c->cs - 1))
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u: L1 table offset 0x%llx is not cluster aligned", i,
                (ull)l1o);
        else if (l1s > 0 && l1o == 0)
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u: L1 table offset is 0 (the header)", i);
        else if (!in_file(c, l1o, 8ULL * l1s))
            err(c, QCOW2_E_SNAPSHOT,
                "snapshot %u: L1 table at 0x%llx (%u entries) ends past the "
                "end of the file (%llu bytes)",
                i, (ull)l1o, l1s, (ull)c->rd.size);
        else {
            c->snaps[c->nsnaps].l1_offset = l1o;
            c->snaps[c->nsnaps].l1_size = l1s;
            c->nsnaps++;
            off += len;
            continue;
        }
        c->incomplete = 1;
        off += len;
    }
    mark_range(c, in->snapshots_offset, off - in->snapshots_offset, K_SNAPTABLE,
               "snapshot table");
    for (i = 0; i < c->nsnaps; i++) {
        char what[40];
        snprintf(what, sizeof(what), "snapshot %u L1 table", i);
        mark_range(c, c->snaps[i].l1_offset, 8ULL * c->snaps[i].l1_size,
                   K_SNAPL1, what);
    }
}

/* Bitmap directory, bitmap tables and bitmap data clusters. */
static void walk_bitmaps(struct ctx *c)
{
    unsigned char *dir = NULL, *tab = NULL;
    uint64_t off = 0, sz = c->bitmap_dir_size;
    uint32_t i;

    dir = read_table(c, c->bitmap_dir_off, sz, "bitmap directory");
    if (dir == NULL) {
        c->incomplete = 1;
        return;
    }
    mark_range(c, c->bitmap_dir_off, sz, K_BITMAPDIR, "bitmap directory");
    for (i = 0; i < c->nb_bitmaps; i++) {
        uint64_t tofs, len, j;
        uint32_t tsize, extra, flags;
        uint16_t nml;

        if (off > sz || sz - off < 24) {
            err(c, QCOW2_E_BITMAPS,
                "bitmap directory entry %u at 0x%llx is past the directory "
                "size %llu",
                i, (ull)(c->bitmap_dir_off + off), (ull)sz);
            goto incomplete;
        }
        tofs = get_be64(dir + off);
        tsize = get_be32(dir + off + 8);
        flags = get_be32(dir + off + 12);
        nml = get_be16(dir + off + 18);
        extra = get_be32(dir + off + 20);
        len = (24ULL + extra + nml + 7) & ~7ULL;
        if (len > sz - off) {
            err(c, QCOW2_E_BITMAPS,
                "bitmap directory entry %u (name length %u, extra %u) ends "
                "past the directory size %llu",
                i, nml, extra, (ull)sz);
            goto incomplete;
        }
        if (dir[off + 16] != 1 || nml == 0 || nml > 1023 || (flags & ~7U) ||
            dir[off + 17] < 9 || dir[off + 17] > 31) {
            err(c, QCOW2_E_BITMAPS,
                "bitmap directory entry %u: type %u, granularity bits %u, "
                "flags 0x%x, name length %u; allowed type 1, 9..31, flags "
                "bits 0..2, name 1..1023",
                i, dir[off + 16], dir[off + 17], flags, nml);
        }
        off += len;
        if (tsize > MAX_BITMAP_TABLE || (tofs & (c->cs - 1)) ||
            (tsize && tofs == 0) || !in_file(c, tofs, 8ULL * tsize)) {
            err(c, QCOW2_E_BITMAPS,
                "bitmap %u: table at 0x%llx with %u entries is misaligned, "
                "too large (max %llu) or past the end of the file",
                i, (ull)tofs, tsize, (ull)MAX_BITMAP_TABLE);
            c->incomplete = 1;
            continue;
        }
        if (tsize == 0)
            continue;
        mark_range(c, tofs, 8ULL * tsize, K_BITMAPTABLE, "bitmap table");
        free(tab);
        tab = read_table(c, tofs, 8ULL * tsize, "bitmap table");
        if (tab == NULL)
            goto incomplete;
        for (j = 0; j < tsize; j++) {
            uint64_t e = get_be64(tab + j * 8), d = e & BME_OFFSET_MASK;
            int old;

            if (e & BME_RESERVED_MASK) {
                err(c, QCOW2_E_BITMAPS,
                    "bitmap %u table entry %llu (0x%016llx) has reserved bits "
                    "set",
                    i, (ull)j, (ull)e);
                continue;
            }
            if (d == 0)
                continue;
            if ((d & (c->cs - 1)) || d >= c->rd.size) {
                err(c, QCOW2_E_BITMAPS,
                    "bitmap %u table entry %llu: data cluster 0x%llx is "
                    "misaligned or past the end of the file",
                    i, (ull)j, (ull)d);
                continue;
            }
            old = mark(c, d >> c->cluster_bits, K_BITMAPDATA);
            if (old)
                err(c, QCOW2_E_OVERLAP,
                    "bitmap %u data cluster 0x%llx overlaps the %s", i, (ull)d,
                    kind_names[old]);
        }
    }
    free(tab);
    free(dir);
    return;
incomplete:
    c->incomplete = 1;
    free(tab);
    free(dir);
}

/* Stored refcount j of a refcount block (qemu's get_refcount_roN). */
static uint64_t refcount_get(const unsigned char *b, uint32_t order, uint64_t j)
{
    switch (order) {
    case 0:
        return b[j / 8] >> (j % 8) & 1;
    case 1:
        return b[j / 4] >> (2 * (j % 4)) & 3;
    case 2:
        return b[j / 2] >> (4 * (j % 2)) & 15;
    case 3:
        return b[j];
    case 4:
        return get_be16(b + 2 * j);
    case 5:
        return get_be32(b + 4 * j);
    default:
        return get_be64(b + 8 * j);
    }
}

static void flush_leaks(struct ctx *c, uint64_t start, uint64_t n)
{
    if (n == 0)
        return;
    c->r->info.leaked_clusters += n;
    if (n == 1)
        warn(c, QCOW2_W_LEAK,
             "cluster %llu (offset 0x%llx) has a refcount but no reference "
             "(leaked)",
             (ull)start, (ull)(start << c->cluster_bits));
    else
        warn(c, QCOW2_W_LEAK,
             "clusters %llu..%llu (offsets 0x%llx..0x%llx) have a refcount "
             "but no reference (%llu leaked)",
             (ull)start, (ull)(start + n - 1), (ull)(start << c->cluster_bits),
             (ull)(((start + n) << c->cluster_bits) - 1), (ull)n);
}

/* How many of the refcounts [from, to) of a refcount block are non-zero.
 * 1..8-bit refcounts are counted a byte at a time. */
static uint64_t count_nonzero(const unsigned char *b, uint32_t order,
                              uint64_t from, uint64_t to)
{
    /* per byte: the lowest bit of each refcount that is non-zero */
    static const unsigned fold_mask[4] = {0xff, 0x55, 0x11, 0x01};
    uint64_t n = 0, j = from, per_byte;

    if (order <= 3) {
        per_byte = 8 >> order;
        while (j < to && j % per_byte)
            n += refcount_get(b, order, j++) != 0;
        for (; j + per_byte <= to; j += per_byte) {
            unsigned v = b[j / per_byte], k;
            if (v == 0)
                continue;
            for (k = 1; k < (1U << order); k <<= 1)
                v |= v >> k;
            n += (uint64_t)__builtin_popcount(v & fold_mask[order]);
        }
    }
    for (; j < to; j++)
        n += refcount_get(b, order, j) != 0;
    return n;
}

/*
** Refcounts of clusters past the end of the file: no reference can reach
** them (a reference past EOF is an error), so a non-zero one is a leak.
** `qemu-img check` does not look at them (iotest 220, 2026-12-04 fix: a
** refcount table claiming 512 TiB past a 38 MiB file gave no warning).
** Each refcount block is read once (F_REFBLOCK_READ): a block listed twice
** in the table is an overlap error already, and the reading stays bounded
** by the file size.
*/
static void refcounts_past_eof(struct ctx *c, uint32_t shift, uint64_t epb)
{
    uint64_t b, n = 0, first = 0, last = 0;

    for (b = c->host_clusters >> shift; b < c->reft_n && !c->oom; b++) {
        uint64_t blk = refblock_at(c, b), base = b << shift, from, k, j;
        unsigned char *kind;

        if (blk == 0)
            continue;
        kind = &c->kind[blk >> c->cluster_bits];
        if (*kind & F_REFBLOCK_READ)
            continue;
        *kind |= F_REFBLOCK_READ;
        from = c->host_clusters > base ? c->host_clusters - base : 0;
        if (rd_read(&c->rd, blk, c->tbuf, (size_t)c->cs)) {
            err(c, QCOW2_E_IO, "read error in the refcount block at 0x%llx",
                (ull)blk);
            return;
        }
        k = count_nonzero(c->tbuf, c->refcount_order, from, epb);
        if (k == 0)
            continue;
        if (n == 0) { /* blocks come in order: the first leak is here */
            for (j = from; refcount_get(c->tbuf, c->refcount_order, j) == 0;)
                j++;
            first = base + j;
        }
        for (j = epb; refcount_get(c->tbuf, c->refcount_order, j - 1) == 0;)
            j--;
        if (base + j - 1 > last)
            last = base + j - 1;
        n += k;
    }
    if (n == 0)
        return;
    c->r->info.leaked_clusters += n;
    warn(c, QCOW2_W_LEAK,
         "%llu cluster(s) past the end of the file (%llu clusters) have a "
         "refcount: clusters %llu..%llu are leaked",
         (ull)n, (ull)c->host_clusters, (ull)first, (ull)last);
}

/* Compare stored and computed refcounts; check OFLAG_COPIED. */
static void compare_refcounts(struct ctx *c)
{
    uint32_t shift = c->cluster_bits + 3 - c->refcount_order;
    uint64_t epb = 1ULL << shift; /* entries per refcount block */
    uint64_t nblocks = (c->host_clusters + epb - 1) >> shift;
    uint64_t b, run_start = 0, run_len = 0;

    for (b = 0; b < nblocks && !c->oom; b++) {
        uint64_t blk = refblock_at(c, b), j;
        uint64_t base = b << shift;

        if (blk && rd_read(&c->rd, blk, c->tbuf, (size_t)c->cs)) {
            err(c, QCOW2_E_IO, "read error in the refcount block at 0x%llx",
                (ull)blk);
            return;
        }
        for (j = 0; j < epb && base + j < c->host_clusters; j++) {
            uint64_t cl = base + j;
            uint64_t stored =
                blk ? refcount_get(c->tbuf, c->refcount_order, j) : 0;
            uint32_t refs = c->refs[cl];
            unsigned char k = c->kind[cl];

            if (stored > refs) {
                if (!c->incomplete) {
                    if (run_len && run_start + run_len == cl) {
                        run_len++;
                    } else {
                        flush_leaks(c, run_start, run_len);
                        run_start = cl;
                        run_len = 1;
                    }
                }
            } else if (stored < refs) {
                err(c, QCOW2_E_REFCOUNT,
                    "cluster %llu (offset 0x%llx, %s) has refcount %llu but "
                    "%u reference(s)",
                    (ull)cl, (ull)(cl << c->cluster_bits),
                    kind_names[k & K_MASK], (ull)stored, refs);
            }
            if (((k & F_COPIED_SET) && stored != 1) ||
                ((k & F_COPIED_CLEAR) && stored == 1))
                warn(c, QCOW2_W_COPIED,
                     "%s at 0x%llx: the COPIED flag in its active table entry "
                     "is %s but the refcount is %llu",
                     kind_names[k & K_MASK], (ull)(cl << c->cluster_bits),
                     (k & F_COPIED_SET) ? "set" : "clear", (ull)stored);
        }
    }
    flush_leaks(c, run_start, run_len);
    refcounts_past_eof(c, shift, epb);
}

static void deep_check(struct ctx *c)
{
    struct qcow2_info *in = &c->r->info;
    uint32_t i;

    c->host_clusters = in->host_clusters;
    if (c->host_clusters > MAX_HOST_CLUSTERS) {
        err(c, QCOW2_E_LIMIT,
            "the file has %llu host clusters of %llu bytes; at most %llu can "
            "be checked",
            (ull)c->host_clusters, (ull)c->cs, (ull)MAX_HOST_CLUSTERS);
        return;
    }
    c->refs = calloc((size_t)c->host_clusters, sizeof(*c->refs));
    c->kind = calloc((size_t)c->host_clusters, 1);
    c->tbuf = malloc((size_t)c->cs);
    c->obuf = malloc((size_t)c->cs);
    if (c->rd.buf == NULL) {
        c->rd.win_cap = (size_t)(4 * c->cs < (1 << 20) ? (1 << 20) : 4 * c->cs);
        c->rd.win = malloc(c->rd.win_cap);
    }
    if (!c->refs || !c->kind || !c->tbuf || !c->obuf ||
        (c->rd.buf == NULL && c->rd.win == NULL)) {
        c->oom = 1;
        return;
    }
    in->deep_checked = 1;
    if (__builtin_mul_overflow(c->rd.size, DECOMPRESS_RATIO, &c->inflate_limit))
        c->inflate_limit = UINT64_MAX;
    if (c->inflate_limit < DECOMPRESS_MIN)
        c->inflate_limit = DECOMPRESS_MIN;
    c->inflate_budget = c->inflate_limit;

    /* Metadata first, so that data clusters pointing into it are caught. */
    mark(c, 0, K_HEADER);
    if (c->have_crypto) {
        if (in_file(c, c->crypto_off, c->crypto_len) &&
            !(c->crypto_off & (c->cs - 1)) && c->crypto_off != 0)
            mark_range(c, c->crypto_off, c->crypto_len, K_CRYPTO,
                       "encryption header");
        else
            err(c, QCOW2_E_ENCRYPTED,
                "encryption header at 0x%llx (%llu bytes) is misaligned or "
                "past the end of the file",
                (ull)c->crypto_off, (ull)c->crypto_len);
    }
    if (c->reft_ok)
        walk_reftable(c);
    else
        c->incomplete = 1;
    if (c->l1_ok && in->l1_size) {
        c->l1 = read_table(c, in->l1_table_offset, 8ULL * in->l1_size,
                           "active L1 table");
        if (c->l1)
            mark_range(c, in->l1_table_offset, 8ULL * in->l1_size, K_L1,
                       "active L1 table");
    }
    if (!c->l1_ok)
        c->incomplete = 1;
    if (c->snap_ok && in->nb_snapshots)
        walk_snapshot_table(c);
    else if (!c->snap_ok)
        c->incomplete = 1;
    if (c->oom)
        return;
    if (c->have_bitmaps)
        walk_bitmaps(c);
    else if (c->nb_bitmaps)
        c->incomplete = 1;

    /* Pass A: every L2 table; pass B: their entries. */
    if (c->l1)
        mark_l2_tables(c, c->l1, in->l1_size, "active L1", 1);
    for (i = 0; i < c->nsnaps && !c->oom; i++) {
        unsigned char *sl1;
        char which[40];

        snprintf(which, sizeof(which), "snapshot %u L1", i);
        sl1 = read_table(c, c->snaps[i].l1_offset, 8ULL * c->snaps[i].l1_size,
                         which);
        if (sl1 == NULL) {
            c->incomplete = 1;
            continue;
        }
        mark_l2_tables(c, sl1, c->snaps[i].l1_size, which, 0);
        free(sl1);
    }
    if (c->l1)
        walk_l2_tables(c, c->l1, in->l1_size, "active L1", 1);
    for (i = 0; i < c->nsnaps && !c->oom && !c->l2_budget_hit; i++) {
        unsigned char *sl1;
        char which[40];

        snprintf(which, sizeof(which), "snapshot %u L1", i);
        sl1 = read_table(c, c->snaps[i].l1_offset, 8ULL * c->snaps[i].l1_size,
                         which);
        if (sl1 == NULL)
            continue;
        walk_l2_tables(c, sl1, c->snaps[i].l1_size, which, 0);
        free(sl1);
    }
    if (c->oom)
        return;
    if (c->reft_ok)
        compare_refcounts(c);
}

/* ---------------------------------------------------------------------
** Entry points.
*/
static int run_check(struct reader *rd, unsigned flags, struct qcow2_report *r)
{
    struct ctx c;

    memset(&c, 0, sizeof(c));
    c.rd = *rd;
    c.r = r;
    c.flags = flags;
    check_header(&c);
    if (!(flags & QCOW2_HEADER_ONLY) && c.r->is_qcow2 && c.deep_ok && !c.oom &&
        c.cs)
        deep_check(&c);
    r->valid =
        r->is_qcow2 && r->nerrors == 0 && r->errors_dropped == 0 && !c.oom;
    if (c.zs_ready)
        inflateEnd(&c.zs);
    ZSTD_freeDCtx(c.zd);
    free(c.hdr);
    free(c.refs);
    free(c.kind);
    free(c.reft);
    free(c.l1);
    free(c.snaps);
    free(c.tbuf);
    free(c.obuf);
    free(c.rd.win);
    return c.oom ? -1 : 0;
}

int qcow2_check_buf(const void *buf, size_t len, unsigned flags,
                    struct qcow2_report *r)
{
    struct reader rd;

    memset(r, 0, sizeof(*r));
    memset(&rd, 0, sizeof(rd));
    rd.fd = -1;
    rd.buf = buf ? buf : (const unsigned char *)"";
    rd.size = buf ? len : 0;
    return run_check(&rd, flags, r);
}

/* What a file that is not an image is, for messages. */
static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    return "not a regular file";
}

int qcow2_check_fd(int fd, unsigned flags, struct qcow2_report *r)
{
    struct reader rd;
    struct stat st;
    struct ctx c;

    const char *why = NULL;
    off_t end = 0;

    memset(r, 0, sizeof(*r));
    memset(&st, 0, sizeof(st));
    if (fstat(fd, &st) != 0) {
        why = strerror(errno);
    } else if (S_ISBLK(st.st_mode)) {
        /* A block device: its size is where it ends. */
        end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            why = strerror(errno);
        st.st_size = end;
    } else if (!S_ISREG(st.st_mode) || st.st_size < 0) {
        why = file_kind(st.st_mode);
    }
    if (why != NULL) {
        memset(&c, 0, sizeof(c));
        c.r = r;
        err(&c, QCOW2_E_IO,
            "cannot stat the image, or it is not a regular file or a block "
            "device (%s)",
            why);
        return c.oom ? -1 : 0;
    }
    memset(&rd, 0, sizeof(rd));
    rd.fd = fd;
    rd.size = (uint64_t)st.st_size;
    return run_check(&rd, flags, r);
}

int qcow2_check_path(const char *path, unsigned flags, struct qcow2_report *r)
{
    int fd, rc, fl;

    memset(r, 0, sizeof(*r));
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
    ** refused by qcow2_check_fd as not a file); cleared for the reads. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) {
        fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (fd < 0) {
        struct ctx c;
        int e = errno;

        memset(&c, 0, sizeof(c));
        c.r = r;
        err(&c, QCOW2_E_IO, "cannot open %s: %s", path, strerror(e));
        return c.oom ? -1 : 0;
    }
    rc = qcow2_check_fd(fd, flags, r);
    close(fd);
    return rc;
}

void qcow2_report_free(struct qcow2_report *r)
{
    if (r == NULL)
        return;
    free(r->errors);
    free(r->warnings);
    r->errors = NULL;
    r->warnings = NULL;
    r->nerrors = 0;
    r->nwarnings = 0;
}

const char *qcow2_code_name(enum qcow2_code code)
{
    if ((int)code < 0 || code >= QCOW2_CODE_COUNT)
        return "unknown";
    return code_names[code];
}

const char *qcow2_first_error(const struct qcow2_report *r)
{
    if (r == NULL || r->valid)
        return NULL;
    if (r->nerrors > 0)
        return r->errors[0].message;
    if (!r->is_qcow2)
        return "not a QCOW2 image";
    return "the check could not complete (out of memory)";
}

/* ---------------------------------------------------------------------
** JSON.
*/
struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        char *q;
        while (n + 1 > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        q = realloc(b->p, cap);
        if (q == NULL) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_fmt(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->oom = 1;
        return;
    }
    sb_add(b, tmp, (size_t)n);
}

/* s as a JSON string, by the one rule (ext/jsonstr.h). */
static void sb_json_str(struct sbuf *b, const char *s)
{
    char *q = dj_json_quote(s);

    if (q == NULL) {
        b->oom = 1;
        return;
    }
    sb_add(b, q, strlen(q));
    free(q);
}

static char *sb_done(struct sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

static void json_problems(struct sbuf *b, const struct qcow2_problem *p,
                          size_t n)
{
    size_t i;

    sb_add(b, "[", 1);
    for (i = 0; i < n; i++) {
        if (i)
            sb_add(b, ",", 1);
        sb_str(b, "{\"code\":");
        sb_json_str(b, qcow2_code_name(p[i].code));
        sb_str(b, ",\"message\":");
        sb_json_str(b, p[i].message);
        sb_add(b, "}", 1);
    }
    sb_add(b, "]", 1);
}

char *qcow2_report_json(const struct qcow2_report *r)
{
    struct sbuf b = {NULL, 0, 0, 0};

    sb_str(&b, r->valid ? "{\"valid\":true,\"errors\":"
                        : "{\"valid\":false,\"errors\":");
    json_problems(&b, r->errors, r->nerrors);
    sb_str(&b, ",\"warnings\":");
    json_problems(&b, r->warnings, r->nwarnings);
    sb_add(&b, "}", 1);
    return sb_done(&b);
}

static void json_features(struct sbuf *b, const char *key, uint64_t bits,
                          const char *const *names, int nnames)
{
    int i, first = 1;

    sb_fmt(b, ",\"%s\":[", key);
    for (i = 0; i < 64; i++) {
        if (!(bits >> i & 1))
            continue;
        if (!first)
            sb_add(b, ",", 1);
        first = 0;
        if (i < nnames)
            sb_fmt(b, "\"%s\"", names[i]);
        else
            sb_fmt(b, "\"bit %d\"", i);
    }
    sb_add(b, "]", 1);
}

char *qcow2_info_json(const struct qcow2_report *r)
{
    static const char *const incompat[] = {"dirty", "corrupt", "data_file",
                                           "compression_type", "extended_l2"};
    static const char *const compat[] = {"lazy_refcounts"};
    static const char *const autoclear[] = {"bitmaps", "data_file_raw"};
    const struct qcow2_info *in = &r->info;
    struct sbuf b = {NULL, 0, 0, 0};

    sb_fmt(&b, "{\"version\":%u", in->version);
    sb_fmt(&b, ",\"virtual_size\":%llu", (ull)in->virtual_size);
    sb_fmt(&b, ",\"cluster_size\":%llu", (ull)in->cluster_size);
    sb_fmt(&b, ",\"cluster_bits\":%u", in->cluster_bits);
    sb_fmt(&b, ",\"refcount_bits\":%u", in->refcount_bits);
    sb_fmt(&b, ",\"refcount_order\":%u", in->refcount_order);
    sb_fmt(&b, ",\"compression_type\":\"%s\"",
           in->compression_type == 0   ? "zlib"
           : in->compression_type == 1 ? "zstd"
                                       : "unknown");
    json_features(&b, "incompatible_features", in->incompatible_features,
                  incompat, 5);
    json_features(&b, "compatible_features", in->compatible_features, compat,
                  1);
    json_features(&b, "autoclear_features", in->autoclear_features, autoclear,
                  2);
    sb_fmt(&b, ",\"nb_snapshots\":%u", in->nb_snapshots);
    sb_fmt(&b, ",\"file_size\":%llu", (ull)in->file_size);
    sb_fmt(&b, ",\"host_clusters\":%llu", (ull)in->host_clusters);
    sb_fmt(&b, ",\"allocated_clusters\":%llu", (ull)in->allocated_clusters);
    sb_fmt(&b, ",\"compressed_clusters\":%llu", (ull)in->compressed_clusters);
    sb_fmt(&b, ",\"leaked_clusters\":%llu", (ull)in->leaked_clusters);
    sb_fmt(&b, ",\"header_length\":%u", in->header_length);
    sb_fmt(&b, ",\"l1_size\":%u", in->l1_size);
    sb_fmt(&b, ",\"crypt_method\":%u", in->crypt_method);
    sb_fmt(&b, ",\"deep_checked\":%s", in->deep_checked ? "true" : "false");
    sb_fmt(&b, ",\"valid\":%s}", r->valid ? "true" : "false");
    return sb_done(&b);
}
