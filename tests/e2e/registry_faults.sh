#!/bin/sh
# registry_faults.sh - kill the registry's write paths at every system call
# and check that no registered image's bytes are lost and that repair
# converges.
#
# A registry made by the stock sqlite3 shell with build/djinn.so holds four
# images: team/ci a and team/ci b (one shared file), team/ci c, and the
# personal p; the SHA-256 of each is recorded. Operations, each in its own
# sqlite3 shell:
#   register       image_register('team/new', 'n', <a fifth image>)
#   remove-shared  image_remove('team/ci', 'b')   (a keeps the file)
#   remove-unique  image_remove('team/ci', 'c')   (the file goes)
#   repair         djinn_fsck('repair') with leftovers in the store: an
#                  orphan <sha256>.qcow2, a .trash-* and the .tmp-* of a
#                  registration whose process is gone
# Each first runs once cleanly under `strace -f`; a marker call
# (qcow2_validate('/nonexistent/djinn-fault-marker')) just before the
# operation splits the trace, and every system call of the write path
# (FAULT_SYSCALLS below) that the operation makes after the marker, up to
# the shell's exit, is a kill point. Then, for each signal (KILL, TERM:
# the process dies; INT: the shell interrupts the statement) and each
# occurrence N of each such system call, a pristine copy of the registry
# directory runs the operation under
#   strace -f -e trace=SYSCALL -e inject=SYSCALL:signal=SIG:when=N
# and afterwards, in a new shell: djinn_fsck('repair') once, then
#   - every image registered before (except the one being removed, which
#     may be either gone or intact, never a row without its bytes; and the
#     one being registered, which may be either absent or intact) still
#     has its row, and the file at image_path() has the recorded SHA-256;
#   - a second repair removes nothing and reports "ok":true (convergence);
#   - no .tmp-* or .trash-* is left in the store;
#   - the registry opens without an error and PRAGMA integrity_check is ok.
# A kill after the operation took effect (COMMIT done, e.g. at the WAL
# checkpoint when the shell exits) is as valid a point as one before it:
# both must keep every image. The diagnostics count the points of each
# kind ("before"/"after" the operation took effect; "not fired" when the
# occurrence was not reached in that run).
#
# slow: about 600 kill points, each a shell under strace (about 10
# minutes; SKIP_SLOW=1 leaves it out)
#
# TAP: one point per (operation, signal, system call); each failing N gets a
# "# " line with what was found and how to rerun only it.
#
# Knobs (environment):
#   DJINN_FAULT_CAP=30      every occurrence up to this many per system call
#   DJINN_FAULT_SAMPLE=10   then at most this many more, evenly spread, the
#                           last occurrence always among them
#   DJINN_FAULT_SIGCAP=8    the same cap for INT and TERM
#                           (6, 2 and 2 under an ASan build of djinn.so;
#                           halving the caps saves only about a tenth of
#                           the points: most calls occur only a few times)
#   DJINN_FAULT_SIGNALS="KILL TERM INT"
#   DJINN_FAULT_OPS="register remove-shared remove-unique repair"
#   DJINN_FAULT_ONLY="OP:SIG:SYSCALL[:N] ..." only these points
#   DJINN_FAULT_KEEP=DIR    keep the registry directory of each failing
#                           point as it was right after the kill (its
#                           paths name the work directory: with schema 2,
#                           open it with DJINN_FAULT_DEBUG=1 set)
#   DJINN_FAULT_DEBUG=1     keep the work directory (traces, templates)
#   DJINN_FAULT_TIMEOUT=60  seconds for any one shell
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
LIB=$B/djinn
SQLITE3=${SQLITE3:-sqlite3}
if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
	# Under the sanitizers every shell is several times slower: fewer
	# points by default (every system call still killed, the first and
	# the last occurrence always).
	CAP=${DJINN_FAULT_CAP:-6}
	SAMPLE=${DJINN_FAULT_SAMPLE:-2}
	SIGCAP=${DJINN_FAULT_SIGCAP:-2}
else
	CAP=${DJINN_FAULT_CAP:-30}
	SAMPLE=${DJINN_FAULT_SAMPLE:-10}
	SIGCAP=${DJINN_FAULT_SIGCAP:-8}
