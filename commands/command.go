package commands

import (
	"strings"

	"github.com/lockproxy/lockproxy/resp"
)

// COMMAND: every command's info.
func (h *Handler) commandInfoAll(c *resp.Conn, _ *client, _ [][]byte) {
	c.WriteArray(len(h.list))
	for _, cmd := range h.list {
		writeCommandInfo(c, cmd)
	}
}

// COMMAND COUNT
func (h *Handler) commandCount(c *resp.Conn, _ *client, _ [][]byte) { c.WriteInt(int64(len(h.list))) }

// COMMAND LIST
func (h *Handler) commandList(c *resp.Conn, _ *client, args [][]byte) {
	if len(args) > 2 {
		c.WriteError(string(errSyntax)) // FILTERBY: nothing to filter here
		return
	}
	c.WriteArray(len(h.list))
	for _, cmd := range h.list {
		c.WriteBulkString(cmd.name)
	}
}

// lookup finds a command by "name" or "parent|sub".
func (h *Handler) lookup(name string) *command {
	parent, sub, isSub := strings.Cut(lowerASCII(name), "|")
	cmd := h.table[parent]
	if cmd == nil || !isSub {
		return cmd
	}
	return cmd.sub(sub)
}

// COMMAND INFO [name ...]
func (h *Handler) commandInfo(c *resp.Conn, _ *client, args [][]byte) {
	if len(args) == 2 {
		h.commandInfoAll(c, nil, nil)
		return
	}
	c.WriteArray(len(args) - 2)
	for _, a := range args[2:] {
		if cmd := h.lookup(string(a)); cmd != nil {
			writeCommandInfo(c, cmd)
		} else {
			c.WriteNull()
		}
	}
}

// writeCommandInfo writes Redis 7's ten-field command info. Lock names are
// not Redis keys, so no key positions are declared.
func writeCommandInfo(c *resp.Conn, cmd *command) {
	c.WriteArray(10)
	c.WriteBulkString(cmd.fullName())
	c.WriteInt(int64(cmd.arity))
	c.WriteArray(len(cmd.flags))
	for _, f := range cmd.flags {
		c.WriteSimple(f)
	}
	c.WriteInt(0)
	c.WriteInt(0)
	c.WriteInt(0)
	c.WriteArray(0) // ACL categories
	c.WriteArray(0) // tips
	c.WriteArray(0) // key specs
	c.WriteArray(len(cmd.subs))
	for _, s := range cmd.subs {
		writeCommandInfo(c, s)
	}
}

// COMMAND DOCS [name ...]
func (h *Handler) commandDocs(c *resp.Conn, _ *client, args [][]byte) {
	var cmds []*command
	if len(args) == 2 {
		cmds = h.list
	} else {
		for _, a := range args[2:] {
			if cmd := h.lookup(string(a)); cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
	}
	c.WriteMap(len(cmds))
	for _, cmd := range cmds {
		c.WriteBulkString(cmd.fullName())
		writeDoc(c, cmd)
	}
}

func writeDoc(c *resp.Conn, cmd *command) {
	d := cmd.doc
	n := 4
	if len(d.args) > 0 {
		n++
	}
	if len(cmd.subs) > 0 {
		n++
	}
	c.WriteMap(n)
	c.WriteBulkString("summary")
	c.WriteBulkString(d.summary)
	c.WriteBulkString("since")
	c.WriteBulkString(d.since)
	c.WriteBulkString("group")
	c.WriteBulkString(d.group)
	c.WriteBulkString("complexity")
	c.WriteBulkString(d.complexity)
	if len(d.args) > 0 {
		c.WriteBulkString("arguments")
		writeArgs(c, d.args)
	}
	if len(cmd.subs) > 0 {
		c.WriteBulkString("subcommands")
		c.WriteMap(len(cmd.subs))
		for _, s := range cmd.subs {
			c.WriteBulkString(s.fullName())
			writeDoc(c, s)
		}
	}
}

func writeArgs(c *resp.Conn, args []arg) {
	c.WriteArray(len(args))
	for _, a := range args {
		n := 2
		if a.token != "" {
			n++
		}
		if a.optional {
			n++
		}
		if len(a.args) > 0 {
			n++
		}
		c.WriteMap(n)
		c.WriteBulkString("name")
		c.WriteBulkString(a.name)
		c.WriteBulkString("type")
		c.WriteBulkString(a.typ)
		if a.token != "" {
			c.WriteBulkString("token")
			c.WriteBulkString(a.token)
		}
		if a.optional {
			c.WriteBulkString("flags")
			c.WriteArray(1)
			c.WriteSimple("optional")
		}
		if len(a.args) > 0 {
			c.WriteBulkString("arguments")
			writeArgs(c, a.args)
		}
	}
}

// COMMAND HELP
func (h *Handler) commandHelp(c *resp.Conn, _ *client, _ [][]byte) {
	writeHelp(c, "COMMAND", []string{
		"(no subcommand)", "    Return details about all commands.",
		"COUNT", "    Return the total number of commands in this server.",
		"LIST", "    Return a list of all commands in this server.",
		"INFO [<command-name> ...]", "    Return details about the given commands, or all when none is given.",
		"DOCS [<command-name> ...]", "    Return documentation details about the given commands, or all when none is given.",
	})
}
