/*
** fetch.c - download an image from a URL into a sink, over libcurl (see
** fetch.h for the contract; issue 14).
**
** One easy handle, curl_easy_perform. What libcurl does not say in words
** a user can act on is watched here: the stall timeout (no byte for N s;
** libcurl's low-speed limit counts an average, and its message names no
** option), the size limit (also when the server sends no length), an HTTP
** error status (its body is never taken for an image) and the reason of a
** refused redirect. Messages name the redacted URL and the option to
** change.
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "schema.h"

#include "fetch.h"

/* The scheme of url, lower-cased, into buf (NUL-terminated). */
static void url_scheme(const char *url, char *buf, size_t len)
{
    size_t i = 0;

    while (url[i] != ':' && url[i] != '\0' && i + 1 < len) {
        buf[i] = (char)(url[i] >= 'A' && url[i] <= 'Z' ? url[i] + 32 : url[i]);
        i++;
    }
    buf[i] = '\0';
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum stop {
    STOP_NONE,
    STOP_SINK,
    STOP_SIZE,
    STOP_STALL,
    STOP_CANCEL,
    STOP_STATUS
};

struct fetch {
    CURL *easy;
    const struct dj_fetch_opts *o;
    dj_fetch_sink sink;
    dj_fetch_progress progress;
    void *arg;
    sqlite3_int64 max_size, got, last_got;
    double stall, last_move;
    enum stop stop;
    long status;
    char *sink_err;
    int http;
    char location[2048]; /* the last Location header: a refused redirect */
};

static size_t on_header(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct fetch *f = (struct fetch *)ud;
    size_t n = size * nmemb, i = 9;

    if (n > 9 && strncasecmp(buf, "location:", 9) == 0) {
        while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        while (n > i &&
               (buf[n - 1] == '\r' || buf[n - 1] == '\n' || buf[n - 1] == ' '))
            n--;
        snprintf(f->location, sizeof(f->location), "%.*s", (int)(n - i),
                 buf + i);
    }
    return size * nmemb;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct fetch *f = (struct fetch *)ud;
    size_t n = size * nmemb;

    if (f->http && f->status == 0) {
        (void)curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &f->status);
        if (f->status >= 300) {
            f->stop = STOP_STATUS;
            return 0;
        }
    }
    if ((sqlite3_int64)n > f->max_size - f->got) {
        f->stop = STOP_SIZE;
        return 0;
    }
    if (f->sink(f->arg, buf, n, &f->sink_err) != 0) {
        f->stop = STOP_SINK;
        return 0;
    }
    f->got += (sqlite3_int64)n;
    f->last_move = now_s();
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct fetch *f = (struct fetch *)ud;
    double t = now_s();

    (void)ultotal;
    (void)ulnow;
    if (dlnow != f->last_got) {
        f->last_got = dlnow;
        f->last_move = t;
    } else if (t - f->last_move >= f->stall) {
        f->stop = STOP_STALL;
        return 1;
    }
    if (f->progress != NULL &&
        f->progress(f->arg, f->got, dltotal > 0 ? dltotal : -1) != 0) {
        f->stop = STOP_CANCEL;
        return 1;
    }
    return 0;
}

/* "1.5 GiB" for messages about the size limit. */
static char *size_text(sqlite3_int64 n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int i = 0;

    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    return i == 0 ? sqlite3_mprintf("%lld B", n)
                  : sqlite3_mprintf("%.1f %s", v, units[i]);
}

