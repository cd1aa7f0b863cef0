# shellcheck shell=sh
# tests/queue_lib.sh - helpers of the queue's e2e suites (queue.sh,
# queue_vm.sh), sourced after e2e_lib.sh with SOCK (the private Redis's
# socket) set:
#   rcli ARGS...          redis-cli on SOCK
#   bstatus ID            the build's status
#   terminal ID...        every one has a terminal status
#   running ID            its status is running
#   finishes ID, starts ID  how many finish / start events it has
#   start_redis [appendonly]  a private redis-server on SOCK (its files in
#                         $W/redis, which must exist), REDIS_PID set; waits
#                         for PING (1: it never answered)
rcli() { redis-cli -s "$SOCK" "$@"; }
bstatus() { rcli HGET "djinn:b:$1" status; }
terminal() {
	for id in "$@"; do
		case $(bstatus "$id") in
		passed | passed_with_failures | failed | killed | timed_out) ;;
		*) return 1 ;;
		esac
	done
}
running() { [ "$(bstatus "$1")" = running ]; }
# events TYPE ID: the number of TYPE events of build ID in djinn:ev
events() {
	rcli --raw XRANGE djinn:ev - + | awk -v id="$2" -v want="$1" '
		$0 == "type" { t = 1; next } t == 1 { type = $0; t = 0; next }
		$0 == "build" { b = 1; next }
		b == 1 { if ($0 == id && type == want) c++; b = 0 }
		END { print c + 0 }'
}
finishes() { events finish "$1"; }
starts() { events start "$1"; }

start_redis() {
	redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 \
		--dir "$W/redis" --save "" --appendonly "${1:-no}" \
		--appendfsync always --daemonize no --logfile "$W/redis/log" &
	REDIS_PID=$!
	i=0
	while [ $i -lt 100 ]; do
		[ "$(rcli PING 2>/dev/null)" = PONG ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
