-- The watch guard (vinom/cluster/watch.py), put before each script that may
-- judge a host or a lobby dead. The script that runs it defines
-- WATCH_BREAK_MS and WATCH_SETTLE_MS before it.
--
-- The guard key holds when Redis began to be watched without a break (ms on
-- Redis's clock) and lives WATCH_BREAK_MS past each call: every heartbeat,
-- claim, check and pass renews it. When nobody called for that long (Redis
-- was down, failed over to a replica, restarted), it is gone, and the next
-- call starts a new watch. A lease or a host key found missing proves a death
-- only once the watch has lasted WATCH_SETTLE_MS (a lease and the interval of
-- its renewals): after a break, every host and lobby gets a full lease to
-- come back.
local function watch(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local since = tonumber(redis.call('GET', key))
  -- (A clock behind the watch's start: another server's, after a failover.)
  if since == nil or since > now then since = now end
  redis.call('SET', key, string.format('%d', since), 'PX', WATCH_BREAK_MS)
  return now - since >= WATCH_SETTLE_MS
end
