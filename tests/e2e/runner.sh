#!/bin/sh
# runner.sh - the test runner itself (tests/run.sh): a suite that stops
# before its TAP plan, or plans more points than it prints, fails the run,
# named in a "not ok - suite ..." line, even when it exits 0; SUITE=
# filters; QUICK=1 leaves out suites whose "# needs:" line names a guest,
# dockerd or root; SKIP_NEEDS=REGEX those whose line matches, saying so;
# SKIP_SLOW=1 those with a "# slow:" line; E2E=0 every e2e suite;
# each suite's wall time is printed.
set -u
TOP=$DJINN_TOP
B=$DJINN_BUILD
W=$(mktemp -d "${TMPDIR:-/tmp}/djinn-runner.XXXXXX")
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
D=$B/djinn-lua
. "$TOP/tests/e2e_lib.sh"

mkdir "$W/suites"
# A complete suite, a truncated one (exits 0 before its plan), one that
# plans 3 points and prints 2, and one that needs dockerd.
printf 'echo "ok 1 - a"\necho "ok 2 - b"\necho "1..2"\n' >"$W/suites/good.sh"
printf 'echo "ok 1 - a"\nexit 0\necho "ok 2 - b"\necho "1..2"\n' >"$W/suites/stops.sh"
printf 'echo "ok 1 - a"\necho "ok 2 - b"\necho "1..3"\n' >"$W/suites/short.sh"
printf '#!/bin/sh\n# needs: dockerd\necho "ok 1 - d"\necho "1..1"\n' >"$W/suites/daemon.sh"

# runner NAME [VAR=VALUE...]: tests/run.sh on $W/suites only, with these
# filters and none inherited (make check runs this suite with QUICK=1).
runner() {
	name=$1
	shift
	env -u QUICK -u SUITE -u ONLY FIXTURES=0 E2E_DIR="$W/suites" "$@" \
		timeout 120 sh "$TOP/tests/run.sh" "$B" >"$W/$name.out" 2>&1
	rc=$?
}

runner all ONLY='e2e/*'
[ "$rc" -ne 0 ]
ok $? "a run with a truncated suite exits non-zero (rc $rc)"
hasF all.out "not ok - suite e2e/stops printed no TAP plan (1..N): it stopped before its end"
ok $? "the truncated suite is named: it stopped before its plan"
hasF all.out "not ok - suite e2e/short planned 3 points but printed 2"
ok $? "a suite that prints fewer points than it planned is named"
! grep -q "suite e2e/good" "$W/all.out" && ! grep -q "suite e2e/daemon " "$W/all.out"
ok $? "complete suites are not reported"
[ "$(tail -n 1 "$W/all.out")" = "6 passed, 2 failed" ]
ok $? "the last line counts the plan failures: $(tail -n 1 "$W/all.out")"

runner good ONLY=e2e/good
[ "$rc" -eq 0 ] && [ "$(tail -n 1 "$W/good.out")" = "2 passed, 0 failed" ]
ok $? "a complete suite alone passes (rc $rc, $(tail -n 1 "$W/good.out"))"

runner suite SUITE=goo
[ "$rc" -eq 0 ] && [ "$(tail -n 1 "$W/suite.out")" = "2 passed, 0 failed" ]
ok $? "SUITE=goo matches e2e/good anywhere in the name ($(tail -n 1 "$W/suite.out"))"

runner quick QUICK=1 SUITE='e2e/[dg]*'
[ "$rc" -eq 0 ] && ! grep -q "^# suite: e2e/daemon" "$W/quick.out" &&
	grep -q "^# suite: e2e/good" "$W/quick.out"
ok $? "QUICK=1 leaves out a suite whose needs line names dockerd"
show quick.out

runner skip SKIP_NEEDS='guest|dockerd' SUITE='e2e/[dg]*'
[ "$rc" -eq 0 ] && ! grep -q "^# suite: e2e/daemon" "$W/skip.out" &&
	grep -q "^# suite: e2e/good" "$W/skip.out"
ok $? "SKIP_NEEDS='guest|dockerd' leaves out a suite whose needs line names dockerd"
hasF skip.out "# e2e/daemon left out: it needs guest|dockerd (SKIP_NEEDS)"
ok $? "... and says so"
printf 'echo "ok 1 - s"\necho "1..1"\n# slow: a test of SKIP_SLOW\n' >"$W/suites/slow.sh"
runner noslow SKIP_SLOW=1 ONLY='e2e/[gs][ol]o[dw]'
[ "$rc" -eq 0 ] && ! grep -q "^# suite: e2e/slow" "$W/noslow.out" &&
	hasF noslow.out "# e2e/slow left out: it is slow (SKIP_SLOW=1)" &&
	grep -q "^# suite: e2e/good" "$W/noslow.out"
ok $? "SKIP_SLOW=1 leaves out a suite with a '# slow:' line, saying so"
runner noe2e E2E=0 ONLY='e2e/*'
[ "$rc" -ne 0 ] && ! grep -q "^# suite: e2e/" "$W/noe2e.out" &&
	[ "$(tail -n 1 "$W/noe2e.out")" = "0 passed, 0 failed" ]
ok $? "E2E=0 runs no e2e suite (and a run of nothing fails: rc $rc)"
grep -q "^# e2e/good took [0-9]* s$" "$W/skip.out"
ok $? "each suite's wall time is printed"
tap_end
