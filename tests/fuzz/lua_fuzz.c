/*
** lua_fuzz.c - libFuzzer harness for the parsers written in Lua.
**
** One source, three binaries (FUZZ_TARGET chooses the entry point):
**   manifest_fuzz  djinn.manifest.parse(data, "fuzz.yml")  (YAML text ->
**                  validated manifest, over the C module djinn.yaml)
**   conf_fuzz      djinn.config.parse(data, "fuzz.conf", opts)  (driver.conf)
**   yaml_fuzz      djinn.yaml.parse and djinn.yaml.decode directly
**
** The contract under test: a parser never raises on any input. It returns
** a result or nil plus error text of the documented shape. A raised error,
** a result of the wrong shape, more than INSN_BUDGET Lua instructions for
** one input (a hang) or more than MEM_BUDGET bytes of Lua heap is a
** finding: the harness prints it and calls abort(), so libFuzzer saves the
** input. Crashes in the C modules are caught by ASan/UBSan as usual.
**
** The checks are Lua, in tests/fuzz/lua_fuzz.lua (FUZZ_SCRIPT).
** The Lua state is created once: the standard libraries, the C modules the
** parsers use (djinn.yaml, djinn.fs, djinn.registry) in package.preload, and package.path
** set to the source tree's lua/ directory (FUZZ_LUADIR). The driver.conf
** parser's `include` reads files through io.open; the harness replaces
** io.open with a two-file virtual directory (inc.conf, loop.conf) so the
** include path, cycle detection and error paths are fuzzed without
** touching the real file system, and ${VAR} expands from a fixed table.
** Built and run by `make fuzz` (tests/fuzz/run.sh).
*/
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "djinn.h"

#ifndef FUZZ_LUADIR
#error "FUZZ_LUADIR must name the source tree's lua/ directory"
#endif
#ifndef FUZZ_SCRIPT
#error "FUZZ_SCRIPT must name tests/fuzz/lua_fuzz.lua"
#endif
#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must be 1 (manifest), 2 (driver.conf) or 3 (yaml)"
#endif

/* 10k instructions per hook call: 50M instructions per input at most. */
#define INSN_STEP 10000
#define INSN_BUDGET_STEPS 5000
#define MEM_BUDGET ((size_t)512 * 1024 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int check_ref = LUA_NOREF;
static long steps;
static size_t mem_used;

/* Lua allocator with a heap budget (the default one, plus a count). */
static void *fuzz_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    void *p;

    (void)ud;
    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && mem_used - osize + nsize > MEM_BUDGET)
        return NULL; /* Lua raises "not enough memory": a finding */
    p = realloc(ptr, nsize);
    if (p != NULL)
        mem_used = mem_used - osize + nsize;
    return p;
}

/*
** Coverage of the Lua code: libFuzzer only sees the instrumented C, so a
** line hook feeds (previous line, this line) edges of the Lua parsers into
** libFuzzer's extra counters (an ELF section it reads after each input),
** AFL style. The source name pointer identifies the chunk: the modules
** are loaded once and stay alive, so it is stable.
*/
#define COV_SIZE 65536
__attribute__((section("__libfuzzer_extra_counters"),
               used)) static uint8_t lua_cov[COV_SIZE];
static uintptr_t cov_prev;

static void fuzz_hook(lua_State *l, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKLINE) {
        uintptr_t cur;

        if (lua_getinfo(l, "S", ar) == 0)
            return;
        cur = ((uintptr_t)ar->source >> 4) * 2654435761u +
              (uintptr_t)ar->currentline * 40503u;
        lua_cov[(cur ^ cov_prev) % COV_SIZE]++;
        cov_prev = cur >> 1;
        return;
    }
    if (++steps > INSN_BUDGET_STEPS)
        luaL_error(l, "fuzz: more than %d Lua instructions for one input",
                   INSN_STEP * INSN_BUDGET_STEPS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = lua_newstate(fuzz_alloc, NULL);
    if (L == NULL)
        abort();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushliteral(L, FUZZ_LUADIR "/?.lua;" FUZZ_LUADIR "/?/init.lua");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_djinn_yaml);
    lua_setfield(L, -2, "djinn.yaml");
    lua_pushcfunction(L, luaopen_djinn_fs);
    lua_setfield(L, -2, "djinn.fs");
    lua_pushcfunction(L, luaopen_djinn_registry);
    lua_setfield(L, -2, "djinn.registry");
    lua_pop(L, 2);
    if (luaL_loadfile(L, FUZZ_SCRIPT) != LUA_OK) {
        fprintf(stderr, "lua_fuzz: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_pushinteger(L, FUZZ_TARGET);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) {
        fprintf(stderr, "lua_fuzz: setup: %s\n", lua_tostring(L, -1));
        abort();
    }
    check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int top = lua_gettop(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
    lua_pushlstring(L, (const char *)data, size);
    steps = 0;
    cov_prev = 0;
    lua_sethook(L, fuzz_hook, LUA_MASKCOUNT | LUA_MASKLINE, INSN_STEP);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);

        fprintf(stderr, "lua_fuzz: the parser raised: %s\n",
                msg != NULL ? msg : "(not a string)");
        abort();
    }
    lua_sethook(L, NULL, 0, 0);
    lua_settop(L, top);
    /* Keep the heap small between inputs so the budget stays per input. */
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
