#!/bin/sh
# tests/fuzz/run.sh BUILD SECONDS [FUZZER...] - run each libFuzzer harness
# (default: all four) for SECONDS on a scratch copy of its committed seed
# corpus, one after the other:
#   qcow2_fuzz     tests/fuzz/corpus/           QCOW2 validator (C)
#   manifest_fuzz  tests/fuzz/corpus-manifest/  manifest parser (Lua + yaml)
#   conf_fuzz      tests/fuzz/corpus-conf/      driver.conf parser (Lua)
#   yaml_fuzz      tests/fuzz/corpus-manifest/  djinn.yaml directly
# Inputs that crash or hang are copied to BUILD/fuzz/crashes/. Exit status
# is non-zero if any harness failed (crash, leak, timeout, or a parser that
# raised instead of returning nil, errors: see lua_fuzz.c).
set -u
build=${1:?usage: run.sh BUILD SECONDS [FUZZER...]}
secs=${2:?usage: run.sh BUILD SECONDS [FUZZER...]}
shift 2
[ $# -gt 0 ] || set -- qcow2_fuzz manifest_fuzz conf_fuzz yaml_fuzz
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/djinn_fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
status=0
for f in "$@"; do
    case $f in
    qcow2_fuzz) seeds=corpus maxlen=262144 ;;
    manifest_fuzz | yaml_fuzz) seeds=corpus-manifest maxlen=65536 ;;
    conf_fuzz) seeds=corpus-conf maxlen=65536 ;;
    *) echo "run.sh: unknown fuzzer $f (qcow2_fuzz manifest_fuzz conf_fuzz yaml_fuzz)" >&2
       exit 2 ;;
    esac
    mkdir "$work/$f" "$work/$f.art"
    cp "$here/$seeds"/* "$work/$f/"
    echo "# fuzz: $f for ${secs}s from $seeds/ ($(ls "$work/$f" | wc -l) seeds)"
    "$build/fuzz/$f" -max_total_time="$secs" -max_len="$maxlen" \
        -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$work/$f.art/" "$work/$f" >"$work/$f.log" 2>&1
    rc=$?
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$work/$f.log"
    echo "# $f: corpus $(ls "$work/$f" | wc -l) inputs, rc $rc"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$work/$f.log" >&2
        mkdir -p "$build/fuzz/crashes"
        cp "$work/$f.art"/* "$build/fuzz/crashes/" 2>/dev/null || true
        echo "$f failed (rc $rc); inputs in $build/fuzz/crashes" >&2
        status=1
    fi
done
exit "$status"
