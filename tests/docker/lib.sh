# tests/docker/lib.sh - shell functions (POSIX sh) for tests and benchmarks
# that need a real Docker engine: a private dockerd and a local registry.
# Source it:  . tests/docker/lib.sh
#
#   dk_start DIR       start Debian's docker-registry on 127.0.0.1:5000 and a
#                      private dockerd (data root, exec root, pid file and
#                      socket DIR/docker.sock all under DIR; no bridge, no
#                      iptables, no IP forwarding or masquerading;
#                      storage overlay2, or vfs where overlay2 does not
#                      work; DK_STORAGE="vfs" forces one). Waits for both to
#                      answer (10 s each). Returns non-zero with a message
#                      on stderr when a binary is missing, port 5000 is
#                      busy, or a daemon does not come up.
#   dk_stop DIR        stop both daemons BY PID (TERM, then KILL after 10 s),
#                      unmount anything left under DIR, remove DIR. Safe to
#                      call twice and on a half-started DIR.
#   dk_api METHOD PATH [curl args...]   one Engine API call on DIR's socket
#                      ($DK_DIR), prints the body; fails on HTTP >= 400
#   dk_build_image REPO  make a busybox image from the files of Debian's
#                      busybox-static package (/bin/busybox and one symlink
#                      per applet, /etc/passwd, /etc/group, /tmp), import it
#                      through the API as REPO:latest with ENV PATH and
#                      WORKDIR / (POST /images/create?fromSrc=-&changes=...)
#   dk_push_and_forget REPO  push REPO:latest to the registry, then delete
#                      the local image, so that a later pull really fetches
#                      it
#
# dockerd also writes a little outside DIR: /etc/docker/key.json,
# /var/run/docker/plugins and /run/containerd/s (shim sockets); nothing in
# the host's network configuration (no docker0, no iptables rules).
DK_REG=${DK_REG:-127.0.0.1:5000}

dk_api() { # METHOD PATH [curl args...]
	_m=$1 _p=$2
	shift 2
	curl -sS --fail-with-body --max-time 120 --unix-socket "$DK_DIR/docker.sock" \
		-X "$_m" "http://docker/v1.41$_p" "$@"
}

dk_start() {
	DK_DIR=$1
	for _b in dockerd docker-registry curl jq; do
		if ! command -v "$_b" >/dev/null 2>&1; then
			echo "dk_start: $_b is not installed (apt-get install docker.io docker-registry curl jq)" >&2
			return 1
		fi
	done
	if [ "$(id -u)" -ne 0 ]; then
		echo "dk_start: dockerd needs root (running as uid $(id -u))" >&2
		return 1
	fi
	mkdir -p "$DK_DIR" || return 1
	# Port 5000 must be free: something answering there is not our registry.
	curl -s -o /dev/null --max-time 2 "http://$DK_REG/" 2>/dev/null
	if [ $? -ne 7 ]; then
		echo "dk_start: port ${DK_REG#*:} on ${DK_REG%:*} is busy (another registry or service listens there); stop it first" >&2
		return 1
	fi
	cat >"$DK_DIR/registry.yml" <<EOC
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $DK_DIR/registry}
  delete: {enabled: true}
