"""MCP gateway: one streamable-HTTP endpoint in front of many MCP servers."""

__version__ = "0.1.0"
