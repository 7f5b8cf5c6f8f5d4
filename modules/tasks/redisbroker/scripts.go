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
// While a rebuild runs (its flag is set), no marker is deleted: the
// rebuild, which reads what the stream holds and then what the log says
// is waiting, must see that an item was sent meanwhile even if both of
// its senders are done and a worker already took it. The markers of that
// time expire instead.
//
// KEYS: stream, delayed set, rebuild flag, then one sent marker per item.
// ARGV: max stream length, marker ttl (s), sender, then for each item, in
// the order of the markers, its due time (unix ms; 0 = now) and the item.
// The sender is "e" for the enqueuer, "r" for the relay that the enqueuer
// may still follow, "o" for the relay otherwise, "s" for a rebuild that
// they may still follow, "n" for a rebuild that they will not. An item
// due later goes to the delayed set, where the stream's bound does not
// apply. Returns, per item: 1 added, 0 added before, -1 not added (the
// stream is full).
var handoff = redis.NewScript(`
local maxlen, ttl, sender = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local keep = redis.call('EXISTS', KEYS[3]) == 1
local len = -1
local res = {}
for i = 4, #KEYS do
  local marker, due, item = KEYS[i], tonumber(ARGV[2 * i - 4]), ARGV[2 * i - 3]
  local m = redis.call('GET', marker)
  local r
  if m and (m ~= 'f' or sender == 'e') then
    if keep then
      -- a rebuild runs: the marker stays until it expires
    elseif (m == 'e' and (sender == 'r' or sender == 'o')) or (m == 'r' and sender == 'e') or (m == 's' and sender == 'o') then
      redis.call('DEL', marker)
    end
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
// hand): to the stream, or to the delayed set if it is not due yet.
// KEYS: stream, delayed set. ARGV: item, due (unix ms; 0 = now), max
// stream length. Returns 1 when added, -1 when the stream is full.
var add = redis.NewScript(`
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 1
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'item', ARGV[1])
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
// and deleted, so that the stream holds only work not yet done. It takes
// several, so that the acks of one worker's jobs that end together cost
// one round trip.
// KEYS[1]: stream. ARGV[1]: group, ARGV[2]: consumer, then the entry ids.
// Returns, per entry: 1 removed, 0 not held.
var ack = redis.NewScript(`
local res, held = {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then
    res[#res + 1] = 0
  else
    res[#res + 1] = 1
    held[#held + 1] = ARGV[i]
  end
end
if #held > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(held))
  redis.call('XDEL', KEYS[1], unpack(held))
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
