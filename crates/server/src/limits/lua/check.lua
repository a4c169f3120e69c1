-- SecureInfer rate limits, script v1 (keys are prefixed si:rl:v1:). One admission, atomically,
-- on Redis' own clock: the GCRA of src/limits/gcra.rs for each spend, plus an optional
-- concurrency lease, all or nothing. A refused check writes nothing.
--
-- KEYS[1..n]  one GCRA key per spend; KEYS[n+1] the concurrency key (when slot_cap > 0)
-- ARGV[1]     n
-- ARGV[2+3(i-1)], ARGV[3+3(i-1)], ARGV[4+3(i-1)]  interval_us, burst, cost of spend i
-- ARGV[2+3n], ARGV[3+3n], ARGV[4+3n]              slot_cap (0: none), slot_id, lease_us
--
-- Returns { refused_index (0: admitted; i: spend i; n+1: the slot), retry_after_us,
--           remaining_1, reset_us_1, ..., remaining_n, reset_us_n }
-- Numbers are written with %.0f: Lua's default %.14g would round microsecond timestamps.

local NEVER = 4503599627370496 -- 2^52: "this request can never fit"
local SLOT_RETRY = 1000000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])

local out = {0, 0}
local after = {}
local new_tats = {}
local refused, worst = 0, -1
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local interval = tonumber(ARGV[base])
  local burst = tonumber(ARGV[base + 1])
  local cost = tonumber(ARGV[base + 2])
  local tolerance = burst * interval
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - tolerance
  if cost > burst or allow_at > now then
    local retry = allow_at - now
    if cost > burst then
      retry = NEVER
    end
    if retry > worst then
      refused, worst = i, retry
    end
  else
    new_tats[i] = new_tat
  end
  -- Figures as the key stands (out[3..]) and after this spend (after[]): a refused check
  -- charges nothing and reports the former.
  out[#out + 1] = math.max(0, math.floor((now + tolerance - tat) / interval))
  out[#out + 1] = tat - now
  if new_tats[i] then
    after[#after + 1] = math.max(0, math.floor((now + tolerance - new_tat) / interval))
    after[#after + 1] = new_tat - now
  else
    after[#after + 1] = 0
    after[#after + 1] = 0
  end
end

local cap = tonumber(ARGV[2 + 3 * n])
local slot_id = ARGV[3 + 3 * n]
local lease = tonumber(ARGV[4 + 3 * n])
local slot_key = KEYS[n + 1]
if cap > 0 then
  -- Leases of replicas that died holding them expire here.
  redis.call('ZREMRANGEBYSCORE', slot_key, '-inf', string.format('%.0f', now))
  if redis.call('ZCARD', slot_key) >= cap and SLOT_RETRY > worst then
    refused, worst = n + 1, SLOT_RETRY
  end
end

if refused == 0 then
  for i = 1, n do
    local ttl_ms = math.floor((new_tats[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
  end
  if cap > 0 then
    redis.call('ZADD', slot_key, string.format('%.0f', now + lease), slot_id)
    redis.call('PEXPIRE', slot_key, math.floor(lease / 1000) + 1000)
  end
  worst = 0
  for j = 1, #after do
    out[2 + j] = after[j]
  end
end
out[1] = refused
out[2] = worst
return out
