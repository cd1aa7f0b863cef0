/*
** l_crypto.c - djinn.crypto: authenticated encryption for values that
** must not be stored in clear (the build queue's secrets, issue 16), over
** OpenSSL's libcrypto (EVP AES-256-GCM, RAND_bytes). Nothing here is a
** cipher of our own.
**
** Lua API (operational failures return nil, msg; misuse raises):
**   crypto.random(n) -> n bytes from RAND_bytes (1 <= n <= 4096)
**   crypto.seal(key, plaintext [, aad]) -> blob
**       key: 32 bytes. blob = "DJS1" .. nonce (12 random bytes) ..
**       ciphertext (as long as the plaintext) .. GCM tag (16 bytes). aad,
**       if given, is authenticated but not stored: open() must be given
**       the same. A fresh nonce per call: never reuse a (key, nonce).
**   crypto.open(key, blob [, aad]) -> plaintext
**                                   | nil, "crypto.open: <why>"
**       why: "not a sealed value" (too short or no DJS1 prefix) or "it
**       does not authenticate: another key, or altered data" (the tag
**       did not match; nothing of the plaintext is returned then).
**
** Ownership: the output buffer is a userdata allocated before the
** EVP_CIPHER_CTX, and nothing that can raise runs while the context is
** held, so a raise leaks nothing (docs/style.md rules 16, 17). The
** buffer is cleansed (OPENSSL_cleanse) after the plaintext is copied out.
*/
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "l_host.h"

#define SEAL_MAGIC "DJS1"
#define SEAL_MAGIC_LEN 4
#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SEAL_KEY 32
#define SEAL_OVERHEAD (SEAL_MAGIC_LEN + SEAL_NONCE + SEAL_TAG)
#define RANDOM_MAX 4096
/* EVP_*Update take int lengths. */
#define SEAL_MAX ((size_t)0x7fffffff - SEAL_OVERHEAD)

static const unsigned char *check_key(lua_State *L, int arg)
{
    size_t len;
    const char *key = luaL_checklstring(L, arg, &len);

    luaL_argcheck(L, len == SEAL_KEY, arg, "key must be 32 bytes");
    return (const unsigned char *)key;
}

static int l_crypto_random(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char *buf;

    luaL_argcheck(L, n >= 1 && n <= RANDOM_MAX, 1, "must be 1 to 4096");
    buf = lua_newuserdatauv(L, (size_t)n, 0);
    if (RAND_bytes(buf, (int)n) != 1)
        return luaL_error(L, "crypto.random: RAND_bytes failed");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    OPENSSL_cleanse(buf, (size_t)n);
    return 1;
}

/* -> 1 on success; the context is freed either way. */
static int seal_into(const unsigned char *key, const unsigned char *in,
                     size_t len, const unsigned char *aad, size_t aadlen,
                     unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char *nonce = out + SEAL_MAGIC_LEN;
    unsigned char *ct = nonce + SEAL_NONCE;
    int n = 0, ok = 0;

    if (ctx == NULL)
        return 0;
    memcpy(out, SEAL_MAGIC, SEAL_MAGIC_LEN);
    if (RAND_bytes(nonce, SEAL_NONCE) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1)
        goto done;
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto done;
    if (len > 0 && EVP_EncryptUpdate(ctx, ct, &n, in, (int)len) != 1)
        goto done;
    if (EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, ct + len) != 1)
        goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static int l_crypto_seal(lua_State *L)
{
    const unsigned char *key = check_key(L, 1);
    size_t len, aadlen = 0;
    const char *in = luaL_checklstring(L, 2, &len);
    const char *aad = luaL_optlstring(L, 3, "", &aadlen);
    unsigned char *out;

    luaL_argcheck(L, len <= SEAL_MAX, 2, "too long");
    luaL_argcheck(L, aadlen <= SEAL_MAX, 3, "too long");
    out = lua_newuserdatauv(L, len + SEAL_OVERHEAD, 0);
    if (!seal_into(key, (const unsigned char *)in, len,
                   (const unsigned char *)aad, aadlen, out))
        return luaL_error(L, "crypto.seal: AES-256-GCM failed");
    lua_pushlstring(L, (const char *)out, len + SEAL_OVERHEAD);
    return 1;
}

/* -> 1 authenticated, 0 not; the context is freed either way. */
static int open_into(const unsigned char *key, const unsigned char *blob,
                     size_t len, const unsigned char *aad, size_t aadlen,
                     unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    const unsigned char *nonce = blob + SEAL_MAGIC_LEN;
    const unsigned char *ct = nonce + SEAL_NONCE;
    size_t ctlen = len - SEAL_OVERHEAD;
    unsigned char tag[SEAL_TAG];
    int n = 0, ok = 0;

    if (ctx == NULL)
        return 0;
    memcpy(tag, ct + ctlen, SEAL_TAG);
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1)
        goto done;
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto done;
    if (ctlen > 0 && EVP_DecryptUpdate(ctx, out, &n, ct, (int)ctlen) != 1)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag) != 1)
        goto done;
    ok = EVP_DecryptFinal_ex(ctx, out + ctlen, &n) == 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static int l_crypto_open(lua_State *L)
{
    const unsigned char *key = check_key(L, 1);
    size_t len, aadlen = 0;
    const char *blob = luaL_checklstring(L, 2, &len);
    const char *aad = luaL_optlstring(L, 3, "", &aadlen);
    unsigned char *out;
    size_t ctlen;

    luaL_argcheck(L, aadlen <= SEAL_MAX, 3, "too long");
    if (len < SEAL_OVERHEAD || len - SEAL_OVERHEAD > SEAL_MAX ||
        memcmp(blob, SEAL_MAGIC, SEAL_MAGIC_LEN) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "crypto.open: not a sealed value");
        return 2;
    }
    ctlen = len - SEAL_OVERHEAD;
    /* One spare byte: a zero-length userdata may still be written to by
    ** EVP_DecryptFinal_ex's output pointer arithmetic (it writes 0). */
    out = lua_newuserdatauv(L, ctlen + 1, 0);
    if (!open_into(key, (const unsigned char *)blob, len,
                   (const unsigned char *)aad, aadlen, out)) {
        OPENSSL_cleanse(out, ctlen + 1);
        lua_pushnil(L);
        lua_pushliteral(L, "crypto.open: it does not authenticate: another "
                           "key, or altered data");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, ctlen);
    OPENSSL_cleanse(out, ctlen + 1);
    return 1;
}

static const luaL_Reg crypto_funcs[] = {
    {"random", l_crypto_random},
    {"seal", l_crypto_seal},
    {"open", l_crypto_open},
    {NULL, NULL},
};

int luaopen_djinn_crypto(lua_State *L)
{
    luaL_newlib(L, crypto_funcs);
    return 1;
}
