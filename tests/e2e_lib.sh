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
#   gone PID              the process is gone (or a zombie) within 5 s
#   wait_for SECONDS CMD...  until CMD succeeds (0) or the time is up (1)
#   qemu_pids_in DIR      the pids of the qemu processes whose command
#                         line names DIR
#   sql_shell ARGS...     the stock sqlite3 shell (-batch), with the
#                         sanitizer runtimes preloaded under ASan
#                         ($DJINN_SHELL_PRELOAD), bounded by SQL_TIMEOUT
#                         seconds (default 120)
#   sq DB SQL...          sql_shell DB with $B/djinn loaded: stdout ->
#                         $W/sq.out, stderr -> $W/sq.err, status -> $rc
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
# wait_for SECONDS CMD...: CMD every 0.1 s until it succeeds (0) or
# SECONDS have passed on the clock (1); a deadline, not a count of tries,
# so a CMD that takes long itself cannot stretch the wait.
wait_for() {
	wt_end=$(($(date +%s%N) / 1000000 + $1 * 1000))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(($(date +%s%N) / 1000000))" -lt "$wt_end" ] || return 1
		sleep 0.1
	done
}
tap_end() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
gone() {
	[ -n "$1" ] || return 1
	i=0
	while [ $i -lt 100 ]; do
		kill -0 "$1" 2>/dev/null || return 0
		sed 's/^[0-9]* ([^)]*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z' && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
# The qemu processes whose command line names DIR (a test's work
# directory: the driver's state and overlay paths are inside it).
qemu_pids_in() {
	for p in /proc/[0-9]*; do
		case $(cat "$p/cmdline" 2>/dev/null | tr '\0' ' ') in
		qemu-system*"$1"*) echo "${p#/proc/}" ;;
		esac
	done
}
sql_shell() {
	if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
		LD_PRELOAD=$DJINN_SHELL_PRELOAD timeout -k 5 "${SQL_TIMEOUT:-120}" \
			"${SQLITE3:-sqlite3}" -batch "$@"
	else
		timeout -k 5 "${SQL_TIMEOUT:-120}" "${SQLITE3:-sqlite3}" -batch "$@"
	fi
}
sq() {
	db=$1
	shift
	sql_shell "$db" -cmd ".load $B/djinn" "$@" >"$W/sq.out" 2>"$W/sq.err"
	rc=$?
}
