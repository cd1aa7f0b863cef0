/*
** l_http.c - djinn.http: HTTP/1.1 requests over libcurl, to a Unix socket
** or a TCP host, for the Docker Engine API.
**
** Lua API (operational failures return nil, msg, code; misuse raises):
**   http.request(opts) -> resp | nil, msg, code
**     opts.host     "unix:///var/run/docker.sock" | "tcp://HOST:PORT" |
**                   "http://HOST:PORT" (required)
**     opts.path     "/v1.41/containers/json?all=1" (required; already
**                   escaped: see http.escape)
**     opts.method   "GET" (default), "POST", "PUT", "DELETE", "HEAD", ...
**     opts.headers  { ["Content-Type"] = "application/json", ... }
**     opts.body     a string, or a reader function() -> chunk | nil (nil
**                   or "" ends the body; sent chunked unless
**                   opts.body_size gives the length)
**     opts.timeout  seconds for the whole request (default 60); 0 = no
**                   limit, allowed only together with opts.cancel
**     opts.connect_timeout  seconds (default 10)
**     opts.on_data  function(chunk): STREAMING mode. Body bytes of a 2xx
**                   response are handed over as they arrive (at least
**                   every 100 ms) and not kept; the body of any other
**                   status is collected into resp.body (for the error)
**     opts.on_headers  function(status): called once when the final
**                   response's headers are complete, before any body
**                   byte is handed to on_data (a stream that must be
**                   attached before something else starts, as Docker's
**                   attach before the container's start)
**     opts.cancel   function() -> reason | nil, polled at least every
**                   100 ms; a truthy reason aborts: nil, "http: ...:
**                   cancelled (reason)", "cancelled"
**     opts.max_body bytes kept in resp.body (default 256 MiB); with
**                   on_data, also the most bytes a 2xx body may hand over
**                   (default: no limit). Past it the transfer is aborted
**                   at once (the write callback refuses the chunk), so
**                   memory and disk stay bounded: nil, "http: ...: the
**                   response body is larger than N bytes", "too_large"
**   resp = { status = 200, headers = { ["content-type"] = "...", ... }
**            (lower-case names of the final response; repeated headers
**            joined with ", "), body = "..." }
**   code: "timeout", "cancelled", "connect" (the host did not answer),
**         "too_large", or nil for other failures.
**   http.escape(s) -> s percent-encoded for a query string or path part
**   http.base64_decode(s) -> bytes | nil, msg   (standard alphabet, with
**                   padding, as in Docker's X-Docker-Container-Path-Stat;
**                   libcrypto's EVP_DecodeBlock)
**
** Callbacks (on_data, body readers, cancel) are never called from inside
** libcurl: the request runs on a curl multi handle, in a loop of
** curl_multi_perform + curl_multi_poll(<= 100 ms); data arriving in curl's
** write callback is buffered in C and delivered between two steps, and a
** reader is asked for more while the upload is paused. An error raised by
** a callback propagates after the handles are released.
**
** Ownership: the curl handles, header list and buffers live in a
** `djinn.http.req` userdata created first; released explicitly before
** returning, by __gc after a raise (docs/style.md rules 16, 17).
*/
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <lua.h>

#include "djinn.h"
#include "util.h"

#define REQ_MT "djinn.http.req"
#define POLL_MS 100

struct buf {
    char *p;
    size_t len, cap;
};

