#!/bin/sh
# hostile.sh - hostile input to `djinn-lua run`, end to end (issue 6, part
# 7, and the limits of part 3): image names with ".." or an absolute path,
# a namespace deeper than 20, odd characters, a 100 MB manifest, a YAML
# alias bomb, deep nesting, a driver.conf with garbage, an object path
# outside the objects directory, an artifact destination outside the
# artifacts directory, a too-short secret. Each must exit 2 with a clear
# message and touch nothing: the qemu binary (a stub that leaves a mark)
# is never started, the registry is not created, the artifacts directory
# stays empty. TAP on stdout.
set -u
TOP=${DJINN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${DJINN_BUILD:-$TOP/build}
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/hostile.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME="$W/config" XDG_DATA_HOME="$W/data"

. "$TOP/tests/e2e_lib.sh"

# A qemu "binary" that only leaves a mark: it must never run.
cat >"$W/fake-qemu" <<EOF
#!/bin/sh
touch "$W/qemu-started"
exit 1
EOF
chmod +x "$W/fake-qemu"
cat >"$W/vm.conf" <<EOF
driver "qemu" {
    disks "$W/disks"
    binary "$W/fake-qemu"
}
EOF
mkdir -p "$W/art" "$W/objects"
printf 'x\n' >"$W/objects/ok.txt"

# hostile NAME REGEX [ARGS...]: run $W/NAME.yml; expect exit 2, REGEX
# (grep -E) in stderr, nothing on stdout that says a build ran, and
# nothing touched.
hostile() {
	name=$1
	re=$2
	shift 2
	timeout 60 "$D" run --registry "$W/reg/registry.db" \
		--driver-config "$W/vm.conf" --objects "$W/objects" \
		--artifacts "$W/art" "$@" "$W/$name.yml" \
		>"$W/$name.out" 2>"$W/$name.err"
	rc=$?
	ok $((rc != 2)) "$name: exit 2 (got $rc)"
	if grep -q -E -e "$re" "$W/$name.err"; then r=0; else r=1; show "$name.err"; fi
	ok $r "$name: the error says what is wrong ($re)"
	if [ ! -e "$W/qemu-started" ] && [ ! -e "$W/reg" ] &&
		[ -z "$(ls -A "$W/art")" ] && ! grep -q "Running with" "$W/$name.out"; then
		r=0
	else
		r=1
		show "$name.out"
	fi
	ok $r "$name: nothing touched (no qemu, no registry, no artifact)"
}
qemu_manifest() { # qemu_manifest NAME NAMESPACE IMAGE
	printf 'namespace: "%s"\ndriver:\n  type: qemu\n  image: "%s"\nstages: [s]\njobs:\n  - stage: s\n    commands: [echo hi]\n' \
		"$2" "$3" >"$W/$1.yml"
}

qemu_manifest img_dotdot e2e "../../etc/passwd"
hostile img_dotdot 'driver\.image "\.\./\.\./etc/passwd": "\.\." is not allowed'
qemu_manifest img_abs e2e "/var/lib/x.qcow2"
hostile img_abs 'driver\.image "/var/lib/x\.qcow2": absolute paths are not allowed'
qemu_manifest img_odd e2e 'x;rm -rf $HOME'
hostile img_odd 'driver\.image "x;rm -rf \$HOME": segment .* has characters outside the rules'
deep=a1
i=1
while [ $i -lt 21 ]; do deep="$deep/a$i"; i=$((i + 1)); done
qemu_manifest ns_deep "$deep" debian
# (the registry's own rule and message: registry.check_namespace)
hostile ns_deep "namespace 'a1/.*': cannot exceed depth of 20 \\(it has 21 segments\\)"
qemu_manifest ns_odd 'team/a-b' debian
hostile ns_odd "namespace: segment 2 'a-b' of 'team/a-b': a segment may contain only the letters"

# 100 MB manifest (sparse): refused from its size, before it is read.
truncate -s 100M "$W/big.yml"
hostile big 'big\.yml: the manifest is larger than 8 MiB \(104857600 bytes'

# YAML alias bomb (billion laughs) and deep nesting.
{
	printf 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
	prev=a
	for l in b c d e f g h i j; do
		printf '%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n' "$l" "$l" \
			$prev $prev $prev $prev $prev $prev $prev $prev $prev $prev
		prev=$l
	done
	printf 'driver: {type: os}\nstages: [s]\njobs: [{stage: s, commands: [true]}]\n'
} >"$W/bomb.yml"
hostile bomb 'alias expansion exceeds [0-9]+ nodes'
{
	printf 'driver: {type: os}\nx: '
	i=0
	while [ $i -lt 200 ]; do printf '['; i=$((i + 1)); done
	printf '\n'
} >"$W/deep.yml"
hostile deep 'deep\.yml:[0-9]+:[0-9]+: .*(depth|nest)'

# driver.conf with garbage.
head -c 4096 /dev/urandom >"$W/garbage.conf"
printf 'driver "qemu" {\n  cpus "four"\n}\n' >"$W/bad.conf"
qemu_manifest conf e2e debian
hostile conf 'garbage\.conf:[0-9]+:[0-9]+: ' --driver-config "$W/garbage.conf"
hostile conf 'bad\.conf:[0-9]+:[0-9]+: .*cpus' --driver-config "$W/bad.conf"
printf 'driver "os" {}\nlimits { max_output "lots" }\n' >"$W/limits.conf"
hostile conf 'limits\.max_output must be a size' --driver-config "$W/limits.conf"

# Paths outside the objects and artifacts directories.
printf 'driver: {type: qemu, image: debian}\nobjects:\n  - ../../etc/passwd => x\n  - ok.txt\nstages: [s]\njobs:\n  - stage: s\n    commands: [echo hi]\n' >"$W/obj.yml"
hostile obj 'obj\.yml:3:5: objects\[1\]: source "\.\./\.\./etc/passwd": "\.\." is not allowed'
printf 'driver: {type: qemu, image: debian}\nobjects: ["/etc/passwd => x"]\nstages: [s]\njobs:\n  - stage: s\n    commands: [echo hi]\n' >"$W/objabs.yml"
hostile objabs 'objects\[1\]: source "/etc/passwd": absolute paths are not allowed'
printf 'driver: {type: qemu, image: debian}\nstages: [s]\njobs:\n  - stage: s\n    commands: [echo hi]\n    artifacts:\n      - "out.txt => ../../x"\n      - "out/* => /tmp/*"\n' >"$W/art.yml"
hostile art 'artifacts\[1\]: destination "\.\./\.\./x": "\.\." is not allowed'
hostile art 'artifacts\[2\]: destination "/tmp/\*": absolute paths are not allowed'

# Secrets and limits given on the command line.
qemu_manifest cli e2e debian
hostile cli 'secret PW cannot be shorter than 6 characters in length' --secret PW=abcde
printf '# comment\nGOOD=long-enough-value\nBAD=abc\n' >"$W/secrets.env"
hostile cli 'secrets\.env:3: secret BAD cannot be shorter than 6 characters' \
	--secret-file "$W/secrets.env"
hostile cli '--max-output: invalid size "lots"' --max-output lots
hostile cli '--max-artifacts: expected a count' --max-artifacts -1

tap_end
