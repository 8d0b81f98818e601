-- wrk script for benches/soak.sh: every request takes the next path from the file named by
-- PATHS (manifests by tag and by digest, blobs), with a pull client's Accept header, and the
-- summary is printed as one JSON line.
local paths = {}
for line in io.lines(os.getenv("PATHS")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local i = 0
wrk.headers["Accept"] = "application/vnd.oci.image.index.v1+json, " ..
  "application/vnd.oci.image.manifest.v1+json, " ..
  "application/vnd.docker.distribution.manifest.list.v2+json, " ..
  "application/vnd.docker.distribution.manifest.v2+json"

request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"bytes":%d,"seconds":%.1f,"rps":%.1f,"p50_ms":%.2f,"p99_ms":%.2f,' ..
    '"socket_errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.bytes, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
