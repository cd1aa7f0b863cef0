/*
** fetch.h - download an image from a URL into a sink, over libcurl
** (fetch.c; issue 14).
**
** Place in the one-way graph (see schema.h): uses libcurl and SQLite's
** allocator only; used by registry.c (image_register of a URL) and
** djinn-lua (runtime/l_registry.c).
**
** Schemes: http, https, file and sftp, and nothing else (also after a
** redirect). TLS is verified against the system's store (or ca_file) and an
** SFTP server's host key against known_hosts, unless insecure is set. A
** redirect is followed at most max_redirects times, and never from https
** to http. Credentials in the URL ("user:password@") are used for the
** transfer and never appear in a message: every message names the URL as
** dj_url_redact() gives it.
**
** Ownership: every char * an out-parameter returns is sqlite3_malloc()ed
** and released by the caller with sqlite3_free().
*/
#ifndef DJINN_FETCH_H
#define DJINN_FETCH_H

#include <stddef.h>

#include <sqlite3.h>

#include "url.h" /* dj_url_is, dj_url_redact */

/* The defaults of struct dj_fetch_opts (a 0 field takes them). */
#define DJ_FETCH_MAX_SIZE (64LL << 30) /* bytes */
#define DJ_FETCH_CONNECT_TIMEOUT 30    /* s */
#define DJ_FETCH_STALL_TIMEOUT 60      /* s without a byte */
#define DJ_FETCH_MAX_REDIRECTS 10

/*
** Limits and trust. Every field may be 0/NULL: the default. timeout 0 is
** no limit on the whole transfer (the stall timeout still bounds every
** wait); max_redirects -1 follows none.
*/
struct dj_fetch_opts {
    sqlite3_int64 max_size; /* largest download, bytes */
    double connect_timeout; /* s, to connect (TCP, TLS, SSH) */
    double stall_timeout;   /* s without any byte received */
    double timeout;         /* s for the whole transfer */
    long max_redirects;
    int insecure;            /* skip TLS and host key verification */
    const char *ca_file;     /* PEM bundle trusted instead of the system's */
    const char *identity;    /* sftp: private key file */
    const char *known_hosts; /* sftp: default ~/.ssh/known_hosts */
};

/* Receives the body as it arrives. Nonzero: stop (*err set). */
typedef int (*dj_fetch_sink)(void *arg, const void *buf, size_t n, char **err);
/* Called about once a second and on every chunk: bytes so far, total
** (-1 when unknown). Nonzero: cancel the transfer. */
typedef int (*dj_fetch_progress)(void *arg, sqlite3_int64 got,
                                 sqlite3_int64 total);

/* Filled also when the transfer fails (as far as it got). */
struct dj_fetch_result {
    sqlite3_int64 bytes;    /* received */
    long status;            /* HTTP status (0 for file and sftp) */
    char content_type[128]; /* HTTP Content-Type, "" if none */
    int redirects;          /* followed */
};

/*
** Fetch url into sink. SQLITE_OK, or an error code with *err set to a
** message naming the redacted URL, what went wrong and how to change it
** (the option that raises a limit). SQLITE_INTERRUPT: progress cancelled.
*/
int dj_fetch(const char *url, const struct dj_fetch_opts *o, dj_fetch_sink sink,
             dj_fetch_progress progress, void *arg, struct dj_fetch_result *res,
             char **err);

#endif /* DJINN_FETCH_H */
