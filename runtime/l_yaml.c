/*
** l_yaml.c - djinn.yaml: YAML 1.1 parsing over libyaml, with positions
** and hard limits, for manifests and driver configuration.
**
** Lua API (see docs/lua-api.md):
**   yaml.parse(text [, opts]) -> root node | nil, "FILE:LINE:COL: message"
**   yaml.decode(text [, opts]) -> plain Lua value | nil, msg
**   yaml.parse_packed(text [, opts]) -> value, meta, shared | nil, msg
**   yaml.manifest_fast(text [, opts]) -> root, meta, 0 | nil, why
**   yaml.manifest_fast_file(path [, opts]) -> the same, over a file
**     (djinn.manifest's one-pass load: see the comment at its code)
**     opts = { filename = "<string>", max_depth = 64 (nesting of
**              sequences/mappings), max_size = 8 MiB (bytes of input),
**              max_nodes = 100000 (nodes, counting every alias as the
**              whole subtree it stands for), max_alias_nodes =
**              max_nodes (the nodes that aliases stand for, in all) }
**   Nodes (lines and columns 1-based; libyaml's marks are 0-based):
**     { kind = "scalar", value =, style = "plain"|"single"|"double"|
**       "literal"|"folded", tag = "!!str"|nil, line =, col = }
**     { kind = "seq", line =, col =, tag = nil|..., [1] = node, ... }
**     { kind = "map", line =, col =, tag = nil|..., keys = {node...},
**       values = {node...} }           (order kept, duplicates kept)
**   An alias is the same table as its anchored node. An empty stream is
**   a plain scalar "" at 1:1. A second document is an error.
**   parse_packed (for djinn.manifest: no table per scalar, which is most
**   of the cost of a large document) gives each scalar as its string
**   value plus a "meta" integer beside it, and collections as tables:
**     { kind = "seq", line, col, tag, items = {value...},
**       meta = {meta...}, odd = N }
**     { kind = "map", line, col, tag, keys = {value...},
**       kmeta = {meta...}, values = {value...}, vmeta = {meta...},
**       odd = N, merge = true, dup = true }
**   odd counts the items that are not non-null scalars (of a map: the
**   keys that are not scalars; absent = 0); merge is set when a key is
**   a merge key (a plain untagged "<<", or one tagged !!merge); dup
**   when two keys may be equal (checked up to 16 keys, larger mappings
**   always have it). shared
**   is the number of aliases of collections (0: no table is reachable
**   twice). meta = line << 36 | col << 7 | flags, flags = style
**   (bits 0-2: 0 plain, 1 single, 2 double, 3 literal, 4 folded) |
**   tag << 3 (0 none, 1 !!null, 2 !!merge, 3 another) | 32 when the
**   scalar is null (tagged !!null, or plain and untagged "", "~",
**   "null", "Null", "NULL") | 64 for a merge key.
**   A collection's meta is its position with flags 0. Input is at
**   most PACKED_MAX_SIZE bytes (so lines and columns fit).
**   decode() turns nodes into strings/arrays/tables (scalars stay
**   strings); it rejects non-scalar and duplicate mapping keys.
**   Errors (all nil, msg; only wrong argument types raise):
**     FILE:L:C: <libyaml problem> (<context> at L:C)
**     FILE:L:C: nesting deeper than N levels (max_depth)
**     FILE:L:C: alias expansion exceeds N nodes (max_nodes)
**     FILE:L:C: alias expansion exceeds N nodes (max_alias_nodes)
**     FILE:L:C: document has more than N nodes (max_nodes)
**     FILE:L:C: unknown alias *name / recursive alias *name
**     FILE:L:C: more than one YAML document
**     FILE:1:1: input is N bytes, larger than max_size M
**
** Ownership: the parser and the current event live in a
** `djinn.yaml.parser` userdata created before yaml_parser_initialize();
** each event is deleted as soon as it is handled, and the parser is
** deleted before returning; __gc covers a raise in between (out of
** memory). The tree is built without C recursion: open collections sit
** on the Lua stack (FRAME_SLOTS slots each), with the depth checked
** before each push, and their bookkeeping in a Lua-owned array.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <yaml.h>

#include "djinn.h"
#include "util.h"

#define PARSER_MT "djinn.yaml.parser"
#define DEF_MAX_DEPTH 64
#define DEF_MAX_SIZE (8 * 1024 * 1024)
#define DEF_MAX_NODES 100000
#define HARD_MAX_DEPTH 10000
#define TAG_PREFIX "tag:yaml.org,2002:"
/* parse_packed: lines and columns must fit their bits of meta. */
#define PACKED_MAX_SIZE ((lua_Integer)1 << 27)
#define META_NULL 32
#define META_MERGE 64
/* packed: values wait on the stack, at most this many per collection,
 * so that small collections get tables of their exact size (and
 * HARD_MAX_DEPTH * (PACK_CHUNK + 2) stays under Lua's stack limit) */
#define PACK_CHUNK 64

/* Stack slots of an open collection when packed, from its base. */
enum {
    P_TAG = 0, /* the tag ("!!str" form), or nil */
    P_ANCHOR,  /* the anchor's name, or nil */
    P_ITEMS,   /* nil until the first flush: items (seq) or keys (map) */
    P_VALUES,  /* map: nil until the first flush: values */
    P_FIRST    /* then its pending values (map: key, value, ...) */
};

/* Stack slots of an open collection, from its base. */
enum {
    F_NODE = 0, /* the collection's table */
    F_A,        /* keys (map) or items (seq) */
    F_B,        /* full: values; packed: kmeta (map) or meta (seq) */
    F_C,        /* packed map: values */
    F_D,        /* packed map: vmeta */
    F_ANCHOR,   /* the anchor's name, or nil */
    FRAME_SLOTS
};

struct yparser {
    yaml_parser_t parser;
    yaml_event_t event;
    int parser_live;
    int event_live;
    /* packed: the metas of the open collections' items, innermost last */
    lua_Integer *metas;
    size_t nmeta, capmeta;
    /* manifest_fast_file: the file's bytes */
    void *text;
};

/* One open sequence or mapping. */
struct yframe {
    int is_map;
    int base;         /* stack index of F_NODE (packed: P_NODE) */
    lua_Integer n;    /* items (seq) or keys (map) so far */
    int expect_value; /* map: the next node is a value */
    long long start_count;
    /* packed only */
    lua_Integer odd;     /* items/keys not non-null scalars */
    int merge;           /* map: a merge key was seen */
    int pending;         /* values on the stack above P_FIRST */
    lua_Integer flushed; /* values already moved into the tables */
    size_t meta_start;   /* its items' metas: yparser.metas[meta_start..] */
    lua_Integer meta;    /* its own position */
};

struct ylimits {
    const char *filename;
    lua_Integer max_depth, max_size, max_nodes, max_alias_nodes;
    int packed;
};