/* The message of a failed transfer; f->stop and the curl code say why. */
static char *fail_text(struct fetch *f, CURLcode cc, const char *url,
                       const char *errbuf)
{
    const struct dj_fetch_opts *o = f->o;
    char *where = NULL, *msg = NULL, *lim;
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    double connect = 0;

    if (cc == CURLE_FILESIZE_EXCEEDED) /* known from Content-Length */
        f->stop = STOP_SIZE;
    switch (f->stop) {
    case STOP_SINK:
        msg = f->sink_err;
        f->sink_err = NULL;
        return msg;
    case STOP_SIZE:
        lim = size_text(f->max_size);
        msg = sqlite3_mprintf("%s: larger than the size limit, %s (raise it "
                              "with --max-size, or max_size in SQL)",
                              url, lim ? lim : "?");
        sqlite3_free(lim);
        return msg;
    case STOP_STALL:
        return sqlite3_mprintf("%s: no data for %g s after %lld bytes (the "
                               "stall timeout; raise it with "
                               "--stall-timeout, or stall_timeout in SQL)",
                               url, f->stall, f->got);
    case STOP_CANCEL:
        return sqlite3_mprintf("%s: cancelled after %lld bytes", url, f->got);
    case STOP_STATUS:
        return sqlite3_mprintf("%s: the server answered HTTP %ld%s", url,
                               f->status,
                               f->status == 404   ? " (no such file)"
                               : f->status == 401 ? " (credentials needed)"
                               : f->status == 403 ? " (access refused)"
                                                  : "");
    case STOP_NONE:
        break;
    }
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
        (void)curl_easy_getinfo(f->easy, CURLINFO_REDIRECT_URL, &where);
        if (where == NULL && f->location[0] != '\0')
            where = f->location;
        if (where != NULL) {
            char *red = dj_url_redact(where);

            msg = sqlite3_mprintf("%s: redirected to %s, refused (allowed: "
                                  "a download that starts on https stays on "
                                  "https; http, https, file and sftp URLs)",
                                  url, red ? red : "?");
            sqlite3_free(red);
            return msg;
        }
        break;
    case CURLE_TOO_MANY_REDIRECTS:
        return sqlite3_mprintf("%s: more than %ld redirects (a redirect "
                               "loop?); raise the bound with "
                               "--max-redirects, or max_redirects in SQL",
                               url,
                               o->max_redirects > 0
                                   ? o->max_redirects
                                   : (long)DJ_FETCH_MAX_REDIRECTS);
    case CURLE_OPERATION_TIMEDOUT:
        (void)curl_easy_getinfo(f->easy, CURLINFO_CONNECT_TIME, &connect);
        if (connect <= 0)
            return sqlite3_mprintf("%s: cannot connect within %g s (the "
                                   "connect timeout; --connect-timeout, or "
                                   "connect_timeout in SQL)",
                                   url,
                                   o->connect_timeout > 0
                                       ? o->connect_timeout
                                       : (double)DJ_FETCH_CONNECT_TIMEOUT);
        return sqlite3_mprintf("%s: not finished within %g s, after %lld "
                               "bytes (the timeout; --timeout, or timeout "
                               "in SQL)",
                               url, o->timeout, f->got);
    case CURLE_PARTIAL_FILE: {
        curl_off_t len = -1;

        (void)curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                                &len);
        if (len > 0)
            return sqlite3_mprintf("%s: the transfer ended early: %lld of "
                                   "%lld bytes",
                                   url, f->got, (long long)len);
        return sqlite3_mprintf("%s: the transfer ended early after %lld "
                               "bytes (%s)",
                               url, f->got, detail);
    }
    case CURLE_PEER_FAILED_VERIFICATION:
        return sqlite3_mprintf("%s: the server's identity is not trusted "
                               "(%s); trust its CA with --ca-file FILE (an "
                               "SFTP host key: --known-hosts FILE), or "
                               "skip the check with --insecure",
                               url, detail);
    case CURLE_SSL_CACERT_BADFILE:
        return sqlite3_mprintf("%s: cannot use the CA file (%s)", url, detail);
    case CURLE_LOGIN_DENIED:
        return sqlite3_mprintf("%s: login refused (%s); give the user and "
                               "password in the URL, or a key with "
                               "--identity FILE",
                               url, detail);
    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_FILE_COULDNT_READ_FILE:
        return sqlite3_mprintf("%s: no such file (%s)", url, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
        return sqlite3_mprintf("%s: unknown host (%s)", url, detail);
    case CURLE_COULDNT_CONNECT:
        return sqlite3_mprintf("%s: cannot connect (%s)", url, detail);
    default:
        break;
    }
    return sqlite3_mprintf("%s: %s (%s)", url, curl_easy_strerror(cc), detail);
}

static void opt_timeout(CURL *e, CURLoption what, double s)
{
    long ms = s >= 2147483.0 ? 2147483647L : (long)(s * 1000.0);

    (void)curl_easy_setopt(e, what, ms > 0 ? ms : 1L);
}

