// Package compat is lockproxy's client compatibility suite.
//
// Its tests build the real lockproxy binary, run it as a child process (on
// the embedded store, and on a throwaway redis-server upstream), and drive
// one lock scenario through every common Redis client with that client's
// default settings: redis-cli, go-redis v9 (RESP2 and RESP3), rueidis,
// redis-py, ioredis and node-redis. Between each client and the sidecar sits
// a recorder that pairs every command with its reply, so that a handshake
// command the sidecar answers with an error fails the suite even when the
// client shrugs it off.
//
// The scenarios of the clients that are not Go live beside this file
// (cli/, python/, node/) and print one "ok <step>" or "FAIL <step>: why"
// line per step; docs/clients.md quotes regions of them and of the Go tests,
// and TestDocSnippets keeps the two identical (go test ./compat -run
// TestDocSnippets -update rewrites the doc).
//
// Tools it needs: redis-server and redis-cli, /usr/bin/python3 with Debian's
// python3-redis, Node.js with compat/node/node_modules; `make deps` installs
// them. A missing tool fails the test with the command that installs it.
package compat