static void yp_release(struct yparser *p)
{
    if (p->event_live)
        yaml_event_delete(&p->event);
    p->event_live = 0;
    if (p->parser_live)
        yaml_parser_delete(&p->parser);
    p->parser_live = 0;
    free(p->metas);
    p->metas = NULL;
    p->nmeta = p->capmeta = 0;
    free(p->text);
    p->text = NULL;
}

static int yp_gc(lua_State *L)
{
    yp_release((struct yparser *)luaL_checkudata(L, 1, PARSER_MT));
    return 0;
}

static lua_Integer optlimit(lua_State *L, int opts, const char *name,
                            lua_Integer def, lua_Integer max)
{
    lua_Integer v = def;

    if (opts == 0)
        return def;
    lua_getfield(L, opts, name);
    if (!lua_isnil(L, -1)) {
        int ok = 0;

        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 1 || v > max)
            luaL_error(L, "yaml: option %s must be an integer in 1..%I", name,
                       max); /* does not return */
    }
    lua_pop(L, 1);
    return v;
}

/* Line/column (1-based) of a byte offset, for reader errors. */
static void offset_pos(const char *s, size_t len, size_t off, long *line,
                       long *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < len; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)s[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

/* Format libyaml's error into buf (example-deconstructor.c forms). */
static void format_parser_error(const yaml_parser_t *p, const char *fname,
                                const char *text, size_t len, char *buf,
                                size_t n)
{
    long line, col;
    const char *problem = p->problem != NULL ? p->problem : "unknown error";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        snprintf(buf, n, "%s:1:1: not enough memory for parsing", fname);
        break;
    case YAML_READER_ERROR:
        offset_pos(text, len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            snprintf(buf, n, "%s:%ld:%ld: %s (byte 0x%02X at offset %zu)",
                     fname, line, col, problem,
                     (unsigned)p->problem_value & 0xFFu, p->problem_offset);
        else
            snprintf(buf, n, "%s:%ld:%ld: %s (at offset %zu)", fname, line, col,
                     problem, p->problem_offset);
        break;
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
    default:
        if (p->context != NULL)
            snprintf(buf, n, "%s:%zu:%zu: %s (%s at %zu:%zu)", fname,
                     p->problem_mark.line + 1, p->problem_mark.column + 1,
                     problem, p->context, p->context_mark.line + 1,
                     p->context_mark.column + 1);
        else
            snprintf(buf, n, "%s:%zu:%zu: %s", fname, p->problem_mark.line + 1,
                     p->problem_mark.column + 1, problem);
        break;
    }
}

static void set_pos(lua_State *L, const yaml_mark_t *m)
{
    lua_pushinteger(L, (lua_Integer)m->line + 1);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, (lua_Integer)m->column + 1);
    lua_setfield(L, -2, "col");
}

/* Push a tag in its "!!str" form, or nil. */
static void push_tag(lua_State *L, const yaml_char_t *tag)
{
    const char *t = (const char *)tag;
    size_t plen = sizeof(TAG_PREFIX) - 1;

    if (t == NULL)
        lua_pushnil(L);
    else if (strncmp(t, TAG_PREFIX, plen) == 0)
        lua_pushfstring(L, "!!%s", t + plen);
    else
        lua_pushstring(L, t);
}

static void set_tag(lua_State *L, const yaml_char_t *tag)
{
    if (tag == NULL)
        return;
    push_tag(L, tag);
    lua_setfield(L, -2, "tag");
}

static const char *style_name(yaml_scalar_style_t s)
{
    switch (s) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        return "single";
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        return "double";
    case YAML_LITERAL_SCALAR_STYLE:
        return "literal";
    case YAML_FOLDED_SCALAR_STYLE:
        return "folded";
    default:
        return "plain";
    }
}

/* Stack slots used by parse_tree (see l_yaml_parse). */
enum {
    S_TEXT = 1,
    S_OPTS,
    S_PARSER,
    S_FRAMES,
    S_ROOT,
    S_ANCH,
    S_ASIZE,
    S_OPEN,
    S_AMETA,
    S_FIRSTFRAME
};

static int style_code(yaml_scalar_style_t s)
{
    switch (s) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        return 1;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        return 2;
    case YAML_LITERAL_SCALAR_STYLE:
        return 3;
    case YAML_FOLDED_SCALAR_STYLE:
        return 4;
    default:
        return 0;
    }
}

static int tag_code(const yaml_char_t *tag)
{
    if (tag == NULL)
        return 0;
    if (strcmp((const char *)tag, TAG_PREFIX "null") == 0)
        return 1;
    if (strcmp((const char *)tag, TAG_PREFIX "merge") == 0)
        return 2;
    return 3;
}

static lua_Integer pack_meta(const yaml_mark_t *m, int flags)
{
    return ((lua_Integer)(m->line + 1) << 36) |
           ((lua_Integer)(m->column + 1) << 7) | flags;
}

/* The meta of a scalar event: position, style, tag, null, merge. */
static lua_Integer scalar_meta(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    int style = style_code(ev->data.scalar.style);
    int tag = tag_code(ev->data.scalar.tag);
    int flags = style | (tag << 3);

    if (tag == 1) {
        flags |= META_NULL;
    } else if (style == 0 && tag == 0) {
        if (len == 0 || (len == 1 && v[0] == '~') ||
            (len == 4 &&
             (memcmp(v, "null", 4) == 0 || memcmp(v, "Null", 4) == 0 ||
              memcmp(v, "NULL", 4) == 0)))
            flags |= META_NULL;
    }
    if (len == 2 && v[0] == '<' && v[1] == '<' &&
        ((style == 0 && tag == 0) || tag == 2))
        flags |= META_MERGE;
    return pack_meta(&ev->start_mark, flags);
}

/* Attach the node on top of the stack to the innermost frame or root. */
static void attach(lua_State *L, struct yframe *frames, int depth)
{
    struct yframe *f = NULL;

    if (depth == 0) {
        lua_replace(L, S_ROOT);
        return;
    }
    f = &frames[depth - 1];
    if (!f->is_map) {
        lua_rawseti(L, f->base + F_NODE, ++f->n); /* node[i] */
    } else if (!f->expect_value) {
        lua_rawseti(L, f->base + F_A, ++f->n);
        f->expect_value = 1;
    } else {
        lua_rawseti(L, f->base + F_B, f->n);
        f->expect_value = 0;
    }
}

/* Packed: remember an item's meta (the yparser's buffer). */
static void push_meta(struct yparser *yp, lua_Integer meta)
{
    if (yp->nmeta == yp->capmeta) {
        size_t cap = yp->capmeta ? yp->capmeta * 2 : 256;

        yp->metas = dj_xreallocarray(yp->metas, cap, sizeof(*yp->metas));
        yp->capmeta = cap;
    }
    yp->metas[yp->nmeta++] = meta;
}

