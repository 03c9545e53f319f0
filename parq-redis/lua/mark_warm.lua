-- Finishes a rebuild: the epoch marker becomes warm only if it still names this rebuild (Redis
-- did not restart, and no other rebuild began since).
--
-- KEYS[1] epoch marker; ARGV[1] the "rebuilding:<id>" value written at the start; ARGV[2] the
-- "warm:<id>" value. Returns 1 when marked warm, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
