-- SecureInfer rate limits, script v1: settle an admitted request when it ends.
-- KEYS[1] the token key, KEYS[2] the concurrency key
-- ARGV[1] interval_us (0: no token adjustment), ARGV[2] delta units (negative: refund)
-- ARGV[3] slot id ('': nothing to release)
-- Mirrors gcra::adjust: a key back to full is deleted, one in debt is kept.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
if interval > 0 then
  local delta = tonumber(ARGV[2])
  local tat = now
  local stored = redis.call('GET', KEYS[1])
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + delta * interval
  if new_tat > now then
    local ttl_ms = math.floor((new_tat - now) / 1000) + 1
    redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
  else
    redis.call('DEL', KEYS[1])
  end
end
if ARGV[3] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1
