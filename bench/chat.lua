-- wrk script for bench/load.sh: POST a chat completion and print one
-- machine-readable RESULT line at the end.
--
-- Environment (set by load.sh):
--   WRK_BODY      JSON request body (required)
--   WRK_AUTH      value of the Authorization header (optional)
--   WRK_DELAY_MS  if set, each connection waits this many milliseconds after
--                 every response before sending the next request. With C
--                 connections this paces the run at about C*1000/(delay+latency)
--                 requests/s. It is a closed loop: a stalled response delays
--                 that connection's next request (coordinated omission), so
--                 it is a stand-in for a true fixed-rate generator, not one.
--                 wrk measures latency from the write of a request, so the
--                 delay itself is not counted in the latency.

wrk.method = "POST"
wrk.body = assert(os.getenv("WRK_BODY"), "WRK_BODY is not set")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
if delay_ms and delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status))
end
