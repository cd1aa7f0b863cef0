#!/usr/bin/env bash
# bench/manifest-load.sh [BUILD] - manifest loading (issue 13, gap 4):
# `djinn.manifest.load` (read, YAML with positions, validation) against
# libyaml's own event loop over the same file (bench/yaml_events.c: pull
# yaml_parser_parse events and discard them), on large manifests made
# here by tests/gen_manifest.awk:
#   jobs5000   5,000 jobs of 3 commands and an artifact (1.4 MB)
#   cmds5000   one job with a 5,000-item command list
#   env1000    an env list of 1,000 items
#   env5000    an env list of 5,000 items
#   big5000    5,000 jobs of 20 commands (6.7 MB, 135,000 YAML nodes)
# Each side runs as one process that loads the file REPEAT times (default
# 10; `djinn-lua bench/manifest-load.lua FILE REPEAT`, `yaml_events FILE
# REPEAT`) and reports the CPU time of its own loads (BENCH_SELF_TIMED;
# user + system time, so time this shared machine gives to other guests
# is left out; process start-up, 10-30 ms for djinn-lua and 1 ms
# for yaml_events, is left out, and so is collecting the previous load's
# result between loads, which a run that loads once never does). Row
# "jobs5000, whole processes" times the same two processes by the wall
# clock, start-up and collections included; row "check big5000" times one
# `djinn-lua check` against one yaml_events process, as a user sees it. With python3-yaml, a
# row per manifest against PyYAML's C loader (yaml.load with CSafeLoader,
# REPEAT times) for context. RUNS (default 7) interleaved runs per row
# (bench/lib.sh). yaml_events is compiled into BUILD if missing:
#   cc -O2 -o BUILD/yaml_events bench/yaml_events.c \
#       $(pkg-config --cflags --libs yaml-0.1)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
RUNS=${RUNS:-7}
REPEAT=${REPEAT:-10}
. "$top/bench/lib.sh"

D=$build/djinn-lua
EV=$build/yaml_events
[ -x "$D" ] || { echo "build $D first: make" >&2; exit 2; }
if [ ! -x "$EV" ] || [ "$top/bench/yaml_events.c" -nt "$EV" ]; then
	# shellcheck disable=SC2046 # pkg-config prints several words
	cc -O2 -o "$EV" "$top/bench/yaml_events.c" \
		$(pkg-config --cflags --libs yaml-0.1)
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/manifest-load.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

gen() { awk -v kind="$1" -v n="$2" -f "$top/tests/gen_manifest.awk" >"$work/$3.yml"; }
gen jobs 5000 jobs5000
gen cmds 5000 cmds5000
gen env 1000 env1000
gen env 5000 env5000
gen big 5000 big5000

have_pyyaml=0
if python3 -c 'import yaml; yaml.CSafeLoader' >/dev/null 2>&1; then
	have_pyyaml=1
else
	echo "# python3-yaml (with libyaml) is not installed: no PyYAML rows" >&2
fi

FILE=
ours() { "$D" "$top/bench/manifest-load.lua" "$FILE" "$REPEAT"; }
events() { "$EV" "$FILE" "$REPEAT"; }
pyyaml() {
	python3 -c 'import sys, yaml
data = open(sys.argv[1], "rb").read()
for _ in range(int(sys.argv[2])):
    yaml.load(data, Loader=yaml.CSafeLoader)' "$FILE" "$REPEAT"
}
ours_check() { "$D" check "$FILE"; }
events_once() { "$EV" "$FILE"; }

for name in jobs5000 cmds5000 env1000 env5000 big5000; do
	FILE=$work/$name.yml
	bytes=$(($(wc -c <"$FILE") * REPEAT))
	BENCH_SELF_TIMED=1 bench_compare "manifest load $name (x$REPEAT)" \
		"$RUNS" "$bytes" ours events libyaml-events
	if [ "$name" = jobs5000 ]; then
		bench_compare "manifest load $name, whole processes" "$RUNS" \
			"$bytes" ours events libyaml-events
	fi
	if [ "$have_pyyaml" = 1 ]; then
		bench_compare "manifest load $name vs PyYAML" "$RUNS" "$bytes" \
			ours pyyaml pyyaml-CSafeLoader
	fi
done
FILE=$work/big5000.yml
bench_compare "check big5000 (one process)" "$RUNS" "$(wc -c <"$FILE")" \
	ours_check events_once libyaml-events
