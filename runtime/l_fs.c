/*
** l_fs.c - djinn.fs: file-system helpers for pipelines and tests.
**
** Lua API (see notes/lua-api.md); operational failures return nil, msg
** with messages like "fs.copy: /a/b: No such file or directory", misuse
** (wrong argument types) raises:
**   fs.mkdtemp([prefix = "djinn-" [, dir]]) -> path under dir, else
**                                        $TMPDIR or /tmp (mode 0700)
**   fs.mkdir_p(path [, mode = 0755])  -> true
**   fs.rm_rf(path)                    -> true (never follows symlinks; a
**                                        missing path is success; refuses
**                                        "", "/", "." and "..")
**   fs.copy(src, dst [, mode [, max]]) -> true (regular file; src mode
**                                        kept when mode is nil)
**   fs.copy_tree(src, dst [, max])    -> true (files, dirs, symlinks)
**       max (bytes, >= 0; nil = no limit) bounds the copy: of the file,
**       or of all the tree's regular files together. The size is checked
**       with fstat before copying AND the bytes are counted while copying
**       (the file may grow). Over it: nil, "fs.copy: SRC: larger than the
**       limit of N bytes", "limit" [, size (when fstat told)]; nothing is
**       left: copy does not create dst when fstat tells, and removes it
**       when the count tells; copy_tree removes dst when it created it.
**   fs.stat(path) / fs.lstat(path)    -> {type=, size=, mode=, mtime=,
**                                         dev=, ino=, mtime_ns=, ctime_ns=,
**                                         uid=}
**   fs.glob(pattern)                  -> sorted array (empty when none)
**   fs.readfile(path [, max_bytes])   -> string
**   fs.writefile(path, data [, mode = 0644]) -> true (temp file in the
**                                        same dir, fsync, rename)
**   fs.listdir(path)                  -> sorted names without . and ..
**   fs.realpath(p) fs.exists(p) fs.remove(p) fs.rename(a, b) fs.cwd()
**   fs.basename(p) fs.dirname(p) fs.join(a, b, ...)
**
** Ownership: every function that acquires a C resource (fd, DIR list,
** fts handle, glob_t) first creates a `djinn.fs.res` userdata and keeps
** the resource in it, releases it explicitly before returning, and the
** userdata's __gc releases whatever a raise (out of memory) left behind.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "util.h"

#define RES_MT "djinn.fs.res"
#define COPY_BUF 65536

struct fs_res {
    int fd;
    int fd2;
    FTS *fts;
    int have_glob;
    glob_t g;
    struct dirent **names;
    int nnames;
    char *tmp_path; /* a temp file to unlink on failure */
};

static void res_release(struct fs_res *r)
{
    int i;

    if (r->fd >= 0)
        close(r->fd);
    if (r->fd2 >= 0)
        close(r->fd2);
    r->fd = r->fd2 = -1;
    if (r->fts != NULL)
        fts_close(r->fts);
    r->fts = NULL;
    if (r->have_glob)
        globfree(&r->g);
    r->have_glob = 0;
    if (r->names != NULL) {
        for (i = 0; i < r->nnames; i++)
            free(r->names[i]);
        free(r->names);
    }
    r->names = NULL;
    r->nnames = 0;
    if (r->tmp_path != NULL) {
        unlink(r->tmp_path);
        free(r->tmp_path);
    }
    r->tmp_path = NULL;
}

static int res_gc(lua_State *L)
{
    res_release((struct fs_res *)luaL_checkudata(L, 1, RES_MT));
    return 0;
}

/* Push a new, empty resource holder. */
static struct fs_res *newres(lua_State *L)
{
    struct fs_res *r = lua_newuserdatauv(L, sizeof(*r), 0);

    memset(r, 0, sizeof(*r));
    r->fd = r->fd2 = -1;
    luaL_setmetatable(L, RES_MT);
    return r;
}

/* nil, "fs.<what>: <path>: <strerror(errno)>" */
static int fail(lua_State *L, const char *what, const char *path)
{
    int e = errno;

    return dj_pushfail(L, "fs.%s: %s: %s", what, path, strerror(e));
}