fi
SIGNALS=${DJINN_FAULT_SIGNALS:-KILL TERM INT}
OPS=${DJINN_FAULT_OPS:-register remove-shared remove-unique repair}
ONLY=${DJINN_FAULT_ONLY:-}
KEEP=${DJINN_FAULT_KEEP:-}
TMO=${DJINN_FAULT_TIMEOUT:-60}
# System calls that change files, directories or locks.
FAULT_SYSCALLS="openat open creat write writev pwrite64 pwritev pwritev2
 fsync fdatasync sync_file_range rename renameat renameat2 unlink unlinkat
 link linkat symlink symlinkat fchmod fchmodat chmod fchown ftruncate
 truncate fcntl flock mkdir mkdirat rmdir fallocate copy_file_range
 sendfile close"
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/faults.XXXXXX") || exit 1
[ -n "${DJINN_FAULT_DEBUG:-}" ] || trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
. "$TOP/tests/e2e_lib.sh"
t0=$(date +%s)

# strace >= 4.16 (inject=...:signal=), and allowed to trace here.
sv=$(strace -V 2>/dev/null | sed -n '1s/.*version \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
set -- $sv
if [ $# -ne 2 ] || [ "$1" -lt 4 ] || { [ "$1" -eq 4 ] && [ "$2" -lt 16 ]; }; then
	echo "ok 1 # SKIP strace >= 4.16 is needed (apt-get install strace)"
	echo "1..1"
	exit 0
fi
strace -o /dev/null -e trace=getpid -e inject=getpid:signal=KILL:when=1 \
	sh -c 'echo $$' >/dev/null 2>&1
if [ $? -ne 137 ]; then
	echo "ok 1 # SKIP strace cannot trace or inject signals here (ptrace not permitted?)"
	echo "1..1"
	exit 0
fi

# sh3 DB ARGS... - the stock shell on DB (SQL from ARGS or stdin).
sh3() {
	if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
		LD_PRELOAD=$DJINN_SHELL_PRELOAD timeout -k 5 "$TMO" "$SQLITE3" -batch "$@"
	else
		timeout -k 5 "$TMO" "$SQLITE3" -batch "$@"
	fi
}
# traced DB STRACE-ARGS... - the shell on DB under strace, script on
# stdin; an ASan build's preload goes to the shell, not to strace, and
# LeakSanitizer is off there (it cannot work under ptrace).
traced() {
	tdb=$1
	shift
	if [ -n "${DJINN_SHELL_PRELOAD:-}" ]; then
		timeout -k 5 "$TMO" strace -E "LD_PRELOAD=$DJINN_SHELL_PRELOAD" \
			-E "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
			"$@" "$SQLITE3" -batch "$tdb"
	else
		timeout -k 5 "$TMO" strace "$@" "$SQLITE3" -batch "$tdb"
	fi
}
plain() { timeout -k 5 "$TMO" "$SQLITE3" -batch "$@" </dev/null; }

# Five images with distinct content.
mkdir "$W/src" || exit 1
for i in 1 2 3 4 5; do
	qemu-img create -q -f qcow2 "$W/src/i$i.qcow2" 64M &&
		qemu-io -c "write -P 0x$i$i 0 64k" "$W/src/i$i.qcow2" >/dev/null ||
		exit 1
done
# Every run happens in the same directory, $W/k, restored from a template
# each time: the registry may record absolute paths of its store.
K=$W/k
mkdir "$K"
sh3 "$K/reg.db" -bail ".load $LIB" \
	"SELECT image_register('team/ci', 'a', '$W/src/i1.qcow2')" \
	"SELECT image_register('team/ci', 'b', '$W/src/i1.qcow2')" \
	"SELECT image_register('team/ci', 'c', '$W/src/i2.qcow2')" \
	"SELECT image_register(NULL, 'p', '$W/src/i3.qcow2')" \
	"SELECT namespace_resolve('team/new')" >"$W/setup.out" 2>&1
rc=$?
plain "$K/reg.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null 2>&1
# The images before: "ns|name|sha256", the sums from the source files.
sh3 "$K/reg.db" ".load $LIB" \
	"SELECT ifnull(namespace, ''), name, sha256 FROM image_list" \
	>"$W/expect" 2>>"$W/setup.out"
s1=$(sha256sum <"$W/src/i1.qcow2" | cut -c1-64)
s2=$(sha256sum <"$W/src/i2.qcow2" | cut -c1-64)
s3=$(sha256sum <"$W/src/i3.qcow2" | cut -c1-64)
s4=$(sha256sum <"$W/src/i4.qcow2" | cut -c1-64)
s5=$(sha256sum <"$W/src/i5.qcow2" | cut -c1-64)
printf '%s\n' "team/ci|a|$s1" "team/ci|b|$s1" "team/ci|c|$s2" "|p|$s3" |
	LC_ALL=C sort >"$W/want"
LC_ALL=C sort "$W/expect" | cmp -s - "$W/want"
ok $? "a registry with 4 images, 3 files (rc $rc)"
if [ "$rc" -ne 0 ] || ! LC_ALL=C sort "$W/expect" | cmp -s - "$W/want"; then
	show setup.out
	tap_end
	exit
fi
T=$W/tmpl
cp -a "$K" "$T"
# The repair template: leftovers of crashed operations, all garbage.
R=$W/tmpl-repair
cp -a "$K" "$R"
dead=$(($(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 4194304) + 1))
cp "$W/src/i5.qcow2" "$R/images/$s5.qcow2"
cp "$W/src/i5.qcow2" "$R/images/.trash-$dead-0011223344556677"
cp "$W/src/i5.qcow2" "$R/images/.tmp-$dead-8899aabbccddeeff"
chmod 0444 "$R/images/$s5.qcow2" "$R/images/.trash-$dead-0011223344556677"

# The operations: template, SQL, the image it concerns ("ns|name").
op_tmpl() { case $1 in repair) echo "$R" ;; *) echo "$T" ;; esac; }
op_sql() {
	case $1 in
	register) echo "SELECT image_register('team/new', 'n', '$W/src/i4.qcow2');" ;;
	remove-shared) echo "SELECT image_remove('team/ci', 'b');" ;;
	remove-unique) echo "SELECT image_remove('team/ci', 'c');" ;;
	repair) echo "SELECT djinn_fsck('repair');" ;;
	esac
}
op_subject() {
	case $1 in
	register) echo "team/new|n" ;;
	remove-shared) echo "team/ci|b" ;;
	remove-unique) echo "team/ci|c" ;;
	*) echo "" ;;
	esac
}
for op in $OPS; do
	{
		echo ".load $LIB"
		echo "SELECT qcow2_validate('/nonexistent/djinn-fault-marker');"
		op_sql "$op"
	} >"$W/op-$op.sql"
