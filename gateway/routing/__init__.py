"""Routing: a resolved request to the backend that owns it, and what comes back (rounds, updates, list changes)."""
