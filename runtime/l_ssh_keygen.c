/*
** l_ssh_keygen.c - ssh.keygen: a new ed25519 key pair for djinn.ssh.
** (djinn.ssh; the module's API and ownership rules are at the top of
** l_ssh.c, the shared session internals in l_ssh.h).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "l_ssh.h"

/*
** ssh.keygen(path) -> "ssh-ed25519 <base64>" | nil, msg
** A new ed25519 key pair: the private key is written to `path` (created,
** mode 0600, never over an existing file or through a symlink), the
** public key is returned as an authorized_keys line without comment.
*/
int lssh_keygen(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    ssh_key key = NULL;
    char *priv = NULL;
    char *pub = NULL;
    char line[512];
    char why[256] = "";
    size_t len = 0;
    size_t off = 0;
    int fd = -1;

    line[0] = '\0';
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        snprintf(why, sizeof why, "cannot generate an ed25519 key");
        goto done;
    }
    if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &priv) != SSH_OK ||
        ssh_pki_export_pubkey_base64(key, &pub) != SSH_OK) {
        snprintf(why, sizeof why, "cannot export the key");
        goto done;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
        goto done;
    }
    len = strlen(priv);
    while (off < len) {
        ssize_t n = write(fd, priv + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, sizeof why, "%s: %s", path,
                     n < 0 ? strerror(errno) : "short write");
            goto done;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
        goto done;
    }
    fd = -1;
    snprintf(line, sizeof line, "ssh-ed25519 %s", pub);
done:
    if (fd >= 0) {
        close(fd);
        (void)unlink(path);
    }
    if (priv != NULL) {
        explicit_bzero(priv, strlen(priv));
        ssh_string_free_char(priv);
    }
    if (pub != NULL)
        ssh_string_free_char(pub);
    ssh_key_free(key);
    if (line[0] == '\0')
        return dj_pushfail(L, "ssh.keygen: %s", why);
    lua_pushstring(L, line);
    return 1;
}
