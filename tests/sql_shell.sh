#!/bin/sh
# sql_shell.sh DJINN_LIB FILE.sql... - run the SQL test files through the
# STOCK sqlite3 shell with the loadable extension, and print TAP.
#
#   sqlite3 -batch <dir>/reg.db -cmd ".load DJINN_LIB" < FILE.sql
#
# (with LD_PRELOAD=$DJINN_SHELL_PRELOAD when set: the ASan runtimes for
# build-asan/djinn.so). Each file gets a fresh database in a new directory
# under $DJINN_WORK (or $TMPDIR, /tmp), removed afterwards.
#
# Points, as in tests/sql_runner.c:
#   - every output row "name|...|1" passes, any other last column fails;
#   - every "-- error: <substring>" comment names the statement that starts
#     on the next non-blank, non-comment line; the shell must report an
#     error for that line ("Parse error near line N: msg" or "Runtime error
#     near line N: msg" on stderr, as the 3.40 shell prints them) whose
#     message contains <substring>;
#   - any other error line is a failing point;
#   - after the file, djinn_fsck() must say the store matches the table.
# A test file must therefore end each statement on its own line: the shell
# stops a line at its first failing statement.
set -u
if [ $# -lt 2 ]; then
	echo "usage: sql_shell.sh DJINN_LIB FILE.sql..." >&2
	exit 2
fi
LIB=$1
shift
SQLITE3=${SQLITE3:-sqlite3}
BASE=${DJINN_WORK:-${TMPDIR:-/tmp}}
n=0
failed=0

# shell DB [ARGS...] - the stock shell with the extension loaded.
shell() {
	db=$1
	shift
	if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
		LD_PRELOAD=$DJINN_SHELL_PRELOAD timeout 120 "$SQLITE3" -batch "$db" -cmd ".load $LIB" "$@"
	else
		timeout 120 "$SQLITE3" -batch "$db" -cmd ".load $LIB" "$@"
	fi
}

# point OK|NOTOK TEXT
point() {
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
	fi
}

for f in "$@"; do
	name=$(basename "$f")
	echo "# $name"
	dir=$(mktemp -d "$BASE/shell-$name.XXXXXX") || {
		point notok "$name: mktemp failed"
		continue
	}
	shell "$dir/reg.db" <"$f" >"$dir/out" 2>"$dir/err"

	# Result rows: name is the first column, the verdict the last.
	while IFS= read -r row; do
		case $row in
		*'|1') point ok "$name: ${row%%|*}" ;;
		*)
			point notok "$name: ${row%%|*}"
			echo "#   got: $row"
			;;
		esac
	done <"$dir/out"

	# Expected errors: "LINE<TAB>substring", one per "-- error:" comment.
	awk '
		pending != "" && /^[ \t]*$/ { next }
		pending != "" && /^[ \t]*--/ && !/^-- error:/ { next }
		pending != "" { print NR "\t" pending; pending = "" }
		/^-- error:/ { s = $0; sub(/^-- error:[ ]*/, "", s); sub(/[ \r]+$/, "", s); pending = s }
	' "$f" >"$dir/expect"
	# Errors the shell printed: "LINE<TAB>message".
	sed -n -e 's/^Parse error near line \([0-9]*\): \(.*\)$/\1	\2/p' \
		-e 's/^Runtime error near line \([0-9]*\): \(.*\)$/\1	\2/p' \
		-e 's/^Error: near line \([0-9]*\): \(.*\)$/\1	\2/p' \
		"$dir/err" >"$dir/errors"
	# Anything else on stderr (a failed .load, a sanitizer report) fails.
	grep -v -e '^Parse error near line' -e '^Runtime error near line' \
		-e '^Error: near line' -e '^  ' "$dir/err" >"$dir/other" || true

	while IFS='	' read -r line want; do
		got=$(awk -F '\t' -v l="$line" '$1 == l { sub(/^[^\t]*\t/, ""); print; exit }' "$dir/errors")
		case $got in
		*"$want"*)
			if [ -n "$got" ]; then
				point ok "$name:$line: error '$want'"
			else
				point notok "$name:$line: error '$want'"
				echo "#   got: no error"
			fi
			;;
		*)
			point notok "$name:$line: error '$want'"
			echo "#   got: ${got:-no error}"
			;;
		esac
	done <"$dir/expect"
	while IFS='	' read -r line msg; do
		if ! awk -F '\t' -v l="$line" '$1 == l { found = 1 } END { exit !found }' "$dir/expect"; then
			point notok "$name:$line: unexpected error: $msg"
		fi
	done <"$dir/errors"
	if [ -s "$dir/other" ]; then
		point notok "$name: unexpected output on stderr"
		sed 's/^/#   /' "$dir/other"
	fi

	# The store must match the images table after every file.
	fsck=$(shell "$dir/reg.db" "SELECT CASE WHEN (SELECT application_id FROM pragma_application_id) = 1147825774 THEN json_extract(djinn_fsck(), '\$.ok') ELSE 1 END;" 2>&1)
	if [ "$fsck" = 1 ]; then
		point ok "$name: store matches the images table (djinn_fsck)"
	else
		point notok "$name: store matches the images table (djinn_fsck)"
		echo "#   got: $fsck"
	fi
	rm -rf "$dir"
done
echo "1..$n"
[ "$failed" -eq 0 ]
