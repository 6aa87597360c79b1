package commands

// doc is a command's COMMAND DOCS entry; redis-cli builds its hints from it.
type doc struct {
	summary    string
	since      string
	group      string
	complexity string
	args       []arg
}

// arg is one argument in COMMAND DOCS form.
type arg struct {
	name     string
	typ      string // string, integer, pure-token, block, oneof
	token    string
	optional bool
	args     []arg
}

func opt(a arg) arg { a.optional = true; return a }

// commands is the table, in the order COMMAND lists it.
func (h *Handler) commands() []*command {
	const since = "1.0.0"
	name := arg{name: "name", typ: "string"}
	ttl := arg{name: "ttl", typ: "integer"}
	token := arg{name: "token", typ: "string"}
	return []*command{
		{name: "lock.acquire", arity: -2, flags: []string{"write"}, upstream: true, run: h.acquire, doc: doc{
			summary: "Acquires a lock and returns its token, or null when someone else holds it.", since: since, group: "lock",
			complexity: "O(1), plus the wait", args: []arg{name, opt(ttl),
				opt(arg{name: "ms", typ: "integer", token: "WAIT"}),
				opt(arg{name: "detached", typ: "pure-token", token: "DETACHED"}),
				opt(arg{name: "ms", typ: "integer", token: "MAXHOLD"}),
				opt(arg{name: "kind", typ: "oneof", args: []arg{
					{name: "n", typ: "integer", token: "LIMIT"},
					{name: "shared", typ: "pure-token", token: "SHARED"},
				}}),
			}}},
		{name: "lock.renew", arity: -3, flags: []string{"write", "fast"}, upstream: true, run: h.renew, doc: doc{
			summary: "Sets a held lock's ttl. Returns 1, or 0 when the caller does not hold it.", since: since, group: "lock",
			complexity: "O(1)", args: []arg{name, ttl, opt(token)}}},
		{name: "lock.release", arity: -2, flags: []string{"write", "fast"}, upstream: true, run: h.release, doc: doc{
			summary: "Releases a held lock. Returns 1, or 0 when the caller did not hold it.", since: since, group: "lock",
			complexity: "O(1)", args: []arg{name, opt(token)}}},
		{name: "lock.info", arity: 2, flags: []string{"readonly", "fast"}, upstream: true, run: h.info, doc: doc{
			summary: "Describes a lock: held, fence, ttl, owner, mode, waiters, kind, holders, limit.", since: since, group: "lock",
			complexity: "O(1)", args: []arg{name}}},
		{name: "lock.forcerelease", arity: 2, flags: []string{"write", "admin"}, upstream: true, run: h.forceRelease, doc: doc{
			summary: "Revokes every holder of a lock, each told first. Admin only. Returns how many holders were revoked.", since: since,
			group: "lock", complexity: "O(N) for N holders", args: []arg{name}}},
		{name: "lock.list", arity: -1, flags: []string{"readonly", "admin"}, upstream: true, run: h.lockList, doc: doc{
			summary: "Lists the locks held or waited for through every sidecar, with their holders and waiters. Admin only.", since: since,
			group: "lock", complexity: "O(N) for the keys scanned, at most 100,000, and O(COUNT) upstream calls", args: []arg{
				opt(arg{name: "pattern", typ: "pattern", token: "MATCH"}),
				opt(arg{name: "count", typ: "integer", token: "COUNT"}),
			}}},
		{name: "lock.held", arity: 1, flags: []string{"readonly", "fast"}, run: h.held, doc: doc{
			summary: "Lists the locks this connection holds.", since: since, group: "lock", complexity: "O(N) for N locks held"}},

		{name: "ping", arity: -1, flags: []string{"fast"}, run: h.ping, doc: doc{
			summary: "Returns the server's liveliness response.", since: since, group: "connection", complexity: "O(1)",
			args: []arg{opt(arg{name: "message", typ: "string"})}}},
		{name: "echo", arity: 2, flags: []string{"fast"}, run: h.echo, doc: doc{
			summary: "Returns the given string.", since: since, group: "connection", complexity: "O(1)",
			args: []arg{{name: "message", typ: "string"}}}},
		{name: "hello", arity: -1, flags: []string{"noauth", "fast"}, noAuth: true, run: h.hello, doc: doc{
			summary: "Handshakes with the server, optionally switching protocol, authenticating and naming the connection.", since: since,
			group: "connection", complexity: "O(1)", args: []arg{opt(arg{name: "arguments", typ: "block", args: []arg{
				{name: "protover", typ: "integer"},
				opt(arg{name: "auth", typ: "block", token: "AUTH", args: []arg{{name: "username", typ: "string"}, {name: "password", typ: "string"}}}),
				opt(arg{name: "clientname", typ: "string", token: "SETNAME"}),
			}})}}},
		{name: "auth", arity: -2, flags: []string{"noauth", "fast"}, noAuth: true, run: h.auth, doc: doc{
			summary: "Authenticates the connection.", since: since, group: "connection", complexity: "O(1)",
			args: []arg{opt(arg{name: "username", typ: "string"}), {name: "password", typ: "string"}}}},
		{name: "select", arity: 2, flags: []string{"fast"}, run: h.selectDB, doc: doc{
			summary: "Accepts database 0, the only one, so that clients configured with a db connect.", since: since,
			group: "connection", complexity: "O(1)", args: []arg{{name: "index", typ: "integer"}}}},
		{name: "client", arity: -2, doc: doc{summary: "A container for client connection commands.", since: since,
			group: "connection", complexity: "Depends on subcommand."}, subs: h.clientCommands()},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, run: h.commandInfoAll, doc: doc{
			summary: "Returns detailed information about all commands.", since: since, group: "server",
			complexity: "O(N) where N is the total number of commands"}, subs: h.commandCommands()},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, run: h.infoCmd, doc: doc{
			summary: "Returns information and statistics about the server, with a Locks section.", since: since,
			group: "server", complexity: "O(1)", args: []arg{opt(arg{name: "section", typ: "string"})}}},
		{name: "quit", arity: -1, flags: []string{"noauth", "fast"}, noAuth: true, run: h.quit, doc: doc{
			summary: "Closes the connection.", since: since, group: "connection", complexity: "O(1)"}},
		{name: "reset", arity: 1, flags: []string{"noauth", "fast"}, noAuth: true, upstream: true, run: h.reset, doc: doc{
			summary: "Resets the connection: releases its owned locks, forgets detached ones, returns to RESP2.", since: since,
			group: "connection", complexity: "O(N) for N locks held"}},
	}
}

