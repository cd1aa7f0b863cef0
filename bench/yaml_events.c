/*
** yaml_events.c - the reference side of bench/manifest-load.sh: read a
** file into memory and pull libyaml's events over it, discarding them
** (libyaml's own event loop, the floor under any YAML loader that is
** built on it).
**
**   yaml_events FILE [REPEAT] -> exit 0 and "N events" and "seconds S"
**       on stdout, or exit 1 and the libyaml problem on stderr. REPEAT
**       (default 1) parses the file that many times in the one process
**       (the file is read once), as bench/manifest-load.lua loads it that
**       many times; S is the CPU time of those passes (user and system,
**       as manifest-load.lua's os.clock; process start-up left out, as
**       manifest-load.lua leaves out its own, 10-30 times longer).
**
** Built by bench/manifest-load.sh:
**   cc -O2 -o BUILD/yaml_events bench/yaml_events.c \
**       $(pkg-config --cflags --libs yaml-0.1)
*/
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <yaml.h>

static int read_file(const char *path, unsigned char **out, size_t *outlen)
{
    FILE *f = NULL;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 1 << 16, n;

    f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    buf = malloc(cap);
    if (buf == NULL)
        goto fail;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap * 2);

            if (nb == NULL)
                goto fail;
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f))
        goto fail;
    fclose(f);
    *out = buf;
    *outlen = len;
    return 0;

fail:
    free(buf);
    fclose(f);
    return -1;
}

/* One pass of libyaml's events over text: 0 and *events, or -1. */
static int pull_events(const char *name, const unsigned char *text, size_t len,
                       long long *events)
{
    yaml_parser_t parser;
    yaml_event_t event;
    int done = 0;

    *events = 0;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "yaml_events: cannot initialize the parser\n");
        return -1;
    }
    yaml_parser_set_input_string(&parser, text, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &event)) {
            fprintf(stderr, "%s:%zu:%zu: %s\n", name,
                    parser.problem_mark.line + 1,
                    parser.problem_mark.column + 1,
                    parser.problem != NULL ? parser.problem : "error");
            yaml_parser_delete(&parser);
            return -1;
        }
        done = event.type == YAML_STREAM_END_EVENT;
        (*events)++;
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned char *text = NULL;
    size_t len = 0;
    long long events = 0;
    long repeat = 1, i;
    struct timespec t0, t1;

    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: yaml_events FILE [REPEAT]\n");
        return 2;
    }
    if (argc == 3) {
        repeat = strtol(argv[2], NULL, 10);
        if (repeat < 1) {
            fprintf(stderr, "yaml_events: REPEAT must be >= 1\n");
            return 2;
        }
    }
    if (read_file(argv[1], &text, &len) < 0) {
        perror(argv[1]);
        return 1;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (i = 0; i < repeat; i++) {
        if (pull_events(argv[1], text, len, &events) < 0) {
            free(text);
            return 1;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    free(text);
    printf("%lld events\nseconds %.6f\n", events,
           (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