struct req {
    CURLM *multi;
    CURL *easy;
    int added;
    struct curl_slist *headers;
    struct buf body; /* the kept response body */
    struct buf pend; /* streaming: delivered to on_data between steps */
    struct buf hdr;  /* raw header lines of the last response */
    struct buf rbuf; /* request body: the current chunk from the reader */
    size_t roff;     /* bytes of rbuf already sent */
    size_t max_body;
    size_t max_stream; /* streaming: the most body bytes handed over */
    size_t streamed;
    int streaming;
    int hdr_done; /* the final response's headers are complete */
    int hdr_told; /* ... and on_headers was called */
    int too_large;
    int oom;
    int need_read;   /* the read callback paused: ask the reader */
    int reader_done; /* the reader returned nil */
    char errbuf[CURL_ERROR_SIZE];
};

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Append; 0 | -1 on out of memory. */
static int buf_add(struct buf *b, const char *p, size_t n)
{
    size_t want;
    char *np;

    if (n > SIZE_MAX / 2 - b->len)
        return -1;
    if (b->len + n > b->cap) {
        want = b->cap ? b->cap : 4096;
        while (want < b->len + n)
            want *= 2;
        np = realloc(b->p, want);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = want;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void req_release(struct req *r)
{
    if (r->added)
        curl_multi_remove_handle(r->multi, r->easy);
    r->added = 0;
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    if (r->multi != NULL)
        curl_multi_cleanup(r->multi);
    r->easy = NULL;
    r->multi = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    buf_free(&r->body);
    buf_free(&r->pend);
    buf_free(&r->hdr);
    buf_free(&r->rbuf);
}

static int req_gc(lua_State *L)
{
    req_release(luaL_checkudata(L, 1, REQ_MT));
    return 0;
}

/* ------------------------------------------------------ curl callbacks */

static long status_of(CURL *easy)
{
    long code = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t n = size * nmemb;
    long st = status_of(r->easy);

    if (r->streaming && st >= 200 && st < 300) {
        if (n > r->max_stream - r->streamed) {
            r->too_large = 1;
            return 0; /* a short count: curl aborts the transfer */
        }
        r->streamed += n;
        if (buf_add(&r->pend, p, n) != 0) {
            r->oom = 1;
            return 0;
        }
        return n;
    }
    if (r->body.len + n > r->max_body) {
        r->too_large = 1;
        return 0;
    }
    if (buf_add(&r->body, p, n) != 0) {
        r->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t n = size * nmemb;

    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        r->hdr.len = 0; /* a new response (after 100 Continue) */
    if ((n == 2 && p[0] == '\r' && p[1] == '\n') || (n == 1 && p[0] == '\n'))
        if (status_of(r->easy) >= 200) /* not 100 Continue */
            r->hdr_done = 1;
    if (r->hdr.len + n > 1024 * 1024 || buf_add(&r->hdr, p, n) != 0) {
        r->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct req *r = ud;
    size_t room = size * nmemb, n;

    if (r->roff < r->rbuf.len) {
        n = r->rbuf.len - r->roff;
        if (n > room)
            n = room;
        memcpy(dst, r->rbuf.p + r->roff, n);
        r->roff += n;
        return n;
    }
    if (r->reader_done)
        return 0;
    r->need_read = 1;
    return CURL_READFUNC_PAUSE;
}

/* --------------------------------------------------------------- request */

/* Option indices on the Lua stack (see l_request). */
enum {
    I_OPTS = 1,
    I_REQ,
    I_BODY,
    I_ONDATA,
    I_CANCEL,
    I_HOST,
    I_PATH,
    I_METH,
    I_ONHDR
};

/* Release, then raise the error object at the top (does not return). */
static int rethrow(lua_State *L, struct req *r)
{
    req_release(r);
    return lua_error(L);
}

static int fail(lua_State *L, struct req *r, const char *code, const char *fmt,
                const char *detail)
{
    const char *host = lua_tostring(L, I_HOST);
    const char *path = lua_tostring(L, I_PATH);
    const char *meth = lua_tostring(L, I_METH);

    req_release(r);
    lua_pushnil(L);
    lua_pushfstring(L, "http: %s %s %s: ", meth, host, path);
    lua_pushfstring(L, fmt, detail);
    lua_concat(L, 2);
    if (code == NULL)
        return 2;
    lua_pushstring(L, code);
    return 3;
}

/* Push the response table. */
static void push_response(lua_State *L, struct req *r)
{
    const char *p, *end;

    lua_createtable(L, 0, 3);
    lua_pushinteger(L, status_of(r->easy));
    lua_setfield(L, -2, "status");
    lua_newtable(L);
    p = r->hdr.p;
    end = p ? p + r->hdr.len : p;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *colon, *v, *ve;
        luaL_Buffer name;

        if (eol == NULL)
            eol = end;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL && colon > p) {
            luaL_buffinit(L, &name);
            for (v = p; v < colon; v++)
                luaL_addchar(&name, (char)tolower((unsigned char)*v));
            luaL_pushresult(&name);
            v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, -3);
        }
        p = eol + 1;
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.len);
    lua_setfield(L, -2, "body");
}

static double optnum(lua_State *L, const char *k, double def)
{
    double v = def;

    if (lua_getfield(L, I_OPTS, k) != LUA_TNIL) {
        if (!lua_isnumber(L, -1))
            luaL_error(L,
                       "http.request: %s must be a number of seconds, "
                       "got %s",
                       k, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
        if (v < 0)
            luaL_error(L, "http.request: %s must not be negative", k);
    }
    lua_pop(L, 1);
    return v;
}

static int l_request(lua_State *L)
{
    struct req *r;
    const char *host, *path, *meth;
    double timeout, ctimeout, deadline = 0;
    int running = 1, have_body;
    lua_Integer body_size = -1;
    CURLMsg *msg;
    CURLcode res = CURLE_OK;
    int left;

    luaL_checktype(L, I_OPTS, LUA_TTABLE);
    lua_settop(L, 1);
    timeout = optnum(L, "timeout", 60);
    ctimeout = optnum(L, "connect_timeout", 10);
    r = lua_newuserdatauv(L, sizeof(*r), 0); /* I_REQ */
    memset(r, 0, sizeof(*r));
    luaL_setmetatable(L, REQ_MT);
    lua_getfield(L, I_OPTS, "body"); /* I_BODY */
    luaL_argcheck(L,
                  lua_isnil(L, I_BODY) || lua_type(L, I_BODY) == LUA_TSTRING ||
                      lua_isfunction(L, I_BODY),
                  1, "body must be a string or a reader function");
    lua_getfield(L, I_OPTS, "on_data"); /* I_ONDATA */
    luaL_argcheck(L, lua_isnil(L, I_ONDATA) || lua_isfunction(L, I_ONDATA), 1,
                  "on_data must be a function");
    lua_getfield(L, I_OPTS, "cancel"); /* I_CANCEL */
    luaL_argcheck(L, lua_isnil(L, I_CANCEL) || lua_isfunction(L, I_CANCEL), 1,
                  "cancel must be a function");
    luaL_argcheck(L, timeout > 0 || !lua_isnil(L, I_CANCEL), 1,
                  "timeout 0 (no limit) needs a cancel function");
    if (lua_getfield(L, I_OPTS, "host") != LUA_TSTRING) /* I_HOST */
        return luaL_argerror(L, 1, "host (a string) is required");
    if (lua_getfield(L, I_OPTS, "path") != LUA_TSTRING) /* I_PATH */
        return luaL_argerror(L, 1, "path (a string) is required");
    if (lua_getfield(L, I_OPTS, "method") == LUA_TNIL) { /* I_METH */
        lua_pop(L, 1);
        lua_pushliteral(L, "GET");
    }
    lua_getfield(L, I_OPTS, "on_headers"); /* I_ONHDR */
    luaL_argcheck(L, lua_isnil(L, I_ONHDR) || lua_isfunction(L, I_ONHDR), 1,
                  "on_headers must be a function");
    host = lua_tostring(L, I_HOST);
    path = lua_tostring(L, I_PATH);
    meth = luaL_checkstring(L, I_METH);
    luaL_argcheck(L, path[0] == '/', 1, "path must start with /");
    r->streaming = !lua_isnil(L, I_ONDATA);
    r->max_body = 256u * 1024 * 1024;
    r->max_stream = SIZE_MAX;
    if (lua_getfield(L, I_OPTS, "max_body") != LUA_TNIL) {
        int isint = 0;
        lua_Integer mb = lua_tointegerx(L, -1, &isint);

        luaL_argcheck(L, isint && mb >= 0, 1,
                      "max_body must be an integer >= 0 (bytes)");
        r->max_body = (size_t)mb;
        r->max_stream = (size_t)mb;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, I_OPTS, "body_size") != LUA_TNIL)
        body_size = luaL_checkinteger(L, -1);
    lua_pop(L, 1);

    r->multi = curl_multi_init();
    r->easy = curl_easy_init();
    if (r->multi == NULL || r->easy == NULL)
        return luaL_error(L, "http.request: out of memory");
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    if (strncmp(host, "unix://", 7) == 0 && host[7] == '/') {
        curl_easy_setopt(r->easy, CURLOPT_UNIX_SOCKET_PATH, host + 7);
        lua_pushfstring(L, "http://localhost%s", path);
    } else if (strncmp(host, "tcp://", 6) == 0 && host[6] != '\0') {
        lua_pushfstring(L, "http://%s%s", host + 6, path);
    } else if ((strncmp(host, "http://", 7) == 0 && host[7] != '\0') ||
               (strncmp(host, "https://", 8) == 0 && host[8] != '\0')) {
        lua_pushfstring(L, "%s%s", host, path);
    } else {
        return fail(L, r, NULL,
                    "unsupported host %s (allowed: unix:///PATH, "
                    "tcp://HOST:PORT, http://HOST:PORT)",
                    host);
    }
    curl_easy_setopt(r->easy, CURLOPT_URL, lua_tostring(L, -1));
    lua_pop(L, 1); /* curl copies the URL */
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(ctimeout * 1000));
    if (!lua_isnil(L, I_ONDATA)) /* fewer, larger reads of a stream */
        curl_easy_setopt(r->easy, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");

    /* Headers: "Expect:" turns off 100-continue waits. */
    r->headers = curl_slist_append(NULL, "Expect:");
    if (r->headers == NULL)
        return luaL_error(L, "http.request: out of memory");
    if (lua_getfield(L, I_OPTS, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            struct curl_slist *nl;

            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                return luaL_argerror(L, 1,
                                     "headers must map names to "
                                     "strings");
            lua_pushfstring(L, "%s: %s", lua_tostring(L, -2),
                            lua_tostring(L, -1));
            nl = curl_slist_append(r->headers, lua_tostring(L, -1));
            if (nl == NULL)
                return luaL_error(L, "http.request: out of memory");
            r->headers = nl;
            lua_pop(L, 2);
        }
    } else if (!lua_isnil(L, -1)) {
        return luaL_argerror(L, 1, "headers must be a table");
    }
    lua_pop(L, 1);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);

    have_body = !lua_isnil(L, I_BODY);
    if (strcmp(meth, "HEAD") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_NOBODY, 1L);
    } else if (lua_isfunction(L, I_BODY)) {
        curl_easy_setopt(r->easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(r->easy, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(r->easy, CURLOPT_READDATA, r);
        if (body_size >= 0)
            curl_easy_setopt(r->easy, CURLOPT_INFILESIZE_LARGE,
                             (curl_off_t)body_size);
        if (strcmp(meth, "PUT") != 0)
            curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, meth);
    } else if (have_body || strcmp(meth, "POST") == 0 ||
               strcmp(meth, "PUT") == 0) {
        size_t blen = 0;
        const char *b = have_body ? lua_tolstring(L, I_BODY, &blen) : "";

        /* I_BODY stays on the stack: the bytes outlive the transfer */
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, b);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)blen);
        if (strcmp(meth, "POST") != 0)
            curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, meth);
    } else if (strcmp(meth, "GET") != 0) {
        curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, meth);
    }

    if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK)
        return luaL_error(L, "http.request: curl_multi_add_handle failed");
    r->added = 1;
    if (timeout > 0)
        deadline = dj_now() + timeout;

    for (;;) {
        CURLMcode mc = curl_multi_perform(r->multi, &running);

        if (mc != CURLM_OK)
            return fail(L, r, NULL, "%s", curl_multi_strerror(mc));
        if (r->hdr_done && !r->hdr_told) { /* before any body byte */
            r->hdr_told = 1;
            if (!lua_isnil(L, I_ONHDR)) {
                lua_pushvalue(L, I_ONHDR);
                lua_pushinteger(L, status_of(r->easy));
                if (lua_pcall(L, 1, 0, 0) != LUA_OK)
                    return rethrow(L, r);
            }
        }
        if (r->pend.len > 0) { /* streaming: hand the bytes over */
            lua_pushvalue(L, I_ONDATA);
            lua_pushlstring(L, r->pend.p, r->pend.len);
            r->pend.len = 0;
            if (lua_pcall(L, 1, 0, 0) != LUA_OK)
                return rethrow(L, r);
        }
        if (r->need_read) { /* the upload waits for the reader */
            size_t n = 0;
            const char *chunk;

            lua_pushvalue(L, I_BODY);
            if (lua_pcall(L, 0, 1, 0) != LUA_OK)
                return rethrow(L, r);
            if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
                lua_pushfstring(L,
                                "http.request: the body reader returned "
                                "a %s (expected a string or nil)",
                                luaL_typename(L, -1));
                return rethrow(L, r);
            }
            chunk = lua_tolstring(L, -1, &n);
            r->rbuf.len = 0;
            r->roff = 0;
            if (chunk == NULL || n == 0)
                r->reader_done = 1;
            else if (buf_add(&r->rbuf, chunk, n) != 0)
                return fail(L, r, NULL, "%s", "out of memory");
            lua_pop(L, 1);
            r->need_read = 0;
            curl_easy_pause(r->easy, CURLPAUSE_CONT);
            continue;
        }
        if (!running)
            break;
        if (!lua_isnil(L, I_CANCEL)) {
            lua_pushvalue(L, I_CANCEL);
            if (lua_pcall(L, 0, 1, 0) != LUA_OK)
                return rethrow(L, r);
            if (lua_toboolean(L, -1)) {
                const char *why = lua_type(L, -1) == LUA_TSTRING
                                      ? lua_tostring(L, -1)
                                      : "cancelled";

                lua_pushfstring(L, "cancelled (%s)", why);
                return fail(L, r, "cancelled", "%s", lua_tostring(L, -1));
            }
            lua_pop(L, 1);
        }
        if (deadline > 0 && dj_now() >= deadline) {
            lua_pushfstring(L, "timeout: no complete answer within %f s",
                            timeout);
            return fail(L, r, "timeout", "%s", lua_tostring(L, -1));
        }
        mc = curl_multi_poll(r->multi, NULL, 0, POLL_MS, NULL);
        if (mc != CURLM_OK)
            return fail(L, r, NULL, "%s", curl_multi_strerror(mc));
    }
    while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            res = msg->data.result;
    }
    if (r->oom)
        return fail(L, r, NULL, "%s", "out of memory");
    if (r->too_large) {
        lua_pushfstring(L, "the response body is larger than %I bytes",
                        (lua_Integer)r->max_body);
        return fail(L, r, "too_large", "%s", lua_tostring(L, -1));
    }
    if (res != CURLE_OK) {
        long oserr = 0;
        const char *code = NULL;

        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
        if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST)
            code = "connect";
        else if (res == CURLE_OPERATION_TIMEDOUT)
            code = "timeout";
        if (oserr != 0)
            lua_pushfstring(L, "%s (%s)", curl_easy_strerror(res),
                            strerror((int)oserr));
        else if (r->errbuf[0] != '\0')
            lua_pushfstring(L, "%s (%s)", curl_easy_strerror(res), r->errbuf);
        else
            lua_pushstring(L, curl_easy_strerror(res));
        return fail(L, r, code, "%s", lua_tostring(L, -1));
    }
    push_response(L, r);
    req_release(r);
    return 1;
}

