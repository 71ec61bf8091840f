-- wrk script for bench/serve.py: each request POSTs one input line (the source column of a TSV
-- file) to /v1/translate, cycling through the file; with "mix", every 4th request is invalid
-- (malformed JSON, an unknown model, a wrong type, an unknown endpoint) for the soak.
-- Usage: wrk -t1 -cC -dDs -s bench/serve.lua URL -- FILE MODEL [mix]
-- Prints one JSON line at the end: requests/s, latency percentiles (ms) and counts per status.

local bodies, bad = {}, {}
local i, mix = 0, false
counts = {}  -- global: done() reads it from each thread

local function escape(s)
  return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

function init(args)
  local path, model = args[1], args[2]
  mix = args[3] == "mix"
  for line in io.lines(path) do
    local src = line:match("^([^\t]*)")
    if src ~= "" then bodies[#bodies + 1] = '{"model":"' .. model .. '","text":["' .. escape(src) .. '"]}' end
  end
  bad = {
    {"/v1/translate", '{"model":"' .. model .. '","text":['},
    {"/v1/translate", '{"model":"no-such-model","text":["a"]}'},
    {"/v1/translate", '{"model":"' .. model .. '","text":"a","beam":"5"}'},
    {"/v1/nothing", '{}'},
  }
  i = math.random(#bodies)
end

function request()
  i = i + 1
  local path, body = "/v1/translate", bodies[i % #bodies + 1]
  if mix and i % 4 == 0 then
    local b = bad[math.floor(i / 4) % #bad + 1]
    path, body = b[1], b[2]
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status)
  counts[status] = (counts[status] or 0) + 1
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do parts[#parts + 1] = string.format('"%d":%d', k, v) end
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.2f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,' ..
    '"socket_errors":%d,"timeouts":%d,"status":{%s}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
    table.concat(parts, ",")))
end
