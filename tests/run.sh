#!/bin/sh
# run.sh BUILDDIR - run every test suite and summarise.
#
# Each suite prints TAP ("ok N - name" / "not ok N - name"). This script
# passes the lines through, counts them, and ends with the line
#     N passed, N failed
# alone on the last line. It exits non-zero if anything failed, if a suite
# crashed (exited non-zero with no "not ok" to show for it), or if nothing ran.
#
# Suites, in order: C unit tests (BUILD/tests/*_test), SQL files through the
# private driver (BUILD/sql_runner) and through the stock sqlite3 shell
# (tests/sql_shell.sh), Lua tests inside djinn-lua (tests/lua/runner.lua),
# end-to-end shell tests (tests/e2e/*.sh).
#
# Test fixtures (QCOW2 images made with the real qemu-img) are built once per
# run into a private work directory, which is also every suite's cwd, so SQL
# files can name them as 'fixtures/<name>.qcow2'. The directory is removed at
# the end, whatever happened.
#
# After each suite, "# NAME took N s" (its wall time: what CI's 90
# minutes are spent on).
#
# Every suite must print exactly one TAP plan ("1..N") and N must equal the
# points it printed: a suite that stops early (exit 0 before its plan) or
# loses points is a failure, named in a "not ok - suite ..." line.
#
# VALGRIND=1 runs the C tests and the SQL driver under valgrind.
# SUITE=PATTERN runs only the suites whose name matches the shell pattern
# (e.g. SUITE='e2e/qemu*' or SUITE=lua); a pattern without * ? or [
# matches anywhere in the name (SUITE=registry: every registry suite).
# The others are not counted. ONLY=PATTERN is the same, matched whole.
# QUICK=1 (make check) leaves out the e2e suites whose "# needs:" header
# line names a guest (a QEMU VM boot), dockerd or root: the everyday
# subset, without daemons, VMs or privileges.
# SKIP_NEEDS=REGEX leaves out, saying so, the e2e suites whose "# needs:"
# line matches it (CI: `SKIP_NEEDS=guest make asan`, since the VM suites
# spend their time in QEMU under TCG, not in our code, and run in the
# plain `make test` anyway).
# E2E=0 runs no e2e suite (CI's sanitizer pass: the C, SQL and Lua
# suites).
# SKIP_SLOW=1 leaves out, saying so, the e2e suites with a "# slow:"
# header line (minutes of exhaustive fault injection).
# FIXTURES=0 builds no fixtures (the runner's own test needs none).
# E2E_DIR=DIR runs the e2e suites of DIR instead of tests/e2e (the
# runner's own test, tests/e2e/runner.sh).
set -u
B=${1:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
case $B in /*) ;; *) B=$TOP/$B ;; esac
WORK=$(mktemp -d "${TMPDIR:-/tmp}/djinn-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
export DJINN_TOP="$TOP" DJINN_BUILD="$B" DJINN_WORK="$WORK"
export DJINN_FIXTURES="$WORK/fixtures"

passed=0 failed=0
FILTER=${ONLY:-}
if [ -n "${SUITE:-}" ]; then
	case $SUITE in
	*[*?[]*) FILTER=$SUITE ;;
	*) FILTER="*$SUITE*" ;;
	esac
fi
E2E_DIR=${E2E_DIR:-$TOP/tests/e2e}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-1800}

VG=
if [ "${VALGRIND:-}" = 1 ]; then
	# A forked child that fails to exec exits without freeing the
	# parent's heap: not a leak, so forked children are not reported.
	VG="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --child-silent-after-fork=yes"
fi

# Under an ASan build the stock sqlite3 shell must preload the sanitizer
# runtimes to load build-asan/djinn.so.
if ldd "$B/djinn.so" 2>/dev/null | grep -q libasan; then
	pre=$(${CC:-cc} -print-file-name=libasan.so)
	ub=$(${CC:-cc} -print-file-name=libubsan.so)
	export DJINN_SHELL_PRELOAD="$pre $ub"
	# intercept_tls_get_addr=0: GCC 12's LeakSanitizer reads a garbage
	# dynamic-TLS range from glibc 2.36 once the dlopen()ed libraries
	# (libcurl's TLS stack) have used their thread-locals, and its tracer
	# dies at exit ("Tracer caught signal 11", the shell's buffered output
	# lost). Not tracking dynamic TLS can only add leak reports, never hide
	# one.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:intercept_tls_get_addr=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi

# suite NAME CMD... - run one TAP suite, count its points.
suite() {
	name=$1
	shift
	if [ -n "$FILTER" ]; then
		# shellcheck disable=SC2254
		case $name in $FILTER) ;; *) return 0 ;; esac
	fi
	echo "# suite: $name"
	out=$WORK/suite.out
	t0=$(date +%s)
	(cd "$WORK" && timeout -k 10 "$SUITE_TIMEOUT" "$@") >"$out" 2>&1
	rc=$?
	cat "$out"
	echo "# $name took $(($(date +%s) - t0)) s"
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	plans=$(grep -c '^1\.\.[0-9][0-9]*' "$out")
	planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)
	if [ "$plans" -eq 0 ]; then
		echo "not ok - suite $name printed no TAP plan (1..N): it stopped before its end"
		f=$((f + 1))
	elif [ "$plans" -gt 1 ]; then
		echo "not ok - suite $name printed $plans TAP plans (expected one 1..N)"
		f=$((f + 1))
	elif [ "$planned" -ne $((p + f)) ]; then
		echo "not ok - suite $name planned $planned points but printed $((p + f))"
		f=$((f + 1))
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - suite $name exited with status $rc"
		f=1
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - suite $name ran no test"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

if [ "${FIXTURES:-1}" = 1 ] && [ -f "$TOP/tests/fixtures.sh" ]; then
	if ! sh "$TOP/tests/fixtures.sh" "$DJINN_FIXTURES" >"$WORK/fixtures.log" 2>&1; then
		cat "$WORK/fixtures.log"
		echo "not ok - building test fixtures failed"
		failed=$((failed + 1))
	fi
fi

for t in "$B"/tests/*_test; do
	[ -x "$t" ] || continue
	suite "c/$(basename "$t")" $VG "$t"
done

if [ -x "$B/sql_runner" ]; then
	suite "sql (driver)" $VG "$B/sql_runner" "$B/djinn.so" "$TOP"/tests/sql/*.sql
fi
if [ -f "$TOP/tests/sql_shell.sh" ] && [ -z "$VG" ]; then
	suite "sql (sqlite3 shell)" sh "$TOP/tests/sql_shell.sh" "$B/djinn" "$TOP"/tests/sql/*.sql
fi
if [ -x "$B/djinn-lua" ] && [ -f "$TOP/tests/lua/runner.lua" ] && [ -z "$VG" ]; then
	suite "lua" "$B/djinn-lua" "$TOP/tests/lua/runner.lua" "$TOP"/tests/lua/*_test.lua
fi
# Under valgrind: the Lua suites that need no VM, SSH or engine (the C
# modules' memory handling through the real Lua API), and one whole
# `djinn-lua run` of an example on the os driver, as a TAP point.
if [ -n "$VG" ] && [ -x "$B/djinn-lua" ]; then
	suite "lua (valgrind)" $VG "$B/djinn-lua" "$TOP/tests/lua/runner.lua" \
		"$TOP"/tests/lua/yaml_test.lua "$TOP"/tests/lua/manifest_test.lua \
		"$TOP"/tests/lua/config_test.lua "$TOP"/tests/lua/json_test.lua \
		"$TOP"/tests/lua/tar_test.lua "$TOP"/tests/lua/fs_test.lua \
		"$TOP"/tests/lua/qcow2_test.lua "$TOP"/tests/lua/registry_test.lua \
		"$TOP"/tests/lua/proc_test.lua "$TOP"/tests/lua/pipeline_test.lua \
		"$TOP"/tests/lua/state_test.lua
	suite "djinn-lua run examples/os-hello.yml (valgrind)" sh -c '
		"$@" run --objects "$DJINN_TOP/examples/files" \
			--artifacts "$DJINN_WORK/vg-artifacts" \
			"$DJINN_TOP/examples/os-hello.yml" >"$DJINN_WORK/vg-run.log" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ] && [ -f "$DJINN_WORK/vg-artifacts/app.txt" ]; then
			echo "ok 1 - djinn-lua run examples/os-hello.yml: exit 0, no valgrind error, artifact collected"
		else
			cat "$DJINN_WORK/vg-run.log"
			echo "not ok 1 - djinn-lua run examples/os-hello.yml under valgrind (rc $rc)"
		fi
		echo "1..1"' sh $VG "$B/djinn-lua"
fi
if [ -z "$VG" ] && [ "${E2E:-1}" = 1 ]; then
	for t in "$E2E_DIR"/*.sh; do
		[ -f "$t" ] || continue
		if [ "${QUICK:-}" = 1 ] &&
			grep -q -E '^# needs:.*(guest|dockerd|root)' "$t"; then
			continue
		fi
		if [ "${SKIP_SLOW:-}" = 1 ] && grep -q '^# slow:' "$t"; then
			echo "# e2e/$(basename "$t" .sh) left out: it is slow (SKIP_SLOW=1)"
			continue
		fi
		if [ -n "${SKIP_NEEDS:-}" ] &&
			grep -q -E "^# needs:.*($SKIP_NEEDS)" "$t"; then
			echo "# e2e/$(basename "$t" .sh) left out: it needs $SKIP_NEEDS (SKIP_NEEDS)"
			continue
		fi
		suite "e2e/$(basename "$t" .sh)" sh "$t"
	done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
