/*
** qcow2_fuzz.c - libFuzzer harness for the QCOW2 validator.
**
** Each input is checked as an in-memory image (full and header-only), and
** both JSON renderings are produced, so the parser, the table walk, the
** decompressors and the JSON escaping all see hostile bytes. Built and run
** by `make fuzz` (tests/fuzz/run.sh).
*/
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "qcow2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qcow2_report r;
    char *json = NULL, *info = NULL;

    qcow2_check_buf(data, size, 0, &r);
    json = qcow2_report_json(&r);
    info = qcow2_info_json(&r);
    free(json);
    free(info);
    qcow2_report_free(&r);

    qcow2_check_buf(data, size, QCOW2_HEADER_ONLY, &r);
    qcow2_report_free(&r);
    return 0;
}