done
cat >"$W/check.sql" <<EOF
.load $LIB
SELECT 'R1', djinn_fsck('repair');
SELECT 'ROW', ifnull(namespace, ''), name, sha256, image_path(namespace, name) FROM image_list;
SELECT 'R2', djinn_fsck('repair');
SELECT 'IC', group_concat(integrity_check) FROM pragma_integrity_check;
EOF

# Did the operation take effect? (read with the plain shell: no repair)
took_effect() { # took_effect OP DIR
	case $1 in
	register)
		cnt=$(plain "$2/reg.db" "SELECT count(*) FROM images WHERE name = 'n'" 2>/dev/null)
		[ "$cnt" = 1 ] ;;
	remove-shared | remove-unique)
		nm=$(op_subject "$1" | cut -d'|' -f2)
		cnt=$(plain "$2/reg.db" "SELECT count(*) FROM images i JOIN namespaces s ON s.id = i.namespace_id WHERE s.path = 'team/ci' AND i.name = '$nm'" 2>/dev/null)
		[ "$cnt" = 0 ] ;;
	repair)
		[ ! -e "$2/images/$s5.qcow2" ] &&
			[ ! -e "$2/images/.trash-$dead-0011223344556677" ] &&
			[ ! -e "$2/images/.tmp-$dead-8899aabbccddeeff" ] ;;
	esac
}

