-- The Redis matchmaker's one script (vinom/cluster/matchmaker.py loads it).
--
-- Every change to the queues happens here, so each is one atomic step in
-- Redis. The match rule is not here: a lobby reads the live tickets
-- ('snapshot'), runs the rule of vinom/matchmaking/windows.py on them, and forms
-- the matches it chose with 'take', which forms them only if the queue has not
-- changed but for tickets added at its tail since the snapshot (each queue's
-- version counts every other change), so no ticket is matched twice and the
-- matches are the rule's whichever lobbies race. A lobby runs a pass after each
-- enqueue; the lobby leading a game (holding its lease) also runs them on its
-- timer, for the ranked windows that widen while tickets wait.
-- docs/matchmaking.md lists the keys. KEYS: the watch guard's key (watch.lua, put before this script).
-- ARGV: op, prefix, lobby id of the caller, now, the match log's length,
-- then op's arguments.

local op, prefix, me, now_text, log_length = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = tonumber(now_text)

local function ticket_key(player) return prefix .. ':t:' .. player end
local function queue_key(game, queue) return prefix .. ':q:' .. game .. ':' .. queue end
local function lobby_key(lobby) return prefix .. ':lobby:' .. lobby end

-- Has the caller's deadline passed? It is in milliseconds on Redis's clock
-- ('' for none): a call run after it refuses to act, since its lobby has
-- given up on it and told its player so (vinom/cluster/clock.py).
local function too_late(deadline)
  if deadline == nil or deadline == '' then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline)
end

-- The state of the lobby that owns a ticket (or holds a party member):
-- 'live' while it holds its lease (its key, renewed every tick) and its
-- presence connection (subscribed to its presence channel) is open; 'away'
-- while it holds its lease but that connection is gone (a process that dies
-- loses its connections at once: Redis hears them close); 'dead' once its
-- lease has lapsed. A live lobby's tickets are matched; an away lobby's wait
-- where they are (it may only have lost a connection, and its lease decides);
-- a dead lobby's go. The caller is live. A lapsed lease proves a death only
-- once Redis has been watched for a lease and a tick (the watch guard: after a
-- failover or a restart every lease has lapsed); until then it is 'away'.
local function presence_channel(lobby) return prefix .. ':presence:' .. lobby end
local states = {}
local settled = nil
local function watched()
  if settled == nil then settled = watch(KEYS[1]) end
  return settled
end
local function lobby_state(owner)
  if owner == me then return 'live' end
  local known = states[owner]
  if known == nil then
    if redis.call('EXISTS', lobby_key(owner)) == 0 then
      if watched() then known = 'dead' else known = 'away' end
    elseif redis.call('PUBSUB', 'NUMSUB', presence_channel(owner))[2] == 0 then
      known = 'away'
    else
      known = 'live'
    end
    states[owner] = known
  end
  return known
end

-- A queue member's ticket; nil after removing it if it is not queued or its
-- lobby is dead; false (left where it is) if a lobby it needs is not live:
-- its owner, or one holding a member of its party.
local party_prefix = ''
local function live(qkey, player)
  local t = redis.call('HMGET', ticket_key(player), 'state', 'owner', 'rating', 'queued_at', 'data',
                      'size')
  if t[1] ~= 'queued' then
    redis.call('ZREM', qkey, player)
    return nil
  end
  local state = lobby_state(t[2])
  if state == 'dead' then
    redis.call('ZREM', qkey, player)
    redis.call('DEL', ticket_key(player))
    return nil
  end
  if state ~= 'live' then return false end
  -- The lobbies that hear the ticket's match: its owner's, and each party member's.
  local hearers = {t[2]}
  if party_prefix ~= '' and tonumber(t[6]) and tonumber(t[6]) > 1 then
    -- A party's ticket: every member's lobby must be live too (the party store
    -- keeps which lobby holds each member, docs/scaling.md). The party id and
    -- the seats' player ids are in its seats' JSON, where a quote inside a
    -- name is escaped.
    -- Every seat's player must still be a member (one taken out, whose ticket
    -- its leader's lobby is about to withdraw, is not) held by a live lobby.
    local party = string.match(t[5], '"party_id":"([^"]+)"')
    local at = party and redis.call('HGET', party_prefix .. ':' .. party, 'lobbies')
    if at and at ~= '{}' then
      local lobbies = cjson.decode(at)
      for seat in string.gmatch(t[5], '"player_id":"([^"]+)"') do
        local lobby = lobbies[seat]
        if lobby == nil or lobby_state(lobby) ~= 'live' then return false end
        hearers[#hearers + 1] = lobby
      end
    end
  end
  -- data: the JSON of the ticket's seats (a party's: one ticket per member), comma separated.
  return {player = player, rating = tonumber(t[3]), queued_at = tonumber(t[4]), data = t[5],
          size = tonumber(t[6]) or 1, hearers = hearers}
