/*
** tap.h - a tiny TAP producer for the C test programs.
**
**   ok(cond, "name %d", i);     one test point
**   is_int(got, want, "name");  integer equality with a diagnostic
**   is_str(got, want, "name");  string equality (NULL-safe)
**   return tap_done();          prints the plan, exit status 0/1
*/
#ifndef DJINN_TAP_H
#define DJINN_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static int tap_vok(int cond, const char *fmt, va_list ap)
{
    tap_n++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

static int ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), unused));
static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = tap_vok(cond, fmt, ap);
    va_end(ap);
    return rc;
}

#define is_int(got, want, ...)                                               \
    do {                                                                     \
        long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);     \
        if (!ok(tap_g_ == tap_w_, __VA_ARGS__))                              \
            printf("#   got %lld, want %lld\n", tap_g_, tap_w_);             \
    } while (0)

#define is_str(got, want, ...)                                               \
    do {                                                                     \
        const char *tap_g_ = (got), *tap_w_ = (want);                        \
        int tap_eq_ = (tap_g_ && tap_w_) ? strcmp(tap_g_, tap_w_) == 0       \
                                         : tap_g_ == tap_w_;                 \
        if (!ok(tap_eq_, __VA_ARGS__))                                       \
            printf("#   got '%s', want '%s'\n", tap_g_ ? tap_g_ : "(null)",  \
                   tap_w_ ? tap_w_ : "(null)");                              \
    } while (0)

static int tap_done(void) __attribute__((unused));
static int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed != 0 || tap_n == 0;
}

#endif /* DJINN_TAP_H */
