-- Compare and apply: runs a list of commands only if a version key still holds the value
-- the writer read before planning them (the last of them sets the version anew). Generic on
-- purpose: it knows nothing of what it writes (the counting rules are
-- govpulse_core::counting, in Rust); it only makes "nothing changed since I read" and "all
-- of these or none" one step, as Redis runs a script to its end before any other command.
-- Used on a Redis Cluster, whose client shares one connection per node (a single Redis gets
-- WATCH/MULTI/EXEC instead, which spares converting every argument to Lua and back:
-- tree_write.rs).
--
-- KEYS[1]: the version key. ARGV[1]: the version read ('' when the key did not exist).
-- ARGV[2..]: the commands, each as its number of arguments then its arguments (the command's
-- name first). Every key a command names belongs to the hash slot of KEYS[1] (the writer
-- builds them all with the same hash tag), so the script runs on a Redis Cluster too.
-- Returns 1 when applied, 0 when the version had moved (nothing was written).
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then
  return 0
end
local i = 2
local n = #ARGV
while i <= n do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return 1
