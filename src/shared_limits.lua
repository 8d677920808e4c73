-- kuryer's rate limits shared by every instance of one installation: one
-- atomic call per bot per scheduling round of one instance records the
-- sends it saw complete and admits, in order, the candidates its own
-- schedule picked. The same policy as the in-process limiter
-- (actors/src/rate_limiter/schedule.rs), on Redis' data:
--
--   KEYS[1]  `{p}rl:{bot}:tat`  GCRA theoretical arrival time (ms)
--   KEYS[2]  `{p}rl:{bot}:win`  zset: one member per message sent (an
--                                album's items each: `ticket`, then
--                                `ticket/2` … `ticket/n`) -> the instant
--                                it leaves the arrival window (in flight:
--                                now + hold; completed: completion + 1 s)
--   KEYS[3…] `{p}rl:{bot}:chat:{chat}` one per completion, then one per
--                                candidate: hash: at (next send allowed,
--                                ms), t (ticket of the send in flight), i
--                                (the chat's interval, ms), n (its items)
--
-- Every key is passed in KEYS (none is built here) and carries the bot's
-- hash tag (`{bot}`), so one call touches one slot of a Redis Cluster.
--
-- A chat has one send in flight across all instances, and its next send
-- waits one interval after the previous one *completed*; a bot never has
-- more than `cap` messages in flight or completed within the last second,
-- and its GCRA spaces them: a send of n items (an album by copyMessages)
-- takes n slots of the window and n intervals of the GCRA, as Telegram
-- counts each item (the fake's `send.rs` cites the sources), and as the
-- in-process limiter does (actors/src/rate_limiter/budget.rs). A send whose completion is never reported
-- (its instance died) holds its chat and its window slot for `hold` ms.
--
-- ARGV: now_ms (negative: Redis' clock), bot_interval_ms, cap,
-- tolerance_ms, chat_interval_ms, group_interval_ms, hold_ms,
-- max_bot_wait_ms, n_done, then n_done × (ticket, ago_ms), then the
-- candidates × (group 0/1, ticket, items).
-- Answers one integer per candidate: 0 admitted, > 0 the chat's wait (ms),
-- < 0 minus the bot's wait (ms).
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local bot_iv = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local tol = tonumber(ARGV[4])
local chat_iv = tonumber(ARGV[5])
local group_iv = tonumber(ARGV[6])
local hold = tonumber(ARGV[7])
local max_bot_wait = tonumber(ARGV[8])
local n_done = tonumber(ARGV[9])
local tk = KEYS[1]
local win = KEYS[2]
local keep = 60000
local i = 10
local k = 3
for _ = 1, n_done do
  local ticket = ARGV[i]
  local done_at = now - tonumber(ARGV[i + 1])
  i = i + 2
  local ck = KEYS[k]
  k = k + 1
  if redis.call('ZSCORE', win, ticket) then
    redis.call('ZADD', win, 'XX', done_at + 1000, ticket)
  end
  local h = redis.call('HMGET', ck, 't', 'i', 'n')
  if h[1] == ticket then
    for item = 2, tonumber(h[3] or '1') do
      local member = ticket .. '/' .. item
      if redis.call('ZSCORE', win, member) then
        redis.call('ZADD', win, 'XX', done_at + 1000, member)
      end
    end
    local at = done_at + tonumber(h[2])
    redis.call('HSET', ck, 'at', at, 't', '')
    redis.call('PEXPIRE', ck, math.max(1, math.ceil(at - now)) + keep)
  end
end
local out = {}
while i + 2 <= #ARGV do
  local group, ticket = ARGV[i], ARGV[i + 1]
  -- More items than the window holds would wait for ever: they take all of it.
  local n = math.max(1, math.min(tonumber(ARGV[i + 2]), cap))
  i = i + 3
  local ck = KEYS[k]
  k = k + 1
  local chat_at = tonumber(redis.call('HGET', ck, 'at') or '0')
  if chat_at > now then
    out[#out + 1] = math.max(1, math.ceil(chat_at - now))
  else
    redis.call('ZREMRANGEBYSCORE', win, '-inf', now)
    local tat = tonumber(redis.call('GET', tk) or now)
    if tat < now then
      tat = now
    end
    local allowed = tat - tol
    local held = redis.call('ZCARD', win)
    if held + n > cap then
      -- The window frees enough when its (held + n - cap)-th oldest leaves.
      local first = redis.call('ZRANGE', win, held + n - cap - 1, held + n - cap - 1, 'WITHSCORES')
      local free_at = tonumber(first[2])
      if free_at > allowed then
        -- A window full of sends in flight frees when one completes,
        -- which no clock says: ask again soon rather than after the hold.
        allowed = math.min(free_at, math.max(allowed, now + max_bot_wait))
      end
    end
    if allowed > now then
      out[#out + 1] = -math.max(1, math.ceil(allowed - now))
    else
      redis.call('SET', tk, tostring(tat + bot_iv * n), 'PX', keep)
      redis.call('ZADD', win, now + hold, ticket)
      for item = 2, n do
        redis.call('ZADD', win, now + hold, ticket .. '/' .. item)
      end
      redis.call('PEXPIRE', win, hold + keep)
      local iv = chat_iv
      if group == '1' then
        iv = group_iv
      end
      redis.call('HSET', ck, 'at', now + hold, 't', ticket, 'i', iv, 'n', n)
      redis.call('PEXPIRE', ck, hold + keep)
      out[#out + 1] = 0
    end
  end
end
return out
