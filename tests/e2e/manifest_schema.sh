#!/bin/sh
# manifest_schema.sh - docs/manifest.schema.json (the JSON Schema of the
# manifest for editors) is what djinn.manifest_schema generates from the
# loader's own tables, is a valid draft 2020-12 schema (python3-jsonschema),
# accepts every manifest the loader takes without a warning (examples/ and
# Djinn's own manifests in tests/manifests/djinn/), and refuses a misspelt
# key, an unknown driver type and a driver without its required key.
set -u
TOP=$DJINN_TOP
B=$DJINN_BUILD
D=$B/djinn-lua
W=$(mktemp -d "${DJINN_WORK:-${TMPDIR:-/tmp}}/schema.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
. "$TOP/tests/e2e_lib.sh"

printf 'io.write(require("djinn.manifest_schema").text())\n' >"$W/gen.lua"
"$D" "$W/gen.lua" >"$W/gen.json" 2>"$W/gen.err"
ok $? "djinn.manifest_schema generates the schema"
cmp -s "$W/gen.json" "$TOP/docs/manifest.schema.json"
ok $? "docs/manifest.schema.json is up to date (regenerate: djinn-lua SCRIPT with io.write(require('djinn.manifest_schema').text()))"

# Each manifest as JSON, when the loader takes it without a warning.
cat >"$W/tojson.lua" <<'LUA'
local manifest = require "djinn.manifest"
local yaml, json = require "djinn.yaml", require "djinn.json"
-- YAML nodes as JSON values: a sequence is an array even when empty, a
-- mapping an object, a scalar its text (the schema allows any scalar).
local function value(node)
    if node.kind == "seq" then
        local a = json.array()
        for i, c in ipairs(node) do a[i] = value(c) end
        return a
    elseif node.kind == "map" then
        local o = json.object()
        for i, k in ipairs(node.keys) do o[k.value] = value(node.values[i]) end
        return o
    elseif node.style == "plain" and (node.value == "" or node.value == "~"
            or node.value == "null") then
        return json.null
    end
    return node.value
end
local out = arg[1]
local n = 0
for i = 2, #arg do
    local path = arg[i]
    local m, errs, warns = manifest.load(path)
    if m and (warns == nil or #warns == 0) then
        local f = assert(io.open(path, "rb"))
        local v = value(assert(yaml.parse(f:read("a"))))
        f:close()
        n = n + 1
        local o = assert(io.open(string.format("%s/%03d.json", out, n), "wb"))
        o:write(path, "\n", json.encode(v), "\n")
        o:close()
    end
end
print(n)
LUA
mkdir "$W/good" "$W/bad"
# shellcheck disable=SC2086
count=$("$D" "$W/tojson.lua" "$W/good" "$TOP"/examples/*.yml "$TOP"/tests/manifests/djinn/*.yml 2>"$W/tojson.err")
[ "${count:-0}" -ge 20 ]
ok $? "the loader takes ${count:-0} manifests without a warning (examples/ and Djinn's own)"
cat "$W/tojson.err" | sed 's/^/# /' | head -5

printf 'driver:\n  type: os\njobs:\n  - name: a\n    comands: [true]\n' >"$W/typo.yml"
printf 'driver:\n  type: vagrant\n' >"$W/type.yml"
printf 'driver:\n  type: qemu\n' >"$W/noimage.yml"
printf 'driver:\n  type: os\nnamspace: x\n' >"$W/top.yml"
# (the loader warns about or refuses these, so convert them directly)
printf 'local y, j = require "djinn.yaml", require "djinn.json"\nlocal f = io.open(arg[1]); io.write(arg[1], "\\n", j.encode(y.decode(f:read("a"))), "\\n")\n' >"$W/one.lua"
for f in typo type noimage top; do
	"$D" "$W/one.lua" "$W/$f.yml" >"$W/bad/$f.json"
done

cat >"$W/check.py" <<'PY'
import json, sys, glob
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
print("ok 1 - the schema is a valid draft 2020-12 schema")
v = Draft202012Validator(schema)
bad = []
good = sorted(glob.glob(sys.argv[2] + "/*.json"))
for p in good:
    path, text = open(p).read().split("\n", 1)
    errs = list(v.iter_errors(json.loads(text)))
    if errs:
        bad.append("%s: %s" % (path, errs[0].message))
for b in bad:
    print("# refused: " + b)
print("%s 2 - the schema accepts all %d manifests the loader takes without a warning" % ("not ok" if bad else "ok", len(good)))
i = 3
for p in sorted(glob.glob(sys.argv[3] + "/*.json")):
    path, text = open(p).read().split("\n", 1)
    errs = list(v.iter_errors(json.loads(text)))
    print("%s %d - the schema refuses %s%s" % ("ok" if errs else "not ok", i,
          path.rsplit("/", 1)[-1], (": " + errs[0].message) if errs else ""))
    i += 1
print("1..%d" % (i - 1))
PY
python3 "$W/check.py" "$TOP/docs/manifest.schema.json" "$W/good" "$W/bad" >"$W/py.out" 2>"$W/py.err"
prc=$?
# Renumber the Python points into this suite's numbering.
while IFS= read -r line; do
	case $line in
	"ok "*) ok 0 "${line#ok [0-9]* - }" ;;
	"not ok "*) ok 1 "${line#not ok [0-9]* - }" ;;
	"#"*) echo "$line" ;;
	esac
done <"$W/py.out"
[ "$prc" -eq 0 ]
ok $? "python3 jsonschema ran (rc $prc): $(head -c 300 "$W/py.err")"
tap_end
