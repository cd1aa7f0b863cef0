/*
** runtime/l_host.h - openers of the host-facing modules djinn.sys
** (l_sys.c: the password database) and djinn.term (l_term.c: text made
** safe for a terminal) and djinn.mask.core (l_mask.c: the secret
** masker's scan, issue 13) and djinn.crypto (l_crypto.c: the queue's
** sealed secrets, issue 16), registered in package.preload by main.c like the
** ones of djinn.h (issue 10, defects 6 and 10).
*/
#ifndef DJINN_L_HOST_H
#define DJINN_L_HOST_H

#include <lua.h>

int luaopen_djinn_sys(lua_State *L);
int luaopen_djinn_term(lua_State *L);
int luaopen_djinn_mask_core(lua_State *L);
int luaopen_djinn_crypto(lua_State *L);

#endif /* DJINN_L_HOST_H */
