-- wrk load script for the Gatekeeper endpoint (bench/run.py, `make bench`).
-- POSTs the ProviderRequest read from the file named by $STELLA_BENCH_BODY and counts, per
-- thread, answers that are not HTTP 200 or whose systemError is not empty (unless
-- STELLA_BENCH_CHECK=0); done() prints one JSON line (prefixed "BENCH-JSON ") that
-- bench/run.py parses.
local body_path = os.getenv("STELLA_BENCH_BODY")
assert(body_path, "set STELLA_BENCH_BODY to a ProviderRequest JSON file")
local f = assert(io.open(body_path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.path = os.getenv("STELLA_BENCH_PATH") or "/gatekeeper/v1/verify"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non200 = 0
   syserr = 0
   responses = 0
end

-- Checking every answer makes wrk copy each body into Lua, which costs the load generator as
-- much CPU as the provider spends on cached answers; STELLA_BENCH_CHECK=0 skips it (wrk still
-- counts non-2xx answers as errors.status), and bench/run.py checks answers itself.
if os.getenv("STELLA_BENCH_CHECK") ~= "0" then
   function response(status, headers, resp_body)
      responses = responses + 1
      if status ~= 200 then
         non200 = non200 + 1
      elseif not string.find(resp_body, '"systemError":%s*""') then
         syserr = syserr + 1
      end
   end
end

function done(summary, latency, requests)
   local bad, sys, seen = 0, 0, 0
   for _, t in ipairs(threads) do
      bad = bad + t:get("non200")
      sys = sys + t:get("syserr")
      seen = seen + t:get("responses")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"responses_checked":%d,"non200":%d,"system_error":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes, seen, bad, sys,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
