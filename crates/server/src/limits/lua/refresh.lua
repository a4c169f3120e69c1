-- SecureInfer rate limits, script v1: renew the lease of a live concurrency slot.
-- KEYS[1] the concurrency key; ARGV[1] slot id; ARGV[2] lease_us.
-- XX: a lease that already expired is not brought back (the cap may be taken by now).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now + lease), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.floor(lease / 1000) + 1000)
return 1
