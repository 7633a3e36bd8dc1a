"""What the gateway tells about itself while it serves: metrics, traces, access logs and call statistics."""
