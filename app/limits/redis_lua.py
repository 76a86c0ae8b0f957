"""The two Lua scripts behind :class:`~app.limits.redis.RedisStore` (kept apart from the Python).

Redis runs a script atomically: no other command, from any client, runs between its first and
its last ``redis.call``. So each script is the whole read-check-write of one admission (or of a
batch of settles), exactly like one ``BEGIN IMMEDIATE`` transaction of the SQLite store.

Numbers: Redis' Lua 5.1 has only doubles. Instants (µs since the epoch, ~1.8e15), token counts
and bucket indexes are integers below 2^53, so exact; every value is written back with
``%.0f`` (``tostring`` would give ``1.8e+15``). The one division, a token bucket index
``floor(now / bucket_µs)``, is exact too: the true quotient is at least 1/bucket_µs below the
next integer, far more than a double's rounding step at ~1.8e9.

Time: the caller's ``now`` (µs) when given, else the server's ``TIME`` — one clock for every
host, read inside the atomic step, so admissions are ordered by the instant they are judged at.

Money: integer pico-dollars (10^-12 USD) kept as decimal strings. A double cannot hold 10^-12
steps beyond ~$9000, so the scripts split each amount into ``{hi, lo}``: whole dollars and the
pico-dollar fraction (0 <= lo < 10^12), each exact, added with a carry and compared field by
field — exact up to 2^53 dollars.
"""