/*
** Packed: move the frame's pending values (on top of the stack) into its
** tables (seq: items; map: keys and values, alternating), creating them
** on the first flush with room for what is pending.
*/
static void flush_pending(lua_State *L, struct yframe *f)
{
    int np = f->pending, i, k;
    int first = lua_gettop(L) - np + 1;

    if (np == 0 && f->flushed > 0)
        return;
    for (k = 0; k < (f->is_map ? 2 : 1); k++) {
        int slot = f->base + P_ITEMS + k, step = f->is_map ? 2 : 1;
        lua_Integer at = f->flushed / step;

        if (f->flushed == 0) {
            lua_createtable(L, (np + step - 1 - k) / step, 0);
            lua_replace(L, slot);
        }
        for (i = k; i < np; i += step) {
            lua_pushvalue(L, first + i);
            lua_rawseti(L, slot, ++at);
        }
    }
    f->flushed += np;
    f->pending = 0;
    lua_settop(L, first - 1);
}

/*
** Packed: attach the value on top of the stack, with its meta, to the
** innermost frame (or the root, its meta in *root_meta). odd: the value
** is not a non-null scalar.
*/
static void attach_packed(lua_State *L, struct yparser *yp,
                          struct yframe *frames, int depth, lua_Integer meta,
                          int odd, lua_Integer *root_meta)
{
    struct yframe *f = NULL;

    if (depth == 0) {
        lua_replace(L, S_ROOT);
        *root_meta = meta;
        return;
    }
    f = &frames[depth - 1];
    if (!f->is_map) {
        f->n++;
        f->odd += odd;
    } else if (!f->expect_value) {
        f->n++;
        f->expect_value = 1;
        /* keys: only a non-scalar is odd (a null key is its string) */
        if (lua_type(L, -1) != LUA_TSTRING)
            f->odd++;
        if (meta & META_MERGE)
            f->merge = 1;
    } else {
        f->expect_value = 0;
    }
    push_meta(yp, meta);
    f->pending++;
    /* (a map flushes after a value, keeping keys and values paired) */
    if (f->pending >= PACK_CHUNK && !f->expect_value)
        flush_pending(L, f);
}

/* Packed: open a collection (its stack slots; the table comes at the
 * end, when its sizes are known). */