end

local function leader_key(game) return prefix .. ':leader:' .. game end

-- Every change to a queue but a ticket added at its tail moves its version:
-- a 'take' against an older snapshot is refused.
local function changed(qkey) redis.call('INCR', qkey .. ':v') end
local function version(qkey) return tonumber(redis.call('GET', qkey .. ':v') or '0') end

-- Take the tickets out of their queue, keep them as "matched" for a while
-- (so a lobby restoring its tickets skips them) and announce the match to the
-- lobbies that hear it (`lobbies`: each lobby holding a player of it; the
-- owner of the ticket `placer` places it), each on its own channel: no
-- other lobby hears it.
local function form(qkey, game_json, group, placer, match_id, matched_ms)
  local datas = {}
  local by = group[placer].hearers[1]
  local lobbies, named = {}, {}
  for i, t in ipairs(group) do
    for _, lobby in ipairs(t.hearers) do
      if not named[lobby] then
        named[lobby] = true
        lobbies[#lobbies + 1] = lobby
      end
    end
    local tk = ticket_key(t.player)
    redis.call('ZREM', qkey, t.player)
    redis.call('HSET', tk, 'state', 'matched')
    redis.call('PEXPIRE', tk, matched_ms)
    datas[i] = t.data
  end
  local body = '"match_id":"' .. match_id .. '","game":' .. game_json .. ',"formed_at":'
    .. now_text .. ',"players":[' .. table.concat(datas, ',') .. '],"formed_by":'
    .. cjson.encode(by) .. ',"lobbies":' .. cjson.encode(lobbies) .. '}'
  -- The log lets a lobby whose subscriber was cut off hear what it missed.
  local log_id = redis.call('XADD', prefix .. ':match-log', 'MAXLEN', '~', log_length, '*',
                            'match', '{' .. body)
  -- A matched ticket names its match's log entry: a lobby its player reconnects
  -- through while the match is placed finds the match there ('adopt').
  for _, t in ipairs(group) do redis.call('HSET', ticket_key(t.player), 'log', log_id) end
  local message = '{"log_id":"' .. log_id .. '",' .. body
  for _, lobby in ipairs(lobbies) do
    redis.call('PUBLISH', prefix .. ':matches:' .. lobby, message)
  end
  return message
end

-- Hold (take or renew) the lease of leading `game`'s matching for `ms`: held
-- while no live lobby holds it. True if the caller holds it now.
local function lead(game, ms)
  local key = leader_key(game)
  local holder = redis.call('GET', key)
  if holder == me or not holder or lobby_state(holder) ~= 'live' then
    redis.call('SET', key, me, 'PX', ms)
    return true
  end
  return false
end

if op == 'enqueue' then
  -- The deadline, the call's id (kept in its tickets, for 'withdraw'), the
  -- number of tickets n, then for each: player, head ('1' at the head of the
  -- queue), rating ('' for none), queued_at, the JSON of the ticket's seats
  -- and its size; then the tickets' game and queue (one call enqueues into one
  -- queue). Past the deadline nothing is stored.
  if too_late(ARGV[6]) then return '{"expired":true,"tickets":[]}' end
  local call = ARGV[7]
  local count = tonumber(ARGV[8])
  local first_pass = 9 + 6 * count
  local game, queue = ARGV[first_pass], ARGV[first_pass + 1]
  local qkey = queue_key(game, queue)
  local answers = {}
  for k = 0, count - 1 do
    local at = 9 + 6 * k
    local player, head, rating, queued_at, data = ARGV[at], ARGV[at + 1], ARGV[at + 2],
      ARGV[at + 3], ARGV[at + 4]
    local size = ARGV[at + 5]
    local tk = ticket_key(player)
    local old = redis.call('HMGET', tk, 'state', 'owner', 'game', 'queue')
    local refused = false
    if old[1] == 'queued' then
      if lobby_state(old[2]) == 'live' then
        refused = true
      else
        -- A ticket of a lobby that died (or is away): the player came back
        -- through another, and this ticket replaces it.
        redis.call('ZREM', queue_key(old[3], old[4]), player)
        changed(queue_key(old[3], old[4]))
      end
    end
    if refused then
      answers[#answers + 1] = '{"error":"already_queued"}'
    else
      local seq = redis.call('INCR', prefix .. ':seq')
      local score = seq
      if head == '1' then
        score = -seq
        changed(qkey)
      end
      redis.call('DEL', tk)
      redis.call('HSET', tk, 'state', 'queued', 'owner', me, 'game', game, 'queue', queue,
                 'rating', rating, 'queued_at', queued_at, 'data', data, 'size', size,
                 'call', call)
      redis.call('ZADD', qkey, score, player)
      local position = redis.call('ZRANK', qkey, player) + 1
      answers[#answers + 1] = '{"position":' .. position .. ',"score":' .. score .. '}'
    end
  end
  -- The caller runs a matching pass next ('snapshot', then 'take').
  return '{"tickets":[' .. table.concat(answers, ',') .. ']}'
elseif op == 'withdraw' then
  -- The id of an enqueue call its lobby gave up on, then its players: each
  -- ticket that call stored and that is still queued goes (one a later call
  -- stored, or one matched, stays).
  local call = ARGV[6]
  local withdrawn = 0
  for i = 7, #ARGV do
    local player = ARGV[i]
    local t = redis.call('HMGET', ticket_key(player), 'state', 'owner', 'game', 'queue', 'call')
    if t[1] == 'queued' and t[2] == me and t[5] == call then
      redis.call('ZREM', queue_key(t[3], t[4]), player)
      changed(queue_key(t[3], t[4]))
      redis.call('DEL', ticket_key(player))
      withdrawn = withdrawn + 1
    end
  end
  return withdrawn
elseif op == 'snapshot' then
  -- game, queue, scan limit, the party store's prefix ('' for none). The
  -- queue's version and its first live tickets (at most scan limit read), in
  -- queue order: [player, rating or false, queued_at, size] each. Tickets of
  -- dead lobbies go; those waiting for an away lobby are left out.
  watched()
  party_prefix = ARGV[9]
  local qkey = queue_key(ARGV[6], ARGV[7])
  local out = {}
  for _, player in ipairs(redis.call('ZRANGE', qkey, 0, tonumber(ARGV[8]) - 1)) do
    local t = live(qkey, player)
    if t == nil then
      changed(qkey)
    elseif t then
      out[#out + 1] = {t.player, t.rating or false, t.queued_at, t.size}
    end
  end
  return cjson.encode({version(qkey), out})
elseif op == 'take' then
  -- game, queue, game as JSON, the snapshot's version, matched_ms, the party
  -- store's prefix, then per match: its id, the placer (the index of the ticket
  -- whose lobby places it), its number of tickets n, n players (in seat order). Refused ('{"stale":true}') if the queue changed since
  -- the snapshot (but for tickets added at its tail); a match one of whose
  -- lobbies is no longer live is left (its tickets stay queued).
  local qkey = queue_key(ARGV[6], ARGV[7])
  if version(qkey) ~= tonumber(ARGV[9]) then return '{"stale":true}' end
  watched()
  party_prefix = ARGV[11]
  local matches = {}
  local i = 12
  while i <= #ARGV do
    local match_id, placer, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local group, ok = {}, true
    for k = 1, n do
      local t = live(qkey, ARGV[i + 2 + k])
      if not t then ok = false end
      group[k] = t
    end
    if ok then
      matches[#matches + 1] = form(qkey, ARGV[8], group, placer, match_id, ARGV[10])
    end
    i = i + 3 + n
  end
  changed(qkey)
  return '{"matches":[' .. table.concat(matches, ',') .. ']}'
elseif op == 'cancel' then
  -- player, deadline ('' for none: a withdrawal nobody is waiting for),
  -- matched_ms. Past the deadline: -1, the ticket untouched. A ticket of
  -- another lobby (its player came back through this one) is kept as
  -- "withdrawn" for matched_ms, so that its lobby, if it lives and puts back
  -- its lapsed tickets, does not put this one back.
  local player = ARGV[6]
  if too_late(ARGV[7]) then return -1 end
  local tk = ticket_key(player)
  local t = redis.call('HMGET', tk, 'state', 'game', 'queue', 'owner')
  if t[1] ~= 'queued' then return 0 end
  redis.call('ZREM', queue_key(t[2], t[3]), player)
  changed(queue_key(t[2], t[3]))
  redis.call('DEL', tk)
  if t[4] ~= me then
    redis.call('HSET', tk, 'state', 'withdrawn')
    redis.call('PEXPIRE', tk, tonumber(ARGV[8]))
  end
  return 1
elseif op == 'position' then
  local player = ARGV[6]
  local t = redis.call('HMGET', ticket_key(player), 'state', 'game', 'queue')
  if t[1] ~= 'queued' then return 0 end
  local rank = redis.call('ZRANK', queue_key(t[2], t[3]), player)
  if not rank then return 0 end
  return rank + 1
elseif op == 'heartbeat' then
  -- The lease in ms, then the games; renews the lobby's lease (its key) and
  -- answers whether it was still held (0 if it had lapsed, or Redis lost its
  -- data), Redis's time (TIME: seconds, microseconds), from which the lobby
  -- knows Redis's clock for its deadlines, and the games it leads: it renews
  -- their leases and takes those no live lobby holds.
  watched()
  local key = lobby_key(me)
  local existed = redis.call('EXISTS', key)
  redis.call('SET', key, '1', 'PX', ARGV[6])
  local t = redis.call('TIME')
  local led = {}
  for i = 7, #ARGV do
    if lead(ARGV[i], ARGV[6]) then led[#led + 1] = ARGV[i] end
  end
  return {existed, tonumber(t[1]), tonumber(t[2]), led}
elseif op == 'restore' then
  -- Groups of eight: player, game, queue, rating, queued_at, seats JSON,
  -- score, size. A ticket Redis still knows (queued, or matched a moment
  -- ago) is left alone. The arrival counter is moved past every score put
  -- back (Redis may have restarted empty, counting from 0 again), so that
  -- tickets queued from now on wait behind them.
  local restored = 0
  local seq_key = prefix .. ':seq'
  local seq = tonumber(redis.call('GET', seq_key) or '0')
  local top = seq
  for i = 6, #ARGV, 8 do
    local player = ARGV[i]
    local tk = ticket_key(player)
    if redis.call('EXISTS', tk) == 0 then
      local score = tonumber(ARGV[i + 6])
      redis.call('HSET', tk, 'state', 'queued', 'owner', me, 'game', ARGV[i + 1],
                 'queue', ARGV[i + 2], 'rating', ARGV[i + 3], 'queued_at', ARGV[i + 4],
                 'data', ARGV[i + 5], 'size', ARGV[i + 7])
      redis.call('ZADD', queue_key(ARGV[i + 1], ARGV[i + 2]), score, player)
      changed(queue_key(ARGV[i + 1], ARGV[i + 2]))
      if math.abs(score) > top then top = math.abs(score) end
      restored = restored + 1
    end
  end
  if top > seq then redis.call('SET', seq_key, string.format('%d', top)) end
  return restored
elseif op == 'adopt' then
  -- player, the placement keys' prefix, the TTL of a match's followers (ms). The
  -- match of a matched ticket, as its log entry has it, while its placement is not
  -- decided (nil if none, or once placed or failed: the player store or the
  -- requeue answers for it then). The caller joins the lobbies that follow the
  -- match (vinom/cluster/channel.py), so it hears its placement events: in this
  -- same call, so no outcome can be published in between.
  local t = redis.call('HMGET', ticket_key(ARGV[6]), 'state', 'log')
  if t[1] ~= 'matched' or not t[2] then return false end
  local entries = redis.call('XRANGE', prefix .. ':match-log', t[2], t[2])
  if #entries == 0 then return false end
  local fields, body = entries[1][2], nil
  for i = 1, #fields, 2 do
    if fields[i] == 'match' then body = fields[i + 1] end
  end
  if not body then return false end
  local match_id = string.match(body, '"match_id":"([^"]+)"')
  if redis.call('EXISTS', ARGV[7] .. 'outcome:' .. match_id) == 1 then return false end
  local key = ARGV[7] .. 'lobbies:' .. match_id
  redis.call('SADD', key, me)
  redis.call('PEXPIRE', key, ARGV[8])
  return '{"log_id":"' .. t[2] .. '",' .. string.sub(body, 2)
elseif op == 'release' then
  -- The lobby stops: its queued tickets, its key and its leases go. The number
  -- of players, the players, then the games.
  for i = 7, 6 + tonumber(ARGV[6]) do
    local player = ARGV[i]
    local t = redis.call('HMGET', ticket_key(player), 'state', 'owner', 'game', 'queue')
    if t[1] == 'queued' and t[2] == me then
      redis.call('ZREM', queue_key(t[3], t[4]), player)
      changed(queue_key(t[3], t[4]))
      redis.call('DEL', ticket_key(player))
    end
  end
  redis.call('DEL', lobby_key(me))
  -- Its leases go: the next lobby to call takes them.
  for i = 7 + tonumber(ARGV[6]), #ARGV do
    if redis.call('GET', leader_key(ARGV[i])) == me then redis.call('DEL', leader_key(ARGV[i])) end
  end
  return 0
end
return redis.error_reply('unknown matchmaker operation ' .. tostring(op))