# verify OP DIR - the checks after a kill; $problems says what failed.
verify() {
	vop=$1 d=$2
	problems=
	sh3 "$d/reg.db" <"$W/check.sql" >"$d.out" 2>"$d.err"
	crc=$?
	if [ "$crc" -ne 0 ] || [ -s "$d.err" ]; then
		problems="repair/open failed (rc $crc): $(head -c 300 "$d.err" | tr '\n' ' ')"
	fi
	grep -q '^R1|' "$d.out" || problems="${problems:+$problems; }no result from the first repair"
	subject=$(op_subject "$vop")
	while IFS='|' read -r ens ename esha; do
		row=$(grep -F "ROW|$ens|$ename|" "$d.out" | head -n 1)
		if [ "$ens|$ename" = "$subject" ] && [ -z "$row" ]; then
			continue # removed: allowed
		fi
		if [ -z "$row" ]; then
			problems="${problems:+$problems; }$ens/$ename: row lost"
			continue
		fi
		gotsha=$(echo "$row" | cut -d'|' -f4)
		path=$(echo "$row" | cut -d'|' -f5-)
		if [ "$gotsha" != "$esha" ]; then
			problems="${problems:+$problems; }$ens/$ename: row says sha256 $gotsha"
		elif [ ! -f "$path" ]; then
			problems="${problems:+$problems; }$ens/$ename: row kept, file $path gone (bytes lost)"
		elif [ "$(sha256sum <"$path" | cut -c1-64)" != "$esha" ]; then
			problems="${problems:+$problems; }$ens/$ename: file $path has other bytes"
		fi
	done <"$W/expect"
	if [ "$vop" = register ]; then
		row=$(grep -F "ROW|team/new|n|" "$d.out" | head -n 1)
		if [ -n "$row" ]; then
			path=$(echo "$row" | cut -d'|' -f5-)
			if [ "$(echo "$row" | cut -d'|' -f4)" != "$s4" ] || [ ! -f "$path" ] ||
				[ "$(sha256sum <"$path" | cut -c1-64)" != "$s4" ]; then
				problems="${problems:+$problems; }team/new/n: registered without its bytes"
			fi
		fi
	fi
	r2=$(grep '^R2|' "$d.out")
	case $r2 in
	*'"removed":[]'*'"ok":true'* | *'"ok":true'*'"removed":[]'*) ;;
	*) problems="${problems:+$problems; }the second repair did not converge: ${r2#R2|}" ;;
	esac
	left=$(ls -A "$d/images" 2>/dev/null | grep -E '^\.(tmp|trash)-' | tr '\n' ' ')
	[ -z "$left" ] || problems="${problems:+$problems; }left in the store after repair: $left"
	grep -q '^IC|ok$' "$d.out" || problems="${problems:+$problems; }integrity_check: $(grep '^IC|' "$d.out")"
	[ -z "$problems" ]
}

# Sanity: each operation, run once without faults, passes the checks.
for op in $OPS; do
	d=$K
	rm -rf "$d" "$d.out" "$d.err"
	cp -a "$(op_tmpl "$op")" "$d"
	traced "$d/reg.db" -f -o "$W/clean-$op.trace" <"$W/op-$op.sql" \
		>"$W/clean-$op.out" 2>"$W/clean-$op.err"
	rc=$?
	# Occurrences per system call: "name before total", before counting
	# the marker's own openat.
	awk -v want="$FAULT_SYSCALLS" '
		BEGIN { n = split(want, w, /[ \n]+/); for (i = 1; i <= n; i++) if (w[i] != "") ws[w[i]] = 1 }
		{
			line = $0
			sub(/^[0-9]+ +/, "", line)
			if (line !~ /^[a-z_0-9]+\(/) next
			name = line
			sub(/\(.*/, "", name)
			count[name]++
			if (!seen && index(line, "/nonexistent/djinn-fault-marker")) {
				seen = 1
				for (k in count) before[k] = count[k]
			}
		}
		END {
			if (!seen) { print "NOMARKER"; exit }
			for (k in count) if ((k in ws) && count[k] > before[k] + 0) print k, before[k] + 0, count[k]
		}' "$W/clean-$op.trace" | LC_ALL=C sort >"$W/points-$op"
	took_effect "$op" "$d"
	eff=$?
	verify "$op" "$d"
	good=$?
	[ "$rc" -eq 0 ] && [ "$eff" -eq 0 ] && [ "$good" -eq 0 ] &&
		! grep -q NOMARKER "$W/points-$op" && [ -s "$W/points-$op" ]
	ok $? "$op: a clean run under strace does it and passes the checks"
	if [ "$rc" -ne 0 ] || [ "$eff" -ne 0 ] || [ "$good" -ne 0 ]; then
		echo "# rc $rc, took effect: $([ "$eff" -eq 0 ] && echo yes || echo no); $problems"
		sed 's/^/#   /' "$W/clean-$op.err" | head -n 5
	fi
	echo "# $op: write-path system calls after the marker (name, occurrences):" \
		$(awk '{ printf "%s %d, ", $1, $3 - $2 }' "$W/points-$op")
done

# The occurrences to kill at: FIRST..LAST, every one up to CAP of them,
# then SAMPLE more spread evenly, LAST among them.
pick() { # pick FIRST LAST CAP
	awk -v a="$1" -v b="$2" -v cap="$3" -v s="$SAMPLE" 'BEGIN {
		n = b - a + 1
		if (n <= cap) { for (i = a; i <= b; i++) print i; exit }
		for (i = a; i < a + cap; i++) print i
		rest = n - cap
		if (s > rest) s = rest
		for (j = 1; j <= s; j++) {
			k = a + cap - 1 + int(j * rest / s + 0.5)
			if (k != last) print k
			last = k
		}
	}'
}
selected() { # selected OP SIG SYSCALL N
	[ -z "$ONLY" ] && return 0
	for o in $ONLY; do
		case $o in
		"$1:$2:$3" | "$1:$2:$3:$4") return 0 ;;
		esac
	done
	return 1
}

