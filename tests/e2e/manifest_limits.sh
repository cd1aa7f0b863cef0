#!/bin/sh
# manifest_limits.sh - the limits on loading a manifest (issue 13): the
# largest real manifests load (5,000 jobs of 20 commands, 6.7 MB, 135,000
# YAML nodes, were refused by a 100,000-node limit under the 8 MiB size
# limit; 5,000 jobs that alias one 20-command list, 105,000 alias nodes),
# while an alias bomb and an over-size file are refused with a message
# naming the limit and how to raise it (driver.conf limits {
# max_manifest_size; max_manifest_aliases }), and raising it works.
# Inputs are generated here (tests/gen_manifest.awk). TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/mlimits.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"

. "$TOP/tests/e2e_lib.sh"

gen() { awk -v kind="$1" -v n="$2" -f "$TOP/tests/gen_manifest.awk" >"$W/$3"; }
printf '# an empty driver.conf: the defaults\n' >"$W/default.conf"

# 1. The 6.7 MB manifest of 5,000 jobs of 20 commands loads.
gen big 5000 big.yml
size=$(wc -c <"$W/big.yml")
ok $([ "$size" -gt 6500000 ] && [ "$size" -lt 8388608 ] && echo 0 || echo 1) \
	"the generated manifest is 6.7 MB, under 8 MiB (got $size bytes)"
run big check --driver-config "$W/default.conf" "$W/big.yml"
ok $rc "5,000 jobs of 20 commands (6.7 MB): check exits 0 (got $rc)"
has big.out 'big\.yml: ok: driver os, 5000 jobs in 2 stages'
ok $? "... and counts the 5,000 jobs"
[ "$rc" = 0 ] || show big.err

# 2. 5,000 jobs aliasing one 20-command list (105,000 alias nodes) load,
# every job with its 20 commands.
gen alias 5000 alias.yml
run alias check --driver-config "$W/default.conf" "$W/alias.yml"
ok $rc "5,000 jobs that alias a 20-command list: exit 0 (got $rc)"
[ "$rc" = 0 ] || show alias.err
cat >"$W/count.lua" <<'LUA'
local m, e = require("djinn.manifest").load(arg[1])
if not m then print(e[1]) os.exit(1) end
local n = 0
for _, j in ipairs(m.jobs) do n = n + #j.commands end
print(#m.jobs .. " jobs, " .. n .. " commands")
LUA
run count "$W/count.lua" "$W/alias.yml"
hasF count.out "5000 jobs, 100000 commands"
ok $? "... each job has the 20 aliased commands"

# 3. An alias bomb ("billion laughs": 10^7 nodes in seven lines) is
# refused, naming the limit and the driver.conf key that raises it.
{
	printf 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
	prev=a
	for l in b c d e f g; do
		printf '%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n' "$l" "$l" \
			$prev $prev $prev $prev $prev $prev $prev $prev $prev $prev
		prev=$l
	done
	printf 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [true]}]\n'
} >"$W/bomb.yml"
run bomb check --driver-config "$W/default.conf" "$W/bomb.yml"
ok $([ "$rc" = 2 ] && echo 0 || echo 1) "alias bomb: exit 2 (got $rc)"
hasF bomb.err 'alias expansion exceeds 1000000 nodes (the limit is max_manifest_aliases: raise it with `limits { max_manifest_aliases 10000000 }` in driver.conf, 0 = no limit)'
ok $? "... naming max_manifest_aliases and how to raise it"
has bomb.err 'bomb\.yml:[0-9][0-9]*:[0-9][0-9]*: alias expansion'
ok $? "... at the alias's line:column"
[ "$rc" = 2 ] || show bomb.err
# A lower limit in driver.conf refuses the aliasing manifest of part 2.
printf 'limits { max_manifest_aliases 50000 }\n' >"$W/aliases.conf"
run alias_low check --driver-config "$W/aliases.conf" "$W/alias.yml"
ok $([ "$rc" = 2 ] && echo 0 || echo 1) \
	"max_manifest_aliases 50000 in driver.conf refuses 105,000 (got $rc)"
has alias_low.err 'exceeds 50000 nodes (the limit is max_manifest_aliases'
ok $? "... with the configured value in the message"

# 4. Over the size limit: refused before it is read, naming
# max_manifest_size and a value that would take it; that value works.
gen big 6500 over.yml
size=$(wc -c <"$W/over.yml")
run over check --driver-config "$W/default.conf" "$W/over.yml"
ok $([ "$rc" = 2 ] && echo 0 || echo 1) "a $size-byte manifest: exit 2 (got $rc)"
has over.err "over\.yml: the manifest is larger than 8 MiB ($size bytes; the limit is max_manifest_size: raise it with \`limits { max_manifest_size 9MB }\` in driver.conf)"
ok $? "... naming max_manifest_size and how to raise it"
[ "$rc" = 2 ] || show over.err
printf 'limits { max_manifest_size 9MB }\n' >"$W/size.conf"
run over_ok check --driver-config "$W/size.conf" "$W/over.yml"
ok $rc "... and with limits { max_manifest_size 9MB } it loads (got $rc)"
has over_ok.out 'ok: driver os, 6500 jobs'
ok $? "... all 6,500 jobs"
# A limit below a manifest's size refuses it, with the configured size.
printf 'limits { max_manifest_size 1MB }\n' >"$W/small.conf"
run small check --driver-config "$W/small.conf" "$W/big.yml"
ok $([ "$rc" = 2 ] && echo 0 || echo 1) "max_manifest_size 1MB refuses 6.7 MB (got $rc)"
hasF small.err 'the manifest is larger than 1 MiB ('
ok $? "... saying the configured limit"
# A wrong value is an error naming the key.
printf 'limits { max_manifest_size "big" }\n' >"$W/bad.conf"
run bad run --driver-config "$W/bad.conf" "$W/big.yml"
ok $([ "$rc" = 2 ] && echo 0 || echo 1) "max_manifest_size \"big\": exit 2 (got $rc)"
hasF bad.err 'limits.max_manifest_size must be a size'
ok $? "... naming the key"
[ "$rc" = 2 ] || show bad.err

tap_end
