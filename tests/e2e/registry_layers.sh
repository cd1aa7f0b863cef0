#!/bin/sh
# registry_layers.sh - the extension's files depend on each other in ONE
# direction (ext/schema.h has the graph). Each layer may include only the
# headers of the layers below it; a file that includes a header of a layer
# above it (registry.h from store.c, store.h from schema.c, ...) fails
# here, naming the file and the header. Also: the nm symbols each object of
# build/core/ext uses from the others are defined below it (a call that
# bypasses the headers is caught too). TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/layers.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
D=true
. "$TOP/tests/e2e_lib.sh"

# layer N: the files of the layer; a file may use layers < N and its own
# header. jsonstr is the bottom, djinn the top.
rank() {
	case $1 in
	jsonstr) echo 0 ;;
	qcow2) echo 1 ;;
	schema) echo 2 ;;
	url) echo 2 ;;
	sql_qcow2) echo 3 ;;
	store) echo 3 ;;
	fetch) echo 3 ;;
	registry) echo 4 ;;
	djinn) echo 5 ;;
	*) echo 99 ;;
	esac
}

for f in "$TOP"/ext/*.c "$TOP"/ext/*.h; do
	base=$(basename "$f")
	me=${base%.*}
	r=$(rank "$me")
	if [ "$r" = 99 ]; then
		ok 1 "ext/$base has a place in the graph (add it to rank() here and to ext/schema.h)"
		continue
	fi
	bad=
	for h in $(sed -n 's/^#include "\([a-z_0-9]*\)\.h"$/\1/p' "$f"); do
		[ "$h" = "$me" ] && continue
		hr=$(rank "$h")
		if [ "$hr" -ge "$r" ]; then
			bad="$bad $h.h"
		fi
	done
	ok "$([ -z "$bad" ]; echo $?)" "ext/$base includes only lower layers${bad:+ (not:$bad)}"
done

# The symbols: every undefined symbol of an object that another ext object
# defines must come from a lower layer. (Each object's defined symbols are
# listed once: "SYMBOL OBJECT" lines in $W/defs.)
if command -v nm >/dev/null 2>&1 && [ -d "$B/core/ext" ]; then
	for other in "$B"/core/ext/*.o; do
		nm --defined-only "$other" |
			awk -v o="$(basename "$other" .o)" 'NF == 3 { print $3, o }'
	done >"$W/defs"
	for o in "$B"/core/ext/*.o; do
		me=$(basename "$o" .o)
		r=$(rank "$me")
		bad=
		for def in $(nm -u "$o" | awk '{print $2}' |
			awk -v me="$me" 'NR == FNR { need[$1] = 1; next }
				($1 in need) && $2 != me { print $1 "@" $2 }' - "$W/defs"); do
			or=$(rank "${def#*@}")
			[ "$or" -ge "$r" ] && bad="$bad $def"
		done
		ok "$([ -z "$bad" ]; echo $?)" "build/core/ext/$me.o calls only lower layers${bad:+ (not:$bad)}"
	done
	# The control: a call upwards is caught (store.o defines what
	# registry.o calls; seen from store's rank it would be a violation).
	up=$(nm -u "$B/core/ext/registry.o" | awk '{print $2}' |
		awk 'NR == FNR { need[$1] = 1; next } ($1 in need) && $2 == "store"' - "$W/defs" | wc -l)
	[ "$up" -gt 0 ]
	ok $? "the symbol check sees registry.o's calls into store.o ($up symbols)"
else
	ok 1 "nm and $B/core/ext are needed"
fi
tap_end
