#!/bin/bash
# boot.sh - boot a test image (tests/vm/build-image.sh) under QEMU for tests
# and benchmarks, and stop it again by PID.
#
#   tests/vm/boot.sh start IMAGE [TIMEOUT_S]
#       Starts qemu in the background (disk snapshot=on: the image is never
#       written), waits until the guest's SSH server sends its banner, and
#       prints one line:  pid=PID port=PORT seconds=BOOT_SECONDS
#       On failure (qemu exits, or no banner within TIMEOUT_S of wall-clock
#       time, default 120) it stops qemu, prints its stderr and the end of
#       the guest's console, and exits 1.
#   tests/vm/boot.sh stop PID
#       SIGTERM, then SIGKILL after 5 s; refuses a PID that is not qemu.
#
# Env: QEMU (qemu-system-x86_64), ACCEL (tcg: KVM does not work on every
#      machine, see docs/testing.md §1), MEM (256 MiB),
#      SERIAL_LOG (file for the guest console; default a temporary one,
#      whose last lines a failure prints).
#
# Port choice, without a fixed port or a scan that races other builds:
# the forward is requested with host port 0 (hostfwd=tcp:127.0.0.1:0-:22),
# so the kernel binds a free port atomically, and QEMU's human monitor
# reports it: `info usernet` on a monitor on qemu's stdin/stdout prints
#   TCP[HOST_FORWARD]  12   127.0.0.1 41123   10.0.2.15   22   0   0
# (measured on QEMU 7.2; slirp binds at start-up, before the guest runs).
# QEMU keeps running when the monitor's stdin reaches EOF. A driver that
# spawns qemu itself does the same over pipes (tests/lua/ssh_test.lua).
# Fallback where no monitor is possible: pick a random free-looking port,
# and when qemu exits at once with "Could not set up host forwarding rule",
# pick another. Readiness is the "SSH-" banner, not a TCP connect: slirp
# accepts connections before the guest exists. A virtio-rng device seeds
# the guest's RNG, as the qemu driver's does: sshd waits for it at start.
set -euo pipefail
W=
prog=boot.sh
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}
usage() { die "usage: $prog start IMAGE [TIMEOUT_S] | $prog stop PID"; }

is_qemu() { # pid
	local comm
	comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
	case $comm in qemu-system*) return 0 ;; *) return 1 ;; esac
}

stop() { # pid
	local pid=$1
	case $pid in '' | *[!0-9]*) die "stop: '$pid' is not a PID" ;; esac
	if ! is_qemu "$pid"; then
		kill -0 "$pid" 2>/dev/null && die "stop: PID $pid is not a qemu process; not touching it"
		return 0 # already gone
	fi
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		is_qemu "$pid" || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

console_tail() { # file: its last lines, on stderr, marked
	[ -s "$1" ] || {
		printf '%s: the guest console (%s) is empty\n' "$prog" "$1" >&2
		return 0
	}
	printf '%s: the end of the guest console (%s):\n' "$prog" "$1" >&2
	{
		tail -n 30 "$1"
		echo
	} | tr -d '\r' | sed 's/^/  | /' >&2
}

start() { # image [timeout]
	local image=$1 timeout=${2:-120}
	local fifo pid port="" t0 t1
	[ -f "$image" ] || die "start: $image: no such image (build one with tests/vm/build-image.sh)"
	case $timeout in '' | *[!0-9]*) die "start: TIMEOUT_S must be whole seconds, got '$timeout'" ;; esac
	W=$(mktemp -d "${TMPDIR:-/tmp}/djinn-boot.XXXXXX")
	trap 'rm -rf "${W:-}"' EXIT
	fifo=$W/monitor.in
	mkfifo "$fifo"
	exec 3<>"$fifo" # keeps the fifo open for writing; never blocks
	: >"$W/monitor.out"
	local console=${SERIAL_LOG:-$W/console.log}
	local drive=file=${image//,/,,},if=virtio,snapshot=on
	t0=$(date +%s%N)
	setsid "${QEMU:-qemu-system-x86_64}" -accel "${ACCEL:-tcg}" -display none -m "${MEM:-256}" -smp 1 \
		-monitor stdio -serial "file:$console" -pidfile "$W/pid" \
		-netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:0-:22 -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
		-drive "$drive" <"$fifo" >"$W/monitor.out" 2>"$W/stderr" &
	local spawned=$!
	printf 'info usernet\n' >&3
	for _ in $(seq 100); do
		port=$(tr -d '\r' <"$W/monitor.out" | awk '$1 == "TCP[HOST_FORWARD]" && $3 == "127.0.0.1" { print $4; exit }')
		[ -n "$port" ] && break
		kill -0 "$spawned" 2>/dev/null || break
		sleep 0.05
	done
	exec 3>&- # monitor stdin EOF: qemu keeps running
	pid=$(cat "$W/pid" 2>/dev/null || echo "$spawned")
	if [ -z "$port" ]; then
		stop "$pid" 2>/dev/null || true
		cat "$W/stderr" >&2
		die "start: qemu did not report a forwarded port"
	fi
	# A deadline on the clock, not a count of tries: slirp accepts the
	# connection before the guest's sshd exists, so a try can take its
	# whole second, and 10 tries a second would make TIMEOUT_S eleven
	# times longer (a guest that never booted held CI for 30 minutes).
	local deadline=$((SECONDS + timeout))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$W/stderr" >&2
			console_tail "$console"
			die "start: qemu exited before the guest was ready"
		fi
		# shellcheck disable=SC2016 # $1 expands in the inner shell
		if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && head -c 4 <&3' _ "$port" 2>/dev/null | grep -q '^SSH-'; then
			t1=$(date +%s%N)
			printf 'pid=%s port=%s seconds=%d.%02d\n' "$pid" "$port" \
				$(((t1 - t0) / 1000000000)) $(((t1 - t0) / 10000000 % 100))
			return 0
		fi
		sleep 0.1
	done
	stop "$pid"
	cat "$W/stderr" >&2
	console_tail "$console"
	die "start: no SSH banner on 127.0.0.1:$port within $timeout s"
}

[ $# -ge 1 ] || usage
case $1 in
start)
	if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
	start "$2" "${3:-120}"
	;;
stop)
	[ $# = 2 ] || usage
	stop "$2"
	;;
*) usage ;;
esac
