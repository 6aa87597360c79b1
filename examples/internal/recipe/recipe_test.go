package recipe_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/examples/internal/recipe"
	"github.com/lockproxy/lockproxy/lockclient"
)

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", recipe.DefaultAddr},
		{nil, "10.0.0.1:6380", "10.0.0.1:6380"},
		{[]string{"-addr", "unix:/run/lockproxy.sock"}, "10.0.0.1:6380", "unix:/run/lockproxy.sock"},
	} {
		var got string
		err := recipe.Run(t.Context(), "r", tc.args, func(string) string { return tc.env }, io.Discard, io.Discard,
			func(_ context.Context, addr string, _ io.Writer) error { got = addr; return nil })
		if err != nil || got != tc.want {
			t.Errorf("args %q env %q: addr %q, %v; want %q", tc.args, tc.env, got, err, tc.want)
		}
	}
}

// -embedded runs the recipe against an in-process lockproxy.
func TestEmbedded(t *testing.T) {
	var out bytes.Buffer
	err := recipe.Run(t.Context(), "r", []string{"-embedded"}, func(string) string { return "" }, &out, io.Discard,
		func(ctx context.Context, addr string, _ io.Writer) error {
			c, err := lockclient.Dial(ctx, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.WithLock(ctx, "x", func(context.Context) error { return nil })
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "in-process lockproxy") {
		t.Fatalf("output %q", out.String())
	}
}

func TestBadFlag(t *testing.T) {
	err := recipe.Run(t.Context(), "r", []string{"-nope"}, func(string) string { return "" }, io.Discard, io.Discard,
		func(context.Context, string, io.Writer) error { t.Error("ran"); return nil })
	if err == nil {
		t.Fatal("a bad flag was accepted")
	}
}
