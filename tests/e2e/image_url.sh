#!/bin/sh
# needs: root (unshare -m, mount, setpriv for the SFTP server)
# image_url.sh - `image register NS NAME URL` and image_register(ns, name,
# url, options) against real servers on loopback (issue 14, part 1):
#   HTTP and HTTPS: tests/e2e/image_url_server.py (Python's http.server
#     plus the awkward cases: a truncated body, a stall, a redirect loop,
#     Basic auth, an https -> http redirect, a web page sent with 200);
#     the certificate is self-signed (openssl req -x509);
#   SFTP: Debian's OpenSSH sshd (openssh-server, unpacked from the
#     archive with apt-get download, not installed: no service starts on
#     the host), run as nobody in a private mount namespace whose
#     /etc/shadow gives nobody an unlocked entry, on a loopback port, with
#     a host key, an authorized key and a known_hosts file made here.
# Every failure must leave no row and no file (store: only the files of
# the images registered). Credentials in a URL must never appear in the
# registry, its files or any output. TAP.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/image_url.XXXXXX") || exit 1
# The SFTP server runs as nobody: its files live where nobody can reach.
NW=$(mktemp -d /tmp/djinn-image-url.XXXXXX) || exit 1
chmod 755 "$NW"
HTTP_PID= HTTPS_PID= SSHD_PID= BG=
cleanup() {
	for p in $BG $HTTP_PID $HTTPS_PID $SSHD_PID; do
		kill "$p" 2>/dev/null
	done
	[ -n "$SSHD_PID" ] && [ -f "$W/sshd.pid" ] && kill "$(cat "$W/sshd.pid")" 2>/dev/null
	rm -rf "$W" "$NW"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"
. "$TOP/tests/e2e_lib.sh"

REG=$W/reg.db
STORE=$W/images
R="--registry $REG"
SECRET='s3cr3t%20p%40ss'

# --- images ---------------------------------------------------------------
mkdir -p "$W/www"
qemu-img create -q -f qcow2 -o compat=1.1 "$W/www/good.qcow2" 64M &&
	qemu-io -f qcow2 -c "write -P 0x5a 0 4M" "$W/www/good.qcow2" >/dev/null &&
	cp "$W/www/good.qcow2" "$W/www/Mixed.Case.qcow2" &&
	qemu-img create -q -f qcow2 -o compat=1.1 "$W/www/other.qcow2" 1M &&
	qemu-img create -q -f qcow2 -o compat=1.1 -b /etc/passwd -F raw \
		"$W/www/backing.qcow2" 1M &&
	qemu-img create -q -f qcow2 -o compat=1.1,data_file="$W/data.raw" \
		"$W/www/datafile.qcow2" 1M
ok $? "test images made with qemu-img (good, 4 MiB of data; backing file; data file)"
GOOD_SHA=$(sha256sum "$W/www/good.qcow2" | cut -d' ' -f1)
GOOD_SIZE=$(stat -c %s "$W/www/good.qcow2")

# --- servers --------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$W/key.pem" \
	-out "$W/cert.pem" >/dev/null 2>&1
ok $? "a self-signed certificate for 127.0.0.1 (openssl req -x509)"
wait_port() {
	i=0
	while [ $i -lt 200 ] && [ ! -s "$1" ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ -s "$1" ]
}
python3 "$TOP/tests/e2e/image_url_server.py" "$W/www" "$W/http.port" &
HTTP_PID=$!
wait_port "$W/http.port"
ok $? "the HTTP server listens"
HP=$(cat "$W/http.port")
HTTP_PORT=$HP python3 "$TOP/tests/e2e/image_url_server.py" "$W/www" \
	"$W/https.port" "$W/cert.pem" "$W/key.pem" &
HTTPS_PID=$!
wait_port "$W/https.port"
ok $? "the HTTPS server listens"
SP=$(cat "$W/https.port")
U=http://127.0.0.1:$HP
S=https://127.0.0.1:$SP

# nothing_left NAME: no image NAME, no .tmp-* file, and the store holds
# exactly the files of the registered images (plus its marker).
nothing_left() {
	! ls "$STORE"/.tmp-* >/dev/null 2>&1 || return 1
	[ ! -f "$REG" ] && return 0
	rows=$(sql_shell "$REG" "SELECT count(*) FROM images WHERE name = '$1'") || return 1
	[ "$rows" = 0 ] || return 1
	want=$(sql_shell "$REG" "SELECT count(DISTINCT sha256) FROM images")
	have=$(find "$STORE" -maxdepth 1 -name '*.qcow2' 2>/dev/null | wc -l)
	[ "$want" = "$have" ]
}
# refused NAME WHAT: the last run failed (exit 1), said WHAT, left nothing
refused() {
	ok $((rc != 1)) "$1: refused, exit 1 (got $rc)"
	if hasF "$1.err" "$2"; then ok 0 "$1: says: $2"; else
		ok 1 "$1: says: $2"
		show "$1.err"
	fi
	check "$1: no row, no file, no temp file" nothing_left "$1"
}

# --- a good image ---------------------------------------------------------
run good image register $R t/ci good "$U/f/good.qcow2"
ok $rc "http: a good image is registered (exit $rc)"
check "http: says where it came from" hasF good.out "from $U/f/good.qcow2 (4.3 MiB)"
check "http: no content-type warning for application/x-qemu-disk" test ! -s "$W/good.err"
run good_info image info $R t/ci good
check "image info shows source_url" has good_info.out "^source_url  *$U/f/good.qcow2\$"
check "image info shows source_fetched_at" has good_info.out "^source_fetched_at  *20[0-9-]*T"
sq "$REG" "SELECT url, content_type, bytes, s.sha256 FROM image_sources s JOIN images i ON i.id = s.image_id WHERE i.name = 'good'"
check "image_sources: URL, type, bytes and SHA-256 of the content" \
	hasF sq.out "$U/f/good.qcow2|application/x-qemu-disk|$GOOD_SIZE|$GOOD_SHA"
check "the stored file is the served file" cmp "$STORE/$GOOD_SHA.qcow2" "$W/www/good.qcow2"

# --- content types ---------------------------------------------------------
run plain image register $R t/ci plain "$U/plain/good.qcow2"
ok $((rc != 0 || $(wc -c <"$W/plain.err") != 0)) "application/octet-stream: accepted without a warning"
run odd image register $R t/ci odd "$U/odd/other.qcow2"
ok $rc "an unusual content type: accepted (the bytes decide)"
check "... with a warning naming the type" hasF odd.err "was sent as application/x-unusual, not application/x-qemu-disk"
run page image register $R t/ci page "$U/page"
refused page "not an acceptable QCOW2 v3 image: no QCOW2 magic"
check "page: the type says why (text/html: a web page?)" hasF page.err "sent it as text/html; charset=utf-8: a web page, not a disk image?"

# --- hostile images: the same validator as files ---------------------------
run backing image register $R t/ci backing "$U/f/backing.qcow2"
refused backing "backing file"
run datafile image register $R t/ci datafile "$U/f/datafile.qcow2"
refused datafile "data file"

# --- transfers that go wrong -------------------------------------------------
run trunc image register $R t/ci trunc "$U/trunc/good.qcow2"
refused trunc "the transfer ended early: $((GOOD_SIZE / 2)) of $GOOD_SIZE bytes"
t0=$(date +%s)
RUN_TIMEOUT=40 run stall image register $R --stall-timeout 2s t/ci stall "$U/stall/good.qcow2"
t1=$(date +%s)
refused stall "no data for 2 s after 4096 bytes (the stall timeout; raise it with --stall-timeout"
ok $((t1 - t0 > 30)) "stall: given up long before the server's 60 s silence ends ($((t1 - t0)) s)"
run missing image register $R t/ci missing "$U/f/none.qcow2"
refused missing "the server answered HTTP 404 (no such file)"
run loop image register $R t/ci loop "$U/loop"
refused loop "more than 10 redirects (a redirect loop?)"
run hop5 image register $R --max-redirects 3 t/ci hop5 "$U/hop/5/other.qcow2"
refused hop5 "more than 3 redirects"
run hop2 image register $R t/ci hop2 "$U/hop/2/other.qcow2"
ok $rc "two redirects are followed"
run big image register $R --max-size 1MB t/ci big "$U/f/good.qcow2"
refused big "larger than the size limit, 1.0 MiB (raise it with --max-size"
run closed image register $R --connect-timeout 5s t/ci closed "http://127.0.0.1:9/x.qcow2"
refused closed "cannot connect"
run ftp image register $R t/ci ftp "ftp://127.0.0.1:$HP/x.qcow2"
refused ftp "unsupported URL scheme 'ftp' (allowed: http, https, file, sftp)"

# --- pinned content ------------------------------------------------------------
run pin_bad image register $R --sha256 "$(printf '%064d' 0)" t/ci pin_bad "$U/f/other.qcow2"
refused pin_bad "the content's SHA-256 is $(sha256sum "$W/www/other.qcow2" | cut -d' ' -f1), not the expected $(printf '%064d' 0)"
run pin_ok image register $R --sha256 "$(echo "$GOOD_SHA" | tr a-f A-F)" t/ci pin_ok "$U/f/good.qcow2"
ok $rc "--sha256 (either case) that matches: registered"
run pin_form image register $R --sha256 abc t/ci pin_form "$U/f/good.qcow2"
ok $((rc != 2)) "--sha256 that is not 64 hex digits: usage error, exit 2 (got $rc)"
run pin_file image register $R --sha256 "$(printf '%064d' 1)" t/ci pin_file "$W/www/other.qcow2"
refused pin_file "not the expected $(printf '%064d' 1)"
run url_opt_file image register $R --insecure t/ci x "$W/www/other.qcow2"
ok $((rc != 2)) "a URL-only option with a file: usage error (got $rc)"
check "... saying so" hasF url_opt_file.err "--insecure is for a URL source"

# --- TLS -------------------------------------------------------------------------
run tls image register $R t/ci tls "$S/f/other.qcow2"
refused tls "the server's identity is not trusted"
check "tls: the message names --ca-file and --insecure" hasF tls.err "--ca-file FILE"
run tls_ca image register $R --ca-file "$W/cert.pem" t/ci tls_ca "$S/f/other.qcow2"
ok $rc "https with --ca-file trusting the certificate: registered"
run tls_insecure image register $R --insecure t/ci tls_insecure "$S/f/other.qcow2"
ok $rc "https with --insecure: registered"
asked() { curl -s "$U/log" | grep -c '^/f/other.qcow2 '; }
n0=$(asked)
run down image register $R --ca-file "$W/cert.pem" t/ci down "$S/to-http/other.qcow2"
refused down "redirected to http://127.0.0.1:$HP/f/other.qcow2, refused"
check "down: the plain-http server was never asked" test "$(asked)" = "$n0"

# --- credentials ----------------------------------------------------------------
run noauth image register $R t/ci noauth "$U/auth/Mixed.Case.qcow2"
refused noauth "the server answered HTTP 401 (credentials needed)"
run auth image register $R "t/ci" auth "http://ci:$SECRET@127.0.0.1:$HP/auth/Mixed.Case.qcow2"
ok $rc "credentials in the URL are used (Basic auth): registered"
run auth_json image register $R --json t/ci auth_json "http://ci:$SECRET@127.0.0.1:$HP/auth/Mixed.Case.qcow2"
ok $rc "... also with --json"
sq "$REG" "SELECT url FROM image_sources s JOIN images i ON i.id = s.image_id WHERE i.name = 'auth'"
check "the recorded URL has no credentials and keeps its case" \
	test "$(cat "$W/sq.out")" = "http://127.0.0.1:$HP/auth/Mixed.Case.qcow2"
run auth_bad image register $R t/ci auth_bad "http://ci:wrong$SECRET@127.0.0.1:$HP/auth/Nope.qcow2"
check "a failing URL with credentials: the message has none" sh -c "! grep -q 'wrong' '$W/auth_bad.err'"
sql_shell "$REG" .dump >"$W/dump.sql"
leaks=$(cat "$W"/*.out "$W"/*.err "$W/dump.sql" "$REG"* 2>/dev/null | grep -a -c -e 's3cr3t' -e 'p%40ss' -e 'p@ss')
ok "$leaks" "the password appears nowhere: outputs, registry dump, database and WAL files ($leaks hits)"

# --- file:// ---------------------------------------------------------------------
run file image register $R t/ci fileurl "file://$W/www/other.qcow2"
ok $rc "file:// URL: registered"
sq "$REG" "SELECT url FROM image_sources s JOIN images i ON i.id = s.image_id WHERE i.name = 'fileurl'"
check "file://: recorded as given" test "$(cat "$W/sq.out")" = "file://$W/www/other.qcow2"
run file_missing image register $R t/ci file_missing "file://$W/www/none.qcow2"
refused file_missing "no such file"

# --- --json progress ----------------------------------------------------------------
run json image register $R --json t/ci json "$U/slow/good.qcow2"
ok $rc "--json: registered"
check "--json: progress events while downloading" has json.out '^{"bytes":[0-9]*,"event":"progress","total":'"$GOOD_SIZE"'}$'
check "--json: the last line is the result, with its source" \
	sh -c "tail -1 '$W/json.out' | grep -q '\"source\":\"$U/slow/good.qcow2\"'"

# --- Ctrl-C on a terminal mid-download ----------------------------------------------
timeout 60 script -qec "echo \$\$ > '$W/c1.pid'; exec '$D' image register --registry '$REG' t/ci intr '$U/slow/good.qcow2'" /dev/null >"$W/intr.out" 2>&1 &
BG=$!
i=0
while [ $i -lt 200 ] && ! ls "$STORE"/.tmp-* >/dev/null 2>&1; do
	sleep 0.05
	i=$((i + 1))
done
sleep 2
kill -s INT -- "-$(cat "$W/c1.pid")"
wait $BG
rc=$?
BG=
ok $((rc != 130)) "terminal: Ctrl-C mid-download exits 130 (got $rc)"
check "terminal: it says so" hasF intr.out "interrupted; nothing was registered"
if has intr.out "registering intr [0-9.]* [KM]iB of 4.3 MiB ([0-9.]* [KM]iB/s, ETA [0-9]*s)"; then
	ok 0 "terminal: a progress line with bytes, total, rate and ETA"
else
	ok 1 "terminal: a progress line with bytes, total, rate and ETA"
	tr '\r' '\n' <"$W/intr.out" | cat -v | sed 's/^/# /' | tail -5
fi
check "terminal: no row, no file, no temp file" nothing_left intr

# --- Lua: db:register with a progress function -------------------------------
cat >"$W/lua_import.lua" <<'EOF'
local reg, url = arg[1], arg[2]
local db = assert(require("djinn.registry").open(reg))
local calls, last = 0, 0
local id, info = db:register("t/lua", "a", url, { progress = function(b, t)
    calls = calls + 1
    assert(b >= last and (t == nil or b <= t)); last = b
end })
print("ok", id ~= nil, info and info.bytes, calls > 0)
print("cancel", db:register("t/lua", "b", url,
                            { progress = function() return true end }))
print("raise", pcall(db.register, db, "t/lua", "c", url,
                     { progress = function() error("stop here") end }))
db:close()
EOF
"$D" "$W/lua_import.lua" "$REG" "$U/f/other.qcow2" >"$W/lua.out" 2>&1
ok $? "Lua: the script ran"
check "Lua: id, info.bytes and progress calls (bytes never backwards)" \
	has lua.out "^ok	true	$(stat -c %s "$W/www/other.qcow2")	true\$"
check "Lua: progress returning true cancels, with a message" has lua.out "^cancel	nil	.*: cancelled after"
check "Lua: an error in progress propagates" has lua.out "^raise	false	.*stop here"
sq "$REG" "SELECT count(*) FROM images i JOIN namespaces n ON n.id = i.namespace_id WHERE n.path = 't/lua'"
ok $(($(cat "$W/sq.out") != 1)) "Lua: the cancelled and the raised import left no row"
check "Lua: ... and no temp file" sh -c "! ls '$STORE'/.tmp-* 2>/dev/null"

# --- SQL ------------------------------------------------------------------------------
sq "$REG" "SELECT image_register('t/sql', 'a', '$U/f/other.qcow2', '{\"max_redirects\": 2}')"
ok $rc "SQL: image_register(ns, name, url, options) registers"
sq "$REG" "SELECT source_url FROM image_list WHERE namespace = 't/sql' AND name = 'a'"
check "SQL: image_list has source_url" test "$(cat "$W/sq.out")" = "$U/f/other.qcow2"
sq "$REG" "SELECT image_register('t/sql', 'b', '$U/f/other.qcow2', '{\"sha256\": \"$(printf '%064d' 0)\"}')"
ok $((rc == 0)) "SQL: a wrong sha256 option fails"
check "SQL: ... saying why" hasF sq.err "not the expected"
sq "$REG" "SELECT image_register('t/sql', 'b', '$U/f/other.qcow2', '{\"speed\": 1}')"
check "SQL: an unknown option is named, with the allowed ones" hasF sq.err "options: unknown key 'speed' (allowed: sha256, max_size"
sq "$REG" "SELECT image_register('t/sql', 'b', '$U/f/other.qcow2', '{\"timeout\": -1}')"
check "SQL: a bad option value says what is allowed" hasF sq.err "options: timeout must be a number of seconds"
check "SQL: the failures left nothing" nothing_left b

# --- SFTP against OpenSSH's sshd ------------------------------------------------------
SSHROOT=$B/sshd-host
if [ ! -x "$SSHROOT/usr/sbin/sshd" ]; then
	mkdir -p "$SSHROOT.deb" &&
		(cd "$SSHROOT.deb" && apt-get download -q openssh-server libwrap0) >"$W/apt.log" 2>&1 &&
		for f in "$SSHROOT.deb"/*.deb; do dpkg-deb -x "$f" "$SSHROOT" || exit 1; done
fi
ok $? "OpenSSH's sshd unpacked from Debian's archive (apt-get download)"
mkdir -m 755 "$NW/ssh" && cp "$W/www/other.qcow2" "$NW/ssh/" && chmod 644 "$NW/ssh/other.qcow2" &&
	ssh-keygen -q -t ed25519 -N '' -f "$NW/ssh/host" && chown nobody "$NW/ssh/host" &&
	ssh-keygen -q -t ed25519 -N '' -f "$NW/client" &&
	cp "$NW/client.pub" "$NW/ssh/authorized_keys" && chmod 644 "$NW/ssh/authorized_keys" &&
	{ grep -v '^nobody:' /etc/shadow; echo 'nobody:x:19000:0:99999:7:::'; } >"$NW/ssh/shadow" &&
	chmod 644 "$NW/ssh/shadow"
ok $? "host key, client key, authorized_keys and a shadow file with nobody unlocked"
SSHP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$NW/ssh/config" <<EOF
ListenAddress 127.0.0.1:$SSHP
HostKey $NW/ssh/host
PidFile none
AuthorizedKeysFile $NW/ssh/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
EOF
chmod 644 "$NW/ssh/config"
cat >"$NW/ssh/run.sh" <<EOF
mount --bind '$NW/ssh/shadow' /etc/shadow || exit 1
echo \$\$ > '$NW/sshd.pid'
exec env LD_LIBRARY_PATH='$SSHROOT/usr/lib/x86_64-linux-gnu:$SSHROOT/lib/x86_64-linux-gnu' setpriv --reuid=nobody --regid=nogroup --clear-groups '$SSHROOT/usr/sbin/sshd' -D -e -f '$NW/ssh/config'
EOF
unshare --mount --propagation private sh "$NW/ssh/run.sh" >"$NW/sshd.log" 2>&1 &
SSHD_PID=$!
i=0
while [ $i -lt 100 ] && ! grep -q "Server listening" "$NW/sshd.log"; do
	sleep 0.05
	i=$((i + 1))
done
ok "$(grep -q 'Server listening' "$NW/sshd.log"; echo $?)" "sshd listens on 127.0.0.1:$SSHP"
echo "[127.0.0.1]:$SSHP $(cut -d' ' -f1-2 "$NW/ssh/host.pub")" >"$W/known_hosts"
echo "[127.0.0.1]:$SSHP $(cut -d' ' -f1-2 "$NW/client.pub")" >"$W/wrong_hosts"
SFTP="sftp://nobody@127.0.0.1:$SSHP$NW/ssh/other.qcow2"
run sftp image register $R --identity "$NW/client" --known-hosts "$W/known_hosts" t/ci sftp "$SFTP"
ok $rc "sftp: registered with --identity and --known-hosts"
[ $rc = 0 ] || { show sftp.err; sed "s/^/# /" "$NW/sshd.log"; }
sq "$REG" "SELECT url FROM image_sources s JOIN images i ON i.id = s.image_id WHERE i.name = 'sftp'"
check "sftp: recorded without the user name" test "$(cat "$W/sq.out")" = "sftp://127.0.0.1:$SSHP$NW/ssh/other.qcow2"
OLDHOME=${HOME:-}
export HOME="$W/nohome"
run sftp_nokh image register $R --identity "$NW/client" t/ci sftp_nokh "$SFTP"
export HOME="$OLDHOME"
refused sftp_nokh "the server's identity is not trusted"
run sftp_wrong image register $R --identity "$NW/client" --known-hosts "$W/wrong_hosts" t/ci sftp_wrong "$SFTP"
refused sftp_wrong "the server's identity is not trusted"
run sftp_nokey image register $R --identity "$NW/ssh/host" --known-hosts "$W/known_hosts" t/ci sftp_nokey "$SFTP"
refused sftp_nokey "login refused"

tap_end
