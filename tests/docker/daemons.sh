#!/bin/sh
# tests/docker/daemons.sh - run the test dockerd + registry by hand.
#   sh tests/docker/daemons.sh start DIR   start both (see lib.sh), build and
#                                          push 127.0.0.1:5000/djinn-test/busybox
#   sh tests/docker/daemons.sh stop DIR    stop both by PID, remove DIR
# Then: driver.conf with  driver docker { host "unix://DIR/docker.sock" }.
set -u
. "$(dirname "$0")/lib.sh"
case ${1:-} in
start)
	dk_start "${2:?DIR}" || { dk_stop "$2"; exit 1; }
	dk_build_image "$DK_REG/djinn-test/busybox" && dk_push_and_forget "$DK_REG/djinn-test/busybox" || { dk_stop "$2"; exit 1; }
	echo "dockerd: unix://$2/docker.sock (pid $(cat "$2/dockerd.pid.bg")), registry $DK_REG (pid $(cat "$2/registry.pid"))"
	;;
stop) dk_stop "${2:?DIR}" ;;
*) echo "usage: daemons.sh start|stop DIR" >&2; exit 2 ;;
esac