static void open_packed(lua_State *L, struct yparser *yp, struct yframe *f,
                        const yaml_event_t *ev)
{
    int is_map = ev->type == YAML_MAPPING_START_EVENT;
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;

    luaL_checkstack(L, PACK_CHUNK + 8, "yaml: nesting too deep");
    f->pending = 0;
    f->flushed = 0;
    f->meta_start = yp->nmeta;
    f->meta = pack_meta(&ev->start_mark, 0);
    push_tag(L,
             is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (anchor != NULL) {
        lua_pushstring(L, (const char *)anchor);
        lua_pushboolean(L, 1);
        lua_setfield(L, S_OPEN, (const char *)anchor);
    } else {
        lua_pushnil(L);
    }
    lua_pushnil(L);
    lua_pushnil(L);
}

/*
** Packed: whether the n keys in the table at index keys are distinct
** (compared as Lua values, so equal strings match). Checked pairwise up
** to DUP_CHECK_MAX keys; a larger mapping is reported as not known to be
** distinct, and djinn.manifest looks for itself.
*/
#define DUP_CHECK_MAX 16
static int map_keys_distinct(lua_State *L, int keys, lua_Integer n)
{
    lua_Integer i, j;
    int distinct = 1;

    if (n <= 1)
        return 1;
    if (n > DUP_CHECK_MAX)
        return 0;
    for (i = 2; i <= n && distinct; i++) {
        lua_rawgeti(L, keys, i);
        for (j = 1; j < i && distinct; j++) {
            lua_rawgeti(L, keys, j);
            if (lua_rawequal(L, -1, -2))
                distinct = 0;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return distinct;
}

/* Packed: close the innermost collection, leaving its table on top. */
static void close_packed(lua_State *L, struct yparser *yp,
                         const struct yframe *cf, long long count)
{
    struct yframe fr = *cf;
    struct yframe *f = &fr;
    lua_Integer i, total;
    int node;

    flush_pending(L, f);
    total = f->flushed;
    lua_createtable(L, (int)total, 4);
    node = lua_gettop(L);
    for (i = 0; i < total; i++) {
        lua_pushinteger(L, yp->metas[f->meta_start + (size_t)i]);
        lua_rawseti(L, node, i + 1);
    }
    yp->nmeta = f->meta_start;
    lua_pushstring(L, f->is_map ? "map" : "seq");
    lua_setfield(L, node, "kind");
    lua_pushvalue(L, f->base + P_ITEMS);
    lua_setfield(L, node, f->is_map ? "keys" : "items");
    if (f->is_map) {
        lua_pushvalue(L, f->base + P_VALUES);
        lua_setfield(L, node, "values");
    }
    if (f->merge) {
        lua_pushboolean(L, 1);
        lua_setfield(L, node, "merge");
    }
    if (f->is_map && !map_keys_distinct(L, f->base + P_ITEMS, total / 2)) {
        lua_pushboolean(L, 1);
        lua_setfield(L, node, "dup");
    }
    if (f->odd > 0) {
        lua_pushinteger(L, f->odd);
        lua_setfield(L, node, "odd");
    }
    if (!lua_isnil(L, f->base + P_TAG)) {
        lua_pushvalue(L, f->base + P_TAG);
        lua_setfield(L, node, "tag");
    }
    if (lua_type(L, f->base + P_ANCHOR) == LUA_TSTRING) {
        const char *a = lua_tostring(L, f->base + P_ANCHOR);

        lua_pushvalue(L, node);
        lua_setfield(L, S_ANCH, a);
        lua_pushinteger(L, (lua_Integer)(count - f->start_count + 1));
        lua_setfield(L, S_ASIZE, a);
        lua_pushinteger(L, f->meta);
        lua_setfield(L, S_AMETA, a);
        lua_pushnil(L);
        lua_setfield(L, S_OPEN, a);
    }
    lua_replace(L, f->base);
    lua_settop(L, f->base);
}

/* Full nodes: open a collection (FRAME_SLOTS stack slots). */
static void open_collection(lua_State *L, struct yframe *f,
                            const yaml_event_t *ev)
{
    int is_map = ev->type == YAML_MAPPING_START_EVENT;
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    int i;

    (void)f;
    luaL_checkstack(L, FRAME_SLOTS + 4, "yaml: nesting too deep");
    lua_createtable(L, 0, 6);
    lua_pushstring(L, is_map ? "map" : "seq");
    lua_setfield(L, -2, "kind");
    set_pos(L, &ev->start_mark);
    set_tag(L,
            is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (is_map) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "keys");
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -4, "values");
        lua_pushnil(L);
        lua_pushnil(L);
    } else {
        for (i = 0; i < 4; i++)
            lua_pushnil(L);
    }
    if (anchor != NULL) {
        lua_pushstring(L, (const char *)anchor);
        lua_pushboolean(L, 1);
        lua_setfield(L, S_OPEN, (const char *)anchor);
    } else {
        lua_pushnil(L);
    }
}

/* Full nodes: close the innermost collection, leaving it on top. */
static void close_collection(lua_State *L, const struct yframe *f,
                             long long count)
{
    if (lua_type(L, f->base + F_ANCHOR) == LUA_TSTRING) {
        const char *a = lua_tostring(L, f->base + F_ANCHOR);

        lua_pushvalue(L, f->base + F_NODE);
        lua_setfield(L, S_ANCH, a);
        lua_pushinteger(L, (lua_Integer)(count - f->start_count + 1));
        lua_setfield(L, S_ASIZE, a);
        lua_pushnil(L);
        lua_setfield(L, S_OPEN, a);
    }
    lua_settop(L, f->base + F_NODE);
}

/*
** The event loop. Returns 0 with the root in S_ROOT (packed: its meta in
** *root_meta, and in *shared the number of aliases of collections), or -1
** with the message in buf. Raises only on out-of-memory (the userdata
** cleans up).
*/
static int parse_tree(lua_State *L, struct yparser *yp,
                      const struct ylimits *lim, const char *text, size_t len,
                      char *buf, size_t bufsz, lua_Integer *root_meta,
                      lua_Integer *shared)
{
    struct yframe *frames = lua_touserdata(L, S_FRAMES);
    int depth = 0, ndocs = 0, done = 0;
    long long count = 0, expanded = 0;
    yaml_event_t *ev = &yp->event;
    const char *fname = lim->filename;

    while (!done) {
        const yaml_mark_t *m = NULL;

        if (!yaml_parser_parse(&yp->parser, ev)) {
            format_parser_error(&yp->parser, fname, text, len, buf, bufsz);
            return -1;
        }
        yp->event_live = 1;
        m = &ev->start_mark;
        switch (ev->type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs > 1) {
                snprintf(buf, bufsz, "%s:%zu:%zu: more than one YAML document",
                         fname, m->line + 1, m->column + 1);
                return -1;
            }
            break;
        case YAML_SCALAR_EVENT:
            if (++count > lim->max_nodes)
                goto too_many;
            if (lim->packed) {
                lua_Integer meta = scalar_meta(ev);

                lua_pushlstring(L, (const char *)ev->data.scalar.value,
                                ev->data.scalar.length);
                if (ev->data.scalar.anchor != NULL) {
                    const char *a = (const char *)ev->data.scalar.anchor;

                    lua_pushvalue(L, -1);
                    lua_setfield(L, S_ANCH, a);
                    lua_pushinteger(L, meta);
                    lua_setfield(L, S_AMETA, a);
                    lua_pushinteger(L, 1);
                    lua_setfield(L, S_ASIZE, a);
                }
                attach_packed(L, yp, frames, depth, meta,
                              (meta & META_NULL) != 0, root_meta);
                break;
            }
            lua_createtable(L, 0, 6);
            lua_pushliteral(L, "scalar");
            lua_setfield(L, -2, "kind");
            lua_pushlstring(L, (const char *)ev->data.scalar.value,
                            ev->data.scalar.length);
            lua_setfield(L, -2, "value");
            lua_pushstring(L, style_name(ev->data.scalar.style));
            lua_setfield(L, -2, "style");
            set_tag(L, ev->data.scalar.tag);
            set_pos(L, m);
            if (ev->data.scalar.anchor != NULL) {
                lua_pushvalue(L, -1);
                lua_setfield(L, S_ANCH, (const char *)ev->data.scalar.anchor);
                lua_pushinteger(L, 1);
                lua_setfield(L, S_ASIZE, (const char *)ev->data.scalar.anchor);
            }
            attach(L, frames, depth);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            struct yframe *f = NULL;

            if (depth >= lim->max_depth) {
                snprintf(buf, bufsz,
                         "%s:%zu:%zu: nesting deeper than %lld levels "
                         "(max_depth)",
                         fname, m->line + 1, m->column + 1,
                         (long long)lim->max_depth);
                return -1;
            }
            if (++count > lim->max_nodes)
                goto too_many;
            f = &frames[depth++];
            f->is_map = ev->type == YAML_MAPPING_START_EVENT;
            f->base = lua_gettop(L) + 1;
            f->n = 0;
            f->expect_value = 0;
            f->odd = 0;
            f->merge = 0;
            f->start_count = count;
            if (lim->packed)
                open_packed(L, yp, f, ev);
            else
                open_collection(L, f, ev);
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            struct yframe *f = &frames[--depth];

            if (lim->packed) {
                lua_Integer meta = f->meta;

                close_packed(L, yp, f, count);
                attach_packed(L, yp, frames, depth, meta, 1, root_meta);
            } else {
                close_collection(L, f, count);
                attach(L, frames, depth);
            }
            break;
        }
        case YAML_ALIAS_EVENT: {
            const char *a = (const char *)ev->data.alias.anchor;
            lua_Integer size;

            lua_getfield(L, S_OPEN, a);
            if (lua_toboolean(L, -1)) {
                snprintf(buf, bufsz,
                         "%s:%zu:%zu: recursive alias *%s (refers to a node "
                         "that contains it)",
                         fname, m->line + 1, m->column + 1, a);
                return -1;
            }
            lua_pop(L, 1);
            lua_getfield(L, S_ASIZE, a);
            size = lua_tointeger(L, -1);
            lua_pop(L, 1);
            if (size <= 0) {
                snprintf(buf, bufsz, "%s:%zu:%zu: unknown alias *%s", fname,
                         m->line + 1, m->column + 1, a);
                return -1;
            }
            count += size;
            expanded += size;
            if (count > lim->max_nodes || expanded > lim->max_alias_nodes) {
                int total = count > lim->max_nodes;

                snprintf(
                    buf, bufsz,
                    "%s:%zu:%zu: alias expansion exceeds %lld nodes "
                    "(%s)",
                    fname, m->line + 1, m->column + 1,
                    (long long)(total ? lim->max_nodes : lim->max_alias_nodes),
                    total ? "max_nodes" : "max_alias_nodes");
                return -1;
            }
            lua_getfield(L, S_ANCH, a);
            if (!lim->packed) {
                attach(L, frames, depth);
            } else if (lua_type(L, -1) == LUA_TTABLE) {
                /* the collection is now reachable twice */
                lua_Integer meta;

                (*shared)++;
                lua_getfield(L, S_AMETA, a);
                meta = lua_tointeger(L, -1);
                lua_pop(L, 1);
                attach_packed(L, yp, frames, depth, meta, 1, root_meta);
            } else {
                lua_Integer meta;

                lua_getfield(L, S_AMETA, a);
                meta = lua_tointeger(L, -1);
                lua_pop(L, 1);
                attach_packed(L, yp, frames, depth, meta,
                              (meta & META_NULL) != 0, root_meta);
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(ev);
        yp->event_live = 0;
    }
    return 0;

too_many:
    snprintf(buf, bufsz,
             "%s:%zu:%zu: document has more than %lld nodes "
             "(max_nodes)",
             fname, ev->start_mark.line + 1, ev->start_mark.column + 1,
             (long long)lim->max_nodes);
    return -1;
}

/* yaml.parse and yaml.parse_packed: see the file header. */
static int parse_common(lua_State *L, int packed)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    struct ylimits lim;
    struct yparser *yp = NULL;
    char buf[1024];
    int opts = 0, rc;
    lua_Integer root_meta = 0, shared = 0;

    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    lua_settop(L, 2);
    lim.filename = "<string>";
    lim.packed = packed;
    if (opts != 0) {
        lua_getfield(L, opts, "filename");
        if (lua_type(L, -1) == LUA_TSTRING)
            lim.filename = lua_tostring(L, -1); /* anchored by opts */
        else if (!lua_isnil(L, -1))
            return luaL_error(L, "yaml: option filename must be a string");
        lua_pop(L, 1);
    }
    lim.max_depth =
        optlimit(L, opts, "max_depth", DEF_MAX_DEPTH, HARD_MAX_DEPTH);
    lim.max_size = optlimit(L, opts, "max_size", DEF_MAX_SIZE,
                            packed ? PACKED_MAX_SIZE : LUA_MAXINTEGER);
    lim.max_nodes =
        optlimit(L, opts, "max_nodes", DEF_MAX_NODES, LUA_MAXINTEGER);
    lim.max_alias_nodes =
        optlimit(L, opts, "max_alias_nodes", lim.max_nodes, LUA_MAXINTEGER);
    if ((lua_Integer)len > lim.max_size || len > (size_t)LUA_MAXINTEGER)
        return dj_pushfail(L,
                           "%s:1:1: input is %I bytes, larger than "
                           "max_size %I",
                           lim.filename, (lua_Integer)len, lim.max_size);

    /* S_PARSER: the closed parser userdata, then acquire. */
    yp = lua_newuserdatauv(L, sizeof(*yp), 0);
    memset(yp, 0, sizeof(*yp));
    luaL_setmetatable(L, PARSER_MT);
    /* S_FRAMES, S_ROOT, S_ANCH, S_ASIZE, S_OPEN, S_AMETA */
    lua_newuserdatauv(L, (size_t)lim.max_depth * sizeof(struct yframe), 0);
    lua_pushnil(L);
    lua_newtable(L);
    lua_newtable(L);
    lua_newtable(L);
    lua_newtable(L);
    if (!yaml_parser_initialize(&yp->parser))
        return dj_pushfail(L, "%s:1:1: cannot initialize the YAML parser",
                           lim.filename);
    yp->parser_live = 1;
    yaml_parser_set_input_string(&yp->parser, (const unsigned char *)text, len);
    rc = parse_tree(L, yp, &lim, text, len, buf, sizeof(buf), &root_meta,
                    &shared);
    yp_release(yp);
    if (rc < 0)
        return dj_pushfail(L, "%s", buf);
    if (lua_isnil(L, S_ROOT) && packed) {
        yaml_mark_t start;

        memset(&start, 0, sizeof(start));
        lua_pushliteral(L, "");
        lua_pushinteger(L, pack_meta(&start, META_NULL));
        lua_pushinteger(L, 0);
        return 3;
    }
    if (lua_isnil(L, S_ROOT)) {
        lua_createtable(L, 0, 5);
        lua_pushliteral(L, "scalar");
        lua_setfield(L, -2, "kind");
        lua_pushliteral(L, "");
        lua_setfield(L, -2, "value");
        lua_pushliteral(L, "plain");
        lua_setfield(L, -2, "style");
        lua_pushinteger(L, 1);
        lua_setfield(L, -2, "line");
        lua_pushinteger(L, 1);
        lua_setfield(L, -2, "col");
        return 1;
    }
    lua_pushvalue(L, S_ROOT);
    if (packed) {
        lua_pushinteger(L, root_meta);
        lua_pushinteger(L, shared);
        return 3;
    }
    return 1;
}

static int l_yaml_parse(lua_State *L)
{
    return parse_common(L, 0);
}

static int l_yaml_parse_packed(lua_State *L)
{
    return parse_common(L, 1);
}

/* yaml.decode, in Lua over parse (its recursion is bounded by max_depth
 * and uses no C stack). */
static const char decode_src[] =
    "local parse = ...\n"
    "return function(text, opts)\n"
    "  local root, err = parse(text, opts)\n"
    "  if not root then return nil, err end\n"
    "  local fname = opts and opts.filename or '<string>'\n"
    "  local memo = {}\n"
    "  local function at(n) return fname .. ':' .. n.line .. ':' .. n.col "
    ".. ': ' end\n"
    "  local function conv(n)\n"
    "    if n.kind == 'scalar' then return n.value end\n"
    "    if memo[n] then return memo[n] end\n"
    "    local t = {}\n"
    "    memo[n] = t\n"
    "    if n.kind == 'seq' then\n"
    "      for i = 1, #n do\n"
    "        local v, e = conv(n[i])\n"
    "        if v == nil then return nil, e end\n"
    "        t[i] = v\n"
    "      end\n"
    "    else\n"
    "      for i, k in ipairs(n.keys) do\n"
    "        if k.kind ~= 'scalar' then\n"
    "          return nil, at(k) .. 'mapping key must be a scalar'\n"
    "        end\n"
    "        if t[k.value] ~= nil then\n"
    "          return nil, at(k) .. string.format('duplicate key %q', "
    "k.value)\n"
    "        end\n"
    "        local v, e = conv(n.values[i])\n"
    "        if v == nil then return nil, e end\n"
    "        t[k.value] = v\n"
    "      end\n"
    "    end\n"
    "    return t\n"
    "  end\n"
    "  return conv(root)\n"
    "end\n";

/*
** yaml.manifest_fast(text [, opts]) -> root, meta, 0 | nil, why
**
** The common manifest in one pass, for djinn.manifest: the packed tree of
** parse_packed, except that a `jobs:` list is built straight into the job
** tables the loader returns (m.jobs: stage, name, commands, artifacts as
** { src, dst, named, line, col }, line, col), with no node per scalar.
** It takes only what loads without a message: any job the loader would
** warn about or refuse (an unknown or repeated key, a null job, stage or
** item, a key of the wrong type, an artifact with an empty source or a
** destination that leaves the artifacts directory), any anchor, alias,
** merge key or tag on a collection, a repeated or non-string top-level
** key, more than one document, a YAML error or a limit reached gives
** nil and why, and djinn.manifest loads the text the full way
** (parse_packed), which says what is wrong and where. The jobs value is
** { kind = "seq", fast = true, items = { job ... } }, its meta the
** list's position; djinn.manifest still checks stages and names.
** opts: max_size, max_nodes and max_depth as for parse_packed (nesting
** deeper than FAST_MAX_DEPTH is left to the full load too).
*/
#define FAST_MAX_DEPTH 32

struct fast {
    lua_State *L;
    struct yparser *yp;
    lua_Integer max_nodes;
    lua_Integer max_depth; /* collections open at once, <= FAST_MAX_DEPTH */
    lua_Integer count;
    const char *why;
};

/* The next event into yp->event; 0 (why set) for anything not taken. */
static int fast_next(struct fast *F)
{
    struct yparser *yp = F->yp;
    yaml_event_t *ev = &yp->event;
    const yaml_char_t *anchor = NULL, *tag = NULL;

    if (yp->event_live)
        yaml_event_delete(ev);
    yp->event_live = 0;
    if (!yaml_parser_parse(&yp->parser, ev)) {
        F->why = "a YAML error";
        return 0;
    }
    yp->event_live = 1;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    case YAML_ALIAS_EVENT:
        F->why = "an alias";
        return 0;
    default:
        return 1;
    }
    if (anchor != NULL || tag != NULL) {
        F->why = "an anchor, or a tag on a collection";
        return 0;
    }
    if (++F->count > F->max_nodes) {
        F->why = "the node limit";
        return 0;
    }
    return 1;
}

