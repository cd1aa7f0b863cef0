/*
** l_yaml.c - djinn.yaml: YAML 1.1 parsing over libyaml, with positions
** and hard limits, for manifests and driver configuration.
**
** Lua API (see docs/lua-api.md):
**   yaml.parse(text [, opts]) -> root node | nil, "FILE:LINE:COL: message"
**   yaml.decode(text [, opts]) -> plain Lua value | nil, msg
**     opts = { filename = "<string>", max_depth = 64 (nesting of
**              sequences/mappings), max_size = 8 MiB (bytes of input),
**              max_nodes = 100000 (nodes, counting every alias as the
**              whole subtree it stands for) }
**   Nodes (lines and columns 1-based; libyaml's marks are 0-based):
**     { kind = "scalar", value =, style = "plain"|"single"|"double"|
**       "literal"|"folded", tag = "!!str"|nil, line =, col = }
**     { kind = "seq", line =, col =, tag = nil|..., [1] = node, ... }
**     { kind = "map", line =, col =, tag = nil|..., keys = {node...},
**       values = {node...} }           (order kept, duplicates kept)
**   An alias is the same table as its anchored node. An empty stream is
**   a plain scalar "" at 1:1. A second document is an error.
**   decode() turns nodes into strings/arrays/tables (scalars stay
**   strings); it rejects non-scalar and duplicate mapping keys.
**   Errors (all nil, msg; only wrong argument types raise):
**     FILE:L:C: <libyaml problem> (<context> at L:C)
**     FILE:L:C: nesting deeper than N levels (max_depth)
**     FILE:L:C: alias expansion exceeds N nodes (max_nodes)
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
** on the Lua stack (4 slots each), with the depth checked before each
** push, and their bookkeeping in a Lua-owned array.
*/
#include <limits.h>
#include <stdio.h>
#include <string.h>

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

struct yparser {
    yaml_parser_t parser;
    yaml_event_t event;
    int parser_live;
    int event_live;
};

/* One open sequence or mapping. */
struct yframe {
    int is_map;
    int base;         /* stack index: node, keys, values, anchor */
    lua_Integer n;    /* items (seq) or keys (map) so far */
    int expect_value; /* map: the next node is a value */
    long long start_count;
};

struct ylimits {
    const char *filename;
    lua_Integer max_depth, max_size, max_nodes;
};

static void yp_release(struct yparser *p)
{
    if (p->event_live)
        yaml_event_delete(&p->event);
    p->event_live = 0;
    if (p->parser_live)
        yaml_parser_delete(&p->parser);
    p->parser_live = 0;
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

static void set_tag(lua_State *L, const yaml_char_t *tag)
{
    const char *t = (const char *)tag;
    size_t plen = sizeof(TAG_PREFIX) - 1;

    if (t == NULL)
        return;
    if (strncmp(t, TAG_PREFIX, plen) == 0)
        lua_pushfstring(L, "!!%s", t + plen);
    else
        lua_pushstring(L, t);
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
    S_FIRSTFRAME
};

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
        lua_rawseti(L, f->base, ++f->n);
    } else if (!f->expect_value) {
        lua_rawseti(L, f->base + 1, ++f->n);
        f->expect_value = 1;
    } else {
        lua_rawseti(L, f->base + 2, f->n);
        f->expect_value = 0;
    }
}

