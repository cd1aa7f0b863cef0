/*
** l_tar.c - djinn.tar: tar streams in memory, over libarchive.
**
** Lua API (operational failures return nil, msg; misuse raises):
**   tar.create(entries [, opts]) -> string (a POSIX pax tar)
**       entries: array of tables, each one of
**         { name = "a/b.txt", data = "bytes" [, mode = 0644] }  a file
**         { name = "a/dir", type = "dir" [, mode = 0755] }        a dir
**         { name = "a/l", type = "symlink", linkname = "t" }     a link
**         { name = "a/x", path = "/host/path" }  the host file, or the
**             host directory with everything below it (renamed to name),
**             symlinks stored as symlinks; modes from the host
**       opts = { uid = 0, gid = 0, mtime = now } (owner and time of the
**             entries made from data/type; entries from host paths keep
**             their mtime; every entry gets uid/gid and no user names)
**       -> nil, "tar.create: /host/path: No such file or directory"
**   tar.extract(data, dir [, opts]) -> names | nil, msg
**       Extracts into the existing directory dir. Refuses (nothing more
**       is extracted, nil + msg naming the entry) absolute names, names
**       with a ".." component, hard links outside dir, symbolic links
**       whose target is absolute or leaves dir, and writing through a
**       symbolic link (ARCHIVE_EXTRACT_SECURE_NODOTDOT |
**       ARCHIVE_EXTRACT_SECURE_SYMLINKS on top of these checks). Modes
**       are restored without setuid/setgid/sticky bits; owners are not.
**       opts = { top = "name" }: the first path component of every entry
**       is replaced by name (GET /archive of "out" extracted as "res").
**       opts.max = bytes (>= 0): an entry larger than that, or entries
**       adding up to more, are refused from their headers before their
**       data is written: nil, "tar.extract: NAME: N bytes is larger than
**       the limit of M bytes" (or "...: the archive's files add up to more
**       than the limit of M bytes"), "limit". What was extracted before
**       stays (the caller removes it).
**       names = the extracted entries' names (after top), in order.
**   tar.extract_file(path, dir [, opts]) -> names | nil, msg [, "limit"]
**       The same, reading the archive from the file at path (read in
**       blocks: a large archive never is in memory at once).
**   tar.list(data) -> { {name=, type="file"|"dir"|"symlink"|"hardlink"|
**       "other", size=, mode=, linkname=}, ... } | nil, msg
**
** Ownership: the libarchive handles, the current entry, the output
** buffer and the open file live in a `djinn.tar.box` userdata created
** first; explicit release on return, __gc after a raise (docs/style.md
** rules 16, 17).
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"
#include "util.h"

#define BOX_MT "djinn.tar.box"
#define BLOCK 65536

struct box {
    struct archive *w; /* writer (memory or disk) */
    struct archive *r; /* reader (memory or disk) */
    struct archive_entry *e;
    char *buf; /* create: the output */
    size_t len, cap;
    int oom;
    int fd;
    char *io; /* BLOCK bytes */
};

static void box_release(struct box *b)
{
    if (b->w != NULL)
        archive_write_free(b->w);
    if (b->r != NULL)
        archive_read_free(b->r);
    if (b->e != NULL)
        archive_entry_free(b->e);
    if (b->fd >= 0)
        close(b->fd);
    free(b->buf);
    free(b->io);
    b->w = NULL;
    b->r = NULL;
    b->e = NULL;
    b->fd = -1;
    b->buf = b->io = NULL;
    b->len = b->cap = 0;
}

static int box_gc(lua_State *L)
{
    box_release(luaL_checkudata(L, 1, BOX_MT));
    return 0;
}

static struct box *newbox(lua_State *L)
{
    struct box *b = lua_newuserdatauv(L, sizeof(*b), 0);

    memset(b, 0, sizeof(*b));
    b->fd = -1;
    luaL_setmetatable(L, BOX_MT);
    return b;
}

