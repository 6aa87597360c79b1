package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/lockproxy/lockproxy/internal/respclient"
)

// client is a thin RESP2 connection: the load tool times microsecond gaps,
// so both lockproxy and the baseline go through the same one rather than a
// library's per-command overhead.
type client struct{ *respclient.Conn }

var errServer = errors.New("server error")

func dial(addr string) (*client, error) {
	c, err := respclient.Dial(addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{c}, nil
}

// do sends one command and reads its reply; an error reply is an error,
// as every caller here would make it.
func (c *client) do(args ...string) (respclient.Value, error) {
	v, err := c.Do(args...)
	if err == nil && v.IsErr() {
		return respclient.Value{}, fmt.Errorf("%w: %s", errServer, v.Str)
	}
	return v, err
}
