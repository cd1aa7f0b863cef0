/*
** runtime/djinn.h - the C modules djinn-lua registers in package.preload.
**
** Each opener follows lua_CFunction conventions: it returns one value,
** the module table. (Not to be confused with ext/djinn.h, the registry
** extension's entry point; include that one as "../ext/djinn.h".)
*/
#ifndef DJINN_RUNTIME_H
#define DJINN_RUNTIME_H

#include <lua.h>

int luaopen_djinn_yaml(lua_State *L);
int luaopen_djinn_proc(lua_State *L);
int luaopen_djinn_fs(lua_State *L);
int luaopen_djinn_registry(lua_State *L);
int luaopen_djinn_qcow2(lua_State *L);
int luaopen_djinn_ssh(lua_State *L);
int luaopen_djinn_http(lua_State *L);
int luaopen_djinn_json(lua_State *L);
int luaopen_djinn_tar(lua_State *L);
int luaopen_djinn_kvm(lua_State *L);
int luaopen_djinn_ipc(lua_State *L);
int luaopen_djinn_redis(lua_State *L);

/* lazy.c: package.preload entries (the table at the top of the stack)
 * for djinn.ssh, djinn.http and djinn.tar, which are shared objects of
 * their own, loaded when first required. */
void dj_lazy_preload(lua_State *L);

#endif /* DJINN_RUNTIME_H */
