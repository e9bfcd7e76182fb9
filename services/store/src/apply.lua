-- Applies one batch of events of one agency tree, atomically: Redis runs a script to the
-- end before any other command, so a batch is either wholly recorded or not at all.
--
-- KEYS: every key the batch touches (event-id sets, counter hashes, online-procedure sets).
-- ARGV, read in order (indexes are 1-based positions in KEYS):
--   T, then T templates: I, I x (hash index, field), S, S x (set index, member),
--      dossier-state hash index, open-member prefix, Z, Z x open-dossier sorted set index
--   E, then E events: (event-id set index, event id, template number, dossier op, dossier id,
--      due time) where the op is `o` (open until due), `c` (close) or `-` (none)
--   X, then X expirations: (event-id set index, unix time)
-- Returns one integer per event: 1 counted now, 0 counted before.
--
-- Events sharing a template (same agency, day and kind) are counted together: their
-- increments are summed here, so a batch costs one HINCRBY per distinct counter, not one
-- per event and counter.
local pos = 1
local function take()
  local value = ARGV[pos]
  pos = pos + 1
  return value
end

local templates = {}
for t = 1, tonumber(take()) do
  local increments, members = {}, {}
  for j = 1, tonumber(take()) do
    increments[j] = { tonumber(take()), take() }
  end
  for j = 1, tonumber(take()) do
    members[j] = { tonumber(take()), take() }
  end
  local states, prefix, open = tonumber(take()), take(), {}
  for j = 1, tonumber(take()) do
    open[j] = tonumber(take())
  end
  templates[t] = { increments, members, 0, states, prefix, open }
end

-- A dossier is open from its reception (with a due time) until its resolution. Events
-- arrive in any order: a resolution marks the dossier closed, so that a reception that
-- arrives after it does not open it again.
local outcomes = {}
for i = 1, tonumber(take()) do
  local set, id, t = tonumber(take()), take(), tonumber(take())
  local op, dossier, due = take(), take(), take()
  if redis.call('SADD', KEYS[set], id) == 1 then
    outcomes[i] = 1
    local template = templates[t]
    template[3] = template[3] + 1
    if op == 'o' then
      if redis.call('HGET', KEYS[template[4]], dossier) ~= 'c' then
        redis.call('HSET', KEYS[template[4]], dossier, 'o')
        for _, z in ipairs(template[6]) do
          redis.call('ZADD', KEYS[z], due, template[5] .. dossier)
        end
      end
    elseif op == 'c' then
      redis.call('HSET', KEYS[template[4]], dossier, 'c')
      for _, z in ipairs(template[6]) do
        redis.call('ZREM', KEYS[z], template[5] .. dossier)
      end
    end
  else
    outcomes[i] = 0
  end
end

for j = 1, tonumber(take()) do
  local set, at = tonumber(take()), tonumber(take())
  redis.call('EXPIREAT', KEYS[set], at)
end

local sums, order = {}, {}
for _, template in ipairs(templates) do
  local count = template[3]
  if count > 0 then
    for _, increment in ipairs(template[1]) do
      local slot = increment[1] .. '\0' .. increment[2]
      if sums[slot] == nil then
        sums[slot] = { increment[1], increment[2], 0 }
        order[#order + 1] = slot
      end
      sums[slot][3] = sums[slot][3] + count
    end
    for _, member in ipairs(template[2]) do
      redis.call('SADD', KEYS[member[1]], member[2])
    end
  end
end
for _, slot in ipairs(order) do
  local sum = sums[slot]
  redis.call('HINCRBY', KEYS[sum[1]], sum[2], sum[3])
end
return outcomes
