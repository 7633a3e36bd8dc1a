"""What one MCP endpoint offers: a view of the catalogue, and the gateway's own tools beside the backends'."""
