-- wrk script: post.lua's notification, but HTTP/1.1 pipelining: each connection writes DEPTH
-- requests at once and waits for their DEPTH replies. Usage: wrk ... -s pipeline.lua -- DEPTH
-- (run from the repository's top directory, as bench/http/run.sh does with PIPELINE=DEPTH).
dofile("bench/http/post.lua")

init = function(args)
  local depth = tonumber(args[1]) or 16
  local one = wrk.format(nil, nil, nil, wrk.body)
  req = string.rep(one, depth)
end

request = function()
  return req
end
