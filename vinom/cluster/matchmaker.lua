-- The Redis matchmaker's one script (vinom/cluster/matchmaker.py loads it).
--
-- Every change to the queues happens here, so each is one atomic step in
-- Redis: a ticket is picked and removed by the same call that forms its
-- match, and no other call runs in between. docs/matchmaking.md lists the
-- keys. KEYS: the watch guard's key (watch.lua, put before this script).
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

-- The rating window rule of vinom/matchmaking/windows.py, computed the same way.
local function width(w, t)
  local waited = now - t.queued_at
  if waited < 0 then waited = 0 end
  local x = w.base + w.growth * waited
  if w.max ~= nil and x > w.max then x = w.max end
  return x
end

local function fits(w, a, b)
  if a.rating == nil or b.rating == nil then return true end
  local d = math.abs(a.rating - b.rating)
  return d <= width(w, a) and d <= width(w, b)
end

-- Take the tickets out of their queue, keep them as "matched" for a while
-- (so a lobby restoring its tickets skips them) and announce the match to the
-- lobbies that hear it (`lobbies`: the caller, which formed it, and each lobby
-- holding a player of it), each on its own channel: no other lobby hears it.
local function form(qkey, game_json, group, match_id, matched_ms)
  local datas = {}
  local lobbies, named = {me}, {[me] = true}
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
    .. cjson.encode(me) .. ',"lobbies":' .. cjson.encode(lobbies) .. '}'
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

-- The team of each ticket of `group` (indexes into pending) in `teams` teams
-- of `team_size` seats, no party split, or nil: team_places in
-- vinom/matchmaking/windows.py, searched the same way (each ticket in order
-- into the lowest team with room, backing up; teams with the same room left
-- are tried once), so both matchmakers seat a match alike.
local function team_places(pending, group, team_size, teams)
  local room, places = {}, {}
  for t = 1, teams do room[t] = team_size end
  local function place(i)
    if i > #group then return true end
    local size = pending[group[i]].size
    local tried = {}
    for t = 1, teams do
      if room[t] >= size and not tried[room[t]] then
        tried[room[t]] = true
        room[t] = room[t] - size
        places[i] = t
        if place(i + 1) then return true end
        room[t] = room[t] + size
        places[i] = nil
      end
    end
    return false
  end
  if place(1) then return places end
  return nil
end