static int l_fs_mkdtemp(lua_State *L)
{
    const char *prefix = luaL_optstring(L, 1, "djinn-");
    const char *dir = luaL_optstring(L, 2, NULL);
    char path[PATH_MAX];
    int n;

    if (strchr(prefix, '/') != NULL)
        return luaL_argerror(L, 1, "prefix must not contain '/'");
    luaL_argcheck(L, dir == NULL || *dir != '\0', 2, "dir must not be empty");
    if (dir == NULL)
        dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    n = snprintf(path, sizeof(path), "%s/%sXXXXXX", dir, prefix);
    if (n < 0 || (size_t)n >= sizeof(path))
        return dj_pushfail(L, "fs.mkdtemp: %s/%s: path too long", dir, prefix);
    if (mkdtemp(path) == NULL)
        return fail(L, "mkdtemp", path);
    lua_pushstring(L, path);
    return 1;
}

/* mkdir -p on a writable copy; 0 or -1 with errno (path names the step). */
static int mkdir_p(char *path, mode_t mode)
{
    char *p = path;
    struct stat st;

    while (*p == '/')
        p++;
    for (;;) {
        char *slash = strchr(p, '/');
        char save = '\0';

        if (slash != NULL) {
            save = *slash;
            *slash = '\0';
        }
        if (mkdir(path, mode) < 0) {
            int e = errno;

            if (e != EEXIST || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                errno = e == EEXIST ? ENOTDIR : e;
                return -1; /* path is cut at the failing component */
            }
        }
        if (slash == NULL)
            break;
        *slash = save;
        p = slash + 1;
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
    }
    return 0;
}

static int l_fs_mkdir_p(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    lua_Integer mode = luaL_optinteger(L, 2, 0755);
    char buf[PATH_MAX];

    luaL_argcheck(L, len > 0, 1, "empty path");
    luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "invalid mode");
    if (len >= sizeof(buf))
        return dj_pushfail(L, "fs.mkdir_p: path too long");
    memcpy(buf, path, len + 1);
    if (mkdir_p(buf, (mode_t)mode) < 0)
        return fail(L, "mkdir_p", buf);
    lua_pushboolean(L, 1);
    return 1;
}

/* Is this a path rm_rf must refuse? "", "/", ".", "..", "//", "a/..". */
static int dangerous_path(const char *p)
{
    size_t n = strlen(p);
    const char *base = NULL;

    while (n > 1 && p[n - 1] == '/')
        n--;
    if (n == 0 || (n == 1 && p[0] == '/'))
        return 1;
    base = p + n;
    while (base > p && base[-1] != '/')
        base--;
    if ((p + n - base == 1 && base[0] == '.') ||
        (p + n - base == 2 && base[0] == '.' && base[1] == '.'))
        return 1;
    return 0;
}

/*
** Remove the tree at path (lstat'ed: it exists) with r->fts; never follows
** symlinks. 0 | -1 with the message in msg.
*/
static int remove_tree(struct fs_res *r, const char *path, char *msg,
                       size_t msglen)
{
    char *paths[2];
    FTSENT *e = NULL;
    struct stat st;

    paths[0] = (char *)path;
    paths[1] = NULL;
    msg[0] = '\0';
    /* FTS_PHYSICAL: symlinks are entries, never followed; no chdir. */
    r->fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
    if (r->fts == NULL) {
        snprintf(msg, msglen, "fs.rm_rf: %s: %s", path, strerror(errno));
        return -1;
    }
    while ((e = fts_read(r->fts)) != NULL) {
        int rc = 0;

        switch (e->fts_info) {
        case FTS_D:
            continue;
        case FTS_DP:
            rc = rmdir(e->fts_accpath);
            break;
        case FTS_DNR:
        case FTS_ERR:
        case FTS_NS:
            errno = e->fts_errno;
            rc = -1;
            break;
        case FTS_DC:
            continue;
        default:
            rc = unlink(e->fts_accpath);
            break;
        }
        if (rc < 0 && errno != ENOENT) {
            snprintf(msg, msglen, "fs.rm_rf: %s: %s", e->fts_path,
                     strerror(errno));
            break;
        }
    }
    if (e == NULL && errno != 0 && msg[0] == '\0' && lstat(path, &st) == 0)
        snprintf(msg, msglen, "fs.rm_rf: %s: %s", path, strerror(errno));
    fts_close(r->fts);
    r->fts = NULL;
    return msg[0] != '\0' ? -1 : 0;
}