http: {addr: "$DK_REG"}
EOC
	docker-registry serve "$DK_DIR/registry.yml" >"$DK_DIR/registry.log" 2>&1 &
	echo $! >"$DK_DIR/registry.pid"
	# overlay2 (fast container creation) where the file system allows it,
	# else vfs (a full copy of the image per container).
	for _sd in ${DK_STORAGE:-overlay2 vfs}; do
		dk_dockerd "$_sd" && break
		echo "dk_start: dockerd with --storage-driver=$_sd did not come up:" >&2
		tail -n 5 "$DK_DIR/dockerd.log" >&2
		dk_kill "$DK_DIR/dockerd.pid.bg"
		rm -rf "$DK_DIR/root" "$DK_DIR/exec"
		_sd=
	done
	[ -n "$_sd" ] || return 1
	echo "$_sd" >"$DK_DIR/storage-driver"
	_i=0
	until curl -s -o /dev/null --max-time 1 "http://$DK_REG/v2/" 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -gt 100 ] || ! kill -0 "$(cat "$DK_DIR/registry.pid")" 2>/dev/null; then
			echo "dk_start: docker-registry did not answer on $DK_REG within 10 s:" >&2
			tail -n 20 "$DK_DIR/registry.log" >&2
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# dk_dockerd STORAGE_DRIVER: start dockerd, wait (10 s) for /_ping.
dk_dockerd() {
	dockerd --data-root "$DK_DIR/root" --exec-root "$DK_DIR/exec" \
		--pidfile "$DK_DIR/dockerd.pid" -H "unix://$DK_DIR/docker.sock" \
		--storage-driver="$1" --bridge=none --iptables=false \
		--ip-masq=false --ip-forward=false --log-level=warn \
		>"$DK_DIR/dockerd.log" 2>&1 &
	echo $! >"$DK_DIR/dockerd.pid.bg"
	_i=0
	until curl -s --max-time 1 --unix-socket "$DK_DIR/docker.sock" http://docker/_ping 2>/dev/null | grep -q OK; do
		_i=$((_i + 1))
		if [ $_i -gt 100 ] || ! kill -0 "$(cat "$DK_DIR/dockerd.pid.bg")" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
}

# dk_kill PIDFILE: TERM, wait up to 10 s, then KILL.
dk_kill() {
	[ -s "$1" ] || return 0
	_pid=$(cat "$1")
	kill "$_pid" 2>/dev/null || return 0
	_i=0
	while kill -0 "$_pid" 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -eq 100 ]; then kill -KILL "$_pid" 2>/dev/null; fi
		if [ $_i -gt 150 ]; then break; fi
		sleep 0.1
	done
}

dk_stop() {
	_d=$1
	[ -n "$_d" ] && [ -d "$_d" ] || return 0
	dk_kill "$_d/dockerd.pid.bg"
	dk_kill "$_d/registry.pid"
	# dockerd stops its own containerd; unmount whatever is left (deepest
	# first), then remove the directory.
	grep -o " $_d/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r _m; do
		umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null
	done
	rm -rf "$_d"
}

dk_build_image() { # REPO
	_r=$DK_DIR/rootfs
	rm -rf "$_r"
	mkdir -p "$_r/bin" "$_r/etc" "$_r/tmp" "$_r/root" || return 1
	chmod 1777 "$_r/tmp"
	_bb=$(dpkg -L busybox-static 2>/dev/null | grep '/bin/busybox$' | head -n 1)
	if [ -z "$_bb" ] || [ ! -x "$_bb" ]; then
		echo "dk_build_image: the busybox-static package is not installed" >&2
		return 1
	fi
	cp "$_bb" "$_r/bin/busybox"
	for _a in $("$_bb" --list); do
		[ -e "$_r/bin/$_a" ] || ln -s busybox "$_r/bin/$_a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$_r/etc/passwd"
	echo 'root:x:0:' >"$_r/etc/group"
	tar -C "$_r" -cf "$DK_DIR/rootfs.tar" . || return 1
	rm -rf "$_r"
	dk_api POST "/images/create?fromSrc=-&repo=$1&tag=latest&changes=ENV%20PATH%3D%2Fusr%2Fsbin%3A%2Fusr%2Fbin%3A%2Fsbin%3A%2Fbin&changes=WORKDIR%20%2F" \
		-H 'Content-Type: application/x-tar' --data-binary @"$DK_DIR/rootfs.tar" >"$DK_DIR/import.log" || {
		cat "$DK_DIR/import.log" >&2
		return 1
	}
	rm -f "$DK_DIR/rootfs.tar"
}

dk_push_and_forget() { # REPO (with the registry host)
	dk_api POST "/images/$1/push?tag=latest" -H 'X-Registry-Auth: e30=' >"$DK_DIR/push.log" || return 1
	if grep -q '"error"' "$DK_DIR/push.log"; then
		cat "$DK_DIR/push.log" >&2
		return 1
	fi
	dk_api DELETE "/images/$1:latest" >/dev/null
}
