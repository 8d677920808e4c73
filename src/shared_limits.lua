-- kuryer's rate limits shared by every instance of one installation: one
-- atomic call per scheduling round of one instance records the sends it
-- saw complete and admits, in order, the candidates its own schedule
-- picked. The same policy as the in-process limiter
-- (actors/src/rate_limiter/schedule.rs), on Redis' data:
--
--   per bot  `{p}rl:bot:{bot}:tat`  GCRA theoretical arrival time (ms)
--            `{p}rl:bot:{bot}:win`  zset: ticket -> the instant it leaves
--                                   the arrival window (in flight: now +
--                                   hold; completed: completion + 1 s)
--   per chat `{p}rl:chat:{bot}:{chat}` hash: at (next send allowed, ms),
--                                   t (ticket of the send in flight), i
--                                   (the chat's interval, ms)
--
-- A chat has one send in flight across all instances, and its next send
-- waits one interval after the previous one *completed*; a bot never has
-- more than `cap` sends in flight or completed within the last second, and
-- its GCRA spaces admissions. A send whose completion is never reported
-- (its instance died) holds its chat and its window slot for `hold` ms.
--
-- ARGV: now_ms (negative: Redis' clock), prefix, bot_interval_ms, cap,
-- tolerance_ms, chat_interval_ms, group_interval_ms, hold_ms,
-- max_bot_wait_ms, n_done, then n_done × (bot, chat, ticket, ago_ms), then
-- the candidates × (bot, chat, group 0/1, ticket).
-- Answers one integer per candidate: 0 admitted, > 0 the chat's wait (ms),
-- < 0 minus the bot's wait (ms).
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local p = ARGV[2]
local bot_iv = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local tol = tonumber(ARGV[5])
local chat_iv = tonumber(ARGV[6])
local group_iv = tonumber(ARGV[7])
local hold = tonumber(ARGV[8])
local max_bot_wait = tonumber(ARGV[9])
local n_done = tonumber(ARGV[10])
local keep = 60000
local i = 11
for _ = 1, n_done do
  local bot, chat, ticket = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local done_at = now - tonumber(ARGV[i + 3])
  i = i + 4
  local win = p .. 'rl:bot:' .. bot .. ':win'
  if redis.call('ZSCORE', win, ticket) then
    redis.call('ZADD', win, 'XX', done_at + 1000, ticket)
  end
  local ck = p .. 'rl:chat:' .. bot .. ':' .. chat
  local h = redis.call('HMGET', ck, 't', 'i')
  if h[1] == ticket then
    local at = done_at + tonumber(h[2])
    redis.call('HSET', ck, 'at', at, 't', '')
    redis.call('PEXPIRE', ck, math.max(1, math.ceil(at - now)) + keep)
  end
end
local out = {}
while i + 3 <= #ARGV do
  local bot, chat, group, ticket = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local ck = p .. 'rl:chat:' .. bot .. ':' .. chat
  local chat_at = tonumber(redis.call('HGET', ck, 'at') or '0')
  if chat_at > now then
    out[#out + 1] = math.max(1, math.ceil(chat_at - now))
  else
    local win = p .. 'rl:bot:' .. bot .. ':win'
    local tk = p .. 'rl:bot:' .. bot .. ':tat'
    redis.call('ZREMRANGEBYSCORE', win, '-inf', now)
    local tat = tonumber(redis.call('GET', tk) or now)
    if tat < now then
      tat = now
    end
    local allowed = tat - tol
    if redis.call('ZCARD', win) >= cap then
      local first = redis.call('ZRANGE', win, 0, 0, 'WITHSCORES')
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
      redis.call('SET', tk, tostring(tat + bot_iv), 'PX', keep)
      redis.call('ZADD', win, now + hold, ticket)
      redis.call('PEXPIRE', win, hold + keep)
      local iv = chat_iv
      if group == '1' then
        iv = group_iv
      end
      redis.call('HSET', ck, 'at', now + hold, 't', ticket, 'i', iv)
      redis.call('PEXPIRE', ck, hold + keep)
      out[#out + 1] = 0
    end
  end
end
return out