/* Release the box, push nil and the message already on the stack top. */
static int fail_top(lua_State *L, struct box *b)
{
    box_release(b);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* --------------------------------------------------------------- create */

static la_ssize_t mem_write(struct archive *a, void *ud, const void *p,
                            size_t n)
{
    struct box *b = ud;
    size_t want;
    char *nb;

    (void)a;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    if (b->len + n > b->cap) {
        want = b->cap ? b->cap : BLOCK;
        while (want < b->len + n)
            want *= 2;
        nb = realloc(b->buf, want);
        if (nb == NULL) {
            b->oom = 1;
            return -1;
        }
        b->buf = nb;
        b->cap = want;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return (la_ssize_t)n;
}

static int optint(lua_State *L, int t, const char *k, lua_Integer def,
                  lua_Integer *out)
{
    int ty = lua_getfield(L, t, k);

    if (ty == LUA_TNIL)
        *out = def;
    else if (lua_isinteger(L, -1))
        *out = lua_tointeger(L, -1);
    else
        return luaL_error(L, "tar: field %s must be an integer, got %s", k,
                          luaL_typename(L, -1));
    lua_pop(L, 1);
    return 0;
}

/* Check an archive name: relative, no "..", not empty. NULL = fine. */
static const char *bad_name(const char *name)
{
    const char *p = name;

    if (name[0] == '\0')
        return "empty name";
    if (name[0] == '/')
        return "absolute name";
    while (*p != '\0') {
        size_t n = strcspn(p, "/");

        if (n == 2 && p[0] == '.' && p[1] == '.')
            return "name with a \"..\" component";
        p += n;
        while (*p == '/')
            p++;
    }
    return NULL;
}

/* Write the header of b->e (after normalising owner); nil,msg on error. */
static int put_header(lua_State *L, struct box *b, const char *name,
                      lua_Integer uid, lua_Integer gid)
{
    archive_entry_set_uid(b->e, uid);
    archive_entry_set_gid(b->e, gid);
    archive_entry_set_uname(b->e, NULL);
    archive_entry_set_gname(b->e, NULL);
    if (archive_write_header(b->w, b->e) != ARCHIVE_OK) {
        lua_pushfstring(L, "tar.create: %s: %s", name,
                        b->oom ? "out of memory" : archive_error_string(b->w));
        return -1;
    }
    return 0;
}

/* Add the host tree at `path` as `name`. 0 | -1 with the message pushed. */
static int add_host(lua_State *L, struct box *b, const char *name,
                    const char *path, lua_Integer uid, lua_Integer gid)
{
    size_t plen = strlen(path);
    int rc;

    b->r = archive_read_disk_new();
    if (b->r == NULL)
        return luaL_error(L, "tar.create: out of memory");
    archive_read_disk_set_symlink_physical(b->r);
    archive_read_disk_set_behavior(b->r, ARCHIVE_READDISK_NO_XATTR |
                                             ARCHIVE_READDISK_NO_ACL |
                                             ARCHIVE_READDISK_NO_FFLAGS);
    if (archive_read_disk_open(b->r, path) != ARCHIVE_OK) {
        lua_pushfstring(L, "tar.create: %s: %s", path,
                        archive_error_string(b->r));
        return -1;
    }
    for (;;) {
        const char *src;

        archive_entry_clear(b->e);
        rc = archive_read_next_header2(b->r, b->e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc != ARCHIVE_OK) {
            int e = archive_errno(b->r);

            lua_pushfstring(L, "tar.create: %s: %s", path,
                            e > 0 ? strerror(e) : archive_error_string(b->r));
            return -1;
        }
        src = archive_entry_pathname(b->e);
        if (src == NULL || strncmp(src, path, plen) != 0) {
            lua_pushfstring(L, "tar.create: %s: unexpected entry %s", path,
                            src ? src : "(null)");
            return -1;
        }
        /* name + the part below path; the pushed string is anchored */
        lua_pushfstring(L, "%s%s", name, src + plen);
        archive_entry_copy_pathname(b->e, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (archive_read_disk_can_descend(b->r))
            archive_read_disk_descend(b->r);
        if (put_header(L, b, path, uid, gid) != 0)
            return -1;
        if (archive_entry_filetype(b->e) == AE_IFREG &&
            archive_entry_size(b->e) > 0) {
            la_ssize_t n;

            while ((n = archive_read_data(b->r, b->io, BLOCK)) > 0) {
                if (archive_write_data(b->w, b->io, (size_t)n) != n) {
                    lua_pushfstring(L, "tar.create: %s: %s", src,
                                    b->oom ? "out of memory"
                                           : archive_error_string(b->w));
                    return -1;
                }
            }
            if (n < 0) {
                lua_pushfstring(L, "tar.create: %s: %s", src,
                                archive_error_string(b->r));
                return -1;
            }
        }
    }
    archive_read_close(b->r);
    archive_read_free(b->r);
    b->r = NULL;
    return 0;
}

static int l_create(lua_State *L)
{
    struct box *b;
    lua_Integer uid = 0, gid = 0, mtime = (lua_Integer)time(NULL);
    lua_Integer i, n;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        optint(L, 2, "uid", 0, &uid);
        optint(L, 2, "gid", 0, &gid);
        optint(L, 2, "mtime", mtime, &mtime);
    }
    lua_settop(L, 2);
    b = newbox(L); /* 3 */
    b->io = malloc(BLOCK);
    b->w = archive_write_new();
    b->e = archive_entry_new();
    if (b->io == NULL || b->w == NULL || b->e == NULL)
        return luaL_error(L, "tar.create: out of memory");
    if (archive_write_set_format_pax_restricted(b->w) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(b->w, 1) != ARCHIVE_OK ||
        archive_write_open(b->w, b, NULL, mem_write, NULL) != ARCHIVE_OK) {
        lua_pushfstring(L, "tar.create: %s", archive_error_string(b->w));
        return fail_top(L, b);
    }
    n = (lua_Integer)luaL_len(L, 1);
    for (i = 1; i <= n; i++) {
        const char *name, *why, *type = "file";
        lua_Integer mode;
        size_t dlen = 0;
        const char *data = NULL;

        lua_settop(L, 3);
        if (lua_geti(L, 1, i) != LUA_TTABLE) /* 4 */
            return luaL_error(L, "tar.create: entry %I is a %s, not a table", i,
                              luaL_typename(L, 4));
        if (lua_getfield(L, 4, "name") != LUA_TSTRING) /* 5 */
            return luaL_error(L, "tar.create: entry %I has no name", i);
        name = lua_tostring(L, 5);
        why = bad_name(name);
        if (why != NULL) {
            lua_pushfstring(L,
                            "tar.create: %s: %s (names are relative, "
                            "without \"..\")",
                            name, why);
            return fail_top(L, b);
        }
        if (lua_getfield(L, 4, "path") == LUA_TSTRING) { /* 6 */
            if (add_host(L, b, name, lua_tostring(L, 6), uid, gid) != 0)
                return fail_top(L, b);
            continue;
        }
        if (lua_getfield(L, 4, "type") == LUA_TSTRING) /* 7 */
            type = lua_tostring(L, 7);
        if (lua_getfield(L, 4, "data") == LUA_TSTRING) /* 8 */
            data = lua_tolstring(L, 8, &dlen);
        lua_getfield(L, 4, "linkname"); /* 9 */
        archive_entry_clear(b->e);
        archive_entry_copy_pathname(b->e, name);
        archive_entry_set_mtime(b->e, (time_t)mtime, 0);
        if (strcmp(type, "dir") == 0) {
            optint(L, 4, "mode", 0755, &mode);
            archive_entry_set_filetype(b->e, AE_IFDIR);
        } else if (strcmp(type, "symlink") == 0) {
            if (!lua_isstring(L, 9))
                return luaL_error(L,
                                  "tar.create: %s: a symlink needs "
                                  "linkname",
                                  name);
            mode = 0777;
            archive_entry_set_filetype(b->e, AE_IFLNK);
            archive_entry_copy_symlink(b->e, lua_tostring(L, 9));
        } else if (strcmp(type, "file") == 0) {
            if (data == NULL)
                return luaL_error(L,
                                  "tar.create: %s: a file needs data "
                                  "(a string) or path",
                                  name);
            optint(L, 4, "mode", 0644, &mode);
            archive_entry_set_filetype(b->e, AE_IFREG);
            archive_entry_set_size(b->e, (la_int64_t)dlen);
        } else {
            return luaL_error(L,
                              "tar.create: %s: unknown type %s (allowed: "
                              "file, dir, symlink)",
                              name, type);
        }
        archive_entry_set_perm(b->e, (mode_t)(mode & 07777));
        if (put_header(L, b, name, uid, gid) != 0)
            return fail_top(L, b);
        if (data != NULL && dlen > 0 && strcmp(type, "file") == 0 &&
            archive_write_data(b->w, data, dlen) != (la_ssize_t)dlen) {
            lua_pushfstring(L, "tar.create: %s: %s", name,
                            b->oom ? "out of memory"
                                   : archive_error_string(b->w));
            return fail_top(L, b);
        }
    }
    if (archive_write_close(b->w) != ARCHIVE_OK) {
        lua_pushfstring(L, "tar.create: %s",
                        b->oom ? "out of memory" : archive_error_string(b->w));
        return fail_top(L, b);
    }
    lua_settop(L, 3);
    lua_pushlstring(L, b->buf, b->len);
    box_release(b);
    return 1;
}

/* -------------------------------------------------------- extract, list */

/* data, len: the archive in memory; data NULL: len is unused and path
** names the archive file. */
static int open_reader(lua_State *L, struct box *b, const char *data,
                       size_t len, const char *path, const char *what)
{
    int rc;

    b->r = archive_read_new();
    if (b->r == NULL)
        return luaL_error(L, "tar.%s: out of memory", what);
    archive_read_support_format_tar(b->r);
    archive_read_support_format_gnutar(b->r);
    if (data != NULL)
        rc = archive_read_open_memory(b->r, data, len);
    else
        rc = archive_read_open_filename(b->r, path, BLOCK);
    if (rc != ARCHIVE_OK) {
        lua_pushfstring(L, "tar.%s: %s", what, archive_error_string(b->r));
        return -1;
    }
    return 0;
}

static const char *type_name(mode_t t)
{
    switch (t) {
    case AE_IFREG:
        return "file";
    case AE_IFDIR:
        return "dir";
    case AE_IFLNK:
        return "symlink";
    default:
        return "other";
    }
}

/* Strip leading "./" and trailing "/"; pushes the result. */
static const char *clean_name(lua_State *L, const char *name)
{
    size_t n;

    while (name[0] == '.' && name[1] == '/')
        name += 2;
    while (name[0] == '/' && name[1] == '/')
        name++;
    n = strlen(name);
    while (n > 1 && name[n - 1] == '/')
        n--;
    lua_pushlstring(L, name, n);
    return lua_tostring(L, -1);
}

/*
** Does the symlink `target` of the entry `rel` stay inside the tree?
** Lexical: from dirname(rel), every ".." must stay at depth >= 0.
*/
static int link_inside(const char *rel, const char *target)
{
    int depth = 0;
    const char *p = rel, *q;

    if (target[0] == '/' || target[0] == '\0')
        return 0;
    for (q = strchr(p, '/'); q != NULL; q = strchr(q + 1, '/'))
        depth++; /* components of dirname(rel) */
    p = target;
    while (*p != '\0') {
        size_t n = strcspn(p, "/");

        if (n == 2 && p[0] == '.' && p[1] == '.')
            depth--;
        else if (!(n == 1 && p[0] == '.') && n > 0)
            depth++;
        if (depth < 0)
            return 0;
        p += n;
        while (*p == '/')
            p++;
    }
    return 1;
}

/* Release the box, push nil, the message on the stack top and "limit". */
static int fail_limit(lua_State *L, struct box *b)
{
    fail_top(L, b);
    lua_pushliteral(L, "limit");
    return 3;
}

/* tar.extract (from_file 0: argument 1 is the archive) and
** tar.extract_file (from_file 1: argument 1 is its path). */
static int extract(lua_State *L, int from_file)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    const char *dir = luaL_checkstring(L, 2);
    const char *fn = from_file ? "extract_file" : "extract";
    const char *top = NULL;
    char real[PATH_MAX];
    struct box *b;
    lua_Integer count = 0;
    lua_Integer max = -1;
    lua_Integer total = 0;
    int rc;

    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        if (lua_getfield(L, 3, "max") != LUA_TNIL) {
            int isint = 0;

            max = lua_tointegerx(L, -1, &isint);
            luaL_argcheck(L, isint && max >= 0, 3,
                          "max must be an integer >= 0 (bytes)");
        }
        lua_pop(L, 1);
        if (lua_getfield(L, 3, "top") == LUA_TSTRING) {
            top = lua_tostring(L, -1);
            luaL_argcheck(L, bad_name(top) == NULL && !strchr(top, '/'), 3,
                          "top must be one relative path component");
        }
    }
    lua_settop(L, 4);
    if (realpath(dir, real) == NULL)
        return dj_pushfail(L, "tar.%s: %s: %s", fn, dir, strerror(errno));
    b = newbox(L);   /* 5 */
    lua_newtable(L); /* 6: names */
    b->w = archive_write_disk_new();
    b->e = NULL;
    if (b->w == NULL)
        return luaL_error(L, "tar.%s: out of memory", fn);
    archive_write_disk_set_options(b->w, ARCHIVE_EXTRACT_TIME |
                                             ARCHIVE_EXTRACT_PERM |
                                             ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                             ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    if (open_reader(L, b, from_file ? NULL : data, len, data, fn) != 0)
        return fail_top(L, b);
    for (;;) {
        struct archive_entry *e;
        const char *name, *rel, *why, *link;
        const void *blk;
        size_t blen;
        la_int64_t off;

        lua_settop(L, 6);
        rc = archive_read_next_header(b->r, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc < ARCHIVE_WARN) {
            lua_pushfstring(L, "tar.%s: %s", fn, archive_error_string(b->r));
            return fail_top(L, b);
        }
        name = archive_entry_pathname(e);
        if (name == NULL)
            name = "";
        rel = clean_name(L, name); /* 7 */
        if (strcmp(rel, ".") == 0 || rel[0] == '\0')
            continue;
        why = bad_name(rel);
        if (why != NULL) {
            lua_pushfstring(L,
                            "tar.%s: refusing %s: %s (only "
                            "relative names without \"..\")",
                            fn, name, why);
            return fail_top(L, b);
        }
        if (top != NULL) {
            const char *slash = strchr(rel, '/');

            lua_pushfstring(L, "%s%s", top, slash ? slash : ""); /* 8 */
            rel = lua_tostring(L, -1);
        }
        link = archive_entry_hardlink(e);
        if (link != NULL) {
            const char *lrel = clean_name(L, link);

            if (bad_name(lrel) != NULL) {
                lua_pushfstring(L,
                                "tar.%s: refusing %s: hard link to "
                                "%s outside the target directory",
                                fn, name, link);
                return fail_top(L, b);
            }
            if (top != NULL) {
                const char *slash = strchr(lrel, '/');

                lua_pushfstring(L, "%s%s", top, slash ? slash : "");
                lrel = lua_tostring(L, -1);
            }
            lua_pushfstring(L, "%s/%s", real, lrel);
            archive_entry_copy_hardlink(e, lua_tostring(L, -1));
        }
        link = archive_entry_symlink(e);
        if (archive_entry_filetype(e) == AE_IFLNK &&
            (link == NULL || !link_inside(rel, link))) {
            lua_pushfstring(L,
                            "tar.%s: refusing %s: symbolic link to "
                            "%s leaves the target directory",
                            fn, name, link ? link : "(nothing)");
            return fail_top(L, b);
        }
        if (max >= 0) {
            la_int64_t size = archive_entry_size(e);

            if (size > max) {
                lua_pushfstring(L,
                                "tar.%s: %s: %I bytes is larger than the "
                                "limit of %I bytes",
                                fn, rel, (lua_Integer)size, max);
                return fail_limit(L, b);
            }
            if (size > max - total) {
                lua_pushfstring(L,
                                "tar.%s: %s: the archive's files add up to "
                                "more than the limit of %I bytes",
                                fn, rel, max);
                return fail_limit(L, b);
            }
            if (size > 0)
                total += (lua_Integer)size;
        }
        lua_pushvalue(L, top != NULL ? 8 : 7);
        lua_rawseti(L, 6, ++count);
        lua_pushfstring(L, "%s/%s", real, rel);
        /* from here on `name` is stale: messages use rel */
        archive_entry_copy_pathname(e, lua_tostring(L, -1));
        archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
        rc = archive_write_header(b->w, e);
        if (rc < ARCHIVE_WARN) {
            lua_pushfstring(L, "tar.%s: %s: %s", fn, rel,
                            archive_error_string(b->w));
            return fail_top(L, b);
        }
        while ((rc = archive_read_data_block(b->r, &blk, &blen, &off)) ==
               ARCHIVE_OK) {
            if (archive_write_data_block(b->w, blk, blen, off) < ARCHIVE_OK) {
                lua_pushfstring(L, "tar.%s: %s: %s", fn, rel,
                                archive_error_string(b->w));
                return fail_top(L, b);
            }
        }
        if (rc != ARCHIVE_EOF) {
            lua_pushfstring(L, "tar.%s: %s: %s", fn, rel,
                            archive_error_string(b->r));
            return fail_top(L, b);
        }
        if (archive_write_finish_entry(b->w) < ARCHIVE_WARN) {
            lua_pushfstring(L, "tar.%s: %s: %s", fn, rel,
                            archive_error_string(b->w));
            return fail_top(L, b);
        }
    }
    if (archive_write_close(b->w) < ARCHIVE_WARN) {
        lua_pushfstring(L, "tar.%s: %s", fn, archive_error_string(b->w));
        return fail_top(L, b);
    }
    box_release(b);
    lua_settop(L, 6);
    return 1;
}

static int l_extract(lua_State *L)
{
    return extract(L, 0);
}

static int l_extract_file(lua_State *L)
{
    return extract(L, 1);
}

static int l_list(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    struct box *b = newbox(L); /* 2 */
    lua_Integer count = 0;
    int rc;

    lua_newtable(L); /* 3 */
    if (open_reader(L, b, data, len, NULL, "list") != 0)
        return fail_top(L, b);
    for (;;) {
        struct archive_entry *e;
        const char *link;

        lua_settop(L, 3);
        rc = archive_read_next_header(b->r, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc < ARCHIVE_WARN) {
            lua_pushfstring(L, "tar.list: %s", archive_error_string(b->r));
            return fail_top(L, b);
        }
        lua_createtable(L, 0, 5);
        clean_name(L,
                   archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        lua_setfield(L, -2, "name");
        link = archive_entry_hardlink(e);
        lua_pushstring(L, link != NULL ? "hardlink"
                                       : type_name(archive_entry_filetype(e)));
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, (lua_Integer)archive_entry_size(e));
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, (lua_Integer)archive_entry_perm(e));
        lua_setfield(L, -2, "mode");
        if (link == NULL)
            link = archive_entry_symlink(e);
        if (link != NULL) {
            lua_pushstring(L, link);
            lua_setfield(L, -2, "linkname");
        }
        lua_rawseti(L, 3, ++count);
        archive_read_data_skip(b->r);
    }
    box_release(b);
    lua_settop(L, 3);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"create", l_create},
    {"extract", l_extract},
    {"extract_file", l_extract_file},
    {"list", l_list},
    {NULL, NULL},
};

int luaopen_djinn_tar(lua_State *L)
{
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