-- The groups to form from `pending` (live tickets in queue order), at most
-- `most` of them: the rule of fill_groups in vinom/matchmaking/windows.py.
-- The oldest ticket anchors a group and takes, in queue order, each later
-- ticket that fits in the seats left (a party takes one seat per member and
-- is never split), that fits every window (ranked), and after which the
-- tickets behind it can still fill the seats left exactly. A group that
-- fills every seat is a match; one that cannot leaves its tickets to
-- younger anchors.
local function groups(pending, size, ranked, w, most)
  local taken, found = {}, {}
  local every = bit.lshift(1, size + 1) - 1
  for a = 1, #pending do
    if #found == most then break end
    if not taken[a] and pending[a].size <= size then
      local free = {}
      for b = a + 1, #pending do
        if not taken[b] then free[#free + 1] = b end
      end
      -- fillable[k]: bit n set if some of the tickets free[k..] take n seats exactly.
      local fillable = {}
      fillable[#free + 1] = 1
      for k = #free, 1, -1 do
        local behind = fillable[k + 1]
        fillable[k] = bit.bor(behind,
                              bit.band(bit.lshift(behind, pending[free[k]].size), every))
      end
      local left = size - pending[a].size
      if bit.band(bit.rshift(fillable[1], left), 1) == 1 then
        local group = {a}
        for k, b in ipairs(free) do
          if left == 0 then break end
          local c = pending[b]
          if c.size <= left and bit.band(bit.rshift(fillable[k + 1], left - c.size), 1) == 1 then
            local ok = true
            if ranked then
              for _, m in ipairs(group) do
                if not fits(w, pending[m], c) then ok = false break end
              end
            end
            if ok then
              group[#group + 1] = b
              left = left - c.size
            end
          end
        end
        if left == 0 then
          for _, m in ipairs(group) do taken[m] = true end
          found[#found + 1] = group
        end
      end
    end
  end
  return found, taken
end

-- The seats left in each team, most first, as a string ("3,1"): a way to
-- seat a group. The Lua side of Rooms in vinom/matchmaking/windows.py.
local function rooms_key(rooms)
  local copy = {}
  for i, r in ipairs(rooms) do copy[i] = r end
  table.sort(copy, function(x, y) return x > y end)
  return table.concat(copy, ',')
end

-- Add to the set `into` the rooms after seating (delta -size) or unseating
-- (delta +size) a ticket of size players in one team, each way it fits.
local function shift(key, delta, team_size, into)
  local rooms = {}
  for r in string.gmatch(key, '%d+') do rooms[#rooms + 1] = tonumber(r) end
  for i = 1, #rooms do
    local before = rooms[i]
    local r = before + delta
    if r >= 0 and r <= team_size then
      rooms[i] = r
      into[rooms_key(rooms)] = true
      rooms[i] = before
    end
  end
end

-- `groups` in teams: _fill_teams in vinom/matchmaking/windows.py. A group is
-- the set of ways its tickets can be seated (rooms left per team); a ticket
-- is taken if some way to seat it with the group leaves rooms that the
-- tickets behind it can fill exactly, each in one team (and it fits every
-- window, ranked). A match's tickets are put in seat order: team by team.
local function team_groups(pending, teams, team_size, ranked, w, most)
  local taken, found = {}, {}
  local full, done = {}, {}
  for t = 1, teams do
    full[t] = team_size
    done[t] = 0
  end
  local full_key, done_key = rooms_key(full), rooms_key(done)
  for a = 1, #pending do
    if #found == most then break end
    if not taken[a] and pending[a].size <= team_size then
      local free = {}
      for b = a + 1, #pending do
        if not taken[b] then free[#free + 1] = b end
      end
      -- fillable[k]: the rooms that some of the tickets free[k..] fill exactly.
      local fillable = {}
      fillable[#free + 1] = {[done_key] = true}
      for k = #free, 1, -1 do
        local set = {}
        for key in pairs(fillable[k + 1]) do
          set[key] = true
          shift(key, pending[free[k]].size, team_size, set)
        end
        fillable[k] = set
      end
      local seated, ways, any = {}, {}, false
      shift(full_key, -pending[a].size, team_size, seated)
      for key in pairs(seated) do
        if fillable[1][key] then
          ways[key] = true
          any = true
        end
      end
      if any then
        local group = {a}
        for k, b in ipairs(free) do
          if ways[done_key] then break end
          local c = pending[b]
          local after, ok = {}, false
          for key in pairs(ways) do
            local next_ways = {}
            shift(key, -c.size, team_size, next_ways)
            for n in pairs(next_ways) do
              if fillable[k + 1][n] then
                after[n] = true
                ok = true
              end
            end
          end
          if ok and ranked then
            for _, m in ipairs(group) do
              if not fits(w, pending[m], c) then ok = false break end
            end
          end
          if ok then
            group[#group + 1] = b
            ways = after
          end
        end
        if ways[done_key] then
          for _, m in ipairs(group) do taken[m] = true end
          local places, in_seats = team_places(pending, group, team_size, teams), {}
          for t = 1, teams do
            for i, m in ipairs(group) do
              if places[i] == t then in_seats[#in_seats + 1] = m end
            end
          end
          found[#found + 1] = in_seats
        end
      end
    end
  end
  return found, taken
end

-- Form matches in one queue. Arguments from `first`: game, queue, game as
-- JSON, match size, window base, growth, max ('' for none), match ids
-- (space separated: at most one match per id), ranked scan limit, matched_ms,
-- team size (0: no teams), the party store's prefix ('' for none).
local function pass(first)
  local game, queue, game_json = ARGV[first], ARGV[first + 1], ARGV[first + 2]
  local size = tonumber(ARGV[first + 3])
  local w = {base = tonumber(ARGV[first + 4]), growth = tonumber(ARGV[first + 5]),
             max = tonumber(ARGV[first + 6])}
  local ids = {}
  for id in string.gmatch(ARGV[first + 7], '%S+') do ids[#ids + 1] = id end
  local scan_limit = tonumber(ARGV[first + 8])
  local matched_ms = tonumber(ARGV[first + 9])
  local team_size = tonumber(ARGV[first + 10]) or 0
  party_prefix = ARGV[first + 11] or ''
  local qkey = queue_key(game, queue)
  local ranked = queue == 'ranked'
  local matches = {}
  -- The live tickets read and not matched, in queue order. Everything before
  -- the next read is matched (removed), dead (removed), skipped (waiting for
  -- a lobby that is away: counted in `skipped`) or in here, so each read
  -- starts at #pending + skipped. A normal queue is read a chunk at a time (solo
  -- tickets fill their match from the head); a ranked queue's first
  -- scan_limit tickets are read at once. Groups form from what has been read.
  local pending, skipped = {}, 0
  local chunk = size * #ids
  if chunk < 16 then chunk = 16 end
  if ranked then chunk = scan_limit end
  while #matches < #ids do
    local from = #pending + skipped
    local members = redis.call('ZRANGE', qkey, from, from + chunk - 1)
    if #members == 0 then break end
    for _, player in ipairs(members) do
      local t = live(qkey, player)
      if t then
        pending[#pending + 1] = t
      elseif t == false then
        skipped = skipped + 1
      end
    end
    local found, taken
    if team_size > 0 then
      found, taken = team_groups(pending, size / team_size, team_size, ranked, w,
                                 #ids - #matches)
    else
      found, taken = groups(pending, size, ranked, w, #ids - #matches)
    end
    for _, group in ipairs(found) do
      local players = {}
      for i, m in ipairs(group) do players[i] = pending[m] end
      matches[#matches + 1] = form(qkey, game_json, players, ids[#matches + 1], matched_ms)
    end
    local kept = {}
    for i, t in ipairs(pending) do
      if not taken[i] then kept[#kept + 1] = t end
    end
    pending = kept
    -- A ranked queue is looked at up to scan_limit deep; a normal one until
    -- that many tickets wait unmatched (parties that fit nowhere yet).
    if ranked or #pending + skipped >= scan_limit then break end
  end
  -- "more": every id was used, so another pass may form more matches.
  return matches, #matches == #ids
end

local function result(fields, matches, more)
  return '{' .. fields .. '"matches":[' .. table.concat(matches, ',') .. '],"more":'
    .. tostring(more) .. '}'
end

if op == 'enqueue' then
  -- The deadline, the call's id (kept in its tickets, for 'withdraw'), the
  -- number of tickets n, then for each: player, head ('1' at the head of the
  -- queue), rating ('' for none), queued_at, the JSON of the ticket's seats
  -- and its size; then the pass arguments (the tickets' game and queue first:
  -- one call enqueues into one queue). One matching pass follows. Past the
  -- deadline nothing is stored and no pass runs.
  if too_late(ARGV[6]) then return '{"expired":true,"tickets":[],"matches":[],"more":false}' end
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
      end
    end
    if refused then
      answers[#answers + 1] = '{"error":"already_queued"}'
    else
      local seq = redis.call('INCR', prefix .. ':seq')
      local score = seq
      if head == '1' then score = -seq end
      redis.call('DEL', tk)
      redis.call('HSET', tk, 'state', 'queued', 'owner', me, 'game', game, 'queue', queue,
                 'rating', rating, 'queued_at', queued_at, 'data', data, 'size', size,
                 'call', call)
      redis.call('ZADD', qkey, score, player)
      local position = redis.call('ZRANK', qkey, player) + 1
      answers[#answers + 1] = '{"position":' .. position .. ',"score":' .. score .. '}'
    end
  end
  local matches, more = pass(first_pass)
  return result('"tickets":[' .. table.concat(answers, ',') .. '],', matches, more)
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
      redis.call('DEL', ticket_key(player))
      withdrawn = withdrawn + 1
    end
  end
  return withdrawn
elseif op == 'pass' then
  watched()
  local matches, more = pass(6)
  return result('', matches, more)
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
  -- The lease in ms; renews the lobby's lease (its key) and answers whether
  -- it was still held (0 if it had lapsed, or Redis lost its data), and Redis's time (TIME: seconds, microseconds), from
  -- which the lobby knows Redis's clock for its deadlines.
  watched()
  local key = lobby_key(me)
  local existed = redis.call('EXISTS', key)
  redis.call('SET', key, '1', 'PX', ARGV[6])
  local t = redis.call('TIME')
  return {existed, tonumber(t[1]), tonumber(t[2])}
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
  -- The lobby stops: its queued tickets and its key go.
  for i = 6, #ARGV do
    local player = ARGV[i]
    local t = redis.call('HMGET', ticket_key(player), 'state', 'owner', 'game', 'queue')
    if t[1] == 'queued' and t[2] == me then
      redis.call('ZREM', queue_key(t[3], t[4]), player)
      redis.call('DEL', ticket_key(player))
    end
  end
  redis.call('DEL', lobby_key(me))
  return 0
end
return redis.error_reply('unknown matchmaker operation ' .. tostring(op))
