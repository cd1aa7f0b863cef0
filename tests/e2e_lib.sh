# e2e_lib.sh - TAP helpers shared by tests/e2e/*.sh (sourced, not run).
# The script sets W (its private work directory) and D (djinn-lua) first.
#
#   ok STATUS NAME        one TAP point: "ok N - NAME" when STATUS is 0
#   check NAME CMD...     ok when CMD succeeds (its output is dropped)
#   run NAME ARGS...      djinn-lua ARGS, bounded by RUN_TIMEOUT seconds
#                         (default 60): stdout -> $W/NAME.out, stderr ->
#                         $W/NAME.err, status -> $rc
#   has FILE REGEX, hasF FILE STRING   grep in $W/FILE
#   show FILE             $W/FILE as TAP comments (last SHOW_LINES lines)
#   tap_end               the plan line; fails if any point failed
n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
check() {
	name=$1
	shift
	"$@" >/dev/null 2>&1
	ok $? "$name"
}
run() {
	name=$1
	shift
	timeout "${RUN_TIMEOUT:-60}" "$D" "$@" >"$W/$name.out" 2>"$W/$name.err"
	rc=$?
}
has() { grep -q -e "$2" "$W/$1"; }
hasF() { grep -q -F -e "$2" "$W/$1"; }
show() { sed 's/^/# /' "$W/$1" | tail -n "${SHOW_LINES:-1000}"; }
tap_end() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
