-- The Redis party store's one script (vinom/cluster/parties.py loads it).
--
-- Every change to a party is one call, which Redis runs atomically, so two
-- lobbies joining players to one party at once cannot overfill it or lose a
-- member. Each change is published on the changes channel (every lobby
-- tells the members it holds) and returned to the caller. docs/scaling.md
-- lists the keys. KEYS: the watch guard's key (watch.lua, put before this
-- script). ARGV: op, prefix, TTL (ms), deadline, then op's arguments.
-- The deadline is in milliseconds on Redis's clock ('' for none): a call run
-- after it changes nothing and answers `expired`, since its lobby has told
-- its player nothing was done (vinom/cluster/clock.py).

local op, prefix, ttl, deadline = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

if deadline ~= '' then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline) then
    return '{"error":"expired"}'
  end
end

local function party_key(id) return prefix .. ':' .. id end
local function code_key(code) return prefix .. ':code:' .. code end
local function of_key(player) return prefix .. ':of:' .. player end

local function err(code) return '{"error":"' .. code .. '"}' end

-- A party: its members ({player, name} in join order) and `at`, the lobby
-- that holds each member (player -> lobby id), where known.
local function load(id)
  local p = redis.call('HMGET', party_key(id), 'code', 'members', 'queued_for', 'queue', 'lobbies')
  if not p[1] then return nil end
  local at = {}
  if p[5] then at = cjson.decode(p[5]) end
  return {party_id = id, code = p[1], members = cjson.decode(p[2]), queued_for = p[3] or '',
          queue = p[4] or '', at = at}
end

local function party_json(p)
  -- queued_for: the game the party's ticket waits for; queue: in which queue.
  local queued, queue = 'null', 'null'
  if p.queued_for ~= '' then
    queued = cjson.encode(p.queued_for)
    queue = cjson.encode(p.queue)
  end
  local members = '[]'
  if #p.members > 0 then members = cjson.encode(p.members) end
  return '{"party_id":' .. cjson.encode(p.party_id) .. ',"code":' .. cjson.encode(p.code)
    .. ',"members":' .. members .. ',"queued_for":' .. queued .. ',"queue":' .. queue .. '}'
end

-- Keep the party (or remove it once it has no members), tell everyone.
local function changed(p, event, player, position)
  if #p.members == 0 then
    redis.call('DEL', party_key(p.party_id), code_key(p.code))
  else
    -- (cjson encodes an empty table as an object: '{}', as `lobbies` is.)
    redis.call('HSET', party_key(p.party_id), 'code', p.code, 'members', cjson.encode(p.members),
               'queued_for', p.queued_for, 'queue', p.queue or '',
               'lobbies', cjson.encode(p.at or {}))
    redis.call('PEXPIRE', party_key(p.party_id), ttl)
    redis.call('SET', code_key(p.code), p.party_id, 'PX', ttl)
  end
  local seq = redis.call('INCR', prefix .. ':seq')
  local pos = 'null'
  if position then pos = tostring(position) end
  local message = '{"seq":' .. seq .. ',"event":"' .. event .. '","player_id":'
    .. cjson.encode(player) .. ',"position":' .. pos .. ',"party":' .. party_json(p) .. '}'
  redis.call('PUBLISH', prefix .. ':changes', message)
  return message
end

-- Is the player in a party? (A member key whose party is gone, as after
-- Redis lost keys, does not count, and goes.)
local function in_party(player)
  local id = redis.call('GET', of_key(player))
  if not id then return false end
  if redis.call('EXISTS', party_key(id)) == 1 then return true end
  redis.call('DEL', of_key(player))
  return false
end

