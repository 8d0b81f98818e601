-- wrk script for benches/run.sh: optional Accept header (ACCEPT environment variable) and a
-- one-line JSON summary on the last line of the output.
local accept = os.getenv("ACCEPT")
if accept and accept ~= "" then
  wrk.headers["Accept"] = accept
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"bytes":%d,"seconds":%.3f,"rps":%.1f,"bytes_per_s":%.1f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.bytes, seconds, summary.requests / seconds,
    summary.bytes / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
