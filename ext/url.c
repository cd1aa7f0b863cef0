/*
** url.c - URLs as the registry names them: dj_url_is and dj_url_redact
** (see url.h).
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <string.h>

#include "url.h"

int dj_url_is(const char *s)
{
    const char *p = s;

    if (s == NULL || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')
        p++;
    return strncmp(p, "://", 3) == 0;
}

char *dj_url_redact(const char *url)
{
    const char *auth, *end, *at = NULL, *p;

    if (!dj_url_is(url))
        return sqlite3_mprintf("%s", url);
    auth = strstr(url, "://") + 3;
    end = auth + strcspn(auth, "/?#");
    for (p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return sqlite3_mprintf("%s", url);
    return sqlite3_mprintf("%.*s%s", (int)(auth - url), url, at + 1);
}
