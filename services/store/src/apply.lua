-- Applies one batch of events of one agency tree, atomically: Redis runs a script to the
-- end before any other command, so a batch is either wholly recorded or not at all.
--
-- KEYS: every key the batch touches (event-id sets, counter hashes, online-procedure sets),
-- except the buckets of the due-day counters (below).
-- ARGV, read in order (indexes are 1-based positions in KEYS):
--   T, then T templates: I, I x (hash index, field), S, S x (set index, member),
--      dossier-state hash index, open-member prefix, Z, Z x open-dossier sorted set index,
--      C, C x counter-hash key prefix (`P:{root}:c:<agency>:`, each agency of the chain),
--      R, R x (roll-up key prefix `P:{root}:k:<parent>:`, child id) (each child-parent pair),
--      K, K x (packed roll-up key index, roll-up number r: the r-th of the R pairs)
--   E, then E events: (event-id set index, event id, template number, dossier op, dossier id,
--      due time, day) where the op is `o` (received with a due time: day is the due day),
--      `c` (resolved: day is the resolution day) or `-` (none); days are written yyyymmdd
--   X, then X expirations: (event-id set index, unix time)
-- Returns one integer per event: 1 counted now, 0 counted before.
--
-- The dossier-state hash holds, per dossier id: `o<due day>` (open: counted in `due` of
-- that day, in the open sets), `c<resolution day>` (resolved before any reception with a due
-- time arrived) or `x` (resolved, its reception counted: nothing changes it any more). `o`
-- and `c` alone were written before due days were counted: such a dossier is closed without
-- counting `due_cl`, and a reception never counts for it.
--
-- The due-day counters (`due`, `due_cl`, see govpulse_core::backlog) count in the buckets
-- of a day known only here (a resolution's depends on the stored due day), so their keys are
-- built from the template's prefixes: every one carries the tree's `{root}` tag, so they
-- share the hash slot of the declared keys.
--
-- A parent's roll-up of its children is, for a day, a hash (child id → count: few of many
-- children count on one day) and, for a month, quarter or year, a packed array of signed
-- 64-bit big-endian counts, one per child at the child's ordinal (BITFIELD INCRBY i64
-- #ordinal), read whole by one GET. Ordinals are given in the order children are first
-- counted and never change: the list `<prefix>ids` holds, at index 0, the time it was
-- created (a list created again, after a flush, says so to readers that cached it) and then
-- the children in ordinal order; the hash `<prefix>ord` maps a child to its ordinal. They
-- too carry the tree's tag.
--
-- Events sharing a template (same agency, day and kind) are counted together: their
-- increments are summed here, so a batch costs one HINCRBY per distinct counter, not one
-- per event and counter. Likewise the event ids, the dossier states and the open sets are
-- read and written once per batch and key (SMISMEMBER and SADD, HMGET and HSET, ZADD and
-- ZREM), not once per event: every write a script issues is also an entry of the
-- append-only file, which the durable setting writes and fsyncs before Redis answers
-- (docs/PERFORMANCE.md).
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
  local hashes, rollups, packed = {}, {}, {}
  for j = 1, tonumber(take()) do
    hashes[j] = take()
  end
  for j = 1, tonumber(take()) do
    rollups[j] = { take(), take() }
  end
  for j = 1, tonumber(take()) do
    packed[j] = { tonumber(take()), tonumber(take()) }
  end
  templates[t] = { increments, members, 0, states, prefix, open, hashes, rollups, packed }
end

-- The ordinal of a child in its parent's packed roll-ups, given on first use.
local ordinals = {}
local function ordinal(rollup)
  local prefix, child = rollup[1], rollup[2]
  local slot = prefix .. '\0' .. child
  if ordinals[slot] == nil then
    local index = prefix .. 'ord'
    local known = redis.call('HGET', index, child)
    if known then
      ordinals[slot] = known
    else
      local ids = prefix .. 'ids'
      if redis.call('LLEN', ids) == 0 then
        local now = redis.call('TIME')
        redis.call('RPUSH', ids, 'created ' .. now[1] .. '.' .. now[2])
      end
      local given = redis.call('RPUSH', ids, child) - 1
      redis.call('HSET', index, child, given)
      ordinals[slot] = tostring(given)
    end
  end
  return ordinals[slot]
end

