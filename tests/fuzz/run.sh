#!/bin/sh
# tests/fuzz/run.sh BUILD SECONDS - run the qcow2 libFuzzer harness for a
# bounded time on a scratch copy of the committed seed corpus.
# Exit status is the fuzzer's (non-zero on a crash, leak or timeout).
set -u
build=${1:?usage: run.sh BUILD SECONDS}
secs=${2:?usage: run.sh BUILD SECONDS}
here=$(dirname "$0")
work=$(mktemp -d "${TMPDIR:-/tmp}/qcow2_fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/corpus" "$work/artifacts"
cp "$here"/corpus/* "$work/corpus/" 2>/dev/null || true
"$build/fuzz/qcow2_fuzz" -max_total_time="$secs" -max_len=262144 \
    -rss_limit_mb=2048 -timeout=20 -artifact_prefix="$work/artifacts/" \
    "$work/corpus"
rc=$?
if [ "$rc" -ne 0 ]; then
    mkdir -p "$build/fuzz/crashes"
    cp "$work"/artifacts/* "$build/fuzz/crashes/" 2>/dev/null || true
    echo "qcow2_fuzz failed (rc $rc); inputs in $build/fuzz/crashes" >&2
fi
exit "$rc"