int dj_fetch(const char *url, const struct dj_fetch_opts *o, dj_fetch_sink sink,
             dj_fetch_progress progress, void *arg, struct dj_fetch_result *res,
             char **err)
{
    struct fetch f;
    char scheme[16], errbuf[CURL_ERROR_SIZE];
    char *red = NULL, *kh = NULL;
    const char *ctype = NULL;
    long redirects = 0;
    CURLcode cc;
    int rc = SQLITE_OK;

    memset(res, 0, sizeof(*res));
    memset(&f, 0, sizeof(f));
    red = dj_url_redact(url);
    if (red == NULL)
        return SQLITE_NOMEM;
    url_scheme(url, scheme, sizeof(scheme));
    if (!dj_url_is(url) ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0 &&
         strcmp(scheme, "file") != 0 && strcmp(scheme, "sftp") != 0)) {
        *err = sqlite3_mprintf("%s: unsupported URL scheme '%s' (allowed: "
                               "http, https, file, sftp)",
                               red, scheme);
        sqlite3_free(red);
        return SQLITE_ERROR;
    }
    f.o = o;
    f.sink = sink;
    f.progress = progress;
    f.arg = arg;
    f.max_size = o->max_size > 0 ? o->max_size : DJ_FETCH_MAX_SIZE;
    f.stall = o->stall_timeout > 0 ? o->stall_timeout
                                   : (double)DJ_FETCH_STALL_TIMEOUT;
    f.http = scheme[0] == 'h';
    f.last_move = now_s();
    if (strcmp(scheme, "sftp") == 0 && !o->insecure && o->known_hosts == NULL) {
        const char *home = getenv("HOME");

        kh = sqlite3_mprintf("%s/.ssh/known_hosts", home ? home : "");
        if (kh == NULL) {
            rc = SQLITE_NOMEM;
            goto done;
        }
    }
    f.easy = curl_easy_init();
    if (f.easy == NULL) {
        *err = sqlite3_mprintf("%s: cannot start libcurl", red);
        rc = SQLITE_ERROR;
        goto done;
    }
    errbuf[0] = '\0';
    curl_easy_setopt(f.easy, CURLOPT_URL, url);
    curl_easy_setopt(f.easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(f.easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f.easy, CURLOPT_PROTOCOLS_STR, "http,https,file,sftp");
    curl_easy_setopt(f.easy, CURLOPT_REDIR_PROTOCOLS_STR,
                     strcmp(scheme, "https") == 0 ? "https" : "http,https");
    curl_easy_setopt(f.easy, CURLOPT_FOLLOWLOCATION,
                     o->max_redirects >= 0 ? 1L : 0L);
    curl_easy_setopt(f.easy, CURLOPT_MAXREDIRS,
                     o->max_redirects > 0 ? o->max_redirects
                                          : (long)DJ_FETCH_MAX_REDIRECTS);
    curl_easy_setopt(f.easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f.max_size);
    opt_timeout(f.easy, CURLOPT_CONNECTTIMEOUT_MS,
                o->connect_timeout > 0 ? o->connect_timeout
                                       : (double)DJ_FETCH_CONNECT_TIMEOUT);
    if (o->timeout > 0)
        opt_timeout(f.easy, CURLOPT_TIMEOUT_MS, o->timeout);
    curl_easy_setopt(f.easy, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(f.easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f.easy, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(f.easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(f.easy, CURLOPT_HEADERDATA, &f);
    curl_easy_setopt(f.easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(f.easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(f.easy, CURLOPT_XFERINFODATA, &f);
    curl_easy_setopt(f.easy, CURLOPT_USERAGENT, "djinn/" DJINN_EXT_VERSION);
    if (o->insecure) {
        curl_easy_setopt(f.easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(f.easy, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (o->ca_file != NULL) {
        curl_easy_setopt(f.easy, CURLOPT_CAINFO, o->ca_file);
    }
    if (o->identity != NULL)
        curl_easy_setopt(f.easy, CURLOPT_SSH_PRIVATE_KEYFILE, o->identity);
    if (strcmp(scheme, "sftp") == 0 && !o->insecure)
        curl_easy_setopt(f.easy, CURLOPT_SSH_KNOWNHOSTS,
                         o->known_hosts ? o->known_hosts : kh);
    cc = curl_easy_perform(f.easy);
    (void)curl_easy_getinfo(f.easy, CURLINFO_RESPONSE_CODE, &f.status);
    (void)curl_easy_getinfo(f.easy, CURLINFO_REDIRECT_COUNT, &redirects);
    if (cc == CURLE_OK && f.http && f.status >= 300) {
        f.stop = STOP_STATUS;
        cc = CURLE_HTTP_RETURNED_ERROR;
    }
    res->bytes = f.got;
    res->status = f.http ? f.status : 0;
    res->redirects = (int)redirects;
    if (curl_easy_getinfo(f.easy, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK &&
        ctype != NULL)
        snprintf(res->content_type, sizeof(res->content_type), "%s", ctype);
    if (cc != CURLE_OK) {
        *err = fail_text(&f, cc, red, errbuf);
        rc = f.stop == STOP_CANCEL ? SQLITE_INTERRUPT : SQLITE_ERROR;
        if (*err == NULL && f.stop != STOP_SINK)
            rc = SQLITE_NOMEM;
    }

done:
    if (f.easy != NULL)
        curl_easy_cleanup(f.easy);
    sqlite3_free(f.sink_err);
    sqlite3_free(kh);
    sqlite3_free(red);
    return rc;
}