static int fast_is(const yaml_event_t *ev, const char *s, size_t n)
{
    return ev->data.scalar.length == n &&
           memcmp(ev->data.scalar.value, s, n) == 0;
}

/* Push the current scalar event's value; its meta in *meta. */
static void fast_scalar(struct fast *F, lua_Integer *meta)
{
    const yaml_event_t *ev = &F->yp->event;

    *meta = scalar_meta(ev);
    lua_pushlstring(F->L, (const char *)ev->data.scalar.value,
                    ev->data.scalar.length);
}

/*
** A mapping's key (the current event): a scalar, not a merge key, added
** as the (*n + 1)th key, its meta into node's array part as the packed
** tree keeps it; 0 (why set) for anything else. The event stays current.
*/
static int fast_key(struct fast *F, int node, int keys, lua_Integer *n)
{
    lua_State *L = F->L;
    lua_Integer m;

    if (F->yp->event.type != YAML_SCALAR_EVENT) {
        F->why = "a key that is not a scalar";
        return 0;
    }
    fast_scalar(F, &m);
    if (m & META_MERGE) {
        F->why = "a merge key";
        return 0;
    }
    lua_rawseti(L, keys, ++*n);
    lua_pushinteger(L, m);
    lua_rawseti(L, node, 2 * *n - 1);
    return 1;
}

