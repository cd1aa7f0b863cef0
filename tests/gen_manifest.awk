# gen_manifest.awk - large manifests for tests/e2e/manifest_limits.sh and
# bench/manifest-load.sh, written at run time (no blobs):
#   awk -v kind=KIND -v n=N -f tests/gen_manifest.awk > FILE
# kind:
#   jobs   N jobs of 3 commands and one artifact (5,000: 1.5 MB)
#   big    N jobs of 20 commands (5,000: 6.7 MB, 135,000 YAML nodes)
#   cmds   one job with a list of N commands
#   env    an env list of N items, and two jobs
#   alias  N jobs whose commands are all an alias of one 20-command list
#          (5,000: 105,000 nodes that aliases stand for)
BEGIN {
	print "driver:"
	print "  type: os"
	if (kind == "env") {
		print "env:"
		for (i = 1; i <= n; i++)
			printf "- VAR_%d=value number %d of the environment\n", i, i
	}
	if (kind == "alias") {
		print "x-commands: &cmds"
		for (c = 1; c <= 20; c++)
			printf "- echo \"step %d, build modules\"; make -C src/mod%d all\n", c, c
	}
	print "stages:"
	print "- build"
	print "- test"
	print "jobs:"
	if (kind == "cmds") {
		print "- stage: build"
		print "  name: many-commands"
		print "  commands:"
		for (i = 1; i <= n; i++)
			printf "  - echo \"command %d of the long list\" && test -n \"$HOME\"\n", i
		exit
	}
	nc = (kind == "big") ? 20 : 3
	if (kind == "env")
		n = 2
	for (j = 1; j <= n; j++) {
		printf "- stage: %s\n  name: job-%d\n", (j % 2 ? "build" : "test"), j
		if (kind == "alias") {
			print "  commands: *cmds"
			continue
		}
		print "  commands:"
		for (c = 1; c <= nc; c++)
			printf "  - echo \"job %d step %d, build modules\"; make -C src/mod%d all\n", j, c, c
		if (kind != "big")
			printf "  artifacts:\n  - out/job-%d.log => logs/job-%d.log\n", j, j
	}
}
