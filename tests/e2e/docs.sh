#!/bin/sh
# docs.sh - the reference pages in docs/ cover the code (issue 12,
# 2026-12-04). TAP on stdout.
#   Every djinn.* module field and object method is in docs/lua-api.md,
#   every manifest key in docs/manifest.md, every driver.conf block and key
#   in docs/driver-conf.md, every SQL function, table and view of the
#   extension in docs/sql.md, every CLI option in docs/cli.md (once the CLI
#   has its option table), and no file cites a document that is not in the
#   tree (tests/docs_check.lua does the enumerations and the checks).
#   Then the checker is run on damaged copies of the pages, one name taken
#   out of each, and must fail naming exactly that name.
# Backquotes in the sed scripts below are Markdown, not shell.
# shellcheck disable=SC2016
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/docs.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT INT TERM
. "$TOP/tests/e2e_lib.sh"

CHECK="$TOP/tests/docs_check.lua"

# The real pages: every check passes (its own TAP points, renumbered).
timeout 120 "$D" "$CHECK" "$TOP" "$TOP/docs" "$B/djinn" >"$W/real.out" 2>&1
rc=$?
while IFS= read -r line; do
	case $line in
	"ok "*) ok 0 "${line#ok [0-9]* - }" ;;
	"not ok "*) ok 1 "${line#not ok [0-9]* - }" ;;
	*) echo "$line" ;;
	esac
done <"$W/real.out"
ok "$rc" "the checker ran to its end on docs/ (exit $rc)"

# damaged CHECK DOC NAME SED - copy docs/, apply SED to DOC, run CHECK: it
# must fail and name NAME as undocumented.
damaged() {
	rm -rf "$W/docs"
	cp -r "$TOP/docs" "$W/docs"
	sed -i "$4" "$W/docs/$2"
	timeout 120 "$D" "$CHECK" "$TOP" "$W/docs" "$B/djinn" "$1" >"$W/bad.out" 2>&1
	if grep -q '^not ok ' "$W/bad.out" && grep -q -F "# undocumented: $3" "$W/bad.out"; then
		ok 0 "$1: a page without $3 fails, naming it"
	else
		show bad.out
		ok 1 "$1: a page without $3 fails, naming it"
	fi
}
damaged lua lua-api.md "fs.readfile" 's/`fs\.readfile/`fs.XXX/g'
damaged lua lua-api.md "db:register" 's/`db:register/`db:XXX/g'
damaged lua lua-api.md "pipeline.run" 's/`pipeline\.run\b/`pipeline.XXX/g'
damaged manifest manifest.md "allow_failures" 's/`allow_failures`/`XXX`/g'
damaged manifest manifest.md "driver.workspace" 's/`workspace`/`XXX`/g'
damaged conf driver-conf.md "driver qemu memory" 's/`memory`/`XXX`/g'
damaged conf driver-conf.md "limits max_output" 's/`max_output`/`XXX`/g'
damaged sql sql.md "image_register()" 's/`image_register(/`XXX(/g'
damaged sql sql.md "image_verified" 's/`image_verified`/`XXX`/g'

# The CLI check (e), with a stand-in option table: an option the page does
# not name fails, naming the command and the option.
cat >"$W/cli_stub.lua" <<'STUB'
return { COMMANDS = { run = { options = {
	timeout = { kind = "value", arg = "DURATION", help = "x" },
	["zzz-new"] = { kind = "flag", help = "x" } } } } }
STUB
mkdir -p "$W/clidocs"
printf '# CLI\n## djinn-lua run\n`--timeout DURATION`\n' >"$W/clidocs/cli.md"
DOCS_CHECK_CLI="$W/cli_stub.lua" timeout 60 "$D" "$CHECK" "$TOP" "$W/clidocs" \
	"$B/djinn" cli >"$W/cli.out" 2>&1
grep -q '^not ok ' "$W/cli.out" && hasF cli.out "# undocumented: run --zzz-new" &&
	! hasF cli.out "# undocumented: run --timeout"
st=$?
[ $st -eq 0 ] || show cli.out
ok $st "cli: an option missing from docs/cli.md fails, naming it"

# The citation check: a comment naming a page that does not exist fails.
mkdir -p "$W/tree/lua" "$W/tree/docs"
printf -- '-- see docs/nowhere.md\n-- see docs/style.md rule 99\n-- docs/djinn-compat.md §9.9\n' >"$W/tree/lua/x.lua"
printf '# Style\n1. one\n' >"$W/tree/docs/style.md"
printf '# Compat\n## 1. A\n### 1.1 B\n' >"$W/tree/docs/djinn-compat.md"
: >"$W/tree/Makefile"
timeout 60 "$D" "$CHECK" "$W/tree" "$TOP/docs" "$B/djinn" cites >"$W/cites.out" 2>&1
hasF cites.out "lua/x.lua:1: cites docs/nowhere.md, not in the tree" &&
	hasF cites.out "lua/x.lua:2: cites docs/style.md rule 99, no such rule" &&
	hasF cites.out "lua/x.lua:3: cites docs/djinn-compat.md §9.9, no such section"
st=$?
[ $st -eq 0 ] || show cites.out
ok $st "cites: a missing page, rule and section are named with file and line"

tap_end