/*
** The event loop. Returns 0 with the root in S_ROOT, or -1 with the
** message in buf. Raises only on out-of-memory (the userdata cleans up).
*/
static int parse_tree(lua_State *L, struct yparser *yp,
                      const struct ylimits *lim, const char *text, size_t len,
                      char *buf, size_t bufsz)
{
    struct yframe *frames = lua_touserdata(L, S_FRAMES);
    int depth = 0, ndocs = 0, done = 0;
    long long count = 0;
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
            int is_map = ev->type == YAML_MAPPING_START_EVENT;
            const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor
                                               : ev->data.sequence_start.anchor;
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
            luaL_checkstack(L, 8, "yaml: nesting too deep");
            f = &frames[depth++];
            f->is_map = is_map;
            f->base = lua_gettop(L) + 1;
            f->n = 0;
            f->expect_value = 0;
            f->start_count = count;
            lua_createtable(L, 0, 6);
            lua_pushstring(L, is_map ? "map" : "seq");
            lua_setfield(L, -2, "kind");
            set_pos(L, m);
            set_tag(L, is_map ? ev->data.mapping_start.tag
                              : ev->data.sequence_start.tag);
            if (is_map) {
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_setfield(L, -3, "keys");
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_setfield(L, -4, "values");
            } else {
                lua_pushnil(L);
                lua_pushnil(L);
            }
            if (anchor != NULL) {
                lua_pushstring(L, (const char *)anchor);
                lua_pushboolean(L, 1);
                lua_setfield(L, S_OPEN, (const char *)anchor);
            } else {
                lua_pushnil(L);
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            struct yframe *f = &frames[--depth];

            if (lua_type(L, f->base + 3) == LUA_TSTRING) {
                const char *a = lua_tostring(L, f->base + 3);

                lua_pushvalue(L, f->base);
                lua_setfield(L, S_ANCH, a);
                lua_pushinteger(L, (lua_Integer)(count - f->start_count + 1));
                lua_setfield(L, S_ASIZE, a);
                lua_pushnil(L);
                lua_setfield(L, S_OPEN, a);
            }
            lua_settop(L, f->base);
            attach(L, frames, depth);
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
            if (count > lim->max_nodes) {
                snprintf(buf, bufsz,
                         "%s:%zu:%zu: alias expansion exceeds %lld nodes "
                         "(max_nodes)",
                         fname, m->line + 1, m->column + 1,
                         (long long)lim->max_nodes);
                return -1;
            }
            lua_getfield(L, S_ANCH, a);
            attach(L, frames, depth);
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

/* yaml.parse(text [, opts]): see the file header. */
static int l_yaml_parse(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    struct ylimits lim;
    struct yparser *yp = NULL;
    char buf[1024];
    int opts = 0, rc;

    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        opts = 2;
    }
    lua_settop(L, 2);
    lim.filename = "<string>";
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
    lim.max_size = optlimit(L, opts, "max_size", DEF_MAX_SIZE, LUA_MAXINTEGER);
    lim.max_nodes =
        optlimit(L, opts, "max_nodes", DEF_MAX_NODES, LUA_MAXINTEGER);
    if ((lua_Integer)len > lim.max_size || len > (size_t)LUA_MAXINTEGER)
        return dj_pushfail(L,
                           "%s:1:1: input is %I bytes, larger than "
                           "max_size %I",
                           lim.filename, (lua_Integer)len, lim.max_size);

    /* S_PARSER: the closed parser userdata, then acquire. */
    yp = lua_newuserdatauv(L, sizeof(*yp), 0);
    memset(yp, 0, sizeof(*yp));
    luaL_setmetatable(L, PARSER_MT);
    /* S_FRAMES, S_ROOT, S_ANCH, S_ASIZE, S_OPEN */
    lua_newuserdatauv(L, (size_t)lim.max_depth * sizeof(struct yframe), 0);
    lua_pushnil(L);
    lua_newtable(L);
    lua_newtable(L);
    lua_newtable(L);
    if (!yaml_parser_initialize(&yp->parser))
        return dj_pushfail(L, "%s:1:1: cannot initialize the YAML parser",
                           lim.filename);
    yp->parser_live = 1;
    yaml_parser_set_input_string(&yp->parser, (const unsigned char *)text, len);
    rc = parse_tree(L, yp, &lim, text, len, buf, sizeof(buf));
    yp_release(yp);
    if (rc < 0)
        return dj_pushfail(L, "%s", buf);
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
    return 1;
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

static const luaL_Reg yaml_funcs[] = {
    {"parse", l_yaml_parse},
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
