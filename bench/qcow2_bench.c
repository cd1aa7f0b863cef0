/*
** qcow2_bench.c - time the QCOW2 validator on one image.
**
**   build/qcow2_bench IMAGE [RUNS [HEADER_RUNS]]
**
** Runs the full validation (qcow2_check_path) RUNS times (default 5) and
** prints one "full_ms N" line per run, then the in-process header-only check
** (QCOW2_HEADER_ONLY on an open fd) HEADER_RUNS times (default 100000) and
** prints "header_us N" (the mean). Last come "valid 0|1" and the report and
** info JSON. Exit status 0 when the image is valid, 1 when it is not, 2 on
** usage or internal errors. Used by bench/qcow2-bench.sh; not a test.
*/
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "qcow2.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    struct qcow2_report r;
    long runs = 5, hruns = 100000, i;
    double t0, t1;
    char *json = NULL, *info = NULL;
    int fd, valid;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s IMAGE [RUNS [HEADER_RUNS]]\n", argv[0]);
        return 2;
    }
    if (argc > 2)
        runs = strtol(argv[2], NULL, 10);
    if (argc > 3)
        hruns = strtol(argv[3], NULL, 10);
    if (runs < 1 || hruns < 1) {
        fprintf(stderr, "%s: RUNS and HEADER_RUNS must be positive\n", argv[0]);
        return 2;
    }
    for (i = 0; i < runs; i++) {
        t0 = now_ms();
        if (qcow2_check_path(argv[1], 0, &r) != 0) {
            fprintf(stderr, "%s: out of memory\n", argv[0]);
            qcow2_report_free(&r);
            return 2;
        }
        t1 = now_ms();
        printf("full_ms %.3f\n", t1 - t0);
        if (i + 1 < runs)
            qcow2_report_free(&r);
    }
    valid = r.valid;
    json = qcow2_report_json(&r);
    info = qcow2_info_json(&r);
    qcow2_report_free(&r);

    fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[1]);
        free(json);
        free(info);
        return 2;
    }
    t0 = now_ms();
    for (i = 0; i < hruns; i++) {
        qcow2_check_fd(fd, QCOW2_HEADER_ONLY, &r);
        qcow2_report_free(&r);
    }
    t1 = now_ms();
    close(fd);
    printf("header_us %.3f\n", (t1 - t0) * 1e3 / (double)hruns);
    printf("valid %d\n", valid);
    printf("report %s\n", json ? json : "(oom)");
    printf("info %s\n", info ? info : "(oom)");
    free(json);
    free(info);
    return valid ? 0 : 1;
}
