-- wrk script for scripts/bench-ingest.sh.
--
-- Configured through the environment, because wrk hands script arguments to the per-thread
-- states only, while done() runs in the main state and needs the settings too:
--   BENCH_MODE       "webhook" (POST signed deliveries) or "get" (plain GET of the URL's path)
--   BENCH_PAYLOADS   webhook mode: file of `event_key<TAB>sha256=<hex><TAB><body>` lines. Each
--                    line is sent the way its Bitbucket sends it, told apart by the event key:
--                    Data Center (`pr:*`, `diagnostics:*`) with X-Request-Id, Cloud (anything
--                    else) with X-Request-UUID and X-Attempt-Number
--   BENCH_RUN_ID     webhook mode: prefix of every request id, unique per run, so that no
--                    request is ever a redelivery of an earlier one (those answer "duplicate")
--   BENCH_ACKED_OUT  webhook mode: done() writes here the request id of every 2xx, one a line,
--                    so the caller can check each acknowledged delivery against the database
--   BENCH_RESULT_OUT done() writes `key=value` lines here for the caller to parse
--   BENCH_PAYLOAD_OFFSET  webhook mode, optional: where in the payload file the threads start
--                    (default 0), so that two wrk processes against two replicas do not send
--                    the same PRs in lockstep
--
-- wrk gives each thread its own Lua state: setup() (main state) numbers the threads, init()
-- (thread state) loads the payloads into that thread, and done() (main state again) reads the
-- per-thread counters back through thread:get().

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

local mode = os.getenv("BENCH_MODE") or "get"
local payloads, run_id
local counter = 0
statuses = {}    -- status code -> count; global so that done() can read it via thread:get
acked = {}       -- request ids answered 2xx (webhook mode)
answers = {}     -- "processed" / "duplicate" / ... -> count, from the 2xx bodies

function init(args)
   if mode ~= "webhook" then
      return
   end
   run_id = os.getenv("BENCH_RUN_ID") or "bench"
   local path = assert(os.getenv("BENCH_PAYLOADS"), "BENCH_PAYLOADS is not set")
   payloads = {}
   for line in io.lines(path) do
      local event, signature, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      if event then
         local dc = event:sub(1, 3) == "pr:" or event:sub(1, 12) == "diagnostics:"
         payloads[#payloads + 1] = { event = event, signature = signature, body = body, dc = dc }
      end
   end
   assert(#payloads > 0, "no payloads in " .. path)
   -- Threads start at different points of the file so they do not send the same PR in lockstep.
   counter = ((tid - 1) * 1009 + (tonumber(os.getenv("BENCH_PAYLOAD_OFFSET")) or 0)) % #payloads
end

-- Only the webhook needs a request built per call (its request id changes every time); without
-- request() wrk sends one pre-built GET, which keeps the client cheap for the HTTP ceiling run.
if mode == "webhook" then
   function request()
      counter = counter + 1
      local p = payloads[(counter - 1) % #payloads + 1]
      local id = string.format("%s-t%d-%d", run_id, tid, counter)
      if p.dc then
         return wrk.format("POST", nil, {
            ["Content-Type"] = "application/json; charset=utf-8",
            ["X-Event-Key"] = p.event,
            ["X-Hub-Signature"] = p.signature,
            ["X-Request-Id"] = id,
            ["User-Agent"] = "Bitbucket Data Center (pr-reminder bench)",
         }, p.body)
      end
      return wrk.format("POST", nil, {
         ["Content-Type"] = "application/json",
         ["X-Event-Key"] = p.event,
         ["X-Hub-Signature"] = p.signature,
         ["X-Request-UUID"] = id,
         ["X-Attempt-Number"] = "1",
         ["User-Agent"] = "Bitbucket-Webhooks/2.0 (pr-reminder bench)",
      }, p.body)
   end
end

-- Defining response() makes wrk parse every response. For the webhook that is the only way to
-- know which requests were acknowledged, and small next to the server's work; for the HTTP
-- ceiling (GET) it would slow the client down, so it is only defined in webhook mode and the GET
-- run takes its error count from wrk's own (status >= 400).
if mode == "webhook" then
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
      if status >= 200 and status < 300 and body then
         local id = body:match('"request_id":"([^"]+)"')
         if id then
            acked[#acked + 1] = id
         end
         local answer = body:match('"status":"([^"]+)"') or "?"
         answers[answer] = (answers[answer] or 0) + 1
      end
   end
end

function done(summary, latency, requests)
   local codes, ok, non2xx, kinds = {}, 0, 0, {}
   local acked_out = os.getenv("BENCH_ACKED_OUT")
   local acked_file = acked_out and assert(io.open(acked_out, "w"))
   for _, thread in ipairs(threads) do
      for code, n in pairs(thread:get("statuses") or {}) do
         codes[code] = (codes[code] or 0) + n
         if code >= 200 and code < 300 then ok = ok + n else non2xx = non2xx + n end
      end
      for kind, n in pairs(thread:get("answers") or {}) do
         kinds[kind] = (kinds[kind] or 0) + n
      end
      if acked_file then
         for _, id in ipairs(thread:get("acked") or {}) do
            acked_file:write(id, "\n")
         end
      end
   end
   if acked_file then acked_file:close() end
   if next(codes) == nil and summary.requests > 0 then
      -- No response() in this mode: trust wrk's own count of error statuses.
      non2xx = summary.errors.status
      ok = summary.requests - non2xx
      codes["2xx"] = ok
      if non2xx > 0 then codes[">=400"] = non2xx end
   end

   local seconds = summary.duration / 1e6
   local e = summary.errors
   local function ms(p) return latency:percentile(p) / 1000 end
   local code_list, kind_list = {}, {}
   for code, n in pairs(codes) do code_list[#code_list + 1] = code .. ":" .. n end
   for kind, n in pairs(kinds) do kind_list[#kind_list + 1] = kind .. ":" .. n end
   table.sort(code_list)
   table.sort(kind_list)

   local result = {
      { "requests", summary.requests },
      { "ok_2xx", ok },
      { "non_2xx", non2xx },
      { "seconds", string.format("%.3f", seconds) },
      { "rps", string.format("%.1f", summary.requests / seconds) },
      { "ok_rps", string.format("%.1f", ok / seconds) },
      { "p50_ms", string.format("%.2f", ms(50)) },
      { "p90_ms", string.format("%.2f", ms(90)) },
      { "p99_ms", string.format("%.2f", ms(99)) },
      { "max_ms", string.format("%.2f", latency.max / 1000) },
      { "socket_errors", e.connect + e.read + e.write + e.timeout },
      { "errors_detail", string.format("connect:%d,read:%d,write:%d,timeout:%d",
                                       e.connect, e.read, e.write, e.timeout) },
      { "statuses", table.concat(code_list, ",") },
      { "answers", table.concat(kind_list, ",") },
   }
   local lines = {}
   for _, kv in ipairs(result) do lines[#lines + 1] = kv[1] .. "=" .. tostring(kv[2]) end
   io.write("  ", table.concat(lines, " "), "\n")
   local out = os.getenv("BENCH_RESULT_OUT")
   if out then
      local f = assert(io.open(out, "w"))
      f:write(table.concat(lines, "\n"), "\n")
      f:close()
   end
end
