/*
** yaml_events.c - the reference side of bench/manifest-load.sh: read a
** file into memory and pull libyaml's events over it, discarding them
** (libyaml's own event loop, the floor under any YAML loader that is
** built on it).
**
**   yaml_events FILE   -> exit 0 and "N events" on stdout, or exit 1 and
**                         the libyaml problem on stderr
**
** Built by bench/manifest-load.sh:
**   cc -O2 -o BUILD/yaml_events bench/yaml_events.c \
**       $(pkg-config --cflags --libs yaml-0.1)
*/
#include <stdio.h>
#include <stdlib.h>

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

int main(int argc, char **argv)
{
    yaml_parser_t parser;
    yaml_event_t event;
    unsigned char *text = NULL;
    size_t len = 0;
    long long events = 0;
    int done = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: yaml_events FILE\n");
        return 2;
    }
    if (read_file(argv[1], &text, &len) < 0) {
        perror(argv[1]);
        return 1;
    }
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "yaml_events: cannot initialize the parser\n");
        free(text);
        return 1;
    }
    yaml_parser_set_input_string(&parser, text, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &event)) {
            fprintf(stderr, "%s:%zu:%zu: %s\n", argv[1],
                    parser.problem_mark.line + 1,
                    parser.problem_mark.column + 1,
                    parser.problem != NULL ? parser.problem : "error");
            yaml_parser_delete(&parser);
            free(text);
            return 1;
        }
        done = event.type == YAML_STREAM_END_EVENT;
        events++;
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    free(text);
    printf("%lld events\n", events);
    return 0;
}
