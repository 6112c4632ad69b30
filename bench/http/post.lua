-- wrk script: POST one HealthBot notification (about 450 bytes) per request, keep-alive,
-- and print "RESULT requests seconds p50_us p99_us" for run.sh to parse.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"device-id": "ptx10008-core-03", "group": "core", "keys": {"_instance_id": "[\\"core-isis\\"]", "_playbook_name": "isis-stats-playbook", "instance-id": "master", "interface-id": "et-0/0/5.0", "system-id": "0100.1000.0203"}, "message": "IS-IS adjacency on et-0/0/5.0 to 0100.1000.0203 (instance master) is Down since 12:03:55", "rule": "check-isis-adjacencies", "severity": "major", "topic": "protocol.isis", "trigger": "isis-p2p-adjacency-state"}'

done = function(summary, latency, requests)
  local non2xx = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %.3f %d %d %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), non2xx))
end