MONEY = r"""
local S = 1e12
local function norm(hi, lo)
  local c = math.floor(lo / S)
  return {hi + c + 0, lo - c * S + 0}
end
local function parse(s)
  if not s or s == '' then return {0, 0} end
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local n = #s
  local hi, lo = 0, tonumber(s)
  if n > 12 then
    hi = tonumber(string.sub(s, 1, n - 12))
    lo = tonumber(string.sub(s, n - 11))
  end
  if neg then return norm(-hi, -lo) end
  return {hi, lo}
end
local function add(a, b) return norm(a[1] + b[1], a[2] + b[2]) end
local function neg(a) return norm(-a[1], -a[2]) end
local function sub(a, b) return add(a, neg(b)) end
local function cmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  return 0
end
local function fmt(a)
  if a[1] < 0 then return '-' .. fmt(neg(a)) end
  if a[1] == 0 then return string.format('%.0f', a[2]) end
  return string.format('%.0f', a[1]) .. string.format('%012.0f', a[2])
end
local function num(x) return string.format('%.0f', x) end
local function clock(arg)
  -- the caller's instant (µs), or the server's when the caller sends none
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function bucket_of(now, bucket_s)
  -- exact: now < 2^53 and the quotient is never within rounding of the next integer
  return math.floor(now / (bucket_s * 1000000))
end
local function leaves_in_ms(bucket, window_s, bucket_s, now)
  return ((bucket + window_s / bucket_s) * bucket_s * 1000000 - now) / 1000
end
-- Token windows: one hash per subject and window, bucket index -> tokens, plus three fields:
-- 's' the sum of the buckets kept, 'lo' (every bucket below it has been dropped) and 'hi' (the
-- newest bucket written). An admission drops the buckets that left the window (walking the
-- indexes lo..floor, or one HGETALL when that is shorter), so the window's sum is 's' and the
-- usual cost is O(1), not O(buckets): a full tpd window holds 1440 of them.
local META = 3
local function tok_read(key, floor, write)
  -- {used, newest bucket with tokens > 0 or nil, lo, hi, n buckets} for the window > floor
  local m = redis.call('HMGET', key, 's', 'lo', 'hi')
  if not m[1] then return {0, nil, nil, nil, 0} end
  local s, lo, hi = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
  local n = redis.call('HLEN', key) - META
  if floor >= lo then
    local gone = {}
    if floor - lo + 1 <= n then
      for b = lo, floor do
        local v = redis.call('HGET', key, num(b))
        if v then s = s - tonumber(v); gone[#gone + 1] = num(b) end
      end
    else
      local flat = redis.call('HGETALL', key)
      for k = 1, #flat, 2 do
        local b = tonumber(flat[k])
        if b and b <= floor then s = s - tonumber(flat[k + 1]); gone[#gone + 1] = flat[k] end
      end
    end
    if write then
      if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
      redis.call('HSET', key, 's', num(s), 'lo', num(floor + 1))
      lo = floor + 1
    end
    n = n - #gone
  end
  local newest = nil
  if hi > floor and n > 0 then
    if hi - floor <= n then
      for b = hi, floor + 1, -1 do
        local v = redis.call('HGET', key, num(b))
        if v and tonumber(v) > 0 then newest = b; break end
      end
    else
      local flat = redis.call('HGETALL', key)
      for k = 1, #flat, 2 do
        local b = tonumber(flat[k])
        if b and b > floor and tonumber(flat[k + 1]) > 0 and (newest == nil or b > newest) then
          newest = b
        end
      end
    end
  end
  return {s, newest, lo, hi, n}
end
local function tok_rows(key, floor, hi, n, used, need_below)
  -- the oldest (bucket, tokens) of the window, up to the one whose leaving brings the window
  -- below need_below: all that core.token_wait reads
  local rows = {}
  if hi == nil or hi <= floor then return rows end
  local list = {}
  if hi - floor <= n then
    for b = floor + 1, hi do
      local v = redis.call('HGET', key, num(b))
      if v then list[#list + 1] = {b, tonumber(v)} end
    end
  else
    local flat = redis.call('HGETALL', key)
    for k = 1, #flat, 2 do
      local b = tonumber(flat[k])
      if b and b > floor then list[#list + 1] = {b, tonumber(flat[k + 1])} end
    end
    table.sort(list, function(x, y) return x[1] < y[1] end)
  end
  for _, r in ipairs(list) do
    rows[#rows + 1] = r
    used = used - r[2]
    if used < need_below then break end
  end
  return rows
end
local function tok_add(key, bucket, tokens, floor)
  -- add tokens to bucket (a new hash starts with lo = floor + 1); buckets already dropped
  -- (below lo) are out of every later window: nothing to add there
  local m = redis.call('HMGET', key, 's', 'lo', 'hi')
  local s, lo, hi = tonumber(m[1] or '0'), tonumber(m[2] or num(floor + 1)), tonumber(m[3] or '0')
  if bucket < lo then return end
  redis.call('HINCRBY', key, num(bucket), tokens)
  redis.call('HSET', key, 's', num(s + tokens), 'lo', num(lo), 'hi', num(math.max(hi, bucket)))
end
local function extend(key, ms)
  -- PEXPIRE to at least ms from now (never shortens a longer TTL set by another caller)
  ms = math.ceil(ms)
  if ms <= 0 then return end
  local cur = redis.call('PTTL', key)
  if cur < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: 1 GCRA hash, 2 tpm hash, 3 tpd hash, 4 lease zset, 5 ticket hash,
#       then per budget: its hash (spent, reserved) and its zset of held reservations.
# ARGV: 1 mode ("admit" | "state"), 2 now_us ("" = the server's TIME), 3 est,
#       4 reserve (pico), 5 strict (1/0), 6 lease_us, 7 ticket ttl ms, 8 ticket id,
#       9 key ttl slack ms,
#       rpm/rph/rpd: limit ("" = none), window_us, interval_us   (10..18)
#       tpm/tpd: limit ("" = none), window s, bucket s   (19..24)
#       25 concurrency ("" = none), 26 number of budgets,
#       per budget: amount (pico, floored), key ttl ms ("" = never), (27.., 2 each)
# Returns {verdict "ok"|"no", now_us, tat rpm, tat rph, tat rpd, tpm used, tpm newest, tpd used,
#          tpd newest, in_flight, per budget: spent, reserved, then for tpm and tpd: n, n
#          (bucket, tokens) pairs: for a window that refused the request, its oldest buckets
#          up to the one whose leaving lets a request in (what core.token_wait reads)}.
ADMIT = MONEY + r"""
local write = ARGV[1] == 'admit'
local now = clock(ARGV[2])
local nows = num(now)
local est = tonumber(ARGV[3])
local reserve = parse(ARGV[4])
local strict = ARGV[5] == '1'
local slack = tonumber(ARGV[9])
local ok = true
local out = {}

