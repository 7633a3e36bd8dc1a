"""Upstream: each backend behind one supervised connection, and the requests that travel over it."""