-- Take `player` out of party `p` (its members and `at`).
local function without(p, player)
  local kept = {}
  for _, m in ipairs(p.members) do
    if m[1] ~= player then kept[#kept + 1] = m end
  end
  p.members = kept
  p.at[player] = nil
end

-- The member's lobby, if the caller named its own ('' when it has none).
local function held_by(p, player, lobby)
  if lobby ~= nil and lobby ~= '' then p.at[player] = lobby end
end

if op == 'create' then
  -- party id, code, player, name, the caller's lobby id ('' for none)
  local id, code, player, name = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  if in_party(player) then return err('already_in_party') end
  if redis.call('EXISTS', code_key(code)) == 1 then return err('code_taken') end
  redis.call('SET', of_key(player), id, 'PX', ttl)
  local p = {party_id = id, code = code, members = {{player, name}}, queued_for = '', at = {}}
  held_by(p, player, ARGV[9])
  return changed(p, 'created', player)
elseif op == 'join' then
  -- code, player, name, max size, the caller's lobby id ('' for none)
  local code, player, name, max = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
  local id = redis.call('GET', code_key(code))
  local p = id and load(id)
  if not p then return err('unknown_party') end
  if in_party(player) then return err('already_in_party') end
  if #p.members >= max then return err('party_full') end
  if p.queued_for ~= '' then return err('party_queued') end
  p.members[#p.members + 1] = {player, name}
  held_by(p, player, ARGV[9])
  redis.call('SET', of_key(player), id, 'PX', ttl)
  return changed(p, 'joined', player)
elseif op == 'leave' then
  local player = ARGV[5]
  local id = redis.call('GET', of_key(player))
  redis.call('DEL', of_key(player))
  local p = id and load(id)
  if not p then return err('not_in_party') end
  without(p, player)
  p.queued_for = ''
  return changed(p, 'left', player)
elseif op == 'get' then
  local id = redis.call('GET', of_key(ARGV[5]))
  local p = id and load(id)
  if not p then return '{}' end
  return '{"party":' .. party_json(p) .. '}'
elseif op == 'set_queued' then
  -- party id, game ('' for none), members (space separated; checked with a
  -- game), position ('' for none), event for none ('unqueued' or 'matched'),
  -- queue ('normal' or 'ranked'; '' for none).
  local id, game, members, position, event = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local queue = ARGV[10] or ''
  local p = load(id)
  if not p then return err('unknown_party') end
  if game ~= '' then
    local ids = {}
    for _, m in ipairs(p.members) do ids[#ids + 1] = m[1] end
    if table.concat(ids, ' ') ~= members then return err('party_changed') end
    event = 'queued'
  elseif p.queued_for == '' then
    return '{"party":' .. party_json(p) .. '}'
  end
  p.queued_for = game
  p.queue = queue
  return changed(p, event, p.members[1][1], tonumber(position))
elseif op == 'refresh' then
  -- Players this lobby holds: their keys and their parties' live on. A member
  -- whose key has lapsed (their lobby died) is taken out of their party.
  local seen, messages = {}, {}
  for i = 5, #ARGV do
    local id = redis.call('GET', of_key(ARGV[i]))
    local p = id and load(id)
    if not p then
      redis.call('DEL', of_key(ARGV[i]))
    else
      redis.call('PEXPIRE', of_key(ARGV[i]), ttl)
      if not seen[id] then
        seen[id] = true
        local lapsed = nil
        for _, m in ipairs(p.members) do
          if redis.call('GET', of_key(m[1])) ~= id then lapsed = m[1] break end
        end
        if lapsed then
          without(p, lapsed)
          p.queued_for = ''
          messages[#messages + 1] = changed(p, 'left', lapsed)
        else
          redis.call('PEXPIRE', party_key(id), ttl)
          redis.call('PEXPIRE', code_key(p.code), ttl)
        end
      end
    end
  end
  return '[' .. table.concat(messages, ',') .. ']'
elseif op == 'check' then
  -- The caller's lobby id, the lobbies' lease prefix (the matchmaker's: a
  -- lobby's lease is its key <leases>:lobby:<id>), then players this lobby
  -- holds. A member of their parties held by a lobby whose lease has lapsed
  -- (it died) is taken out of their party, as if they had left; once Redis
  -- has been watched for a lease and a tick (the watch guard: after a
  -- failover or a restart every lease has lapsed, and nobody is taken out).
  if not watch(KEYS[1]) then return '[]' end
  local me, leases = ARGV[5], ARGV[6]
  local seen, messages = {}, {}
  for i = 7, #ARGV do
    local id = redis.call('GET', of_key(ARGV[i]))
    if id and not seen[id] then
      seen[id] = true
      local p = load(id)
      if p then
        local dead = {}
        for _, m in ipairs(p.members) do
          local lobby = p.at[m[1]]
          if lobby and lobby ~= me
              and redis.call('EXISTS', leases .. ':lobby:' .. lobby) == 0 then
            dead[#dead + 1] = m[1]
          end
        end
        for _, player in ipairs(dead) do
          redis.call('DEL', of_key(player))
          without(p, player)
          p.queued_for = ''
          messages[#messages + 1] = changed(p, 'left', player)
        end
      end
    end
  end
  return '[' .. table.concat(messages, ',') .. ']'
end
return redis.error_reply('unknown party operation ' .. tostring(op))