/* The value on top of the stack (meta m) as the nth key's value. */
static void fast_value(lua_State *L, int node, int values, lua_Integer n,
                       lua_Integer m)
{
    lua_rawseti(L, values, n);
    lua_pushinteger(L, m);
    lua_rawseti(L, node, 2 * n);
}

/*
** Push the node that starts with the current event, packed as
** parse_packed packs it (a scalar and its meta, or a collection table
** whose array part holds its items' metas); its meta in *meta.
*/
static int fast_node(struct fast *F, int depth, lua_Integer *meta)
{
    lua_State *L = F->L;
    yaml_event_t *ev = &F->yp->event;
    lua_Integer n = 0, odd = 0, m;
    int node, items, values = 0, is_map;

    if (ev->type == YAML_SCALAR_EVENT) {
        fast_scalar(F, meta);
        return 1;
    }
    if (depth >= F->max_depth) {
        F->why = "deep nesting";
        return 0;
    }
    is_map = ev->type == YAML_MAPPING_START_EVENT;
    *meta = pack_meta(&ev->start_mark, 0);
    luaL_checkstack(L, 8, "yaml: nesting too deep");
    lua_createtable(L, 0, 4);
    node = lua_gettop(L);
    lua_pushstring(L, is_map ? "map" : "seq");
    lua_setfield(L, node, "kind");
    lua_newtable(L);
    items = lua_gettop(L);
    if (is_map) {
        lua_newtable(L);
        values = lua_gettop(L);
    }
    for (;;) {
        if (!fast_next(F))
            return 0;
        if (ev->type == YAML_SEQUENCE_END_EVENT ||
            ev->type == YAML_MAPPING_END_EVENT)
            break;
        if (is_map) {
            if (!fast_key(F, node, items, &n) || !fast_next(F) ||
                !fast_node(F, depth + 1, &m))
                return 0;
            fast_value(L, node, values, n, m);
        } else {
            int coll = ev->type != YAML_SCALAR_EVENT;

            if (!fast_node(F, depth + 1, &m))
                return 0;
            if (coll || (m & META_NULL))
                odd++;
            lua_rawseti(L, items, ++n);
            lua_pushinteger(L, m);
            lua_rawseti(L, node, n);
        }
    }
    if (is_map) {
        lua_pushvalue(L, values);
        lua_setfield(L, node, "values");
        if (!map_keys_distinct(L, items, n)) {
            lua_pushboolean(L, 1);
            lua_setfield(L, node, "dup");
        }
    }
    lua_pushvalue(L, items);
    lua_setfield(L, node, is_map ? "keys" : "items");
    if (odd > 0) {
        lua_pushinteger(L, odd);
        lua_setfield(L, node, "odd");
    }
    lua_settop(L, node);
    return 1;
}

