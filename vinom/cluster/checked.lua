-- Checked writes (vinom/cluster/checked.py builds each call): the writes of one
-- change decided in Python on values read from Redis, made only if every
-- value read is still as it was. Redis runs this atomically, so a change
-- decided on a snapshot that another process has changed since is refused
-- whole, and its caller reads again. No rule is here: only the checks.
-- KEYS: the watch guard's key (watch.lua, put before this script).
-- ARGV: the deadline (ms on Redis's clock, '' for none: a call run after it
-- does nothing, as its caller has given up on it: vinom/cluster/clock.py),
-- whether the change judges a death ('1': refused until the watch guard has
-- lasted), the counter and the channel of the messages, the number of checks,
-- then each check: key, field (a hash's; '' for a string's value), the value
-- read ('' for none, else '=' and the value); the number of writes, then
-- each: its number of words and its words; then the messages. Each message
-- (a JSON object) is numbered from the counter ('{"seq":n,' before the rest)
-- and published. Answers the messages, or 'expired', 'unsettled' (the watch
-- has not lasted) or 'changed', having written nothing.

local deadline, judged, counter, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if deadline ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline) then
    return 'expired'
  end
end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local key, field, read = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local now
  if field == '' then now = redis.call('GET', key) else now = redis.call('HGET', key, field) end
  if (now and '=' .. now or '') ~= read then return 'changed' end
  i = i + 3
end
if judged == '1' and not watch(KEYS[1]) then return 'unsettled' end
-- Only these commands, all checked before the first is run: nothing is half written.
local writes = {SET = true, DEL = true, HSET = true, PEXPIRE = true}
local count, first = tonumber(ARGV[i]), i + 1
i = first
for _ = 1, count do
  if not writes[ARGV[i + 1]] then
    return redis.error_reply('not a checked write: ' .. tostring(ARGV[i + 1]))
  end
  i = i + 1 + tonumber(ARGV[i])
end
i = first
for _ = 1, count do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
end
local messages = {}
for k = i, #ARGV do
  local seq = redis.call('INCR', counter)
  local message = '{"seq":' .. seq .. ',' .. string.sub(ARGV[k], 2)
  redis.call('PUBLISH', channel, message)
  messages[#messages + 1] = message
end
return messages