-- requests: GCRA, one TAT per window in one hash
local tats = redis.call('HMGET', KEYS[1], 'rpm', 'rph', 'rpd')
local names = {'rpm', 'rph', 'rpd'}
local new_tats = {}
local horizon = nil
for i = 1, 3 do
  local tat = tats[i] and tonumber(tats[i]) or nil
  out[#out + 1] = tat and num(tat) or ''
  if tat and (horizon == nil or tat > horizon) then horizon = tat end
  local lim = ARGV[7 + 3 * i]
  if lim ~= '' then
    lim = tonumber(lim)
    if lim <= 0 then
      ok = false
    else
      local window, interval = tonumber(ARGV[8 + 3 * i]), tonumber(ARGV[9 + 3 * i])
      local base = (tat == nil or tat < now) and now or tat
      local nt = base + interval
      if nt - window > now then ok = false else new_tats[names[i]] = nt end
    end
  end
end

-- tokens: sliding windows of buckets, one hash per window (see tok_read)
local rows = {{}, {}}
local cur, floors = {}, {}
for j = 1, 2 do
  local base = 18 + 3 * (j - 1)
  local lim = ARGV[base + 1]
  if lim == '' then
    out[#out + 1] = ''
    out[#out + 1] = ''
  else
    lim = tonumber(lim)
    local window_s, bucket_s = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
    cur[j] = bucket_of(now, bucket_s)
    local floor = cur[j] - window_s / bucket_s
    floors[j] = floor
    local st = tok_read(KEYS[1 + j], floor, write)
    local used, newest = st[1], st[2]
    if used >= lim or (strict and used + est > lim) then
      ok = false
      local need_below = strict and lim - est + 1 or lim
      if need_below > 0 then
        rows[j] = tok_rows(KEYS[1 + j], floor, st[4], st[5], used, need_below)
      end
    end
    out[#out + 1] = num(used)
    out[#out + 1] = newest and num(newest) or ''
  end
end

-- concurrency: one zset member per lease, scored by its expiry
local in_flight = redis.call('ZCOUNT', KEYS[4], '(' .. nows, '+inf')
out[#out + 1] = num(in_flight)
if ARGV[25] ~= '' and in_flight >= tonumber(ARGV[25]) then ok = false end

-- budgets: spent and reserved, minus the reservations of leases that expired (lazily)
local nb = tonumber(ARGV[26])
local views = {}
for k = 1, nb do
  local hkey, zkey = KEYS[4 + 2 * k], KEYS[5 + 2 * k]
  local row = redis.call('HMGET', hkey, 'spent', 'reserved')
  local spent, reserved = parse(row[1]), parse(row[2])
  local expired = {}
  if row[1] then
    expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', nows)
  elseif write then
    redis.call('DEL', zkey)  -- never let reservations outlive the budget row they were on
  end
  if #expired > 0 then
    for _, m in ipairs(expired) do
      reserved = sub(reserved, parse(string.match(m, ':(%-?%d+)$')))
    end
    if write then
      redis.call('ZREMRANGEBYSCORE', zkey, '-inf', nows)
      redis.call('HSET', hkey, 'reserved', fmt(reserved))
    end
  end
  local committed = add(spent, reserved)
  local amount = parse(ARGV[25 + 2 * k])
  local over
  if cmp(reserve, {0, 0}) > 0 then
    over = cmp(add(committed, reserve), amount) > 0
  else
    over = cmp(committed, amount) >= 0
  end
  if over then ok = false end
  views[k] = {spent, reserved}
  out[#out + 1] = fmt(spent)
  out[#out + 1] = fmt(reserved)
end

if not ok or not write then
  for j = 1, 2 do
    out[#out + 1] = num(#rows[j])
    for _, r in ipairs(rows[j]) do
      out[#out + 1] = num(r[1])
      out[#out + 1] = num(r[2])
    end
  end
  table.insert(out, 1, nows)
  table.insert(out, 1, ok and 'ok' or 'no')
  return out
end

-- allowed: record the request everywhere
local lease = tonumber(ARGV[6])
local expires = now + lease
local id = ARGV[8]
local wrote = false
for name, nt in pairs(new_tats) do
  redis.call('HSET', KEYS[1], name, num(nt))
  if horizon == nil or nt > horizon then horizon = nt end
  wrote = true
end
if wrote then extend(KEYS[1], (horizon - now) / 1000 + slack) end

local ticket = {'i', id, 'e', num(est), 'l', KEYS[4], 'a', fmt(reserve), 'n', num(nb)}
for j = 1, 2 do
  local base = 18 + 3 * (j - 1)
  if ARGV[base + 1] ~= '' then
    local key = KEYS[1 + j]
    if est > 0 then
      tok_add(key, cur[j], est, floors[j])
      extend(key, leaves_in_ms(cur[j], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), now)
                  + slack)
    end
    ticket[#ticket + 1] = 'k' .. j
    ticket[#ticket + 1] = key
    ticket[#ticket + 1] = 'b' .. j
    ticket[#ticket + 1] = num(cur[j])
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', nows)
redis.call('ZADD', KEYS[4], num(expires), id)
extend(KEYS[4], lease / 1000 + slack)

local held = cmp(reserve, {0, 0}) ~= 0
local member = id .. ':' .. fmt(reserve)
for k = 1, nb do
  local hkey, zkey = KEYS[4 + 2 * k], KEYS[5 + 2 * k]
  redis.call('HSET', hkey, 'spent', fmt(views[k][1]), 'reserved', fmt(add(views[k][2], reserve)))
  if held then redis.call('ZADD', zkey, num(expires), member) end
  local ttl = ARGV[26 + 2 * k]
  if ttl ~= '' then
    extend(hkey, tonumber(ttl))
    if held then extend(zkey, tonumber(ttl)) end
  end
  ticket[#ticket + 1] = 'h' .. k
  ticket[#ticket + 1] = hkey
  ticket[#ticket + 1] = 'z' .. k
  ticket[#ticket + 1] = zkey
end
redis.call('HSET', KEYS[5], unpack(ticket))
redis.call('PEXPIRE', KEYS[5], ARGV[7])
out[#out + 1] = '0'
out[#out + 1] = '0'
table.insert(out, 1, nows)
table.insert(out, 1, 'ok')
return out
"""

# KEYS: the tickets' hashes. ARGV per ticket (4 each): tokens, cost (pico, rounded up),
#       settled (1/0), now_us ("" = the server's TIME); then tpm window s, tpm bucket s,
#       tpd window s, tpd bucket s, key ttl slack ms. Returns the number of tickets found.
FINISH = MONEY + r"""
local found = 0
local tail = 4 * #KEYS
local windows = {{tonumber(ARGV[tail + 1]), tonumber(ARGV[tail + 2])},
                 {tonumber(ARGV[tail + 3]), tonumber(ARGV[tail + 4])}}
local slack = tonumber(ARGV[tail + 5])
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  if #flat > 0 then
    found = found + 1
    redis.call('DEL', KEYS[i])
    local t = {}
    for k = 1, #flat, 2 do t[flat[k]] = flat[k + 1] end
    local base = 4 * (i - 1)
    local tokens = tonumber(ARGV[base + 1])
    local cost = parse(ARGV[base + 2])
    local settled = ARGV[base + 3] == '1'
    local now = clock(ARGV[base + 4])
    local est = tonumber(t['e'])
    redis.call('ZREM', t['l'], t['i'])
    for j = 1, 2 do
      local key = t['k' .. j]
      if key then
        local old = t['b' .. j]
        if est > 0 and redis.call('HEXISTS', key, old) == 1 then
          redis.call('HINCRBY', key, old, -est)
          redis.call('HINCRBY', key, 's', -est)
        end
        if tokens > 0 then
          local window_s, bucket_s = windows[j][1], windows[j][2]
          local b = bucket_of(now, bucket_s)
          tok_add(key, b, tokens, b - window_s / bucket_s)
          extend(key, leaves_in_ms(b, window_s, bucket_s, now) + slack)
        end
      end
    end
    local amount = parse(t['a'])
    local held_any = cmp(amount, {0, 0}) ~= 0
    local member = t['i'] .. ':' .. t['a']
    for k = 1, tonumber(t['n']) do
      local hkey = t['h' .. k]
      local held = held_any and redis.call('ZREM', t['z' .. k], member) == 1
      if (held or settled) and redis.call('EXISTS', hkey) == 1 then
        local row = redis.call('HMGET', hkey, 'spent', 'reserved')
        local spent, reserved = parse(row[1]), parse(row[2])
        if held then reserved = sub(reserved, amount) end
        if settled then spent = add(spent, cost) end
        redis.call('HSET', hkey, 'spent', fmt(spent), 'reserved', fmt(reserved))
      end
    end
  end
end
return found
"""
