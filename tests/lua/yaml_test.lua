-- yaml_test.lua - djinn.yaml (runtime/l_yaml.c): positions, styles,
-- anchors, limits and error messages. Run by tests/lua/runner.lua.
local t = ...
local yaml = require "djinn.yaml"

-- nested maps and sequences, 1-based positions
local doc = [[
name: demo
steps:
  - run: make
    env: {A: "1", B: '2'}
  - run: |
      echo hi
]]
local r, err = yaml.parse(doc, { filename = "m.yml" })
t:ok(r ~= nil, "parse nested document: " .. tostring(err))
t:is(r.kind, "map", "root is a map")
t:is(r.line, 1, "root line")
t:is(r.col, 1, "root col")
t:is(#r.keys, 2, "two top-level keys")
t:is(r.keys[1].value, "name", "first key kept in order")
t:is(r.values[1].value, "demo", "first value")
t:is(r.keys[2].line, 2, "second key on line 2")
local steps = r.values[2]
t:is(steps.kind, "seq", "steps is a sequence")
t:is(steps.line, 3, "sequence line")
t:is(steps.col, 3, "sequence col")
t:is(#steps, 2, "two steps")
t:is(steps[1].kind, "map", "step 1 is a map")
t:is(steps[1].line, 3, "step 1 line")
t:is(steps[1].col, 5, "step 1 col")
local env = steps[1].values[2]
t:is(env.kind, "map", "flow mapping")
t:is(env.values[1].style, "double", "double-quoted style")
t:is(env.values[2].style, "single", "single-quoted style")
t:is(env.values[2].line, 4, "flow value line")
t:is(env.values[2].col, 22, "flow value col")
t:is(steps[1].values[1].style, "plain", "plain style")
t:is(steps[1].values[1].tag, nil, "plain scalar has no tag")
t:is(steps[2].values[1].style, "literal", "literal style")
t:is(steps[2].values[1].value, "echo hi\n", "literal value")

local f = assert(yaml.parse("x: >\n  a\n  b\n"))
t:is(f.values[1].style, "folded", "folded style")
t:is(f.values[1].value, "a b\n", "folded value")
local tg = assert(yaml.parse("x: !!str 12\n"))
t:is(tg.values[1].tag, "!!str", "!!str tag shortened")

-- duplicate keys are kept for the consumer to report
local d = assert(yaml.parse("a: 1\na: 2\n"))
t:is(#d.keys, 2, "duplicate keys kept")
t:is(d.keys[2].value, "a", "duplicate key value")
t:is(d.keys[2].line, 2, "duplicate key line")

-- anchors and aliases resolve to the same table
local a = assert(yaml.parse("base: &b {x: 1}\nother: *b\nlist: [&s v, *s]\n"))
t:ok(a.values[1] == a.values[2], "alias is the anchored table")
t:ok(a.values[3][1] == a.values[3][2], "scalar alias is the same table")
local ua, uerr = yaml.parse("a: *nope\n", { filename = "u.yml" })
t:ok(ua == nil and uerr:find("^u%.yml:1:4: unknown alias %*nope") ~= nil,
  "unknown alias: " .. tostring(uerr))

-- billion laughs fails on expansion, naming line:col
local lol = { "a: &a [x, x, x, x, x, x, x, x, x, x]" }
local prev = "a"
for i, name in ipairs { "b", "c", "d", "e", "f", "g", "h", "i" } do
  lol[#lol + 1] = string.format("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]",
    name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
  prev = name
end
local bl, blerr = yaml.parse(table.concat(lol, "\n") .. "\n", { filename = "lol.yml" })
t:ok(bl == nil, "billion laughs refused")
t:ok(blerr ~= nil and blerr:find("^lol%.yml:%d+:%d+: alias expansion exceeds 100000 nodes") ~= nil,
  "billion laughs message: " .. tostring(blerr))
local bl2, bl2err = yaml.parse(table.concat(lol, "\n", 1, 3) .. "\n", { max_nodes = 50 })
t:ok(bl2 == nil and bl2err:find("alias expansion exceeds 50 nodes", 1, true) ~= nil,
  "max_nodes option: " .. tostring(bl2err))
t:ok(yaml.parse(table.concat(lol, "\n", 1, 3) .. "\n") ~= nil, "small alias use is fine")
local many, manyerr = yaml.parse("[1, 2, 3, 4, 5]", { max_nodes = 3 })
t:ok(many == nil and manyerr:find("^<string>:1:8: document has more than 3 nodes") ~= nil,
  "plain node limit: " .. tostring(manyerr))

-- recursive alias
local rec, recerr = yaml.parse("a: &r [*r]\n")
t:ok(rec == nil and recerr:find("recursive alias *r", 1, true) ~= nil,
  "recursive alias refused: " .. tostring(recerr))

-- depth limit
local deep = string.rep("[", 65) .. string.rep("]", 65)
local dp, dperr = yaml.parse(deep, { filename = "deep.yml" })
t:ok(dp == nil and dperr:find("^deep%.yml:1:65: nesting deeper than 64 levels") ~= nil,
  "depth limit: " .. tostring(dperr))
t:ok(yaml.parse(string.rep("[", 64) .. string.rep("]", 64)) ~= nil, "64 levels accepted")
local huge = string.rep("[", 200000)
local hp, hperr = yaml.parse(huge, { max_depth = 10000 })
t:ok(hp == nil and hperr:find("nesting deeper than 10000 levels", 1, true) ~= nil,
  "very deep input fails cleanly: " .. tostring(hperr))
t:checkerr("max_depth", yaml.parse, "a", { max_depth = 0 })

-- size limit
local big, bigerr = yaml.parse(string.rep("a", 101), { max_size = 100, filename = "big.yml" })
t:ok(big == nil and bigerr == "big.yml:1:1: input is 101 bytes, larger than max_size 100",
  "size limit: " .. tostring(bigerr))

-- syntax errors carry line:col and context
local se, seerr = yaml.parse("a: 1\nb: [1, 2\n", { filename = "s.yml" })
t:ok(se == nil and seerr:find("^s%.yml:%d+:%d+: .+ %(while parsing a flow sequence at 2:4%)") ~= nil,
  "syntax error with context: " .. tostring(seerr))
local se2, se2err = yaml.parse("a: b: c\n", { filename = "s.yml" })
t:is(se2err, "s.yml:1:5: mapping values are not allowed in this context", "scanner error text")
t:ok(se2 == nil, "scanner error gives nil")
local ue, ueerr = yaml.parse("a: \255\n", { filename = "utf.yml" })
t:ok(ue == nil and ueerr:find("^utf%.yml:1:4: invalid leading UTF%-8 octet") ~= nil,
  "reader error position: " .. tostring(ueerr))

-- several documents
local md, mderr = yaml.parse("a: 1\n---\nb: 2\n", { filename = "md.yml" })
t:ok(md == nil and mderr == "md.yml:2:1: more than one YAML document",
  "multiple documents refused: " .. tostring(mderr))

-- empty document
local e = assert(yaml.parse(""))
t:is(e.kind, "scalar", "empty stream is a scalar")
t:is(e.value, "", "empty scalar value")
t:is(e.style, "plain", "empty scalar style")

-- misuse raises
t:checkerr("string expected", yaml.parse, {})
t:checkerr("filename must be a string", yaml.parse, "a", { filename = 1 })

-- decode
local v = assert(yaml.decode("a: [1, two]\nb: {c: d}\n"))
t:is(v.a[2], "two", "decode sequence")
t:is(v.a[1], "1", "decode keeps scalars as strings")
t:is(v.b.c, "d", "decode nested map")
local dd, dderr = yaml.decode("k: 1\nk: 2\n", { filename = "dup.yml" })
t:ok(dd == nil and dderr == 'dup.yml:2:1: duplicate key "k"', "decode rejects duplicate keys: " .. tostring(dderr))
local al = assert(yaml.decode("x: &x {a: b}\ny: *x\n"))
t:ok(al.x == al.y, "decode keeps alias identity")

-- parse_packed (issue 13): scalars are strings with a meta integer beside
-- them; collections hold their items' metas in their array part.
local function P(meta)
  return { meta >> 36, (meta >> 7) & ((1 << 29) - 1), meta & 127 }
end
local pv, pm, psh = yaml.parse_packed(
  "a: &x [1, ~, null, 'null', !!null y]\nb: *x\n<<: {c: d}\n" ..
  "!!merge <<: e\n\"<<\": f\n? [k]\n: v\n")
t:is(pv.kind, "map", "packed: the root mapping")
t:is(P(pm), { 1, 1, 0 }, "packed: the root's meta is 1:1")
t:is(pv.keys, { "a", "b", "<<", "<<", "<<", pv.keys[6] },
  "packed: keys are their strings")
t:is(pv.keys[6].items, { "k" }, "packed: a non-scalar key is its table")
t:is(pv.odd, 1, "packed: odd counts the non-scalar keys")
t:ok(pv.merge == true, "packed: merge is set")
t:is({ P(pv[5])[3], P(pv[7])[3], P(pv[9])[3] }, { 64, 64 + 16, 2 },
  "packed: plain << and !!merge << are merge keys, quoted \"<<\" is not")
local seq = pv.values[1]
t:ok(pv.values[2] == seq and psh == 1, "packed: an alias is the same table, counted in shared")
t:is(seq.items, { "1", "~", "null", "null", "y" }, "packed: item strings")
t:is({ P(seq[1]), P(seq[2]), P(seq[3]), P(seq[4]), P(seq[5]) },
  { { 1, 8, 0 }, { 1, 11, 32 }, { 1, 14, 32 }, { 1, 20, 1 },
    { 1, 28, 8 + 32 } },
  "packed: positions, style, !!null tag and the null flag")
t:is(seq.odd, 3, "packed: odd counts null items")
t:is(P(pv[4]), { 1, 4, 0 }, "packed: an alias's meta is the anchored node's")
local ev, em, esh = yaml.parse_packed("")
t:is({ ev, P(em), esh }, { "", { 1, 1, 32 }, 0 }, "packed: empty stream is a null \"\" at 1:1")
local long = {}
for i = 1, 200 do long[i] = tostring(i) end
local lv = yaml.parse_packed("[" .. table.concat(long, ",") .. "]")
t:is(lv.items, long, "packed: a 200-item list (past a 64-item chunk) keeps its order")
t:is(P(lv[200])[2], 690, "packed: ... and its positions")
local mv = yaml.parse_packed("{" .. table.concat(long, ": x, ") .. ": x}")
t:ok(#mv.keys == 200 and #mv.values == 200 and #mv == 400 and
  mv.keys[200] == "200" and mv.values[200] == "x", "packed: a 200-key mapping")
local bp, bperr = yaml.parse_packed(table.concat(lol, "\n") .. "\n", { filename = "lol.yml" })
t:ok(bp == nil and bperr:find("^lol%.yml:%d+:%d+: alias expansion exceeds 100000 nodes %(max_nodes%)") ~= nil,
  "packed: billion laughs refused: " .. tostring(bperr))

-- max_alias_nodes: the aliases' nodes, apart from the document's own.
local ma, maerr = yaml.parse(table.concat(lol, "\n", 1, 3) .. "\n",
  { max_nodes = 1000000, max_alias_nodes = 50 })
t:ok(ma == nil and maerr:find("alias expansion exceeds 50 nodes (max_alias_nodes)", 1, true) ~= nil,
  "max_alias_nodes names itself: " .. tostring(maerr))
t:ok(yaml.parse("[" .. table.concat(long, ",") .. "]",
  { max_nodes = 1000, max_alias_nodes = 1 }) ~= nil,
  "max_alias_nodes does not count the document's own nodes")

-- Regression guard (not a timing): a packed list costs no table per
-- item. 100,000 items of one short string take well under 64 bytes each
-- (a node table each took over 200).
collectgarbage()
collectgarbage("stop")
local before = collectgarbage("count")
local big = yaml.parse_packed(string.rep("- x\n", 100000), { max_nodes = 200000 })
local per_item = (collectgarbage("count") - before) * 1024 / 100000
collectgarbage("restart")
t:ok(big ~= nil and #big.items == 100000 and per_item < 64,
  string.format("packed: %.1f bytes per list item (< 64: no table per scalar)", per_item))
big = nil
