#!/bin/sh
# queue_secrets.sh - the queue's secrets, its key, and what a worker serves
# (issue 16), on a real Redis (Debian's redis-server on a private socket,
# stopped by PID) with real `djinn-lua worker` processes:
#   the queue key: made with the openssl CLI as the docs say; a key file
#     readable by others, or not 64 hex digits, is refused by submit and
#     worker (exit 2, saying what is allowed); no key: submit --secret
#     refused, nothing queued;
#   secrets: sealed by submit (AES-256-GCM, libcrypto) and never in clear
#     in Redis (an uncompressed RDB dump of the whole keyspace does not
#     hold the value); the sealed field opens with the same key in
#     Python's `cryptography` (an AES-GCM nobody here wrote) and with the
#     manifest as associated data; the job gets the real value; the log
#     shows it masked; the worker's copy for its child is gone while the
#     job still runs;
#   a worker without the key, or with another key: the build fails as an
#     infrastructure error (exit 3) saying why, nothing of the value shown;
#   --drivers: without it, a worker serves only the isolating drivers this
#     machine can run (qemu's binary on PATH, the Docker engine answering);
#     none: exit 2 naming both reasons; a listed docker that cannot run:
#     exit 2; the image cache budget reaches the worker's child (a qemu
#     build whose image is over --cache-max fails at once, exit 3, nothing
#     fetched).
# TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/queue_secrets.XXXXXX") || exit 1
PIDS=
REDIS_PID=
cleanup() {
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	[ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMPDIR=$W/tmp XDG_RUNTIME_DIR=$W/run XDG_CONFIG_HOME=$W/config \
	XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
mkdir -p "$W/tmp" "$W/run" "$W/redis"
. "$TOP/tests/e2e_lib.sh"
SOCK=$W/redis/redis.sock
export DJINN_REDIS="unix://$SOCK"
. "$TOP/tests/queue_lib.sh"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# worker NAME [ARGS...]: an os-queue worker, lease 2s.
worker() {
	wn=$1
	shift
	"$D" worker --name "$wn" --slots 1 --drivers os --lease 2s "$@" \
		>"$W/$wn.log" 2>&1 &
	eval "wpid_$wn=$!"
	PIDS="$PIDS $!"
}
stop_worker() {
	eval "wp=\$wpid_$1"
	kill -TERM "$wp" 2>/dev/null
	wait "$wp" 2>/dev/null
}
seq_now() { rcli GET djinn:seq; }
SECRET=s3cr3t-Value-42

start_redis
ok $? "redis-server started on a private socket (pid $REDIS_PID)"

# --- the key ------------------------------------------------------------------
(umask 077 && openssl rand -hex 32 >"$W/queue.key")
(umask 077 && openssl rand -hex 32 >"$W/other.key")
cp "$W/queue.key" "$W/open.key" && chmod 644 "$W/open.key"
(umask 077 && echo "not-a-key" >"$W/bad.key")
check "openssl rand -hex 32 (the documented recipe) makes a 0600 key" \
	sh -c "[ \$(stat -c %a '$W/queue.key') = 600 ] && grep -Eqx '[0-9a-f]{64}' '$W/queue.key'"

cat >"$W/s.yml" <<EOF
driver:
  type: os
stages:
- test
jobs:
- stage: test
  commands:
  - echo "token=\$DEPLOY_TOKEN"
  - printf %s "\$DEPLOY_TOKEN" > $W/seen
  - echo started
  - sleep 2
  - echo done
EOF

run nokey submit --secret "DEPLOY_TOKEN=$SECRET" "$W/s.yml"
check "--secret without a queue key: exit 2, says how to make one, nothing queued" \
	sh -c "[ $rc -eq 2 ] && grep -q 'queue key' '$W/nokey.err' && grep -q 'openssl rand -hex 32' '$W/nokey.err' && grep -q 'nothing queued' '$W/nokey.err' && [ -z \"\$(redis-cli -s '$SOCK' GET djinn:seq)\" ]"
run openkey submit --queue-key "$W/open.key" --secret "DEPLOY_TOKEN=$SECRET" "$W/s.yml"
check "a key file readable by others: exit 2, names the mode and the fix" \
	sh -c "[ $rc -eq 2 ] && grep -q 'readable by others (mode 644)' '$W/openkey.err' && grep -q 'chmod 600' '$W/openkey.err'"
run badkey submit --queue-key "$W/bad.key" --secret "DEPLOY_TOKEN=$SECRET" "$W/s.yml"
check "a key file that is not 64 hex digits: exit 2, says what is allowed" \
	sh -c "[ $rc -eq 2 ] && grep -q 'expected 64 hex digits' '$W/badkey.err'"
run short submit --queue-key "$W/queue.key" --secret "DEPLOY_TOKEN=abc" "$W/s.yml"
check "a secret shorter than 6 characters: exit 2 (Djinn's rule)" \
	sh -c "[ $rc -eq 2 ] && grep -q 'cannot be shorter than 6' '$W/short.err'"
run envsec submit --env "DEPLOY_TOKEN=$SECRET" "$W/s.yml"
check "a secret-named --env: exit 2, pointing to --secret" \
	sh -c "[ $rc -eq 2 ] && grep -q 'give it as --secret DEPLOY_TOKEN' '$W/envsec.err'"
check "... nothing was queued by any refusal" test -z "$(seq_now)"

# --- sealed in Redis ------------------------------------------------------------
printf 'DEPLOY_TOKEN=%s\n' "$SECRET" >"$W/secrets.env"
DJINN_QUEUE_KEY=$W/queue.key run sub submit --secret-file "$W/secrets.env" "$W/s.yml"
id=$(cat "$W/sub.out")
check "submit --secret-file with \$DJINN_QUEUE_KEY: exit 0, build $id queued" \
	sh -c "[ $rc -eq 0 ] && [ '$id' = 1 ]"
rcli --raw HGET djinn:b:1 secrets | head -c 4 >"$W/magic"
check "the build's secrets field is sealed (DJS1 ...)" test "$(cat "$W/magic")" = DJS1
rcli CONFIG SET rdbcompression no >/dev/null
rcli SAVE >/dev/null
check "an uncompressed dump of all of Redis does not hold the value" \
	sh -c "[ -s '$W/redis/dump.rdb' ] && ! grep -aqF '$SECRET' '$W/redis/dump.rdb' && grep -aqF 'DEPLOY_TOKEN' '$W/s.yml'"
rcli --raw HGET djinn:b:1 manifest | head -c -1 >"$W/manifest.txt"
# The sealed bytes through Python (redis-cli --raw would mangle binary).
$PY - "$SOCK" "$W/queue.key" "$W/manifest.txt" >"$W/py.out" 2>&1 <<'EOF'
import socket, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"".join([b"*3\r\n"] + [b"$%d\r\n%s\r\n" % (len(a), a)
                                   for a in (b"HGET", b"djinn:b:1", b"secrets")]))
buf = b""
while b"\r\n" not in buf:
    buf += s.recv(65536)
head, rest = buf.split(b"\r\n", 1)
n = int(head[1:])
while len(rest) < n + 2:
    rest += s.recv(65536)
blob = rest[:n]
key = bytes.fromhex(open(sys.argv[2]).read().strip())
manifest = open(sys.argv[3], "rb").read()
aad = b"djinn-secrets-v1\0" + manifest
pt = AESGCM(key).decrypt(blob[4:16], blob[16:], aad)
print(pt.decode())
try:
    AESGCM(key).decrypt(blob[4:16], blob[16:], b"djinn-secrets-v1\0other")
    print("OPENED WITH ANOTHER MANIFEST")
except Exception:
    print("bound to the manifest")
EOF
check "Python's cryptography AESGCM opens it with the key: the JSON list ($(head -c 80 "$W/py.out" | tr -d '\n'))" \
	sh -c "grep -qF '[\"DEPLOY_TOKEN=$SECRET\"]' '$W/py.out'"
check "... and not with another manifest as associated data" \
	grep -qx "bound to the manifest" "$W/py.out"

# --- a worker with the key --------------------------------------------------------
worker wk --queue-key "$W/queue.key"
wait_for 20 sh -c "redis-cli -s '$SOCK' --raw XRANGE djinn:log:1 - + | grep -q started"
ok $? "the worker runs it; the job has printed 'started'"
ls "$W"/tmp/djinn-build-*/ >"$W/builddir.ls" 2>&1
check "while the job runs, no file of the worker's holds the secret (they go to its run in memory)" \
	sh -c "grep -q manifest '$W/builddir.ls' && ! grep -rqF '$SECRET' '$W'/tmp"
runpid=$(sed -n 's/.* build 1: started (attempt [0-9]*, pid \([0-9]*\)).*/\1/p' "$W/wk.log" | head -1)
check "... nor its run's command line (pid $runpid: $(tr '\0' ' ' </proc/"${runpid:-0}"/cmdline 2>/dev/null))" \
	sh -c "[ -n '$runpid' ] && [ -r /proc/$runpid/cmdline ] && ! tr '\\0' ' ' </proc/$runpid/cmdline | grep -qF '$SECRET'"
check "the build passes" wait_for 30 terminal 1
check "... status passed" test "$(bstatus 1)" = passed
check "the job got the real value" test "$(cat "$W/seen" 2>/dev/null)" = "$SECRET"
run logs1 logs 1
check "its log shows the value masked (token=xxxxxx)" \
	sh -c "[ $rc -eq 0 ] && grep -qx 'token=xxxxxx' '$W/logs1.out'"
check "... and nowhere in clear: not in the log stream, the worker's output or Redis" \
	sh -c "! grep -qF '$SECRET' '$W/logs1.out' '$W/wk.log' && ! redis-cli -s '$SOCK' --raw XRANGE djinn:log:1 - + | grep -qF '$SECRET'"
check "nothing of the build is left in the worker's temporary directory" \
	sh -c "! ls '$W'/tmp/djinn-build-* 2>/dev/null | grep -q ."
stop_worker wk

# --- workers that cannot open it ----------------------------------------------------
rm -f "$W/seen"
DJINN_QUEUE_KEY=$W/queue.key run sub2 submit --secret "DEPLOY_TOKEN=$SECRET" "$W/s.yml"
worker wn
check "a worker without the key: the build fails" wait_for 20 terminal 2
run st2 status --json 2
check "... exit 3 (infrastructure), saying the worker has no queue key" \
	sh -c "jq -e '.status == \"failed\" and .exit_code == 3 and (.error | test(\"no queue key\"))' '$W/st2.out'"
check "... and the job never ran" test ! -e "$W/seen"
stop_worker wn
DJINN_QUEUE_KEY=$W/queue.key run sub3 submit --secret "DEPLOY_TOKEN=$SECRET" "$W/s.yml"
worker wo --queue-key "$W/other.key"
check "a worker with another key: the build fails" wait_for 20 terminal 3
run st3 status --json 3
check "... exit 3, the secrets 'do not open with this worker's queue key'" \
	sh -c "jq -e '.status == \"failed\" and .exit_code == 3 and (.error | test(\"do not open with this worker.s queue key\"))' '$W/st3.out'"
stop_worker wo
run wopen worker --drivers os --queue-key "$W/open.key"
check "worker with a key readable by others: exit 2, at once" \
	sh -c "[ $rc -eq 2 ] && grep -q 'readable by others' '$W/wopen.err'"

# --- what a worker serves -----------------------------------------------------------
mkdir -p "$W/nobin"
for t in sh cat timeout; do ln -s "$(command -v $t)" "$W/nobin/$t"; done
cat >"$W/dead-docker.conf" <<EOF
driver docker {
    host "unix://$W/no-such-docker.sock"
}
EOF
PATH=$W/nobin RUN_TIMEOUT=30 run none worker --driver-config "$W/dead-docker.conf"
check "no qemu binary, no Docker engine: exit 2, both reasons and the way out" \
	sh -c "[ $rc -eq 2 ] && grep -q 'can run no isolating driver' '$W/none.err' && grep -q 'qemu-system-x86_64 is not installed' '$W/none.err' && grep -q 'cannot reach the Docker engine' '$W/none.err' && grep -q 'give --drivers' '$W/none.err'"
RUN_TIMEOUT=30 run ldock worker --drivers docker --driver-config "$W/dead-docker.conf"
check "--drivers docker with no engine: exit 2, naming the driver" \
	sh -c "[ $rc -eq 2 ] && grep -q -- '--drivers docker: docker: cannot reach' '$W/ldock.err'"
"$D" worker --name wq --driver-config "$W/dead-docker.conf" --lease 2s \
	>"$W/wq.log" 2>&1 &
wpid_wq=$!
PIDS="$PIDS $wpid_wq"
wait_for 10 sh -c "redis-cli -s '$SOCK' HGETALL djinn:workers | grep -q '\"wq\"'"
"$D" workers --json >"$W/workers.json" 2>&1
check "without --drivers, with qemu here and no Docker: it serves qemu-x86_64 only" \
	sh -c "jq -e '[.[] | select(.name == \"wq\")][0].drivers == [\"qemu-x86_64\"]' '$W/workers.json'"

# The cache budget reaches the build: a qemu build pinned to an image
# larger than the budget fails before any download.
qemu-img create -q -f qcow2 "$W/img.qcow2" 64M
"$D" image register --registry "$W/sub.db" e2e tiny "$W/img.qcow2" >"$W/reg.out" 2>&1
ok $? "an image registered in the submitter's registry"
stop_worker wq
"$D" worker --name wc --drivers qemu --cache-max 1KB --lease 2s \
	--registry "$W/cache/registry.db" >"$W/wc.log" 2>&1 &
wpid_wc=$!
PIDS="$PIDS $wpid_wc"
cat >"$W/q.yml" <<EOF
namespace: e2e
driver:
  type: qemu
  image: tiny
stages: [a]
jobs:
- stage: a
  commands: [true]
EOF
run subq submit --registry "$W/sub.db" --image-url http://127.0.0.1:9/x "$W/q.yml"
qid=$(cat "$W/subq.out")
check "a qemu build over the worker's --cache-max 1KB: fails" wait_for 30 terminal "$qid"
run stq status --json "$qid"
check "... exit 3, 'over the worker's image cache budget', nothing in the cache" \
	sh -c "jq -e '.exit_code == 3 and (.error | test(\"over the worker.s image cache budget of 1.0 KiB\"))' '$W/stq.out' && [ -z \"\$(find '$W/cache' -name '*.qcow2' 2>/dev/null)\" ]"
stop_worker wc

tap_end
