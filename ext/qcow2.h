/*
** qcow2.h - a fail-closed validator for QCOW2 version 3 images.
**
** Pure C: no SQLite or Lua headers. Shared by the SQLite extension
** (build/djinn.so), the djinn-lua runtime and the fuzz harness.
**
** Input is a file (read with pread(), memory bounded by the metadata size:
** guest data clusters are never read, except compressed ones, which are
** inflated to check they give exactly one cluster) or an in-memory buffer.
**
** Every problem found is reported, not only the first: the report holds a
** list of errors (the image is refused) and warnings (it is accepted).
** Each problem has a stable code name (qcow2_code_name()) and a message that
** says what is wrong, where (byte offset, table index) and what is allowed.
**
** Ownership: qcow2_check_*() fill a caller-owned struct qcow2_report whose
** problem arrays are heap memory; release them with qcow2_report_free().
** The JSON helpers return malloc()ed text the caller free()s.
*/
#ifndef DJINN_QCOW2_H
#define DJINN_QCOW2_H

#include <stddef.h>
#include <stdint.h>

/* Problem codes. QCOW2_OK is never stored in a report. */
enum qcow2_code {
    QCOW2_OK = 0,
    QCOW2_E_IO,           /* "io": the file could not be read */
    QCOW2_E_NOT_QCOW2,    /* "not_qcow2": no QFI\xfb magic (raw, VMDK, ...) */
    QCOW2_E_POLYGLOT,     /* "polyglot": also looks like another format */
    QCOW2_E_TRUNCATED,    /* "truncated": header or table past EOF */
    QCOW2_E_VERSION,      /* "version": not version 3 */
    QCOW2_E_CLUSTER_BITS, /* "cluster_bits": outside 9..21 (14.. with ext L2) */
    QCOW2_E_HEADER_LENGTH,     /* "header_length" */
    QCOW2_E_PADDING,           /* "padding": non-zero header padding */
    QCOW2_E_INCOMPAT_UNKNOWN,  /* "unknown_incompatible" */
    QCOW2_E_DIRTY,             /* "dirty" */
    QCOW2_E_CORRUPT,           /* "corrupt" */
    QCOW2_E_DATA_FILE,         /* "data_file": bit 2, autoclear bit 1, ext */
    QCOW2_E_BACKING_FILE,      /* "backing_file": offset or format extension */
    QCOW2_E_ENCRYPTED,         /* "encrypted": crypt_method or FDE extension */
    QCOW2_E_COMPRESSION_TYPE,  /* "compression_type" */
    QCOW2_E_REFCOUNT_ORDER,    /* "refcount_order": > 6 */
    QCOW2_E_HEADER_EXTENSION,  /* "header_extension": malformed, dup, OOB */
    QCOW2_E_L1_TABLE,          /* "l1_table": misaligned or out of file */
    QCOW2_E_REFCOUNT_TABLE,    /* "refcount_table" */
    QCOW2_E_SNAPSHOT_TABLE,    /* "snapshot_table" */
    QCOW2_E_TABLE_TOO_LARGE,   /* "table_too_large": over QEMU's limits */
    QCOW2_E_L1_TOO_SMALL,      /* "l1_too_small": does not cover virtual size */
    QCOW2_E_L1_ENTRY,          /* "l1_entry" */
    QCOW2_E_L2_ENTRY,          /* "l2_entry" */
    QCOW2_E_REFCOUNT_ENTRY,    /* "refcount_entry": reftable / refblock entry */
    QCOW2_E_OVERLAP,           /* "overlap": metadata structures overlap */
    QCOW2_E_REFCOUNT,          /* "refcount": stored refcount < references */
    QCOW2_E_COMPRESSED,        /* "compressed_cluster": bad compressed data */
    QCOW2_E_SNAPSHOT,          /* "snapshot": invalid snapshot entry */
    QCOW2_E_BITMAPS,           /* "bitmaps": bad bitmap extension */
    QCOW2_E_LIMIT,             /* "limit": over a policy limit */
    QCOW2_W_LEAK,              /* "leak" (warning): refcount > references */
    QCOW2_W_COPIED,            /* "copied_flag" (warning): OFLAG_COPIED wrong */
    QCOW2_W_BACKING_SIZE,      /* "backing_file_size" (warning) */
    QCOW2_W_UNKNOWN_AUTOCLEAR, /* "unknown_autoclear" (warning) */
    QCOW2_CODE_COUNT
};

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY (1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ULL << 4)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (1ULL << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW (1ULL << 1)

struct qcow2_problem {
    enum qcow2_code code;
    char message[200];
};

/* What the header says, plus what the deep check measured. */
struct qcow2_info {
    uint32_t version;
    uint64_t virtual_size;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t refcount_order;
    uint32_t refcount_bits;
    uint32_t compression_type; /* 0 zlib, 1 zstd */
    uint32_t crypt_method;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t header_length;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t file_size;
    uint64_t allocated_clusters;  /* guest data clusters in the active L1 */
    uint64_t compressed_clusters; /* of those, compressed */
    uint64_t host_clusters;       /* ceil(file_size / cluster_size) */
    uint64_t leaked_clusters;     /* refcount > 0, no reference */
    int deep_checked;             /* 1 if tables were walked */
};

struct qcow2_report {
    int is_qcow2; /* the magic matched */
    int valid;    /* no errors: acceptable for registration/boot */
    struct qcow2_info info;
    size_t nerrors, nwarnings;
    size_t errors_dropped, warnings_dropped; /* past QCOW2_MAX_PROBLEMS */
    struct qcow2_problem *errors;
    struct qcow2_problem *warnings;
};

#define QCOW2_MAX_PROBLEMS 100

/* Flags for qcow2_check_*(). */
/* Only the checks that need the first cluster. */
#define QCOW2_HEADER_ONLY 0x1

/*
** Check an image. Always fills *r (zeroed first). Returns 0 when the
** check ran (r->valid says the verdict), -1 when memory ran out (r may
** hold partial results; still call qcow2_report_free()). An unreadable
** file is reported as a QCOW2_E_IO error, not as -1.
*/
int qcow2_check_buf(const void *buf, size_t len, unsigned flags,
                    struct qcow2_report *r);
int qcow2_check_fd(int fd, unsigned flags, struct qcow2_report *r);
int qcow2_check_path(const char *path, unsigned flags, struct qcow2_report *r);
void qcow2_report_free(struct qcow2_report *r);

/* "backing_file" etc.; "unknown" for an out-of-range code. */
const char *qcow2_code_name(enum qcow2_code code);

/* First error's message, or NULL when valid. */
const char *qcow2_first_error(const struct qcow2_report *r);

/*
** {"valid":bool,"errors":[{"code":"...","message":"..."}],"warnings":[...]}
** malloc()ed, NULL on OOM.
*/
char *qcow2_report_json(const struct qcow2_report *r);

/*
** {"version":3,"virtual_size":...,"cluster_size":...,"refcount_bits":...,
**  "compression_type":"zlib","incompatible_features":[...],
**  "compatible_features":[...],"autoclear_features":[...],
**  "nb_snapshots":0,"file_size":...,"allocated_clusters":...,...}
** malloc()ed, NULL on OOM.
*/
char *qcow2_info_json(const struct qcow2_report *r);

#endif /* DJINN_QCOW2_H */
