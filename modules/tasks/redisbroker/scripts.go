package redisbroker

import "github.com/redis/go-redis/v9"

// The scripts change the stream, the delayed set and the sent markers
// together, so that no crash between two commands can lose an item or
// deliver it twice. Every key of one broker shares a hash tag, so they
// work on a Redis Cluster too.

// handoff adds work items that more than one sender may send: a new
// job's enqueued item, which both its enqueuer and the relay send, and
// the items a rebuilt queue gets back. Of an enqueuer and the relay,
// whichever comes first adds the item and leaves a marker; whichever
// comes second finds the marker, deletes it and adds nothing. So a marker
// lives only between the two sends (milliseconds); its expiry only
// reclaims the markers of items whose second sender never comes (an
// enqueuer that crashed, or gave up on Redis). Marker values:
//
//	e  added by its enqueuer; the relay deletes it
//	r  added by the relay; the enqueuer deletes it
//	f  not added by its enqueuer, which found the stream full and left
//	   it to the relay; the relay deletes it once it adds the item
//	s  added by a rebuild while its enqueuer or the relay may still come,
//	   or added while a rebuild runs; they add nothing, and the relay
//	   deletes it once the enqueuer can no longer come
//
// Apart from the markers, every item in Redis (waiting, delayed or held
// by a worker) has a queued trace, set when it is added and deleted when
// its entry is acked: no sender adds an item whose trace is there. A
// sender may send an item again after a send that went through (its
// reply lost, or its process killed before it confirmed the item to the
// log), and a worker's attempt records its start only at its first
// heartbeat, so a second copy could start the same attempt beside the
// first. Its expiry only reclaims a trace that outlived its entry.
//
// While a rebuild runs (its flag is set), no marker is deleted: the
// rebuild, which reads what the stream holds and then what the log says
// is waiting, must see that an item was sent meanwhile even if both of
// its senders are done and a worker already took it. The markers of that
// time expire instead.
//
// KEYS: stream, delayed set, rebuild flag, then per item its sent marker
// and its queued trace. ARGV: max stream length, marker ttl (s), sender,
// trace ttl (s), then per item, in the order of the keys, its due time
// (unix ms; 0 = now) and the item.
// The sender is "e" for the enqueuer, "r" for the relay that the enqueuer
// may still follow, "o" for the relay otherwise, "s" for a rebuild that
// they may still follow, "n" for a rebuild that they will not. An item
// due later goes to the delayed set, where the stream's bound does not
// apply. Returns, per item: 1 added, 0 added before, -1 not added (the
// stream is full).
var handoff = redis.NewScript(`
local maxlen, ttl, sender, tracettl = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local keep = redis.call('EXISTS', KEYS[3]) == 1
local len = -1
local res = {}
for k = 1, (#KEYS - 3) / 2 do
  local marker, trace = KEYS[2 + 2 * k], KEYS[3 + 2 * k]
  local due, item = tonumber(ARGV[3 + 2 * k]), ARGV[4 + 2 * k]
  local m = redis.call('GET', marker)
  local r
  if m and (m ~= 'f' or sender == 'e') then
    if keep then
      -- a rebuild runs: the marker stays until it expires
    elseif (m == 'e' and (sender == 'r' or sender == 'o')) or (m == 'r' and sender == 'e') or (m == 's' and sender == 'o') then
      redis.call('DEL', marker)
    end
    r = 0
  elseif redis.call('EXISTS', trace) == 1 then
    -- in Redis already: sent again after a send that went through
    r = 0
  elseif due > 0 then
    redis.call('ZADD', KEYS[2], due, item)
    r = 1
  else
    if len < 0 then len = redis.call('XLEN', KEYS[1]) end
    if len >= maxlen then
      r = -1
    else
      redis.call('XADD', KEYS[1], '*', 'item', item)
      len = len + 1
      r = 1
    end
  end
  if r == 1 then
    redis.call('SET', trace, '1', 'EX', tracettl)
  end
  if r == 1 and sender == 'e' then
    redis.call('SET', marker, 'e', 'EX', ttl)
  elseif r == -1 and sender == 'e' then
    redis.call('SET', marker, 'f', 'EX', ttl)
  elseif r == 1 and sender == 'r' and not m then
    redis.call('SET', marker, 'r', 'EX', ttl)
  elseif r == 1 and (sender == 's' or (m and (sender == 'n' or keep))) then
    redis.call('SET', marker, 's', 'EX', ttl)
  elseif r == 1 and m then
    redis.call('DEL', marker)
  end
  res[#res + 1] = r
end
return res
`)

// unmark removes enqueuers' markers of items a relay settled without
// this script's help (its own process's enqueuer added them), unless a
// rebuild runs, when markers must stay until they expire.
// KEYS: rebuild flag, then the markers.
var unmark = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == 'e' then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`)

// add adds a work item that only the relay sends (a retry, a retry by
// hand): to the stream, or to the delayed set if it is not due yet,
// unless its queued trace says it is in Redis already (see handoff).
// KEYS: stream, delayed set, the item's queued trace. ARGV: item, due
// (unix ms; 0 = now), max stream length, trace ttl (s). Returns 1 when
// added, 0 when in Redis already, -1 when the stream is full.
var add = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
  redis.call('XADD', KEYS[1], '*', 'item', ARGV[1])
end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
return 1
`)

// promote moves delayed items that are due onto the stream, and notes
// in the last-ask key, by Redis's clock, that a worker is asking for
// work: workers run it before their reads, at least once a poll, and
// Redis 7.0 keeps no trace of a read that finds nothing.
// KEYS: stream, delayed set, last ask. ARGV: now (unix ms), most to move.
// Returns {moved, next due (unix ms) or -1}.
var promote = redis.NewScript(`
local t = redis.call('TIME')
redis.call('SET', KEYS[3], t[1] * 1000 + math.floor(t[2] / 1000))
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, item in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'item', item)
  redis.call('ZREM', KEYS[2], item)
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, tonumber(nxt[2])}
`)

// owned is the start of the scripts that act on one delivery: they act
// only while the entry is still pending with this consumer, so a worker
// that lost its lease cannot touch the entry another worker now holds.
// KEYS[1]: stream. ARGV[1]: group, ARGV[2]: entry id, ARGV[3]: consumer.
const owned = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
`

// extend resets the entry's idle time, renewing the lease.
var extend = redis.NewScript(owned + `
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
`)

// ack removes entries for good, those still held by this consumer: acked
// and deleted, so that the stream holds only work not yet done, with
// their queued traces (see handoff). It takes several, so that the acks
// of one worker's jobs that end together cost one round trip.
// KEYS[1]: stream, then each entry's queued trace. ARGV[1]: group,
// ARGV[2]: consumer, then the entry ids, in the order of the traces.
// Returns, per entry: 1 removed, 0 not held.
var ack = redis.NewScript(`
local res, held, traces = {}, {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then
    res[#res + 1] = 0
  else
    res[#res + 1] = 1
    held[#held + 1] = ARGV[i]
    traces[#traces + 1] = KEYS[i - 1]
  end
end
if #held > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(held))
  redis.call('XDEL', KEYS[1], unpack(held))
  redis.call('DEL', unpack(traces))
end
return res
`)

// requeue removes the entry and adds its item again: at the stream's end
// for any worker to take at once, or to the delayed set until ARGV[5].
// KEYS: stream, delayed set. ARGV[4]: item, ARGV[5]: due (unix ms; 0 = now).
var requeue = redis.NewScript(owned + `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
else
  redis.call('XADD', KEYS[1], '*', 'item', ARGV[4])
end
return 1
`)
