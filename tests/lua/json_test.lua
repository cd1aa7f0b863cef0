-- json_test.lua - djinn.json (runtime/l_json.c, over jansson).
local t = ...
local json = require "djinn.json"

local function rt(v) return json.decode(json.encode(v)) end

-- scalars
t:is(json.encode(1), "1", "integer")
t:is(json.encode(-(1 << 53)), "-9007199254740992", "large integer stays exact")
t:is(json.encode(1.5), "1.5", "float")
t:is(json.encode("a\"b\\c\n\1"), '"a\\"b\\\\c\\n\\u0001"', "string escapes")
t:is(json.encode("h\xc3\xa9"), '"h\xc3\xa9"', "UTF-8 kept")
t:is(json.encode(true) .. json.encode(false), "truefalse", "booleans")
t:is(json.encode(json.null), "null", "json.null encodes as null")
t:is(json.encode(nil), "null", "nil encodes as null")

-- arrays and objects
t:is(json.encode{ 1, 2, 3 }, "[1,2,3]", "sequence -> array")
t:is(json.encode{}, "{}", "empty table -> object")
t:is(json.encode(json.array{}), "[]", "json.array{} -> []")
t:is(json.encode(json.object{ 1, 2 }), '{"1":1,"2":2}', "json.object forces an object")
t:is(json.encode({ [1] = "a", [3] = "c" }, { sort_keys = true }), '{"1":"a","3":"c"}',
     "sparse integer keys -> object with string keys")
t:is(json.encode({ b = 1, a = { x = json.array{} } }, { sort_keys = true }),
     '{"a":{"x":[]},"b":1}', "nested, sort_keys")
t:like(json.encode({ a = 1 }, { indent = 2 }), '^{\n  "a": 1\n}$', "indent")
t:is(json.encode{ Cmd = json.array{ "/bin/sh", "x" } }, '{"Cmd":["/bin/sh","x"]}',
     "a Docker-style config")

-- decode
local v = json.decode('{"a":[1,2.5,null,true,{}],"b":[],"c":"\\u00e9\\n","d":-7}')
t:is(math.type(v.a[1]), "integer", "integers decode as integers")
t:is(v.a[2], 2.5, "reals decode as floats")
t:ok(v.a[3] == json.null, "null decodes as json.null")
t:is(v.a[4], true, "true")
t:is(#v.b, 0, "empty array")
t:is(v.c, "\xc3\xa9\n", "string escapes decoded to UTF-8")
t:is(v.d, -7, "negative integer")
t:ok(getmetatable(v.b) == json.array_mt and getmetatable(v) == json.object_mt,
     "decoded arrays/objects carry the metatables")
t:is(json.encode(v.b), "[]", "empty array round-trips")
t:is(json.encode(v.a[5]), "{}", "empty object round-trips")
t:is(json.decode("42"), 42, "bare scalar document")
t:is(json.decode('"x"'), "x", "bare string document")
t:is(rt{ k = { 1, { z = "y" } } }, { k = { 1, { z = "y" } } }, "round trip")
local big = {}
for i = 1, 1000 do big[i] = { i = i, s = ("x"):rep(i % 7) } end
t:is(rt(big), big, "1000-element round trip")

-- decode errors are values
local r, err = json.decode('{"a":')
t:is(r, nil, "truncated JSON -> nil")
t:like(err, "^json%.decode: line 1, column %d+: ", "error with line and column")
r, err = json.decode("{\n  \"a\": tru\n}")
t:like(err, "line 2", "error line number")
r, err = json.decode("")
t:ok(r == nil and err ~= nil, "empty input is an error")
t:is(select("#", json.decode("[1] x")), 2, "trailing garbage is an error")

-- encode misuse raises
t:checkerr("cannot encode a function", json.encode, { f = print })
t:is(json.encode("\xff"), '"\xef\xbf\xbd"', "an invalid byte becomes U+FFFD")
t:checkerr("NaN and infinity", json.encode, { x = 0 / 0 })
t:checkerr("NaN and infinity", json.encode, math.huge)
t:checkerr("object key of type boolean", json.encode, { [true] = 1 })
local cyc = {}
cyc.self = cyc
t:checkerr("nested deeper than 256", json.encode, cyc)
t:checkerr("bad argument", json.encode, 1, { indent = 99 })
local deep = "1"
for _ = 1, 300 do deep = "[" .. deep .. "]" end
r, err = json.decode(deep)
t:is({ r, err }, { nil, "json.decode: nested deeper than 256 levels" },
     "nesting deeper than 256 is refused as a value")
deep = "1"
for _ = 1, 200 do deep = "[" .. deep .. "]" end
r = json.decode(deep)
for _ = 1, 200 do r = r and r[1] end
t:is(r, 1, "200 levels decode")
