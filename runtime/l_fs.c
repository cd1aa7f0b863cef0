/*
** l_fs.c - djinn.fs: file-system helpers for pipelines and tests.
**
** Lua API (see docs/lua-api.md); operational failures return nil, msg
** with messages like "fs.copy: /a/b: No such file or directory", misuse
** (wrong argument types) raises:
**   fs.mkdtemp([prefix = "djinn-" [, dir]]) -> path under dir, else
**                                        $TMPDIR or /tmp (mode 0700)
**   fs.mkdir_p(path [, mode = 0755])  -> true
**   fs.mkdir_beneath(root, rel [, mode = 0755]) -> true [, top]
**       mkdir -p root/rel without following a symbolic link below root:
**       each component of rel is created (mkdirat) when missing and opened
**       with O_NOFOLLOW | O_DIRECTORY relative to the one before (openat),
**       so a link anywhere in rel is refused: nil, "fs.mkdir_beneath:
**       ROOT/a/latest: a symbolic link (links below ROOT are not
**       followed)". root itself may be a link. rel must be relative,
**       without ".." components. top = root/<the first component it
**       created> (to remove on failure), nil when every one existed.
**       A failure removes the directories the call made.
**   fs.rm_rf(path)                    -> true (never follows symlinks; a
**                                        missing path is success; refuses
**                                        "", "/", "." and "..")
**   fs.copy(src, dst [, mode [, max]]) -> true (regular file; src mode
**                                        kept when mode is nil)
**       Written to "<dir>/.<name>.djinn-XXXXXX" beside dst and renamed
**       over dst when complete: dst never holds a partial or empty copy
**       (a full disk: nil, "fs.copy: DST: No space left on device", the
**       temporary file removed, dst as it was), and a symbolic link at
**       dst is replaced, never written through.
**   fs.copy_tree(src, dst [, max [, max_files]]) -> true (files, dirs,
**       symlinks; src may itself be a link to a directory). Copied into
**       a temporary directory beside dst, then renamed to dst (an
**       existing directory dst is replaced as a whole); on any failure
**       the temporary copy is removed and dst is untouched. A symbolic
**       link is copied only when it stays inside the tree: a relative
**       target whose leading ".." components do not climb above the
**       top, with no ".." after a name. Others (absolute, or leaving the
**       tree) refuse the copy: nil, "fs.copy_tree: SRC/x/evil: a
**       symbolic link to /etc, which leaves the copied tree (...)".
**       max_files (>= 0; nil = no limit) bounds the count of files and
**       links: one more gives nil, "fs.copy_tree: SRC: more than N
**       files, the limit", "count".
**       max (bytes, >= 0; nil = no limit) bounds the copy: of the file,
**       or of all the tree's regular files together. The size is checked
**       with fstat before copying AND the bytes are counted while copying
**       (the file may grow). Over it: nil, "fs.copy: SRC: larger than the
**       limit of N bytes", "limit" [, size (when fstat told)] (copy_tree:
**       "fs.copy_tree: SRC: ..."); nothing is left at dst.
**   fs.stat(path) / fs.lstat(path)    -> {type=, size=, mode=, mtime=,
**                                         dev=, ino=, mtime_ns=, ctime_ns=,
**                                         uid=}
**   fs.glob(pattern)                  -> sorted array (empty when none)
**   fs.readfile(path [, max_bytes])   -> string
**   fs.writefile(path, data [, mode = 0644 [, sync = true]]) -> true
**                                       (temp file in the same dir, fsync,
**                                       rename; sync = false: no fsync, for
**                                       a file nothing reads after a crash:
**                                       a job's script, a build's copy)
**   fs.listdir(path)                  -> sorted names without . and ..
**   fs.realpath(p) fs.exists(p) fs.remove(p) fs.rename(a, b) fs.cwd()
**   fs.touch(p) (mtime = now)
**   fs.basename(p) fs.dirname(p) fs.join(a, b, ...)
**
** Ownership: every function that acquires a C resource (fd, DIR list,
** fts handle, glob_t, a temporary file or directory tree) first creates a
** `djinn.fs.res` userdata and keeps the resource in it, releases it
** explicitly before returning, and the userdata's __gc releases whatever
** a raise (out of memory) left behind: a temporary file is unlinked, a
** temporary tree removed (a finished one is handed over by clearing it).
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
    char *tmp_tree; /* a temp directory tree to remove on failure */
};