-- Sums of packed roll-up increments per (key, child), written once at the end.
local packed_sums, packed_order = {}, {}
local function add_packed(key, rollup, count)
  local slot = key .. '\0' .. rollup[2]
  if packed_sums[slot] == nil then
    packed_sums[slot] = { key, rollup, 0 }
    packed_order[#packed_order + 1] = slot
  end
  packed_sums[slot][3] = packed_sums[slot][3] + count
end

-- Sums of the due-day counters per (key, field), written once at the end.
local due_sums, due_order = {}, {}
local function add_due(key, field)
  local slot = key .. '\0' .. field
  if due_sums[slot] == nil then
    due_sums[slot] = { key, field, 0 }
    due_order[#due_order + 1] = slot
  end
  due_sums[slot][3] = due_sums[slot][3] + 1
end
-- Counts one in `field` in the day, month, quarter and year of `day` (yyyymmdd), for every
-- agency of the template's chain and in each parent's roll-up of its children; the bucket
-- names are those of govpulse_core::Bucket.
local function count_due(template, field, day)
  local year, month = string.sub(day, 1, 4), tonumber(string.sub(day, 5, 6))
  local buckets = {
    'd' .. day,
    'm' .. string.sub(day, 1, 6),
    'q' .. year .. string.format('%d', math.floor((month - 1) / 3) + 1),
    'y' .. year,
  }
  for _, bucket in ipairs(buckets) do
    for _, hash in ipairs(template[7]) do
      add_due(hash .. bucket, field)
    end
    for _, rollup in ipairs(template[8]) do
      local key = rollup[1] .. bucket .. ':' .. field
      if string.sub(bucket, 1, 1) == 'd' then
        add_due(key, rollup[2])
      else
        add_packed(key, rollup, 1)
      end
    end
  end
end
local function later(a, b)
  if a > b then
    return a
  end
  return b
end

-- The commands below take many arguments at once; Lua's C stack bounds `unpack`, so they go
-- out in chunks of this many items.
local CHUNK = 1000
-- Calls `command` on `key` with the items of `args` (each `width` arguments long), a chunk at a
-- time; `on_reply(reply, offset)` gets each reply with the index of the chunk's first item
-- minus one.
local function call_chunks(command, key, args, width, on_reply)
  local per = CHUNK * width
  for first = 1, #args, per do
    local reply = redis.call(command, key, unpack(args, first, math.min(first + per - 1, #args)))
    if on_reply then
      on_reply(reply, (first - 1) / width)
    end
  end
end

local events = {}
for i = 1, tonumber(take()) do
  -- event-id set index, event id, template, dossier op, dossier id, due time, day
  events[i] = { tonumber(take()), take(), tonumber(take()), take(), take(), take(), take() }
end

-- Which events are new: one SMISMEMBER per event-id set for the whole batch; a second copy
-- of an id in the batch is a duplicate of the first; then one SADD of the new ids per set.
local ids_by_set, sets = {}, {}
for _, event in ipairs(events) do
  local ids = ids_by_set[event[1]]
  if ids == nil then
    ids = {}
    ids_by_set[event[1]] = ids
    sets[#sets + 1] = event[1]
  end
  ids[#ids + 1] = event[2]
end
local seen = {}
for _, set in ipairs(sets) do
  local ids = ids_by_set[set]
  call_chunks('SMISMEMBER', KEYS[set], ids, 1, function(reply, offset)
    for j, member in ipairs(reply) do
      if member == 1 then
        seen[set .. '\0' .. ids[offset + j]] = true
      end
    end
  end)
end
local outcomes, new_ids = {}, {}
for i, event in ipairs(events) do
  local slot = event[1] .. '\0' .. event[2]
  if seen[slot] then
    outcomes[i] = 0
  else
    seen[slot] = true
    outcomes[i] = 1
    local ids = new_ids[event[1]]
    if ids == nil then
      ids = {}
      new_ids[event[1]] = ids
    end
    ids[#ids + 1] = event[2]
  end
end
for _, set in ipairs(sets) do
  if new_ids[set] then
    call_chunks('SADD', KEYS[set], new_ids[set], 1)
  end
end

-- The states of the new events' dossiers, read with one HMGET per dossier-state hash.
local wanted, hashes = {}, {}
for i, event in ipairs(events) do
  if outcomes[i] == 1 and (event[4] == 'o' or event[4] == 'c') then
    local states = templates[event[3]][4]
    local want = wanted[states]
    if want == nil then
      want = { list = {}, listed = {} }
      wanted[states] = want
      hashes[#hashes + 1] = states
    end
    if not want.listed[event[5]] then
      want.listed[event[5]] = true
      want.list[#want.list + 1] = event[5]
    end
  end
end
-- states hash index → dossier id → its state (false: none), as the batch changes it
local state_of = {}
for _, states in ipairs(hashes) do
  local list, current = wanted[states].list, {}
  call_chunks('HMGET', KEYS[states], list, 1, function(reply, offset)
    for j, value in ipairs(reply) do
      current[list[offset + j]] = value
    end
  end)
  state_of[states] = current
end

-- What the batch changes, in first-change order, written once at the end: dossier states
-- (HSET) and open-set members (ZADD with the due time, or ZREM).
local function changes()
  return { order = {}, values = {} }
end
local function note(all, all_order, index, member, value)
  local changed = all[index]
  if changed == nil then
    changed = changes()
    all[index] = changed
    all_order[#all_order + 1] = index
  end
  if changed.values[member] == nil then
    changed.order[#changed.order + 1] = member
  end
  changed.values[member] = value
end
local new_states, states_order, open_changes, open_order = {}, {}, {}, {}
local function set_state(states, dossier, state)
  state_of[states][dossier] = state
  note(new_states, states_order, states, dossier, state)
end

-- A dossier is open from its reception (with a due time) until its resolution. Events
-- arrive in any order: a resolution that arrives first is remembered with its day, so that
-- the reception that follows counts the days it was open past due without opening it.
-- This is govpulse_core::backlog::step, which the in-memory store runs; the batch's events
-- are taken in order, each seeing the states the earlier ones left.
for i, event in ipairs(events) do
  if outcomes[i] == 1 then
    local template = templates[event[3]]
    template[3] = template[3] + 1
    local op, dossier, due, day = event[4], event[5], event[6], event[7]
    if op == 'o' or op == 'c' then
      local states = template[4]
      local state = state_of[states][dossier]
      local kind, known = '', ''
      if state then
        kind, known = string.sub(state, 1, 1), string.sub(state, 2)
      end
      if op == 'o' then
        if not state then
          set_state(states, dossier, 'o' .. day)
          for _, z in ipairs(template[6]) do
            note(open_changes, open_order, z, template[5] .. dossier, due)
          end
          count_due(template, 'due', day)
        elseif kind == 'c' and known ~= '' then
          set_state(states, dossier, 'x')
          count_due(template, 'due', day)
          count_due(template, 'due_cl', later(known, day))
        end
      elseif not state then
        set_state(states, dossier, 'c' .. day)
      elseif kind == 'o' then
        set_state(states, dossier, 'x')
        for _, z in ipairs(template[6]) do
          note(open_changes, open_order, z, template[5] .. dossier, false)
        end
        if known ~= '' then
          count_due(template, 'due_cl', later(known, day))
        end
      end
    end
  end
end
for _, states in ipairs(states_order) do
  local changed, args = new_states[states], {}
  for _, dossier in ipairs(changed.order) do
    args[#args + 1] = dossier
    args[#args + 1] = changed.values[dossier]
  end
  call_chunks('HSET', KEYS[states], args, 2)
end
for _, z in ipairs(open_order) do
  local changed, added, removed = open_changes[z], {}, {}
  for _, member in ipairs(changed.order) do
    local due = changed.values[member]
    if due then
      added[#added + 1] = due
      added[#added + 1] = member
    else
      removed[#removed + 1] = member
    end
  end
  if #added > 0 then
    call_chunks('ZADD', KEYS[z], added, 2)
  end
  if #removed > 0 then
    call_chunks('ZREM', KEYS[z], removed, 1)
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
    for _, increment in ipairs(template[9]) do
      add_packed(KEYS[increment[1]], template[8][increment[2]], count)
    end
  end
end
for _, slot in ipairs(order) do
  local sum = sums[slot]
  redis.call('HINCRBY', KEYS[sum[1]], sum[2], sum[3])
end
for _, slot in ipairs(due_order) do
  local sum = due_sums[slot]
  redis.call('HINCRBY', sum[1], sum[2], sum[3])
end
for _, slot in ipairs(packed_order) do
  local sum = packed_sums[slot]
  redis.call('BITFIELD', sum[1], 'INCRBY', 'i64', '#' .. ordinal(sum[2]), sum[3])
end
return outcomes
