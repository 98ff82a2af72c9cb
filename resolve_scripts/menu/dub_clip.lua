-- EdiDub > Dub Clip (Lua launcher). Installed by `edidub resolve install`.
--
-- For Resolve editions that list only Lua scripts (free 21.1+) or cannot run EdiDub's Python:
-- this script stays inside Resolve, starts the external EdiDub process
--   python -m resolve_scripts.commands resolve dub --handoff DIR --handoff-syntax lua
-- and executes the Resolve calls that process asks for, one per line on its stdout, writing
-- each answer to DIR/<id>.json. The wire is documented in resolve_scripts/remote.py.

local EDIDUB_PYTHON = [[@PYTHON@]]

local unpack = unpack or table.unpack
local is_windows = package.config:sub(1, 1) == "\\"
local sep = is_windows and "\\" or "/"

local function json_string(s)
  s = tostring(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

-- Resolve objects travel as handles: H[n] in requests, {"$h": n} in answers.
local function make_encoder(H, ids)
  local function encode(v)
    local t = type(v)
    if v == nil then return "null" end
    if t == "boolean" then return v and "true" or "false" end
    if t == "number" then
      if v ~= v or v == math.huge or v == -math.huge then return "null" end
      if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
      return string.format("%.17g", v)
    end
    if t == "string" then return json_string(v) end
    if t == "table" then
      local n, count = #v, 0
      for _ in pairs(v) do count = count + 1 end
      local parts = {}
      if count == n then
        for i = 1, n do parts[i] = encode(v[i]) end
        return "[" .. table.concat(parts, ",") .. "]"
      end
      for k, item in pairs(v) do parts[#parts + 1] = json_string(k) .. ":" .. encode(item) end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    -- userdata: a Resolve object
    local h = ids[v]
    if h == nil then
      h = #H + 1
      H[h] = v
      ids[v] = h
    end
    return '{"$h":' .. h .. "}"
  end
  return encode
end

local function load_request(line, H)
  local env = { H = H }
  local chunk
  if setfenv then
    chunk = loadstring("return " .. line)
    if chunk then setfenv(chunk, env) end
  else
    chunk = load("return " .. line, "request", "t", env)
  end
  if not chunk then return nil end
  local ok, req = pcall(chunk)
  if ok and type(req) == "table" then return req end
  return nil
end

local function has_method(target, name)
  local ok, value = pcall(function() return target[name] end)
  return ok and value ~= nil
end

-- Serve requests until "done" or the end of the stream. Global so tests can drive it.
function EdiDubServe(resolve, next_line, write_reply, log)
  local H = { [0] = resolve }
  local ids = {}
  ids[resolve] = 0
  local encode = make_encoder(H, ids)
  local served = 0
  while true do
    local line = next_line()
    if line == nil then return served end
    local req = load_request(line, H)
    if req == nil then
      if line:match("%S") then log("EdiDub: " .. line) end
    elseif req.op == "done" then
      return served
    elseif req.op == "print" then
      log("EdiDub: " .. tostring(req.text))
    else
      served = served + 1
      local ok, result = pcall(function()
        local target = H[req.h]
        if target == nil then error("unknown handle " .. tostring(req.h)) end
        if req.op == "has" then
          local out = {}
          for _, name in ipairs(req.names) do
            if has_method(target, name) then out[#out + 1] = name end
          end
          return encode(out)
        elseif req.op == "call" then
          local f = target[req.m]
          if f == nil then error(req.m .. " is not available in this Resolve") end
          local args = req.a or {}
          return encode((f(target, unpack(args, 1, #args))))
        end
        error("unknown op " .. tostring(req.op))
      end)
      if ok then
        write_reply(req.id, '{"id":' .. req.id .. ',"ok":true,"v":' .. result .. "}")
      else
        write_reply(req.id, '{"id":' .. req.id .. ',"ok":false,"err":' .. json_string(result) .. "}")
      end
    end
  end
end

function EdiDubWriteReply(dir, id, text)
  local final = dir .. sep .. id .. ".json"
  local tmp = dir .. sep .. "." .. id .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(text)
  f:close()
  os.remove(final)
  assert(os.rename(tmp, final))
end

local function shell_quote(s)
  if is_windows then return '"' .. s .. '"' end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function main()
  local r = resolve
  if r == nil and bmd and bmd.scriptapp then r = bmd.scriptapp("Resolve") end
  if r == nil and app and app.GetResolve then r = app:GetResolve() end
  if r == nil then
    print("EdiDub: this script could not reach Resolve")
    return
  end
  if EDIDUB_PYTHON:find("@" .. "PYTHON@", 1, true) then  -- split: the installer fills the other
    print("EdiDub: this launcher was not installed with `edidub resolve install`")
    return
  end
  local tmp = os.getenv("TEMP") or os.getenv("TMPDIR") or "/tmp"
  local dir = tmp .. sep .. "edidub-handoff-" .. tostring(os.time()) .. "-" ..
    tostring(math.random(100000, 999999))
  local audio = nil
  local fu_app = fusion or fu
  if fu_app then
    local ok, picked = pcall(function() return fu_app:RequestFile("", "", { FReqS_Title = "EdiDub: the new line (WAV)" }) end)
    if ok and type(picked) == "string" and picked ~= "" then audio = picked end
  end
  local cmd = shell_quote(EDIDUB_PYTHON) .. " -m resolve_scripts.commands resolve dub --handoff " ..
    shell_quote(dir) ..
    " --handoff-syntax lua"
  if audio then cmd = cmd .. " --audio " .. shell_quote(audio) end
  if is_windows then cmd = '"' .. cmd .. '"' end
  print("EdiDub: starting " .. cmd)
  local pipe = io.popen(cmd, "r")
  if pipe == nil then
    print("EdiDub: could not start " .. EDIDUB_PYTHON)
    return
  end
  local lines = pipe:lines()
  local served = EdiDubServe(r, lines, function(id, text) EdiDubWriteReply(dir, id, text) end,
    print)
  pipe:close()
  os.remove(dir)
  if served == 0 then
    print("EdiDub: the external process asked nothing of Resolve. Check that " .. EDIDUB_PYTHON ..
      " runs and has EdiDub installed (re-run `edidub resolve install` after moving it).")
  end
end

if not EDIDUB_NO_MAIN then main() end
