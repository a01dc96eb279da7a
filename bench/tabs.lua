-- wrk script for bench/tabs.py: paced (open-loop) requests; with TABS_FILE, each request is the next session's
-- conditional widget poll (Cookie, HX-Request, X-Panel-Poll, If-None-Match), as static/sage.js sends it.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } panel_timespec;
  int clock_gettime(int clk_id, panel_timespec *tp);
]]
local ts = ffi.new("panel_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local n, i = 0, 0
local interval, next_at = 1, nil
s200, s304, sother = 0, 0, 0

function init(args)
  interval = 1000 / tonumber(os.getenv("TABS_RATE"))
  local file, ua = os.getenv("TABS_FILE"), os.getenv("TABS_UA")
  local nthreads = tonumber(os.getenv("TABS_THREADS"))
  local path = wrk.path
  if file == nil or file == "" then
    requests[1] = wrk.format("GET", path, {["User-Agent"] = ua})
    n = 1
    return
  end
  local k = 0
  for line in io.lines(file) do
    if k % nthreads == id then
      local cookie, etag = line:match("^([^\t]*)\t(.*)$")
      local headers = {["Cookie"] = "panel_session=" .. cookie, ["HX-Request"] = "true", ["X-Panel-Poll"] = "1",
                       ["User-Agent"] = ua}
      if etag ~= "" then headers["If-None-Match"] = etag end
      n = n + 1
      requests[n] = wrk.format("GET", path, headers)
    end
    k = k + 1
  end
  i = math.random(n) - 1 -- threads start at different sessions
end

function delay()
  local t = now_ms()
  if next_at == nil or next_at < t - 1000 then next_at = t end
  next_at = next_at + interval
  local d = next_at - t
  if d < 0 then return 0 end
  return d
end

function request()
  i = i % n + 1
  return requests[i]
end

function response(status, headers, body)
  if status == 200 then s200 = s200 + 1 elseif status == 304 then s304 = s304 + 1 else sother = sother + 1 end
end

function done(summary, latency, reqs)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s200"); b = b + t:get("s304"); c = c + t:get("sother")
  end
  io.write(string.format("s200 %d\ns304 %d\nsother %d\n", a, b, c))
end