static int l_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    size_t i;
    static const char hex[] = "0123456789ABCDEF";

    /* RFC 3986 unreserved characters stay; everything else is %XX. */
    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            luaL_addchar(&b, (char)c);
        } else {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, hex[c >> 4]);
            luaL_addchar(&b, hex[c & 15]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_base64_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    unsigned char *out = NULL;
    size_t pad = 0;
    int n;

    luaL_argcheck(L, len < (size_t)INT_MAX, 1, "too long");
    if (len % 4 != 0)
        return dj_pushfail(L,
                           "http.base64_decode: %d characters: not a "
                           "multiple of 4 (padded base64 expected)",
                           (int)len);
    if (len == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    out = (unsigned char *)luaL_buffinitsize(L, &b, len / 4 * 3 + 1);
    n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (n < 0)
        return dj_pushfail(L, "http.base64_decode: not valid base64");
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    while (pad < 2 && pad < len && s[len - 1 - pad] == '=')
        pad++;
    luaL_pushresultsize(&b, (size_t)n - pad);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"request", l_request},
    {"escape", l_escape},
    {"base64_decode", l_base64_decode},
    {NULL, NULL},
};

int luaopen_djinn_http(lua_State *L)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "djinn.http: curl_global_init failed");
    luaL_newmetatable(L, REQ_MT);
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
