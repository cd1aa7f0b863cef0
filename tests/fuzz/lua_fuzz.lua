-- tests/fuzz/lua_fuzz.lua - the Lua side of tests/fuzz/lua_fuzz.c: called
-- once with the target number (1 manifest, 2 driver.conf, 3 yaml), returns
-- function(data) that runs the parser on one input and raises (with a
-- description) when the parser raised or its result does not have the
-- documented shape; the harness then aborts, so libFuzzer keeps the input.
local target = ...
local function is_msgs(e)
    if type(e) ~= 'table' or #e == 0 then return false end
    for _, s in ipairs(e) do
        if type(s) ~= 'string' or s == '' then return false end
    end
    return true
end
if target == 1 then
    local manifest = require 'djinn.manifest'
    -- Both loads: the one-pass load (yaml.manifest_fast) must give what
    -- the full load gives, result and messages, or manifest.parse raises.
    manifest.loader = 'both'
    return function(data)
        local m, e = manifest.parse(data, 'fuzz.yml')
        if m == nil then
            assert(is_msgs(e), 'manifest.parse: nil without error messages')
            for _, s in ipairs(e) do
                assert(s:find('^fuzz%.yml:'),
                    'error without the file name: ' .. s)
            end
        else
            assert(type(m) == 'table' and type(e) == 'table',
                'manifest.parse: result is not (table, table)')
            assert(type(m.driver) == 'table' and type(m.jobs) == 'table' and
                type(m.stages) == 'table' and type(m.env) == 'table',
                'manifest.parse: a field is missing from the result')
            for _, j in ipairs(m.jobs) do
                assert(type(j.stage) == 'string' and
                    type(j.name) == 'string' and
                    type(j.commands) == 'table', 'malformed job')
                for _, c in ipairs(j.commands) do
                    assert(type(c) == 'string', 'a command is not a string')
                end
            end
        end
    end
elseif target == 2 then
    local files = {
        ['inc.conf'] = 'driver qemu { cpus 2 }\ninclude "loop.conf"\n',
        ['loop.conf'] = 'driver os {}\ninclude "inc.conf"\n',
    }
    io.open = function(path, mode)
        local body = files[path]
        if body == nil or (mode and mode:find('[wa+]')) then
            return nil, path .. ': No such file or directory'
        end
        local f = { pos = 1 }
        function f.read(self, n)
            if self.pos > #body then return nil end
            local s = body:sub(self.pos, self.pos + n - 1)
            self.pos = self.pos + #s
            return s
        end
        function f.close() return true end
        return f
    end
    local env = { HOME = '/home/fuzz', USER = 'fuzz', X = '}"${X}' }
    local opts = { env = function(n) return env[n] end }
    local config = require 'djinn.config'
    return function(data)
        local cfg, e = config.parse(data, 'fuzz.conf', opts)
        if cfg == nil then
            assert(type(e) == 'string' and e ~= '',
                'config.parse: nil without an error message')
        else
            assert(type(cfg) == 'table', 'config.parse: result not a table')
            for _, t in ipairs({ 'os', 'qemu', 'docker', 'ssh' }) do
                assert(type(config.driver(cfg, t)) == 'table')
            end
        end
    end
else
    local yaml = require 'djinn.yaml'
    local opts = { filename = 'fuzz.yml' }
    local styles = { plain = 0, single = 1, double = 2, literal = 3,
                     folded = 4 }
    -- parse_packed (what the manifest reads) must say what parse says:
    -- node by node, value, position, style and tag (differential).
    local function same(n, v, meta)
        if n.line ~= meta >> 36 or n.col ~= (meta >> 7) & ((1 << 29) - 1) then
            return false
        end
        if n.kind == 'scalar' then
            local tag = n.tag == nil and 0 or n.tag == '!!null' and 1 or
                n.tag == '!!merge' and 2 or 3
            return v == n.value and meta & 7 == styles[n.style] and
                (meta >> 3) & 3 == tag
        end
        if type(v) ~= 'table' or v.kind ~= n.kind or v.tag ~= n.tag then
            return false
        end
        if n.kind == 'seq' then
            if #v.items ~= #n then return false end
            for i = 1, #n do
                if not same(n[i], v.items[i], v[i]) then return false end
            end
            return true
        end
        if #v.keys ~= #n.keys or #v.values ~= #n.values then return false end
        for i = 1, #n.keys do
            if not same(n.keys[i], v.keys[i], v[2 * i - 1]) or
                not same(n.values[i], v.values[i], v[2 * i]) then
                return false
            end
        end
        return true
    end
    return function(data)
        local n, e = yaml.parse(data, opts)
        local pv, pm = yaml.parse_packed(data, opts)
        if n == nil then
            assert(type(e) == 'string' and e:find('^fuzz%.yml:%d+:%d+: '),
                'yaml.parse: nil without FILE:L:C: message')
            assert(pv == nil and pm == e, 'yaml.parse_packed: not the ' ..
                'same error as yaml.parse')
        else
            assert(type(n) == 'table' and (n.kind == 'scalar' or
                n.kind == 'seq' or n.kind == 'map'), 'yaml.parse: bad node')
            assert(pv ~= nil and same(n, pv, pm),
                'yaml.parse_packed: not the tree of yaml.parse')
        end
        local v, e2 = yaml.decode(data, opts)
        if v == nil then
            assert(e2 == nil or type(e2) == 'string', 'yaml.decode: bad error')
        end
    end
end
