package redisbroker

import "github.com/redis/go-redis/v9"

// The scripts change the stream, the delayed set and the sent markers
// together, so that no crash between two commands can lose an item or
// deliver it twice. Every key of one broker shares a hash tag, so they
// work on a Redis Cluster too.

// forward adds a work item unless it was sent before.
// KEYS: stream, delayed set, sent marker.
// ARGV: item, due (unix ms; 0 = now), marker ttl (s), max stream length.
// Returns 1 when added, 0 when sent before, -1 when the stream is full.
var forward = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
  redis.call('XADD', KEYS[1], '*', 'item', ARGV[1])
end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
return 1
`)

// promote moves delayed items that are due onto the stream.
// KEYS: stream, delayed set. ARGV: now (unix ms), most to move.
// Returns {moved, next due (unix ms) or -1}.
var promote = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, item in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'item', item)
  redis.call('ZREM', KEYS[2], item)
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, tonumber(nxt[2])}
`)

// owned is the start of the scripts that act on a delivery: they act
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

// ack removes the entry for good: acked and deleted, so that the stream
// holds only work not yet done.
var ack = redis.NewScript(owned + `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
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