/* Lua's %s: what util.trim removes. */
static int fast_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Push util.trim(s[0..n)). */
static void fast_trimmed(lua_State *L, const char *s, size_t n, const char **ts,
                         size_t *tn)
{
    while (n > 0 && fast_space((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n > 0 && fast_space((unsigned char)s[n - 1]))
        n--;
    *ts = s;
    *tn = n;
    lua_pushlstring(L, s, n);
}

/*
** One artifact, SRC [=> DST], as manifest.parse_passthrough reads it, into
** a table { src, dst, named, line, col } on the stack; 0 when the loader
** would have a message for it (an empty SRC; a DST that is absolute or
** has a ".." component).
*/
static int fast_artifact(struct fast *F, lua_Integer meta)
{
    lua_State *L = F->L;
    const yaml_event_t *ev = &F->yp->event;
    const char *s = (const char *)ev->data.scalar.value, *src, *dst;
    size_t n = ev->data.scalar.length, srcn, dstn = 0, i;
    const char *arrow = NULL;
    int named = 0;

    for (i = 0; i + 1 < n; i++)
        if (s[i] == '=' && s[i + 1] == '>') {
            arrow = s + i;
            break;
        }
    lua_createtable(L, 0, 5);
    fast_trimmed(L, s, arrow ? (size_t)(arrow - s) : n, &src, &srcn);
    if (srcn == 0) {
        F->why = "an artifact with an empty source";
        return 0;
    }
    lua_setfield(L, -2, "src");
    if (arrow != NULL) {
        fast_trimmed(L, arrow + 2, n - (size_t)(arrow + 2 - s), &dst, &dstn);
        if (dstn > 0) {
            named = 1;
            lua_setfield(L, -2, "dst");
        } else {
            lua_pop(L, 1);
        }
    }
    if (!named) {
        /* util.basename(src): without trailing "/"s, after the last "/" */
        size_t end = srcn, b;

        while (end > 0 && src[end - 1] == '/')
            end--;
        if (end == 0) {
            lua_pushliteral(L, "/");
        } else {
            b = end;
            while (b > 0 && src[b - 1] != '/')
                b--;
            lua_pushlstring(L, src + b, end - b);
        }
        lua_setfield(L, -2, "dst");
    } else {
        /* check_paths: a written DST stays inside the artifacts dir */
        size_t c = 0;

        if (dst[0] == '/') {
            F->why = "an absolute artifact destination";
            return 0;
        }
        while (c < dstn) {
            size_t e = c;

            while (e < dstn && dst[e] != '/')
                e++;
            if (e - c == 2 && dst[c] == '.' && dst[c + 1] == '.') {
                F->why = "an artifact destination with \"..\"";
                return 0;
            }
            c = e + 1;
        }
    }
    lua_pushboolean(L, named);
    lua_setfield(L, -2, "named");
    lua_pushinteger(L, meta >> 36);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, (meta >> 7) & (((lua_Integer)1 << 29) - 1));
    lua_setfield(L, -2, "col");
    return 1;
}

/*
** A job's commands or artifacts (the current event starts it): a list of
** non-null scalars, or null for none; its table on the stack.
*/
static int fast_list(struct fast *F, int artifacts)
{
    lua_State *L = F->L;
    yaml_event_t *ev = &F->yp->event;
    lua_Integer n = 0, meta;
    int list;

    if (ev->type == YAML_SCALAR_EVENT) {
        if (!(scalar_meta(ev) & META_NULL)) {
            F->why = "a job's list that is a scalar";
            return 0;
        }
        lua_newtable(L);
        return 1;
    }
    if (ev->type != YAML_SEQUENCE_START_EVENT) {
        F->why = "a job's list that is a mapping";
        return 0;
    }
    lua_createtable(L, artifacts ? 1 : 4, 0);
    list = lua_gettop(L);
    for (;;) {
        if (!fast_next(F))
            return 0;
        if (ev->type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ev->type != YAML_SCALAR_EVENT) {
            F->why = "a list item that is not a scalar";
            return 0;
        }
        meta = scalar_meta(ev);
        if (meta & META_NULL) {
            F->why = "a null list item";
            return 0;
        }
        if (artifacts) {
            if (!fast_artifact(F, meta))
                return 0;
        } else {
            lua_pushlstring(L, (const char *)ev->data.scalar.value,
                            ev->data.scalar.length);
        }
        lua_rawseti(L, list, ++n);
    }
    return 1;
}

/*
** Push { kind = "seq", fast = true } and, above it, the table its items
** go into (set as its `items` when the list ends); the items' index.
*/
static int fast_open_list(lua_State *L)
{
    luaL_checkstack(L, 12, "yaml: nesting too deep");
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "seq");
    lua_setfield(L, -2, "kind");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "fast");
    lua_newtable(L);
    return lua_gettop(L);
}

/* A job's keys, in the bits of fast_jobs' `seen`. */
static const char *const job_fields[] = {"stage", "name", "commands",
                                         "artifacts"};

/* The jobs list (the current event starts it), as described above. */
static int fast_jobs(struct fast *F)
{
    lua_State *L = F->L;
    yaml_event_t *ev = &F->yp->event;
    lua_Integer n = 0, meta;
    int jobs, job;

    jobs = fast_open_list(L);
    for (;;) {
        unsigned seen = 0;

        if (!fast_next(F))
            return 0;
        if (ev->type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ev->type != YAML_MAPPING_START_EVENT) {
            F->why = "a job that is not a mapping";
            return 0;
        }
        lua_createtable(L, 0, 7);
        job = lua_gettop(L);
        set_pos(L, &ev->start_mark);
        for (;;) {
            unsigned bit;
            const char *field;
            int which;

            if (!fast_next(F))
                return 0;
            if (ev->type == YAML_MAPPING_END_EVENT)
                break;
            if (ev->type != YAML_SCALAR_EVENT) {
                F->why = "a job key that is not a scalar";
                return 0;
            }
            for (which = 0; which < 4; which++)
                if (fast_is(ev, job_fields[which], strlen(job_fields[which])))
                    break;
            if (which == 4) {
                F->why = "an unknown job key";
                return 0;
            }
            field = job_fields[which];
            bit = 1u << which;
            if (seen & bit) {
                F->why = "a repeated job key";
                return 0;
            }
            seen |= bit;
            if (!fast_next(F))
                return 0;
            if (which >= 2) {
                if (!fast_list(F, which == 3))
                    return 0;
            } else if (ev->type != YAML_SCALAR_EVENT) {
                F->why = "a job's stage or name that is not a scalar";
                return 0;
            } else {
                meta = scalar_meta(ev);
                if (meta & META_NULL) {
                    if (which == 0) {
                        F->why = "a null stage";
                        return 0;
                    }
                    continue; /* a null name: the default name */
                }
                lua_pushlstring(L, (const char *)ev->data.scalar.value,
                                ev->data.scalar.length);
            }
            lua_setfield(L, job, field);
        }
        if (!(seen & 1u)) {
            F->why = "a job without a stage";
            return 0;
        }
        if (!(seen & 4u)) {
            lua_newtable(L);
            lua_setfield(L, job, "commands");
        }
        if (!(seen & 8u)) {
            lua_newtable(L);
            lua_setfield(L, job, "artifacts");
        }
        lua_rawseti(L, jobs, ++n);
    }
    lua_setfield(L, -2, "items");
    return 1;
}

/*
** The top-level env list (the current event starts it): KEY=VALUE items,
** each split on its first "=" into { key, value }, as djinn.manifest
** splits them; an item without "=", with an empty KEY or with a NUL byte
** is left to the full load. Pushes { kind = "seq", fast = true, items }.
*/
static int fast_env(struct fast *F)
{
    lua_State *L = F->L;
    yaml_event_t *ev = &F->yp->event;
    lua_Integer n = 0;
    int list;

    list = fast_open_list(L);
    for (;;) {
        const char *v, *eq;
        size_t len;

        if (!fast_next(F))
            return 0;
        if (ev->type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ev->type != YAML_SCALAR_EVENT || (scalar_meta(ev) & META_NULL)) {
            F->why = "an env item that is not a string";
            return 0;
        }
        v = (const char *)ev->data.scalar.value;
        len = ev->data.scalar.length;
        eq = memchr(v, '=', len);
        if (eq == NULL || eq == v || memchr(v, '\0', len) != NULL) {
            F->why = "an env item that is not KEY=VALUE";
            return 0;
        }
        lua_createtable(L, 0, 2);
        lua_pushlstring(L, v, (size_t)(eq - v));
        lua_setfield(L, -2, "key");
        lua_pushlstring(L, eq + 1, len - (size_t)(eq - v) - 1);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, list, ++n);
    }
    lua_setfield(L, -2, "items");
    return 1;
}