total=0
for op in $OPS; do
	grep -q NOMARKER "$W/points-$op" && continue
	tmpl=$(op_tmpl "$op")
	for sig in $SIGNALS; do
		cap=$CAP
		[ "$sig" = KILL ] || cap=$SIGCAP
		while read -r sc before last <&3; do
			nfail=0 nbefore=0 nafter=0 nnot=0 npts=0 fails=
			for at in $(pick $((before + 1)) "$last" "$cap"); do
				selected "$op" "$sig" "$sc" "$at" || continue
				d=$K
				rm -rf "$d" "$d.out" "$d.err"
				cp -a "$tmpl" "$d"
				traced "$d/reg.db" -f -o "$W/k.trace" -e trace="$sc" \
					-e inject="$sc:signal=$sig:when=$at" \
					<"$W/op-$op.sql" >"$W/k.op.out" 2>"$W/k.op.err"
				krc=$?
				npts=$((npts + 1))
				if ! grep -q -E "^[0-9]+ +(--- SIG$sig |\+\+\+ killed by SIG$sig )" "$W/k.trace"; then
					nnot=$((nnot + 1))
				elif took_effect "$op" "$d"; then
					nafter=$((nafter + 1))
				else
					nbefore=$((nbefore + 1))
				fi
				if [ -n "$KEEP" ]; then
					rm -rf "$W/k.kept"
					cp -a "$d" "$W/k.kept"
				fi
				if ! verify "$op" "$d"; then
					nfail=$((nfail + 1))
					fails="$fails
#   $sc #$at (rc $krc): $problems
#     rerun: DJINN_BUILD=$B DJINN_FAULT_OPS=$op DJINN_FAULT_ONLY=$op:$sig:$sc:$at sh tests/e2e/registry_faults.sh"
					if [ -n "$KEEP" ]; then
						mkdir -p "$KEEP"
						rm -rf "$KEEP/$op-$sig-$sc-$at"
						mv "$W/k.kept" "$KEEP/$op-$sig-$sc-$at"
						fails="$fails
#     kept: $KEEP/$op-$sig-$sc-$at (as right after the kill)"
					fi
				fi
			done
			[ "$npts" -gt 0 ] || continue
			total=$((total + npts))
			ok "$nfail" "$op, SIG$sig at $sc: $npts kill points ($nbefore before the operation took effect, $nafter after, $nnot not reached)"
			if [ "$nfail" -gt 0 ]; then
				echo "# $nfail of $npts failed:$fails"
			fi
		done 3<"$W/points-$op"
	done
done
echo "# $total kill points exercised in $(($(date +%s) - t0)) s (cap $CAP per system call for KILL, $SIGCAP for TERM and INT, then $SAMPLE sampled)"
tap_end
