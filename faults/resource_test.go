//go:build linux

package faults

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/safety"
)

// fencedWrite is the protected resource's one rule, as a database would
// apply it: take a write only with a fence above every fence taken before,
// atomically with the write itself (here, appending to a log). Fences are
// compared as decimal strings, since they can exceed Lua's exact integers.
//
// KEYS[1] the highest fence taken, KEYS[2] the log; ARGV[1] fence, ARGV[2]
// the writer's token.
const fencedWrite = `
local function greater(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local top = redis.call('GET', KEYS[1])
if top and not greater(ARGV[1], top) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[2])
return 1
`

// resource is a fenced resource on a redis-server of its own, apart from
// the upstream, so that faults injected into the upstream (a restart that
// loses data, eviction) do not touch it: it stands for the database the
// locks protect.
type resource struct {
	rdb    *redis.Client
	script *redis.Script
}

func newResource(rdb *redis.Client) *resource {
	return &resource{rdb: rdb, script: redis.NewScript(fencedWrite)}
}

func resourceKeys(name string) []string {
	return []string{"fenced:{" + name + "}", "fenced:{" + name + "}:log"}
}

// write tries a write with fence by the holder of token; false: refused.
func (r *resource) write(ctx context.Context, name string, fence int64, token string) (bool, error) {
	n, err := r.script.Run(ctx, r.rdb, resourceKeys(name), strconv.FormatInt(fence, 10), token).Int()
	return n == 1, err
}

// log returns the writes the resource took for name, in order.
func (r *resource) log(ctx context.Context, name string) ([]safety.Applied, error) {
	lines, err := r.rdb.LRange(ctx, resourceKeys(name)[1], 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]safety.Applied, 0, len(lines))
	for _, l := range lines {
		f, tok, _ := strings.Cut(l, " ")
		fence, _ := strconv.ParseInt(f, 10, 64)
		out = append(out, safety.Applied{Fence: fence, Token: tok})
	}
	return out, nil
}