static int remove_tree(struct fs_res *r, const char *path, char *msg,
                       size_t msglen);

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
    if (r->tmp_tree != NULL) {
        char msg[PATH_MAX + 128];

        (void)remove_tree(r, r->tmp_tree, msg, sizeof(msg));
        free(r->tmp_tree);
    }
    r->tmp_tree = NULL;
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

/*
** mkdir -p on a writable copy; 0 or -1 with errno (path names the step).
** The whole path first: where its parent exists (nearly always) that is
** one system call, not a mkdir and a stat for each component.
*/
static int mkdir_p(char *path, mode_t mode)
{
    char *p = path;
    struct stat st;

    if (mkdir(path, mode) == 0 ||
        (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
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

/*
** After a failed mkdir_beneath: remove the directories it made, from the
** deepest (path, cut at each '/') up to the first one (whose length is
** toplen). Stops at one that cannot go (not empty, not a directory).
*/
static void unmake_dirs(char *path, size_t toplen)
{
    char *slash = NULL;

    while (strlen(path) >= toplen) {
        if (rmdir(path) < 0 && errno != ENOENT)
            break;
        slash = strrchr(path, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
    }
}

/*
** fs.mkdir_beneath(root, rel [, mode]): see the header. The walk holds one
** directory fd (in the res) at a time: mkdirat, then openat with
** O_NOFOLLOW | O_DIRECTORY, so a component that is (or was swapped for) a
** symbolic link fails with ELOOP instead of being followed. On failure
** the directories this call made are removed again.
*/
static int l_fs_mkdir_beneath(lua_State *L)
{
    const char *root = luaL_checkstring(L, 1);
    size_t len;
    const char *rel = luaL_checklstring(L, 2, &len);
    lua_Integer mode = luaL_optinteger(L, 3, 0755);
    struct fs_res *r = NULL;
    char buf[PATH_MAX];
    char shown[PATH_MAX];
    char top[PATH_MAX];
    char msg[PATH_MAX * 2 + 64];
    char *p = NULL;
    size_t shown_len, done_len;
    struct stat st;
    int fd, e;

    luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "invalid mode");
    if (len >= sizeof(buf) || strlen(root) + len + 2 >= sizeof(shown))
        return dj_pushfail(L, "fs.mkdir_beneath: %s/%s: path too long", root,
                           rel);
    if (rel[0] == '/')
        return dj_pushfail(L, "fs.mkdir_beneath: %s: not a relative path", rel);
    memcpy(buf, rel, len + 1);
    shown_len = (size_t)snprintf(shown, sizeof(shown), "%s", root);
    done_len = shown_len; /* shown up to the last directory entered */
    top[0] = '\0';
    msg[0] = '\0';
    r = newres(L);
    r->fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->fd < 0) {
        snprintf(msg, sizeof(msg), "fs.mkdir_beneath: %s: %s", root,
                 strerror(errno));
        goto done;
    }
    p = buf;
    while (*p != '\0') {
        char *comp = p;
        char *slash = strchr(p, '/');

        if (slash != NULL) {
            *slash = '\0';
            p = slash + 1;
        } else {
            p += strlen(p);
        }
        if (comp[0] == '\0' || strcmp(comp, ".") == 0)
            continue;
        shown_len += (size_t)snprintf(shown + shown_len,
                                      sizeof(shown) - shown_len, "/%s", comp);
        if (strcmp(comp, "..") == 0) {
            snprintf(msg, sizeof(msg),
                     "fs.mkdir_beneath: %s: \"..\" is not allowed", shown);
            goto done;
        }
        if (mkdirat(r->fd, comp, (mode_t)mode) == 0) {
            if (top[0] == '\0')
                memcpy(top, shown, shown_len + 1);
        } else if (errno != EEXIST) {
            snprintf(msg, sizeof(msg), "fs.mkdir_beneath: %s: %s", shown,
                     strerror(errno));
            goto done;
        }
        fd = openat(r->fd, comp,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            e = errno;
            if (fstatat(r->fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(st.st_mode))
                snprintf(msg, sizeof(msg),
                         "fs.mkdir_beneath: %s: a symbolic link (links "
                         "below %s are not followed)",
                         shown, root);
            else
                snprintf(msg, sizeof(msg), "fs.mkdir_beneath: %s: %s", shown,
                         strerror(e));
            goto done;
        }
        close(r->fd);
        r->fd = fd;
        done_len = shown_len;
    }
done:
    res_release(r);
    if (msg[0] != '\0') {
        shown[done_len] = '\0';
        if (top[0] != '\0')
            unmake_dirs(shown, strlen(top));
        return dj_pushfail(L, "%s", msg);
    }
    lua_pushboolean(L, 1);
    if (top[0] == '\0')
        return 1;
    lua_pushstring(L, top);
    return 2;
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
** "<dir of path>/.<name of path>.djinn<tag>-XXXXXX" into out: a temporary
** name beside path (on its file system, so rename() can move it over
** path). 0, or -1 when it does not fit.
*/
static int tmp_beside(const char *path, const char *tag, char *out,
                      size_t outlen)
{
    size_t n = strlen(path);
    const char *base = NULL;
    int w;

    while (n > 1 && path[n - 1] == '/')
        n--;
    base = path + n;
    while (base > path && base[-1] != '/')
        base--;
    w = snprintf(out, outlen, "%.*s.%.*s.djinn%s-XXXXXX", (int)(base - path),
                 path, (int)(path + n - base), base, tag);
    if (w < 0 || (size_t)w >= outlen)
        return -1;
    return 0;
}

/*
** Copy a regular file; mode < 0 keeps the source's permission bits.
** atomic: write a temporary file beside dst (tmp_beside) and rename it
** over dst when complete; else create dst, which must not exist yet
** (O_EXCL | O_NOFOLLOW: copy_tree writes into a directory it just made).
** The file being written is r->tmp_path until it is complete, so
** res_release(r) removes a partial one.
** left: the byte budget (NULL = none), decremented by the bytes copied.
** Returns 0; -1 with errno (*where is the path that failed: src, or dst
** for anything on the writing side); or OVER_LIMIT: *size = the source's
** fstat size when that already was over (nothing written), else -1.
** The caller calls res_release(r) on every path.
*/
static int copy_file(struct fs_res *r, const char *src, const char *dst,
                     int mode, int atomic, long long *left, const char **where,
                     long long *size)
{
    char tmp[PATH_MAX];
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
        return OVER_LIMIT;
    }
    if (mode < 0)
        mode = (int)(st.st_mode & 07777);
    *where = dst;
    if (atomic) {
        if (tmp_beside(dst, "", tmp, sizeof(tmp)) < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        r->fd2 = mkostemp(tmp, O_CLOEXEC);
        if (r->fd2 < 0)
            return -1;
        r->tmp_path = dj_xstrdup(tmp);
    } else {
        r->fd2 = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      (mode_t)mode);
        if (r->fd2 < 0)
            return -1;
        r->tmp_path = dj_xstrdup(dst);
    }
    rc = copy_fd(r->fd, r->fd2, left);
    if (rc == OVER_LIMIT)
        return OVER_LIMIT;
    if (rc < 0 || fchmod(r->fd2, (mode_t)mode) < 0)
        return -1;
    rc = close(r->fd2);
    r->fd2 = -1;
    if (rc < 0)
        return -1;
    if (atomic && rename(tmp, dst) < 0)
        return -1;
    free(r->tmp_path);
    r->tmp_path = NULL;
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

/* The optional count limit at idx: -1 = none (nil), else >= 0. */
static long long opt_count(lua_State *L, int idx)
{
    lua_Integer max;

    if (lua_isnoneornil(L, idx))
        return -1;
    max = luaL_checkinteger(L, idx);
    luaL_argcheck(L, max >= 0, idx, "max_files must be >= 0");
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
    rc = copy_file(r, src, dst, (int)mode, 1, max >= 0 ? &left : NULL, &where,
                   &size);
    e = errno;
    res_release(r); /* on failure: the temporary file goes */
    errno = e;
    if (rc == OVER_LIMIT) {
        dj_pushfail(L, "fs.copy: %s: larger than the limit of %I bytes", src,
                    (lua_Integer)max);
        lua_pushliteral(L, "limit");
        if (size < 0)
            return 3;
        lua_pushinteger(L, (lua_Integer)size);
        return 4;
    }
    if (rc < 0) {
        if (e == EINVAL && where == src)
            return dj_pushfail(L, "fs.copy: %s: not a regular file", src);
        return fail(L, "copy", where);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/*
** Does a symbolic link at rel (its path below the copied tree's top, e.g.
** "/a/b/l") with the target lnk stay inside the tree? Yes only for a
** relative target whose leading ".." components do not climb above the
** top and that has no ".." after a name: the leading ".."s then go up
** through the link's real parent directories (copies of the source's),
** and every later step goes down, or through another link checked the
** same way. "a/../b" is refused: "a" may itself be a link.
*/
static int link_inside(const char *rel, const char *lnk)
{
    int depth = -1; /* the link's own name is not a directory */
    int named = 0;
    const char *p = NULL;

    for (p = rel; *p != '\0'; p++) {
        if (*p == '/' && p[1] != '\0' && p[1] != '/')
            depth++;
    }
    if (lnk[0] == '/' || lnk[0] == '\0')
        return 0;
    p = lnk;
    while (*p != '\0') {
        size_t n = strcspn(p, "/");

        if (n == 2 && p[0] == '.' && p[1] == '.') {
            depth--;
            if (named || depth < 0)
                return 0;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            named = 1;
        }
        p += n;
        while (*p == '/')
            p++;
    }
    return 1;
}

/*
** Move the finished copy tmp to dst: a rename when dst is missing; an
** existing directory is replaced (renamed over an empty temporary
** directory beside it, then removed). 0, or -1 with msg set.
*/
static int place_tree(struct fs_res *r, const char *tmp, const char *dst,
                      char *msg, size_t msglen)
{
    char old[PATH_MAX];
    char rmmsg[PATH_MAX + 128];
    struct stat st;
    int e;

    if (lstat(dst, &st) < 0) {
        if (errno == ENOENT && rename(tmp, dst) == 0)
            return 0;
        snprintf(msg, msglen, "fs.copy_tree: %s: %s", dst, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "fs.copy_tree: %s: exists and is not a directory",
                 dst);
        return -1;
    }
    if (tmp_beside(dst, "-old", old, sizeof(old)) < 0) {
        snprintf(msg, msglen, "fs.copy_tree: %s: path too long", dst);
        return -1;
    }
    if (mkdtemp(old) == NULL) {
        snprintf(msg, msglen, "fs.copy_tree: %s: %s", dst, strerror(errno));
        return -1;
    }
    /* rename() may replace an empty directory: old now holds dst. */
    if (rename(dst, old) < 0) {
        e = errno;
        (void)rmdir(old);
        snprintf(msg, msglen, "fs.copy_tree: %s: %s", dst, strerror(e));
        return -1;
    }
    if (rename(tmp, dst) < 0) {
        e = errno;
        (void)rename(old, dst);
        snprintf(msg, msglen, "fs.copy_tree: %s: %s", dst, strerror(e));
        return -1;
    }
    (void)remove_tree(r, old, rmmsg, sizeof(rmmsg));
    return 0;
}

static int l_fs_copy_tree(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    long long max = opt_max(L, 3);
    long long max_files = opt_count(L, 4);
    long long left = max;
    long long files = 0;
    struct fs_res *r = newres(L);
    struct fs_res *fr = newres(L);
    char *paths[2];
    FTSENT *e = NULL;
    size_t srclen = strlen(src);
    char tmp[PATH_MAX];
    char target[PATH_MAX];
    char shown[PATH_MAX];
    char link[PATH_MAX];
    char msg[PATH_MAX * 3 + 128];
    const char *code = NULL; /* "limit" | "count" */
    const char *where = NULL;
    int saved;

    while (srclen > 1 && src[srclen - 1] == '/')
        srclen--;
    if (tmp_beside(dst, "", tmp, sizeof(tmp)) < 0)
        return dj_pushfail(L, "fs.copy_tree: %s: path too long", dst);
    if (mkdtemp(tmp) == NULL)
        return fail(L, "copy_tree", dst);
    r->tmp_tree = dj_xstrdup(tmp);
    paths[0] = (char *)src;
    paths[1] = NULL;
    /* The top is followed when it is a link (COMFOLLOW), nothing below. */
    r->fts = fts_open(paths, FTS_PHYSICAL | FTS_COMFOLLOW | FTS_NOCHDIR, NULL);
    if (r->fts == NULL) {
        saved = errno;
        res_release(r);
        errno = saved;
        return fail(L, "copy_tree", src);
    }
    msg[0] = '\0';
    while (msg[0] == '\0' && (e = fts_read(r->fts)) != NULL) {
        const char *rel =
            e->fts_level == 0
                ? ""
                : e->fts_path + (e->fts_pathlen >= srclen ? srclen : 0);
        int n = snprintf(target, sizeof(target), "%s%s", tmp, rel);
        int m = snprintf(shown, sizeof(shown), "%s%s", dst, rel);
        int rc = 0;

        if (n < 0 || (size_t)n >= sizeof(target) || m < 0 ||
            (size_t)m >= sizeof(shown)) {
            snprintf(msg, sizeof(msg), "fs.copy_tree: %s: path too long",
                     e->fts_path);
            break;
        }
        if (e->fts_level == 0 &&
            (e->fts_info == FTS_F || e->fts_info == FTS_SL ||
             e->fts_info == FTS_SLNONE || e->fts_info == FTS_DEFAULT)) {
            snprintf(msg, sizeof(msg), "fs.copy_tree: %s: not a directory",
                     src);
            break;
        }
        if (e->fts_info == FTS_F || e->fts_info == FTS_SL ||
            e->fts_info == FTS_SLNONE) {
            if (max_files >= 0 && files >= max_files) {
                code = "count";
                snprintf(msg, sizeof(msg),
                         "fs.copy_tree: %s: more than %lld files, the limit",
                         src, max_files);
                break;
            }
            files++;
        }
        where = shown;
        switch (e->fts_info) {
        case FTS_D:
            /* 0700 while filling it; the source's mode at FTS_DP */
            if (e->fts_level > 0)
                rc = mkdir(target, 0700);
            break;
        case FTS_DP:
            rc = chmod(target, e->fts_statp->st_mode & 07777);
            break;
        case FTS_F: {
            long long size = -1;

            rc = copy_file(fr, e->fts_accpath, target, -1, 0,
                           max >= 0 ? &left : NULL, &where, &size);
            saved = errno;
            res_release(fr);
            errno = saved;
            if (where == target)
                where = shown;
            if (rc == OVER_LIMIT) {
                code = "limit";
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
            if (!link_inside(rel, link)) {
                snprintf(msg, sizeof(msg),
                         "fs.copy_tree: %s: a symbolic link to %s, which "
                         "leaves the copied tree (only links that stay "
                         "inside it are copied)",
                         e->fts_path, link);
                break;
            }
            where = shown;
            rc = symlink(link, target);
            break;
        }
        case FTS_DC:
            snprintf(msg, sizeof(msg), "fs.copy_tree: %s: a directory cycle",
                     e->fts_path);
            break;
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
        if (rc < 0 && msg[0] == '\0')
            snprintf(msg, sizeof(msg), "fs.copy_tree: %s: %s", where,
                     strerror(errno));
    }
    if (msg[0] == '\0' && e == NULL && errno != 0)
        snprintf(msg, sizeof(msg), "fs.copy_tree: %s: %s", src,
                 strerror(errno));
    fts_close(r->fts);
    r->fts = NULL;
    if (msg[0] == '\0' && place_tree(r, tmp, dst, msg, sizeof(msg)) == 0) {
        free(r->tmp_tree); /* handed over: dst now */
        r->tmp_tree = NULL;
    }
    res_release(fr);
    res_release(r); /* on failure: the temporary copy goes */
    if (msg[0] != '\0') {
        lua_pushnil(L);
        lua_pushstring(L, msg);
        if (code == NULL)
            return 2;
        lua_pushstring(L, code);
        return 3;
    }
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

/* Atomic write: "<dir>/.<base>.XXXXXX", write, fsync (unless sync is
** false), rename. */
static int l_fs_writefile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer mode = luaL_optinteger(L, 3, 0644);
    int sync = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
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
    if (fchmod(r->fd, (mode_t)mode) < 0 || (sync && fsync(r->fd) < 0))
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

/* fs.touch(path): its modification time becomes now (not following a
** symbolic link); the warm snapshot cache's least-recently-used order. */
static int l_fs_touch(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);

    if (utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(L, "touch", path);
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
    {"mkdtemp", l_fs_mkdtemp},
    {"mkdir_p", l_fs_mkdir_p},
    {"mkdir_beneath", l_fs_mkdir_beneath},
    {"rm_rf", l_fs_rm_rf},
    {"copy", l_fs_copy},
    {"copy_tree", l_fs_copy_tree},
    {"stat", l_fs_stat},
    {"lstat", l_fs_lstat},
    {"glob", l_fs_glob},
    {"readfile", l_fs_readfile},
    {"writefile", l_fs_writefile},
    {"listdir", l_fs_listdir},
    {"realpath", l_fs_realpath},
    {"exists", l_fs_exists},
    {"remove", l_fs_remove},
    {"rename", l_fs_rename},
    {"touch", l_fs_touch},
    {"cwd", l_fs_cwd},
    {"basename", l_fs_basename},
    {"dirname", l_fs_dirname},
    {"join", l_fs_join},
    {NULL, NULL},
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