func (h *Handler) clientCommands() []*command {
	const since = "1.0.0"
	return []*command{
		{name: "setname", arity: 3, flags: []string{"noscript", "loading", "stale"}, run: h.clientSetName, doc: doc{
			summary: "Sets the connection name.", since: since, group: "connection", complexity: "O(1)",
			args: []arg{{name: "connection-name", typ: "string"}}}},
		{name: "getname", arity: 2, flags: []string{"noscript", "loading", "stale"}, run: h.clientGetName, doc: doc{
			summary: "Returns the name of the connection.", since: since, group: "connection", complexity: "O(1)"}},
		{name: "id", arity: 2, flags: []string{"noscript", "loading", "stale"}, run: h.clientID, doc: doc{
			summary: "Returns the unique client ID of the connection.", since: since, group: "connection", complexity: "O(1)"}},
		{name: "setinfo", arity: 4, flags: []string{"noscript", "loading", "stale"}, run: h.clientSetInfo, doc: doc{
			summary: "Sets information specific to the client or connection.", since: since, group: "connection", complexity: "O(1)",
			args: []arg{{name: "attr", typ: "oneof", args: []arg{
				{name: "libname", typ: "string", token: "LIB-NAME"}, {name: "libver", typ: "string", token: "LIB-VER"}}}}}},
		{name: "info", arity: 2, flags: []string{"noscript", "loading", "stale"}, run: h.clientInfo, doc: doc{
			summary: "Returns information about the connection.", since: since, group: "connection", complexity: "O(1)"}},
		{name: "tracking", arity: -3, flags: []string{"noscript", "loading", "stale"}, run: h.clientTracking, doc: doc{
			summary: "Accepted for client-side caching; lockproxy has no keys, so nothing is ever invalidated.", since: since,
			group: "connection", complexity: "O(1)", args: []arg{{name: "status", typ: "oneof", args: []arg{
				{name: "on", typ: "pure-token", token: "ON"}, {name: "off", typ: "pure-token", token: "OFF"}}}}}},
		{name: "caching", arity: 3, flags: []string{"noscript", "loading", "stale"}, run: h.clientCaching, doc: doc{
			summary: "Accepted with CLIENT TRACKING.", since: since, group: "connection", complexity: "O(1)",
			args: []arg{{name: "mode", typ: "oneof", args: []arg{
				{name: "yes", typ: "pure-token", token: "YES"}, {name: "no", typ: "pure-token", token: "NO"}}}}}},
		{name: "help", arity: 2, flags: []string{"loading", "stale"}, run: h.clientHelp, doc: doc{
			summary: "Returns helpful text about the different subcommands.", since: since, group: "connection", complexity: "O(1)"}},
	}
}

func (h *Handler) commandCommands() []*command {
	const since = "1.0.0"
	names := arg{name: "command-name", typ: "string", optional: true}
	return []*command{
		{name: "count", arity: 2, flags: []string{"loading", "stale"}, run: h.commandCount, doc: doc{
			summary: "Returns a count of commands.", since: since, group: "server", complexity: "O(1)"}},
		{name: "docs", arity: -2, flags: []string{"loading", "stale"}, run: h.commandDocs, doc: doc{
			summary: "Returns documentary information about one, multiple or all commands.", since: since, group: "server",
			complexity: "O(N) where N is the number of commands to look up", args: []arg{names}}},
		{name: "info", arity: -2, flags: []string{"loading", "stale"}, run: h.commandInfo, doc: doc{
			summary: "Returns information about one, multiple or all commands.", since: since, group: "server",
			complexity: "O(N) where N is the number of commands to look up", args: []arg{names}}},
		{name: "list", arity: -2, flags: []string{"loading", "stale"}, run: h.commandList, doc: doc{
			summary: "Returns a list of command names.", since: since, group: "server", complexity: "O(N) where N is the total number of commands"}},
		{name: "help", arity: 2, flags: []string{"loading", "stale"}, run: h.commandHelp, doc: doc{
			summary: "Returns helpful text about the different subcommands.", since: since, group: "server", complexity: "O(1)"}},
	}
}
