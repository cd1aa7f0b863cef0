#!/bin/bash
# completion.sh - the bash completion generated from djinn.cli's option
# tables (`djinn-lua completion bash`, installed by make install): source
# it in a real bash, set COMP_WORDS/COMP_CWORD as readline would, call the
# function and check COMPREPLY. TAP. tests/run.sh starts suites with sh:
# run again under bash.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
TOP=${DJINN_TOP:?} B=${DJINN_BUILD:?}
D=$B/djinn-lua
W=$(mktemp -d "${TMPDIR:-/tmp}/djinn-completion.XXXXXX")
trap 'rm -rf "$W"' EXIT
n=0 failed=0
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

timeout 30 "$D" completion bash >"$W/djinn-lua.bash" 2>"$W/err"
ok $? "djinn-lua completion bash exits 0"
bash -n "$W/djinn-lua.bash"
ok $? "the generated script is valid bash"
timeout 30 "$D" completion zsh >/dev/null 2>"$W/err"
r=$?
[ $r -eq 2 ] && grep -q 'allowed: bash' "$W/err"
ok $? "completion zsh: exit 2 naming what is allowed (exit $r)"
if [ -f "$B/djinn-lua.bash" ]; then
	cmp -s "$B/djinn-lua.bash" "$W/djinn-lua.bash"
	ok $? "make wrote the same script to $B/djinn-lua.bash"
fi

# shellcheck disable=SC1091
. "$W/djinn-lua.bash"
complete -p djinn-lua 2>/dev/null | grep -q -- '-F _djinn_lua'
ok $? "sourcing it registers _djinn_lua for djinn-lua"

# comp WORDS... : complete the last word; the replies, sorted, one a line.
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	_djinn_lua djinn-lua "${COMP_WORDS[COMP_CWORD]}" \
		"${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort
}
# is WANT NAME WORDS...: the replies equal WANT (space-separated, sorted).
is() {
	want=$(printf '%s\n' $1 | sort)
	name=$2
	shift 2
	got=$(comp "$@")
	[ "$got" = "$want" ]
	r=$?
	ok $r "$name"
	[ $r -eq 0 ] || echo "# want: $(echo $want) got: $(echo $got)"
}

mkdir -p "$W/cwd/confdir" "$W/cwd/out"
: >"$W/cwd/driver.conf"
: >"$W/cwd/build.yml"
: >"$W/cwd/script.lua"
cd "$W/cwd" || exit 1

is "--help --version artifacts cancel check completion docker help image logs release run script.lua status submit worker workers" "first word: the commands and scripts" djinn-lua ''
is "run" "first word: a prefix" djinn-lua ru
is "script.lua" "first word: a .lua script" djinn-lua scr
is "--help --version" "first word: --" djinn-lua --
# Every option of run, from the same table the parser reads.
want=$(timeout 30 "$D" run --bogus 2>&1 | sed -n 's/.*(known: \(.*\))$/\1/p' | tr -d ,)
[ -n "$want" ]
ok $? "run --bogus lists the known options"
is "$want" "run --: every option of run (as its parser knows them)" djinn-lua run --
is "--max-artifact-size --max-artifacts --max-artifacts-total --max-output" \
	"run --max: the options with that prefix" djinn-lua run --max
is "--driver-config --help --stage --strict" "check --: its options" djinn-lua check --
is "check fsck info ls register rm warm" "image: its subcommands" djinn-lua image ''
is "check fsck info ls register rm warm" "image --registry DB: still its subcommands" \
	djinn-lua image --registry x.db ''
is "register rm" "image r: subcommands with that prefix" djinn-lua image r
is "--boot --boot-check --boot-timeout --ca-file --connect-timeout --driver-config --help --identity --insecure --json --known-hosts --max-redirects --max-size --registry --repair --sha256 --stall-timeout --timeout" "image ls --: its options" djinn-lua image ls --
is "prune" "docker: its subcommand" djinn-lua docker p
is "driver.conf" "run --driver-config: a file" djinn-lua run --driver-config dri
is "driver.conf" "run --driver-config=: a file after =" djinn-lua run --driver-config = dri
is "confdir" "run --artifacts: a directory" djinn-lua run --artifacts conf
is "" "run --timeout: no completion for a duration" djinn-lua run --timeout ''
is "build.yml" "run: the manifest is a file" djinn-lua run --json bu
is "build.yml" "image register NS NAME: FILE is a file" djinn-lua image register ns nm bu
is "" "image register NS: NAME is not a file" djinn-lua image register ns bu
is "artifacts cancel check docker image logs release run status submit worker workers" "help: the commands" djinn-lua help ''
echo "1..$n"
[ "$failed" -eq 0 ]
