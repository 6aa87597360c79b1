// Package respclient is the client side of RESP2 and RESP3 for lockproxy's
// tests and tools: it encodes and reads requests and replies, and runs a
// client connection. lockclient, the product client, keeps its own.
package respclient

import (
	"strconv"
	"strings"
)

// Value is one RESP2 or RESP3 frame.
type Value struct {
	// Kind is the frame's type byte: '+', '-', ':', '$', '*', '_', ',',
	// '#', '(', '=', '~', '%' or '>'. A blob error ('!') reads as '-', so
	// that one test finds every error.
	Kind byte
	// Str holds simple and bulk strings, errors, doubles, big numbers and
	// verbatim strings (with their "txt:" prefix); "t" or "f" for booleans.
	Str string
	// Num holds integers, and booleans as 1 or 0.
	Num int64
	// Elems holds an array's, set's or push's elements, and a map's keys
	// and values in turn.
	Elems []Value
	// Null is set for '_' and for RESP2's $-1 and *-1.
	Null bool
}

// IsErr reports an error reply.
func (v Value) IsErr() bool { return v.Kind == '-' }

// String is the frame on one line, "(nil)" for a null: "$token", ":1",
// "-ERR …", "%[$held :1 …]". faults' client processes print it and their
// parent reads it back, so it changes only with them.
func (v Value) String() string {
	switch {
	case v.Null:
		return "(nil)"
	case v.Kind == ':':
		return ":" + strconv.FormatInt(v.Num, 10)
	case len(v.Elems) > 0 || isAggregate(v.Kind):
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = e.String()
		}
		return string(v.Kind) + "[" + strings.Join(parts, " ") + "]"
	}
	return string(v.Kind) + v.Str
}

func isAggregate(kind byte) bool {
	return kind == '*' || kind == '%' || kind == '>' || kind == '~'
}
