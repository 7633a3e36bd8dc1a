"""Sample MCP servers (ops, hr, finance) that the gateway fronts; each is a real server over its own SQLite file."""