static int l_fs_rm_rf(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct fs_res *r = NULL;
    struct stat st;
    char msg[PATH_MAX + 128];

    if (dangerous_path(path))
        return dj_pushfail(L, "fs.rm_rf: refusing to remove '%s'", path);
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            lua_pushboolean(L, 1);
            return 1;
        }
        return fail(L, "rm_rf", path);
    }
    r = newres(L);
    if (remove_tree(r, path, msg, sizeof(msg)) < 0) {
        res_release(r);
        return dj_pushfail(L, "%s", msg);
    }
    res_release(r);
    lua_pushboolean(L, 1);
    return 1;
}

/* copy_fd / copy_file: -2 = over the byte budget (errno untouched). */
#define OVER_LIMIT (-2)

/*
** Copy fd to fd; 0, -1 with errno, or OVER_LIMIT when more than *left
** bytes come (left NULL: no limit; else decremented by what was copied).
*/
static int copy_fd(int in, int out, long long *left)
{
    char buf[COPY_BUF];

    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        ssize_t off = 0;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (left != NULL) {
            if ((long long)n > *left)
                return OVER_LIMIT;
            *left -= (long long)n;
        }
        while (off < n) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -1;
            off += w;
        }
    }
}

/*
** Copy a regular file; mode < 0 keeps the source's permission bits.
** left: the byte budget (NULL = none), decremented by the bytes copied.
** Returns 0; -1 with errno (*where is the path that failed); or
** OVER_LIMIT: *size = the source's fstat size when that already was over
** (dst then untouched), else -1 (dst, partly written, removed).
*/
static int copy_file(struct fs_res *r, const char *src, const char *dst,
                     int mode, long long *left, const char **where,
                     long long *size)
{
    struct stat st;
    int rc;

    *where = src;
    *size = -1;
    /* O_NONBLOCK: a FIFO must not block the open; no effect on files. */
    r->fd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (r->fd < 0 || fstat(r->fd, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    if (left != NULL && (long long)st.st_size > *left) {
        *size = (long long)st.st_size;
        close(r->fd);
        r->fd = -1;
        return OVER_LIMIT;
    }
    if (mode < 0)
        mode = (int)(st.st_mode & 07777);
    *where = dst;
    r->fd2 = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (r->fd2 < 0)
        return -1;
    rc = copy_fd(r->fd, r->fd2, left);
    if (rc == OVER_LIMIT) {
        close(r->fd2);
        r->fd2 = -1;
        (void)unlink(dst);
        close(r->fd);
        r->fd = -1;
        return OVER_LIMIT;
    }
    if (rc < 0 || fchmod(r->fd2, (mode_t)mode) < 0)
        return -1;
    if (close(r->fd2) < 0) {
        r->fd2 = -1;
        return -1;
    }
    r->fd2 = -1;
    close(r->fd);
    r->fd = -1;
    return 0;
}

/* The optional byte limit at idx: -1 = none (nil), else >= 0. */
static long long opt_max(lua_State *L, int idx)
{
    lua_Integer max;

    if (lua_isnoneornil(L, idx))
        return -1;
    max = luaL_checkinteger(L, idx);
    luaL_argcheck(L, max >= 0, idx, "max must be >= 0 bytes");
    return (long long)max;
}

static int l_fs_copy(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    lua_Integer mode = luaL_optinteger(L, 3, -1);
    long long max = opt_max(L, 4);
    long long left = max;
    long long size = -1;
    struct fs_res *r = NULL;
    const char *where = NULL;
    int e, rc;

    luaL_argcheck(L, mode >= -1 && mode <= 07777, 3, "invalid mode");
    r = newres(L);
    rc = copy_file(r, src, dst, (int)mode, max >= 0 ? &left : NULL, &where,
                   &size);
    if (rc == OVER_LIMIT) {
        res_release(r);
        dj_pushfail(L, "fs.copy: %s: larger than the limit of %I bytes", src,
                    (lua_Integer)max);
        lua_pushliteral(L, "limit");
        if (size < 0)
            return 3;
        lua_pushinteger(L, (lua_Integer)size);
        return 4;
    }
    if (rc < 0) {
        e = errno;
        res_release(r);
        errno = e;
        if (e == EINVAL && where == src)
            return dj_pushfail(L, "fs.copy: %s: not a regular file", src);
        return fail(L, "copy", where);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_fs_copy_tree(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    long long max = opt_max(L, 3);
    long long left = max;
    struct fs_res *r = newres(L);
    struct fs_res *fr = newres(L);
    char *paths[2];
    FTSENT *e = NULL;
    size_t srclen = strlen(src);
    char target[PATH_MAX];
    char link[PATH_MAX];
    char msg[PATH_MAX * 2 + 64];
    const char *where = NULL;
    struct stat dst_st;
    int created = lstat(dst, &dst_st) < 0 && errno == ENOENT;
    int over = 0;

    while (srclen > 1 && src[srclen - 1] == '/')
        srclen--;
    paths[0] = (char *)src;
    paths[1] = NULL;
    r->fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    if (r->fts == NULL)
        return fail(L, "copy_tree", src);
    msg[0] = '\0';
    while ((e = fts_read(r->fts)) != NULL && msg[0] == '\0') {
        const char *rel = e->fts_path + (e->fts_pathlen >= srclen ? srclen : 0);
        int n = snprintf(target, sizeof(target), "%s%s", dst, rel);
        int rc = 0;

        if (n < 0 || (size_t)n >= sizeof(target)) {
            snprintf(msg, sizeof(msg), "fs.copy_tree: %s: path too long",
                     e->fts_path);
            break;
        }
        where = target;
        switch (e->fts_info) {
        case FTS_D:
            rc = mkdir(target, e->fts_statp->st_mode & 07777);
            if (rc < 0 && errno == EEXIST) {
                struct stat st;

                rc = (stat(target, &st) == 0 && S_ISDIR(st.st_mode)) ? 0 : -1;
            }
            break;
        case FTS_DP:
            rc = chmod(target, e->fts_statp->st_mode & 07777);
            break;
        case FTS_F: {
            long long size = -1;

            rc = copy_file(fr, e->fts_accpath, target, -1,
                           max >= 0 ? &left : NULL, &where, &size);
            res_release(fr);
            if (rc == OVER_LIMIT) {
                over = 1;
                snprintf(msg, sizeof(msg),
                         "fs.copy_tree: %s: larger than the limit of %lld "
                         "bytes",
                         src, max);
                rc = 0;
            }
            break;
        }
        case FTS_SL:
        case FTS_SLNONE: {
            ssize_t ln = readlink(e->fts_accpath, link, sizeof(link) - 1);

            where = e->fts_path;
            if (ln < 0) {
                rc = -1;
                break;
            }
            link[ln] = '\0';
            where = target;
            rc = symlink(link, target);
            break;
        }
        case FTS_DNR:
        case FTS_ERR:
        case FTS_NS:
            errno = e->fts_errno;
            where = e->fts_path;
            rc = -1;
            break;
        default:
            snprintf(msg, sizeof(msg),
                     "fs.copy_tree: %s: not a file, directory or symlink",
                     e->fts_path);
            break;
        }
        if (rc < 0)
            snprintf(msg, sizeof(msg), "fs.copy_tree: %s: %s", where,
                     strerror(errno));
    }
    res_release(fr);
    res_release(r);
    if (over) {
        char rmmsg[PATH_MAX + 128];

        /* Nothing half-copied stays: dst goes when this call made it. */
        if (created && lstat(dst, &dst_st) == 0 &&
            remove_tree(r, dst, rmmsg, sizeof(rmmsg)) < 0) {
            res_release(r);
            lua_pushnil(L);
            lua_pushfstring(L, "%s; removing the partial copy: %s", msg, rmmsg);
            lua_pushliteral(L, "limit");
            return 3;
        }
        res_release(r);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        lua_pushliteral(L, "limit");
        return 3;
    }
    if (msg[0] != '\0')
        return dj_pushfail(L, "%s", msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int push_stat(lua_State *L, const struct stat *st)
{
    const char *type = "other";

    if (S_ISREG(st->st_mode))
        type = "file";
    else if (S_ISDIR(st->st_mode))
        type = "dir";
    else if (S_ISLNK(st->st_mode))
        type = "link";
    lua_createtable(L, 0, 11);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st->st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st->st_mtime);
    lua_setfield(L, -2, "mtime");
    /* Nanosecond times (addition for the QEMU driver's SHA-256 cache: a
     * same-size rewrite within one second must still change the key;
     * ctime cannot be set back with utimensat). */
    lua_pushinteger(L, (lua_Integer)st->st_mtim.tv_sec * 1000000000 +
                           (lua_Integer)st->st_mtim.tv_nsec);
    lua_setfield(L, -2, "mtime_ns");
    lua_pushinteger(L, (lua_Integer)st->st_ctim.tv_sec * 1000000000 +
                           (lua_Integer)st->st_ctim.tv_nsec);
    lua_setfield(L, -2, "ctime_ns");
    lua_pushinteger(L, (lua_Integer)st->st_dev);
    lua_setfield(L, -2, "dev");
    lua_pushinteger(L, (lua_Integer)st->st_ino);
    lua_setfield(L, -2, "ino");
    /* Owner (addition for djinn.state: a state directory must be ours). */
    lua_pushinteger(L, (lua_Integer)st->st_uid);
    lua_setfield(L, -2, "uid");
    return 1;
}

static int l_fs_stat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;

    if (stat(path, &st) < 0)
        return fail(L, "stat", path);
    return push_stat(L, &st);
}

static int l_fs_lstat(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;

    if (lstat(path, &st) < 0)
        return fail(L, "lstat", path);
    return push_stat(L, &st);
}

static int l_fs_glob(lua_State *L)
{
    const char *pattern = luaL_checkstring(L, 1);
    struct fs_res *r = newres(L);
    int rc;
    size_t i;

    rc = glob(pattern, 0, NULL, &r->g);
    r->have_glob = 1;
    if (rc == GLOB_NOMATCH) {
        res_release(r);
        lua_newtable(L);
        return 1;
    }
    if (rc != 0) {
        res_release(r);
        return dj_pushfail(L, "fs.glob: %s: %s", pattern,
                           rc == GLOB_NOSPACE ? "out of memory" : "read error");
    }
    lua_createtable(L, (int)r->g.gl_pathc, 0);
    for (i = 0; i < r->g.gl_pathc; i++) {
        lua_pushstring(L, r->g.gl_pathv[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    res_release(r);
    return 1;
}

static int l_fs_readfile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, (lua_Integer)1 << 30);
    struct fs_res *r = NULL;
    luaL_Buffer b;
    size_t total = 0;
    int e;

    luaL_argcheck(L, max >= 0, 2, "max_bytes must be >= 0");
    r = newres(L);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return fail(L, "readfile", path);
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffer(&b);
        ssize_t n = read(r->fd, p, LUAL_BUFFERSIZE);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            res_release(r);
            errno = e;
            return fail(L, "readfile", path);
        }
        if (n == 0)
            break;
        total += (size_t)n;
        if (total > (size_t)max) {
            res_release(r);
            return dj_pushfail(L, "fs.readfile: %s: larger than %I bytes", path,
                               max);
        }
        luaL_addsize(&b, (size_t)n);
    }
    res_release(r);
    luaL_pushresult(&b);
    return 1;
}

/* Atomic write: "<dir>/.<base>.XXXXXX", write, fsync, rename. */
static int l_fs_writefile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer mode = luaL_optinteger(L, 3, 0644);
    struct fs_res *r = NULL;
    char tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int n, e;

    luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "invalid mode");
    luaL_argcheck(L, *path != '\0', 1, "empty path");
    if (slash == NULL)
        n = snprintf(tmp, sizeof(tmp), ".%s.XXXXXX", path);
    else
        n = snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", (int)(slash - path),
                     path, slash + 1);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return dj_pushfail(L, "fs.writefile: %s: path too long", path);
    r = newres(L);
    r->fd = mkostemp(tmp, O_CLOEXEC);
    if (r->fd < 0)
        return fail(L, "writefile", tmp);
    r->tmp_path = dj_xstrdup(tmp);
    while (off < len) {
        ssize_t w = write(r->fd, data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto failed;
        off += (size_t)w;
    }
    if (fchmod(r->fd, (mode_t)mode) < 0 || fsync(r->fd) < 0)
        goto failed;
    n = close(r->fd);
    r->fd = -1;
    if (n < 0 || rename(tmp, path) < 0)
        goto failed;
    free(r->tmp_path);
    r->tmp_path = NULL;
    lua_pushboolean(L, 1);
    return 1;
failed:
    e = errno;
    res_release(r); /* closes and unlinks the temp file */
    errno = e;
    return fail(L, "writefile", path);
}

static int dot_filter(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static int l_fs_listdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct fs_res *r = newres(L);
    int i;

    r->nnames = scandir(path, &r->names, dot_filter, alphasort);
    if (r->nnames < 0) {
        r->nnames = 0;
        r->names = NULL;
        return fail(L, "listdir", path);
    }
    lua_createtable(L, r->nnames, 0);
    for (i = 0; i < r->nnames; i++) {
        lua_pushstring(L, r->names[i]->d_name);
        lua_rawseti(L, -2, i + 1);
    }
    res_release(r);
    return 1;
}

static int l_fs_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[PATH_MAX];

    if (realpath(path, buf) == NULL)
        return fail(L, "realpath", path);
    lua_pushstring(L, buf);
    return 1;
}