/* The document: a mapping at the top, then its end and the stream's. */
static int fast_document(struct fast *F, lua_Integer *root_meta)
{
    lua_State *L = F->L;
    yaml_event_t *ev = &F->yp->event;
    lua_Integer n = 0, m;
    int node, keys, values;

    do {
        if (!fast_next(F))
            return 0;
    } while (ev->type == YAML_STREAM_START_EVENT ||
             ev->type == YAML_DOCUMENT_START_EVENT);
    if (ev->type != YAML_MAPPING_START_EVENT) {
        F->why = "a document that is not a mapping";
        return 0;
    }
    *root_meta = pack_meta(&ev->start_mark, 0);
    lua_createtable(L, 16, 3);
    node = lua_gettop(L);
    lua_pushliteral(L, "map");
    lua_setfield(L, node, "kind");
    lua_createtable(L, 8, 0);
    keys = lua_gettop(L);
    lua_createtable(L, 8, 0);
    values = lua_gettop(L);
    for (;;) {
        int is_jobs; /* 1 jobs, 2 env: built as djinn.manifest's */

        if (!fast_next(F))
            return 0;
        if (ev->type == YAML_MAPPING_END_EVENT)
            break;
        if (n >= DUP_CHECK_MAX) {
            F->why = "more top-level keys than are checked for repeats";
            return 0;
        }
        if (!fast_key(F, node, keys, &n))
            return 0;
        is_jobs = fast_is(ev, "jobs", 4) ? 1 : fast_is(ev, "env", 3) ? 2 : 0;
        if (!fast_next(F))
            return 0;
        if (is_jobs && ev->type == YAML_SEQUENCE_START_EVENT) {
            m = pack_meta(&ev->start_mark, 0);
            if (!(is_jobs == 1 ? fast_jobs(F) : fast_env(F)))
                return 0;
        } else if (!fast_node(F, 1, &m)) {
            return 0;
        }
        fast_value(L, node, values, n, m);
    }
    if (!map_keys_distinct(L, keys, n)) {
        F->why = "a repeated top-level key";
        return 0;
    }
    lua_pushvalue(L, keys);
    lua_setfield(L, node, "keys");
    lua_pushvalue(L, values);
    lua_setfield(L, node, "values");
    lua_settop(L, node);
    if (!fast_next(F) || ev->type != YAML_DOCUMENT_END_EVENT || !fast_next(F) ||
        ev->type != YAML_STREAM_END_EVENT) {
        F->why = F->why ? F->why : "more than one document";
        return 0;
    }
    return 1;
}

/*
** The one-pass load over text (len bytes) with the options at index opts
** (0: none), yp the parser userdata on the stack; its results pushed.
*/
static int fast_run(lua_State *L, struct yparser *yp, const char *text,
                    size_t len, int opts)
{
    lua_Integer max_size =
        optlimit(L, opts, "max_size", DEF_MAX_SIZE, PACKED_MAX_SIZE);
    struct fast F;
    lua_Integer root_meta = 0;
    int ok;

    F.L = L;
    F.yp = yp;
    F.max_nodes = optlimit(L, opts, "max_nodes", DEF_MAX_NODES, LUA_MAXINTEGER);
    F.max_depth = optlimit(L, opts, "max_depth", DEF_MAX_DEPTH, HARD_MAX_DEPTH);
    if (F.max_depth > FAST_MAX_DEPTH)
        F.max_depth = FAST_MAX_DEPTH;
    F.count = 0;
    F.why = NULL;
    if ((lua_Integer)len > max_size || len > (size_t)LUA_MAXINTEGER ||
        F.max_depth < 4 /* the jobs' lists sit at depth 3 */) {
        yp_release(yp);
        return dj_pushfail(L, "the size or depth limit");
    }
    if (!yaml_parser_initialize(&yp->parser)) {
        yp_release(yp);
        return dj_pushfail(L, "cannot initialize the YAML parser");
    }
    yp->parser_live = 1;
    yaml_parser_set_input_string(&yp->parser, (const unsigned char *)text, len);
    ok = fast_document(&F, &root_meta);
    yp_release(yp);
    if (!ok)
        return dj_pushfail(L, "%s", F.why ? F.why : "not a manifest");
    lua_pushinteger(L, root_meta);
    lua_pushinteger(L, 0);
    return 3;
}

static struct yparser *new_parser(lua_State *L)
{
    struct yparser *yp = lua_newuserdatauv(L, sizeof(*yp), 0);

    memset(yp, 0, sizeof(*yp));
    luaL_setmetatable(L, PARSER_MT);
    return yp;
}

static int l_yaml_manifest_fast(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    int opts = lua_istable(L, 2) ? 2 : 0;

    lua_settop(L, 2);
    return fast_run(L, new_parser(L), text, len, opts);
}

/*
** yaml.manifest_fast_file(path [, opts]): manifest_fast over a regular
** file's bytes, read once into a buffer of its own (freed on return)
** rather than into a Lua string, which costs the bytes
** twice over (io.read's buffer, then the string). nil, why for a file it
** cannot read ("the file cannot be opened"), one that is not a regular
** file ("not a regular file": never opened), over max_size, or that
** changed size while it was read: the caller then reads it as before.
*/
static int l_yaml_manifest_fast_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int opts = lua_istable(L, 2) ? 2 : 0;
    lua_Integer max_size =
        optlimit(L, opts, "max_size", DEF_MAX_SIZE, PACKED_MAX_SIZE);
    struct yparser *yp = NULL;
    struct stat st;
    size_t got = 0;
    char extra;
    ssize_t n;
    int fd;

    lua_settop(L, 2);
    yp = new_parser(L);
    /* (a pipe or FIFO is never opened here: opening and closing it could
     * cost its writer its reader) */
    if (stat(path, &st) != 0)
        return dj_pushfail(L, "the file cannot be opened");
    if (!S_ISREG(st.st_mode))
        return dj_pushfail(L, "not a regular file");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return dj_pushfail(L, "the file cannot be opened");
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dj_pushfail(L, "not a regular file");
    }
    if (st.st_size < 0 || (lua_Integer)st.st_size > max_size) {
        close(fd);
        return dj_pushfail(L, "over the size limit");
    }
    yp->text = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (yp->text == NULL) {
        close(fd);
        return dj_pushfail(L, "no memory for the file");
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, (char *)yp->text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    /* (a file that changed size while read is left to the caller) */
    do
        n = read(fd, &extra, 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (got != (size_t)st.st_size || n != 0)
        return dj_pushfail(L, "the file changed while it was read");
    return fast_run(L, yp, yp->text, got, opts);
}

static const luaL_Reg yaml_funcs[] = {
    {"parse", l_yaml_parse},
    {"parse_packed", l_yaml_parse_packed},
    {"manifest_fast", l_yaml_manifest_fast},
    {"manifest_fast_file", l_yaml_manifest_fast_file},
    {"decode", NULL},
    {NULL, NULL},
};

int luaopen_djinn_yaml(lua_State *L)
{
    if (luaL_newmetatable(L, PARSER_MT)) {
        lua_pushcfunction(L, yp_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, yp_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, yaml_funcs);
    if (luaL_loadbuffer(L, decode_src, sizeof(decode_src) - 1,
                        "=djinn.yaml.decode") != LUA_OK)
        return lua_error(L);
    lua_pushcfunction(L, l_yaml_parse);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "decode");
    return 1;
}