static int l_fs_exists(lua_State *L)
{
    struct stat st;

    lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
    return 1;
}

static int l_fs_remove(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);

    if (remove(path) < 0)
        return fail(L, "remove", path);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_fs_rename(lua_State *L)
{
    const char *a = luaL_checkstring(L, 1);
    const char *b = luaL_checkstring(L, 2);

    if (rename(a, b) < 0)
        return dj_pushfail(L, "fs.rename: %s -> %s: %s", a, b, strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_fs_cwd(lua_State *L)
{
    char buf[PATH_MAX];

    if (getcwd(buf, sizeof(buf)) == NULL)
        return fail(L, "cwd", ".");
    lua_pushstring(L, buf);
    return 1;
}

/* basename: "/a/b/" -> "b", "/" -> "/", "" -> "". */
static int l_fs_basename(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    size_t start;

    while (n > 1 && p[n - 1] == '/')
        n--;
    if (n == 1 && p[0] == '/') {
        lua_pushliteral(L, "/");
        return 1;
    }
    start = n;
    while (start > 0 && p[start - 1] != '/')
        start--;
    lua_pushlstring(L, p + start, n - start);
    return 1;
}

/* dirname: "/a/b" -> "/a", "a" -> ".", "/a" -> "/", "a/b/" -> "a". */
static int l_fs_dirname(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);

    while (n > 1 && p[n - 1] == '/')
        n--;
    while (n > 0 && p[n - 1] != '/')
        n--;
    if (n == 0) {
        lua_pushliteral(L, ".");
        return 1;
    }
    while (n > 1 && p[n - 1] == '/')
        n--;
    lua_pushlstring(L, p, n);
    return 1;
}

/* join(a, b, ...): "/" between parts; an absolute part restarts. */
static int l_fs_join(lua_State *L)
{
    int n = lua_gettop(L), i, start = 1;
    luaL_Buffer b;

    for (i = 1; i <= n; i++) {
        luaL_checkstring(L, i);
        if (lua_tostring(L, i)[0] == '/')
            start = i;
    }
    luaL_buffinit(L, &b);
    for (i = start; i <= n; i++) {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);

        if (len == 0)
            continue;
        if (luaL_bufflen(&b) > 0 &&
            luaL_buffaddr(&b)[luaL_bufflen(&b) - 1] != '/')
            luaL_addchar(&b, '/');
        luaL_addlstring(&b, s, len);
    }
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg fs_funcs[] = {
    {"mkdtemp", l_fs_mkdtemp},     {"mkdir_p", l_fs_mkdir_p},
    {"rm_rf", l_fs_rm_rf},         {"copy", l_fs_copy},
    {"copy_tree", l_fs_copy_tree}, {"stat", l_fs_stat},
    {"lstat", l_fs_lstat},         {"glob", l_fs_glob},
    {"readfile", l_fs_readfile},   {"writefile", l_fs_writefile},
    {"listdir", l_fs_listdir},     {"realpath", l_fs_realpath},
    {"exists", l_fs_exists},       {"remove", l_fs_remove},
    {"rename", l_fs_rename},       {"cwd", l_fs_cwd},
    {"basename", l_fs_basename},   {"dirname", l_fs_dirname},
    {"join", l_fs_join},           {NULL, NULL},
};

int luaopen_djinn_fs(lua_State *L)
{
    if (luaL_newmetatable(L, RES_MT)) {
        lua_pushcfunction(L, res_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, res_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fs_funcs);
    return 1;
}
